"""HTTP checks on a SOAP request, made before its body is looked at.

SOAP 1.1 over HTTP is ``text/xml``; WS-I Basic Profile (R1012) allows UTF-8
and UTF-16 only. Anything else -- ``multipart/*`` (the contract has no
attachments), another media type, another charset, a header that cannot be
read one way only -- is refused here, so that no later step can read the
request differently from the way it was checked.
"""
from __future__ import annotations

import ipaddress
import re
import uuid
from dataclasses import dataclass

from adapter.errors import RequestTooLarge, UnsupportedCharset, UnsupportedMediaType
from adapter.text import ascii_digits

SOAP11_MEDIA_TYPE = "text/xml"
# Charset labels (case-insensitive) and the codec each one names.
CHARSETS = {"utf-8": "utf-8", "utf-16": "utf-16"}
READ_CHUNK = 64 * 1024

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x08\x0a-\x1f\x7f]|\\.)*"'
_MEDIA_TYPE = re.compile(rf"({_TOKEN})/({_TOKEN})")
_PARAMETER = re.compile(rf"[ \t]*;[ \t]*({_TOKEN})=({_TOKEN}|{_QUOTED})")


@dataclass(frozen=True)
class ContentType:
    media_type: str
    charset: str | None  # a codec of CHARSETS, or None when the header names none


def media_type(header: str | None) -> tuple[str | None, dict[str, str]]:
    """A Content-Type header read one way only: its media type (lower case; None when
    the header is absent or blank) and its parameters (names in lower case, values
    unquoted); refused (UnsupportedMediaType) if it cannot be read so."""
    if header is None or not header.strip():
        return None, {}
    header = header.strip()
    match = _MEDIA_TYPE.match(header)
    if match is None:
        raise UnsupportedMediaType(f"Content-Type {header[:80]!r} is not a media type")
    parameters, position = {}, match.end()
    while position < len(header):
        parameter = _PARAMETER.match(header, position)
        if parameter is None:
            raise UnsupportedMediaType(f"Content-Type {header[:80]!r} cannot be read "
                                       "as one media type with parameters")
        name, value = parameter[1].lower(), parameter[2]
        if name in parameters:
            raise UnsupportedMediaType(f"Content-Type gives {name} twice")
        parameters[name] = value[1:-1] if value.startswith('"') else value
        position = parameter.end()
    return f"{match[1]}/{match[2]}".lower(), parameters


def content_type(header: str | None) -> ContentType:
    """The request's Content-Type, checked: ``text/xml`` with at most a UTF-8/UTF-16
    charset. No header at all is taken as ``text/xml``, the only type SOAP 1.1 has."""
    given, parameters = media_type(header)
    if given is None:
        return ContentType(SOAP11_MEDIA_TYPE, None)
    if given != SOAP11_MEDIA_TYPE:
        raise UnsupportedMediaType(f"SOAP 1.1 requests are {SOAP11_MEDIA_TYPE}, "
                                   f"not {given}")
    label = parameters.get("charset")
    if label is None:
        return ContentType(given, None)
    codec = CHARSETS.get(label.lower())
    if codec is None:
        raise UnsupportedCharset(f"charset {label[:40]!r} is not allowed: SOAP messages "
                                 "are UTF-8 or UTF-16 (WS-I Basic Profile R1012)")
    return ContentType(given, codec)


def read_body(environ: dict, limit: int) -> bytes:
    """The request body, refused from its declared length alone when that is over ``limit``."""
    declared = environ.get("CONTENT_LENGTH") or ""
    if ascii_digits(declared) and int(declared) > limit:
        raise RequestTooLarge(f"request of {declared} bytes exceeds the limit of {limit} bytes")
    stream = environ["wsgi.input"]
    remaining = int(declared) if ascii_digits(declared) else limit + 1
    chunks, size = [], 0
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK, remaining))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
        remaining -= len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request exceeds the limit of {limit} bytes")
    return b"".join(chunks)


def new_request_id() -> str:
    """The ID of one request: in its answer (X-Request-ID), its log line, its error."""
    return uuid.uuid4().hex[:12]


_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_PORT = re.compile(r"[0-9]{1,5}")


def valid_host(host: str) -> bool:
    """Whether ``host`` is a syntactically valid ``host[:port]`` (RFC 3986's authority
    without user info): a DNS name of letters, digits and hyphens, an IPv4 address or
    a bracketed IPv6 one, and a port from 1 to 65535."""
    name, port = host, None
    if host.startswith("["):
        name, bracket, rest = host[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return False
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(name)
        except ValueError:
            return False
    else:
        if host.count(":") > 1:
            return False
        name, colon, port = host.partition(":")
        port = port if colon else None
        labels = name.removesuffix(".").split(".")
        if not name or len(name) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
            return False
    return port is None or (_PORT.fullmatch(port) is not None and 0 < int(port) < 65536)


def _first(header: str | None) -> str:
    return (header or "").split(",")[0].strip()


def networks(specs) -> list:
    """``10.20.0.0/16``-style strings as networks (host bits allowed)."""
    return [ipaddress.ip_network(spec, strict=False) for spec in specs]


def address_in(remote_addr: str | None, within: list) -> bool:
    """Whether the client address (``REMOTE_ADDR``) is in one of the networks ``within``."""
    try:
        address = ipaddress.ip_address(remote_addr or "")
    except ValueError:
        return False
    return any(address in network for network in within)


def client_scheme(environ: dict, trusted_proxies: list) -> str:
    """``http`` or ``https``: how the client reached this service -- the request's own
    scheme, or ``X-Forwarded-Proto`` when a trusted proxy sends it."""
    scheme = environ.get("wsgi.url_scheme", "http")
    if address_in(environ.get("REMOTE_ADDR"), trusted_proxies):
        proto = _first(environ.get("HTTP_X_FORWARDED_PROTO")).lower()
        scheme = proto if proto in ("http", "https") else scheme
    return scheme


def public_address(environ: dict, trusted_proxies: list) -> str:
    """``scheme://host[:port]`` of this service as its clients reach it: from the
    request, or from ``X-Forwarded-Proto``/``-Host`` when a trusted proxy sends them."""
    scheme = client_scheme(environ, trusted_proxies)
    host = environ.get("HTTP_HOST", "")
    if address_in(environ.get("REMOTE_ADDR"), trusted_proxies):
        host = _first(environ.get("HTTP_X_FORWARDED_HOST")) or host
    if not valid_host(host):  # never advertise what the client made up
        host = f"{environ.get('SERVER_NAME', 'localhost')}:{environ.get('SERVER_PORT', '80')}"
    return f"{scheme}://{host}"


# The subject of the client certificate the TLS handshake verified, as the server
# (adapter.gunicorn_worker) puts it in the WSGI environ: "CN=pmc.example,O=PMC" (RFC 4514
# order and escaping). Absent without one.
CLIENT_SUBJECT = "pmc_adapter.client_subject"

_SHORT_NAMES = {"commonName": "CN", "organizationName": "O", "organizationalUnitName": "OU",
                "countryName": "C", "localityName": "L", "stateOrProvinceName": "ST",
                "domainComponent": "DC", "streetAddress": "STREET", "userId": "UID"}


def certificate_subject(peer_certificate: dict | None) -> str | None:
    """The subject of a certificate as ``ssl.SSLSocket.getpeercert()`` gives it, written
    as a distinguished name (``CN=pmc.example,O=PagoMisCuentas``); None without one."""
    if not peer_certificate or not peer_certificate.get("subject"):
        return None

    def escaped(value: str) -> str:
        value = "".join(f"\\{c}" if c in ',+"\\<>;=' else c for c in value)
        return ("\\" + value if value[:1] in (" ", "#") else value)

    return ",".join("+".join(f"{_SHORT_NAMES.get(name, name)}={escaped(value)}"
                             for name, value in rdn)
                    for rdn in peer_certificate["subject"])

