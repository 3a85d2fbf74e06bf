"""Operators' passwords, stored as scrypt hashes (RFC 7914, through Python's hashlib:
OpenSSL's implementation), in the PHC string format that argon2 and passlib also write:

    $scrypt$ln=15,r=8,p=1$<salt, base64>$<hash, base64>

``ln`` is log2 of the cost N: 2^15 with r=8 costs 32 MiB and tens of milliseconds a
try, which makes guessing slow and is no burden for a person logging in. The encoding
is parsed strictly: a hash that does not read is a configuration error, never a
password that passes.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
import secrets

SCHEME = "scrypt"
COST_LOG2, BLOCK, PARALLEL = 15, 8, 1
SALT_BYTES, HASH_BYTES = 16, 32
_FORMAT = re.compile(r"\$scrypt\$ln=([0-9]{1,2}),r=([0-9]{1,2}),p=([0-9]{1,2})"
                     r"\$([A-Za-z0-9+/]{16,88})\$([A-Za-z0-9+/]{43,88})")


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _scrypt(password: str, salt: bytes, cost_log2: int, block: int, parallel: int,
            length: int) -> bytes:
    return hashlib.scrypt(password.encode("utf-8"), salt=salt, n=2 ** cost_log2, r=block,
                          p=parallel, dklen=length,
                          maxmem=256 * block * 2 ** cost_log2 + 2 ** 20)


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = secrets.token_bytes(SALT_BYTES)
    digest = _scrypt(password, salt, COST_LOG2, BLOCK, PARALLEL, HASH_BYTES)
    return f"${SCHEME}$ln={COST_LOG2},r={BLOCK},p={PARALLEL}${_b64(salt)}${_b64(digest)}"


def parse(encoded: str) -> tuple[int, int, int, bytes, bytes]:
    """(cost log2, block size, parallelism, salt, hash), or ValueError naming the
    trouble."""
    match = _FORMAT.fullmatch(encoded or "")
    if match is None:
        raise ValueError("not an scrypt hash as `pmc-adapter operator-password` prints "
                         "($scrypt$ln=..,r=..,p=..$salt$hash)")
    cost_log2, block, parallel = (int(group) for group in match.groups()[:3])
    if not (10 <= cost_log2 <= 20 and 1 <= block <= 32 and 1 <= parallel <= 16):
        raise ValueError(f"scrypt parameters ln={cost_log2}, r={block}, p={parallel} are "
                         "outside 10-20, 1-32, 1-16")
    try:
        salt, digest = _unb64(match.group(4)), _unb64(match.group(5))
    except ValueError:
        raise ValueError("the salt or the hash is not base64") from None
    return cost_log2, block, parallel, salt, digest


def verify_password(password: str, encoded: str) -> bool:
    cost_log2, block, parallel, salt, digest = parse(encoded)
    tried = _scrypt(password, salt, cost_log2, block, parallel, len(digest))
    return hmac.compare_digest(tried, digest)


@functools.cache
def decoy() -> str:
    """A hash to verify when the name is unknown, so that a wrong name costs what a
    wrong password does."""
    return hash_password(secrets.token_urlsafe(16))
