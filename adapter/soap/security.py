"""Who may call: an address allow-list and caller credentials.

Both are optional (nothing configured = open, with a warning at start), and
both are checked before anything else is read from the request:

* ``allowed_networks``: the client address (``REMOTE_ADDR``) must be in one
  of these networks; put the adapter's own proxy there when behind one.
* ``callers``: each request must carry a known caller's credentials: a client
  certificate, HTTP Basic or a WS-Security ``UsernameToken``. A password in
  clear text (HTTP Basic, ``PasswordText``) is taken only over HTTPS, as the
  client reached us: directly, or through a trusted proxy that says so, or
  where ``tls_at_proxy`` says TLS ends in front. Otherwise a
  ``PasswordDigest`` with a ``Created`` time within ``wss_window`` of now,
  five minutes by default, and a ``Nonce`` never seen before: the nonces are
  kept in the database, so that a token replayed to another worker or another
  instance on the same database is refused too. A caller
  may be limited to some operations (PMC: ConsultarDeuda and InformarPago;
  the biller's web/app: AltaFactura) and to some billers.

A ``wsse:Security`` header is checked whole: it may carry a UsernameToken and a
``wsu:Timestamp`` (refused once expired, or created in the future), and
nothing this service cannot check (signatures, encrypted keys...). Every
credential failure gets the same message, so that the answer does not tell a
known caller from an unknown one; the reason goes to the log.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
from datetime import datetime, timedelta, timezone
from typing import Callable

from lxml import etree

from adapter.config import CallerSettings, Settings
from adapter.errors import (AddressNotAllowed, ConfigurationError, NotAuthenticated,
                            NotAuthorized)
from adapter.soap import transport

log = logging.getLogger(__name__)

WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
DIGEST = ("http://docs.oasis-open.org/wss/2004/01/"
          "oasis-200401-wss-username-token-profile-1.0#PasswordDigest")
SECURITY_HEADER = f"{{{WSSE_NS}}}Security"
USERNAME_TOKEN = f"{{{WSSE_NS}}}UsernameToken"
TIMESTAMP = f"{{{WSU_NS}}}Timestamp"
DIGEST_WINDOW = timedelta(minutes=5)
AUTHENTICATION_FAILED = "authentication failed: unknown caller, wrong password or invalid token"


# A caller is what its [callers.NAME] section says (password None: known by its
# certificate only; operations, billers None: every one).
Caller = CallerSettings


def _same(a: str, b: str | None) -> bool:
    return b is not None and hmac.compare_digest(a.encode(), b.encode())


def _failed(reason: str) -> NotAuthenticated:
    """The one answer every credential failure gets; the reason (the caller, what was
    wrong, never the secret) goes to the log with the refusal."""
    return NotAuthenticated(AUTHENTICATION_FAILED, reason)


def _instant(text: str | None, what: str) -> datetime:
    try:
        when = datetime.fromisoformat((text or "").strip().replace("Z", "+00:00"))
    except ValueError:
        raise NotAuthenticated(f"WS-Security {what} is not a dateTime") from None
    if when.tzinfo is None:
        raise NotAuthenticated(f"WS-Security {what} must carry its UTC offset")
    return when


# (caller, nonce, until when to remember it) -> False when it was seen before
NonceCheck = Callable[[str, str, datetime], bool]


class Guard:
    def __init__(self, callers: dict[str, Caller], networks: list[str],
                 clock_skew: timedelta = DIGEST_WINDOW, *,
                 digest_window: timedelta = DIGEST_WINDOW,
                 first_use: NonceCheck | None = None,
                 trusted_proxies: tuple[str, ...] = (), tls_at_proxy: bool = False):
        """``first_use`` remembers nonces (without it, no PasswordDigest is accepted);
        ``tls_at_proxy``: every request reached a TLS-terminating proxy before us."""
        self._callers = callers
        self._by_certificate = {caller.certificate: caller for caller in callers.values()
                                if caller.certificate}
        self._with_tokens = [caller for caller in callers.values() if caller.access_token]
        self._networks = transport.networks(networks)
        self._skew = clock_skew
        self._window = digest_window
        self._first_use = first_use
        self._proxies = transport.networks(trusted_proxies)
        self._tls_at_proxy = tls_at_proxy

    @classmethod
    def from_settings(cls, settings: Settings, operations: set[str],
                      first_use: NonceCheck | None = None) -> Guard:
        for name, entry in settings.callers.items():
            unknown = (entry.operations or set()) - operations
            if unknown:
                raise ConfigurationError(
                    f"caller {name}: no operation {', '.join(sorted(unknown))} (the "
                    f"operations are {', '.join(sorted(operations))})")
        return cls(dict(settings.callers), list(settings.allowed_networks),
                   timedelta(seconds=settings.clock_skew),
                   digest_window=timedelta(seconds=settings.wss_window), first_use=first_use,
                   trusted_proxies=settings.trusted_proxies,
                   tls_at_proxy=settings.tls_at_proxy)

    @property
    def authenticates(self) -> bool:
        return bool(self._callers)

    @property
    def understood_headers(self) -> set[str]:
        """Header blocks this guard processes (and so understands, for mustUnderstand)."""
        return {SECURITY_HEADER} if self._callers else set()

    def check_address(self, remote_addr: str | None) -> None:
        if self._networks and not transport.address_in(remote_addr, self._networks):
            raise AddressNotAllowed(f"client address {remote_addr} is not allowed")

    def authenticate(self, environ: dict,
                     security: list[etree._Element]) -> Caller | None:
        """The caller the request proves to be; None when no callers are configured.
        ``security``: the ``wsse:Security`` header blocks addressed to this service."""
        if not self._callers:
            return None
        if len(security) > 1:
            raise NotAuthenticated("more than one wsse:Security header for this service")
        token = self._check_security(security[0]) if security else None
        by_certificate = self._by_certificate.get(environ.get(transport.CLIENT_SUBJECT))
        if by_certificate is not None:
            # the TLS handshake verified it; a token beside it must name the same caller
            if token is not None and self._by_token(token, environ) is not by_certificate:
                raise _failed(f"client certificate of {by_certificate.name} with another "
                              "caller's UsernameToken")
            return by_certificate
        if token is not None:
            return self._by_token(token, environ)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization[:6].lower() == "basic ":
            return self._by_basic(authorization[6:].strip(), environ)
        raise NotAuthenticated("credentials required: HTTP Basic or a WS-Security "
                               "UsernameToken")

    def authenticate_token(self, token, environ: dict) -> Caller | None:
        """The caller whose ``access_token`` (PMC's JSON API) is ``token``; None when no
        callers are configured. Compared with every caller's token, in constant time; a
        token is a password in clear text, so it is taken over HTTPS only."""
        if not self._callers:
            return None
        if not isinstance(token, str) or not token:
            raise _failed("no access_token")
        matches = [caller for caller in self._with_tokens  # every one compared
                   if _same(token, caller.access_token)]
        if not matches:
            raise _failed("unknown access_token")
        caller = matches[0]
        if not self._over_tls(environ):
            raise _failed(f"access_token of {caller.name} over plain HTTP (from "
                          f"{environ.get('REMOTE_ADDR')}): use HTTPS")
        return caller

    def _check_security(self, security: etree._Element) -> etree._Element | None:
        """The header's UsernameToken (or None), once everything in it has been checked."""
        kinds = [child.tag for child in security]
        unsupported = sorted({tag for tag in kinds if tag not in (USERNAME_TOKEN, TIMESTAMP)})
        if unsupported:
            raise NotAuthenticated(f"wsse:Security carries {', '.join(unsupported)}, which this "
                                   "service does not check; send a UsernameToken")
        if not kinds or len(kinds) != len(set(kinds)):
            raise NotAuthenticated("wsse:Security must hold one UsernameToken and at most "
                                   "one wsu:Timestamp")
        timestamp = security.find(TIMESTAMP)
        if timestamp is not None:
            now = datetime.now(timezone.utc)
            created = _instant(timestamp.findtext(f"{{{WSU_NS}}}Created"), "Timestamp Created")
            if created > now + self._skew:
                raise NotAuthenticated("wsu:Timestamp was created in the future")
            expires = timestamp.find(f"{{{WSU_NS}}}Expires")
            if expires is not None and _instant(expires.text, "Timestamp Expires") \
                    < now - self._skew:
                raise NotAuthenticated("wsu:Timestamp has expired")
        return security.find(USERNAME_TOKEN)

    def _known(self, name: str) -> Caller:
        caller = self._callers.get(name)
        if caller is None:
            raise _failed(f"unknown caller {name[:40]!r}")
        return caller

    def _over_tls(self, environ: dict) -> bool:
        """Did the client reach us over HTTPS (here, at a trusted proxy that says so, or
        at the TLS proxy ``tls_at_proxy`` says is in front)? A password in clear text
        is taken only then."""
        return self._tls_at_proxy or transport.client_scheme(environ, self._proxies) == "https"

    def _by_basic(self, encoded: str, environ: dict) -> Caller:
        try:
            name, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise _failed("malformed HTTP Basic credentials") from None
        caller = self._known(name)
        if not self._over_tls(environ):
            raise _failed(f"HTTP Basic of {caller.name} over plain HTTP (from "
                          f"{environ.get('REMOTE_ADDR')}): use HTTPS, a PasswordDigest or a "
                          "client certificate")
        if not _same(password, caller.password):
            raise _failed(f"wrong HTTP Basic password for {name}")
        return caller

    def _by_token(self, token: etree._Element, environ: dict) -> Caller:
        caller = self._known(token.findtext(f"{{{WSSE_NS}}}Username") or "")
        password = token.find(f"{{{WSSE_NS}}}Password")
        if password is None:
            raise _failed(f"UsernameToken of {caller.name} without a Password")
        given = password.text or ""
        if caller.password is None:
            raise _failed(f"UsernameToken of {caller.name}, who has no password (a client "
                          "certificate only)")
        if password.get("Type") != DIGEST:
            if not self._over_tls(environ):
                raise _failed(f"PasswordText of {caller.name} over plain HTTP (from "
                              f"{environ.get('REMOTE_ADDR')}): use HTTPS or a PasswordDigest")
            if not _same(given, caller.password):
                raise _failed(f"wrong UsernameToken password for {caller.name}")
            return caller
        raw_nonce, created, when = self._fresh_nonce(token, caller)
        digest = hashlib.sha1(raw_nonce + created.encode() + caller.password.encode()).digest()
        if not _same(given, base64.b64encode(digest).decode()):
            raise _failed(f"wrong UsernameToken password for {caller.name}")
        # Only a proven token spends its nonce (nobody else can burn a caller's nonces),
        # remembered by its bytes: another base64 spelling of them is the same nonce.
        nonce = base64.b64encode(raw_nonce).decode()
        if self._first_use is None or not self._first_use(caller.name, nonce,
                                                          when + self._window):
            raise _failed(f"PasswordDigest of {caller.name} replayed (Nonce {nonce[:24]} "
                          "seen before)")
        return caller

    def _fresh_nonce(self, token: etree._Element,
                     caller: Caller) -> tuple[bytes, str, datetime]:
        """The token's Nonce (decoded), Created (as sent: the digest covers that text) and
        its instant, once both are valid and Created is within the window of now."""
        nonce = token.findtext(f"{{{WSSE_NS}}}Nonce") or ""
        created = token.findtext(f"{{{WSU_NS}}}Created") or ""
        try:
            when = datetime.fromisoformat(created.strip().replace("Z", "+00:00"))
            raw_nonce = base64.b64decode(nonce, validate=True)
        except (ValueError, binascii.Error):
            raise _failed(f"PasswordDigest of {caller.name} without a valid Nonce "
                          "and Created") from None
        if not raw_nonce or len(raw_nonce) > 96:
            raise _failed(f"PasswordDigest of {caller.name} with an empty or oversized Nonce")
        if when.tzinfo is None or abs(datetime.now(timezone.utc) - when) > self._window:
            raise _failed(f"PasswordDigest of {caller.name} created {created}, "
                          f"not within {self._window.total_seconds():g} s of now")
        return raw_nonce, created, when

    @staticmethod
    def authorize(caller: Caller | None, operation: str) -> None:
        if caller is not None and caller.operations is not None \
                and operation not in caller.operations:
            raise NotAuthorized(f"caller {caller.name} may not call {operation}")

    @staticmethod
    def authorize_biller(caller: Caller | None, biller_id: str) -> None:
        if caller is not None and caller.billers is not None \
                and biller_id not in caller.billers:
            raise NotAuthorized(f"caller {caller.name} may not act for biller {biller_id}")
