"""Who may call: an address allow-list and caller credentials.

Both are optional (nothing configured = open, with a warning at start), and
both are checked before anything else is read from the request:

* ``allowed_networks``: the client address (``REMOTE_ADDR``) must be in one
  of these networks; put the adapter's own proxy there when behind one.
* ``callers``: each request must carry a known caller's credentials, either
  HTTP Basic or a WS-Security ``UsernameToken`` (``PasswordText``, or
  ``PasswordDigest`` with a ``Created`` time within five minutes). A caller
  may be limited to some operations (PMC: ConsultarDeuda and InformarPago;
  the biller's web/app: AltaFactura).
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from lxml import etree

from adapter.config import Settings
from adapter.errors import (AddressNotAllowed, ConfigurationError, NotAuthenticated,
                            NotAuthorized)

WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
SECURITY_HEADER = f"{{{WSSE_NS}}}Security"
DIGEST_WINDOW = timedelta(minutes=5)


@dataclass(frozen=True)
class Caller:
    name: str
    password: str = field(repr=False)
    operations: frozenset[str] | None = None  # None: every operation


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


class Guard:
    def __init__(self, callers: dict[str, Caller], networks: list[str]):
        self._callers = callers
        self._networks = [ipaddress.ip_network(n, strict=False) for n in networks]

    @classmethod
    def from_settings(cls, settings: Settings, operations: set[str]) -> Guard:
        callers = {}
        for name, entry in settings.callers.items():
            allowed = entry.get("operations")
            if allowed is not None:
                unknown = set(allowed) - operations
                if unknown:
                    raise ConfigurationError(f"caller {name}: no operation {sorted(unknown)}")
                allowed = frozenset(allowed)
            callers[name] = Caller(name, str(entry["password"]), allowed)
        return cls(callers, list(settings.allowed_networks))

    @property
    def authenticates(self) -> bool:
        return bool(self._callers)

    def check_address(self, remote_addr: str | None) -> None:
        if not self._networks:
            return
        try:
            address = ipaddress.ip_address(remote_addr or "")
        except ValueError:
            raise AddressNotAllowed(f"client address {remote_addr!r} is not allowed") from None
        if not any(address in network for network in self._networks):
            raise AddressNotAllowed(f"client address {address} is not allowed")

    def authenticate(self, environ: dict, header: etree._Element | None) -> Caller | None:
        """The caller the request proves to be; None when no callers are configured."""
        if not self._callers:
            return None
        token = None if header is None else header.find(
            f"{SECURITY_HEADER}/{{{WSSE_NS}}}UsernameToken")
        if token is not None:
            return self._by_token(token)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization[:6].lower() == "basic ":
            return self._by_basic(authorization[6:].strip())
        raise NotAuthenticated("credentials required: HTTP Basic or a WS-Security "
                               "UsernameToken")

    def _known(self, name: str) -> Caller:
        caller = self._callers.get(name)
        if caller is None:
            raise NotAuthenticated("unknown caller or wrong password")
        return caller

    def _by_basic(self, encoded: str) -> Caller:
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise NotAuthenticated("malformed HTTP Basic credentials") from None
        caller = self._known(name)
        if not _same(password, caller.password):
            raise NotAuthenticated("unknown caller or wrong password")
        return caller

    def _by_token(self, token: etree._Element) -> Caller:
        caller = self._known(token.findtext(f"{{{WSSE_NS}}}Username") or "")
        password = token.find(f"{{{WSSE_NS}}}Password")
        if password is None:
            raise NotAuthenticated("UsernameToken without a Password")
        given = password.text or ""
        if password.get("Type") == DIGEST:
            expected = self._digest(token, caller.password)
        else:
            expected = caller.password
        if not _same(given, expected):
            raise NotAuthenticated("unknown caller or wrong password")
        return caller

    @staticmethod
    def _digest(token: etree._Element, password: str) -> str:
        nonce = token.findtext(f"{{{WSSE_NS}}}Nonce") or ""
        created = token.findtext(f"{{{WSU_NS}}}Created") or ""
        try:
            when = datetime.fromisoformat(created.replace("Z", "+00:00"))
            raw_nonce = base64.b64decode(nonce, validate=True)
        except (ValueError, binascii.Error):
            raise NotAuthenticated("PasswordDigest needs a valid Nonce and Created") from None
        if when.tzinfo is None or abs(datetime.now(timezone.utc) - when) > DIGEST_WINDOW:
            raise NotAuthenticated("UsernameToken Created is not within five minutes of now")
        digest = hashlib.sha1(raw_nonce + created.encode() + password.encode()).digest()
        return base64.b64encode(digest).decode()

    @staticmethod
    def authorize(caller: Caller | None, operation: str) -> None:
        if caller is not None and caller.operations is not None \
                and operation not in caller.operations:
            raise NotAuthorized(f"caller {caller.name} may not call {operation}")
