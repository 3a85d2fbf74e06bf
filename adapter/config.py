"""The adapter's configuration, in one place.

Sources, later ones winning: built-in defaults (which work on a fresh machine:
a SQLite file in the working directory, no ERP), an optional TOML file
(``--config`` or ``PMC_ADAPTER_CONFIG``), then ``PMC_ADAPTER_*`` environment
variables.

Config file example::

    [adapter]
    database_url = "postgresql+psycopg://pmc@db.internal/pmc"
    bind = "0.0.0.0:8080"
    workers = 4
    billers = ["1234", "5678"]    # the billers served (alias: empresas); unset: any
    max_request_bytes = 65536     # real messages are a few KiB
    max_xml_depth = 32
    max_xml_elements = 500
    max_xml_attributes = 32       # on one element (namespace declarations count)
    max_xml_attributes_total = 256  # in a document
    request_timeout = 10.0        # seconds for a whole request (headers and body) to arrive
    clock_skew = 300.0            # seconds a payment may be dated ahead of our clock
    wss_window = 300.0            # seconds a PasswordDigest's Created may be from now
    public_wsdl = false           # true: GET routes (WSDL, XSD) skip the address allow-list
    tls_at_proxy = false          # true: TLS ends at a proxy in front (PasswordText allowed)
    validation = "libxml2"        # who decides a message is valid; "both": xmlschema too
    log_format = "text"           # or "json": one JSON object per log line
    reversal_cutoff_hour = 24     # a payment may be reversed until this hour of its day
    charge_window_days = 0        # business days after a debt query a payment may end it

    # the network's payment reports (COB), fetched by `pmc-adapter fetch-cob`
    cob_ftp_host = "ftps.pagomiscuentas.example"
    cob_ftp_port = 990
    cob_ftp_tls = "implicit"      # or "explicit" (AUTH TLS, usually port 21)
    cob_ftp_username = "empresa1234"
    cob_ftp_password = "secret"
    cob_ftp_ca_file = "/etc/pmc-adapter/network-ca.pem"   # unset: the system's CAs
    cob_fetch_days = 5            # business days polled back
    cob_download_dir = "/var/lib/pmc-adapter/cob"
    # the billing base (FAC) sent by `pmc-adapter upload-fac`, on the same account
    fac_ftp_folder = "Upload"     # where FAC files go (the reports come from cob_ftp_folder)
    fac_cutoff = "14:30"          # Buenos Aires time: a file sent later counts next business day
    fac_max_files_per_day = 10    # FACnnnn.DDMMAA.1 to .10

    # the ERP of every biller served (optional; none = billing base only)
    erp_wsdl = "http://erp.internal:8090/erp?wsdl"
    erp_timeout = 3.0

    # PMC's collection API (optional): invoices created online are sent there
    pmc_api_url = "https://recaudaciones.example/recaudaciones-api/v1"
    pmc_api_token = "the-token-pmc-gave-the-biller"
    pmc_api_timeout = 5.0

    # HTTPS (PEM files); unset = plain HTTP, e.g. behind a TLS-terminating proxy
    tls_cert = "/etc/pmc-adapter/cert.pem"
    tls_key = "/etc/pmc-adapter/key.pem"
    tls_client_ca = "/etc/pmc-adapter/clients-ca.pem"   # optional: mutual TLS
    # who may call (both optional; unset = anyone, with a warning at start)
    allowed_networks = ["10.20.0.0/16", "127.0.0.1/32"]
    trusted_proxies = ["10.20.0.5/32"]   # its X-Forwarded-Proto says HTTPS (clear-text secrets)
    public_url = "https://pmc-adapter.example.com/soap"   # the address the WSDL advertises
    metrics_networks = ["10.30.0.0/24"]  # optional: who may scrape /metrics (Prometheus)

    [callers.pmc]            # the network: HTTP Basic or WS-Security UsernameToken
    password = "change-me"
    certificate = "CN=pmc.example,O=PagoMisCuentas"  # or (and) its client certificate
    operations = ["ConsultarDeuda", "InformarPago", "AnularPago", "ConsultarPago", "Eco"]
    billers = ["1234"]       # optional: the billers this caller may act for (alias: empresas)

    [callers.web]            # the biller's web/app
    password = "change-me-too"
    operations = ["AltaFactura", "ConsultarDeuda"]

    [billers.1234]           # per-biller settings override the ones above (alias: [empresas.1234])
    name = "Aguas del Sur"
    reversal_cutoff_hour = 21                      # this biller's reversal window
    erp_wsdl = "/etc/pmc-adapter/aguas-erp.wsdl"
    erp_connector = "mycompany.erp:SapConnector"   # module:Class, see adapter/erp/connector.py
    erp_auth = "wsse"                              # or "basic"
    erp_username = "pmc"
    erp_password = "secret"
    erp_options = { prefix = "X-" }                # for the connector class alone

Every section's keys are checked: an unknown one stops the start, naming it and
the closest valid key, so that a typo never widens what a caller may do. Each
component gets a typed part of the settings it owns (:class:`ErpSettings`,
:class:`FtpsSettings`, :class:`CallerSettings`) and nothing else.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from datetime import time
from pathlib import Path
from typing import Any, Callable, Mapping, NamedTuple
from urllib.parse import urlsplit

from adapter.domain.billing_base import DEFAULT_CUTOFF as DEFAULT_FAC_CUTOFF
from adapter.domain.billing_base import DEFAULT_MAX_FILES_PER_DAY as DEFAULT_FAC_MAX_FILES
from adapter.errors import ConfigurationError

#: libxml2's own nesting limit when lxml parses without huge_tree (as the gateway
#: does): a deeper document is refused by the parser whatever max_xml_depth says, so
#: max_xml_depth may not promise more.
LIBXML2_MAX_DEPTH = 256

ENV_PREFIX = "PMC_ADAPTER_"
#: PMC_ADAPTER_TEST_* belong to the test suite (tests/conftest.py), never to the adapter.
TEST_ENV_PREFIX = ENV_PREFIX + "TEST_"
DEFAULT_DATABASE_URL = "sqlite:///pmc-adapter.sqlite3"
DEFAULT_ERP_CONNECTOR = "adapter.erp.legacy:LegacyErp"
BILLER_ID = re.compile(r"[0-9]{4}")
VALIDATION_ENGINES = ("libxml2", "both")  # see adapter.soap.validation
FTPS_TLS_MODES = ("implicit", "explicit")
ERP_AUTH_MODES = ("wsse", "basic")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")
#: Old (Spanish) names accepted for the English ones, in every place a key or a table
#: is named: ``empresas`` for ``billers``.
ALIASES = {"empresas": "billers"}


# -- the typed parts each component gets ----------------------------------------

@dataclass(frozen=True)
class ErpSettings:
    """What an ERP connector is built with (adapter.erp.connector), and nothing else."""

    wsdl: str | None = None
    timeout: float = 3.0
    connector: str = DEFAULT_ERP_CONNECTOR
    auth: str | None = None  # "wsse" (UsernameToken) or "basic"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    # erp_options: the connector class's own settings (a biller's connector, not ours)
    options: Mapping[str, Any] = field(default_factory=dict, hash=False, repr=False)

    @property
    def configured(self) -> bool:
        return bool(self.wsdl)


@dataclass(frozen=True)
class PmcApiSettings:
    """PMC's collection API, where invoices created online are sent (adapter.pmc)."""

    url: str | None = None  # e.g. https://recaudaciones.example/recaudaciones-api/v1
    token: str | None = field(default=None, repr=False)  # sent as "Authorization: Bearer"
    timeout: float = 5.0  # seconds for a whole call

    @property
    def configured(self) -> bool:
        return bool(self.url)


@dataclass(frozen=True)
class FtpsSettings:
    """One account on the network's FTPS server (adapter.files.ftps): the payment reports
    and rejection files come down from ``folder``, the billing base goes up to
    ``upload_folder``."""

    host: str | None = None
    port: int = 990
    tls: str = "implicit"  # or "explicit": AUTH TLS, usually on port 21
    username: str = ""
    password: str = field(default="", repr=False)
    folder: str = "Download"  # the reports and rejection files (cob_ftp_folder)
    upload_folder: str = "Upload"  # the billing base files sent (fac_ftp_folder)
    timeout: float = 30.0  # seconds, for connecting and for every read and write
    ca_file: str | None = None  # PEM bundle to verify the server; None: the system's CAs

    def __post_init__(self):
        if self.tls not in FTPS_TLS_MODES:
            raise ValueError(f"tls must be one of {', '.join(FTPS_TLS_MODES)}, "
                             f"not {self.tls!r}")

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class CallerSettings:
    """One ``[callers.NAME]`` section (adapter.soap.security builds its Caller from it)."""

    name: str
    password: str | None = field(default=None, repr=False)
    certificate: str | None = None  # the subject of its client certificate (mutual TLS)
    # what PMC's JSON API puts in the body's access_token (adapter.api)
    access_token: str | None = field(default=None, repr=False)
    operations: frozenset[str] | None = None  # None: every operation
    billers: frozenset[str] | None = None  # None: every biller served


@dataclass(frozen=True)
class OperatorSettings:
    """One ``[operators.NAME]`` section: a person of the back office (adapter.console),
    never a SOAP or API caller."""

    name: str
    password_hash: str = field(repr=False)
    role: str = "viewer"  # or "resolver": may also apply, dismiss and retry


@dataclass(frozen=True)
class BillerSettings:
    """One ``[billers.NNNN]`` section, its ERP and FTPS settings over the global ones."""

    biller_id: str
    name: str | None = None
    reversal_cutoff_hour: int | None = None  # None: the global one
    erp: ErpSettings = ErpSettings()
    cob_ftp: FtpsSettings = FtpsSettings()
    pmc_api: PmcApiSettings = PmcApiSettings()


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    # Threads per worker: a request waiting on a slow ERP must not hold up the others.
    threads: int = 16
    # Billers (4-digit numbers) this adapter serves (``billers``); empty serves any biller.
    served_billers: frozenset[str] = frozenset()
    # Caps on a request, checked before anything else is done with it. Real
    # messages are a few KiB and a dozen levels deep; the caps leave room for
    # WS-Security headers and long descriptions, and no more.
    max_request_bytes: int = 64 * 1024
    max_xml_depth: int = 32
    max_xml_elements: int = 500
    # Attributes (namespace declarations included) on one element, and in a document:
    # the contract's messages carry a few (WS-Security's), a hostile one thousands.
    max_xml_attributes: int = 32
    max_xml_attributes_total: int = 256
    # Seconds a stopping server (SIGTERM) gives the requests and deliveries in flight.
    graceful_timeout: float = 20.0
    # Seconds a client has to send a whole request (headers and body), from its first byte.
    request_timeout: float = 10.0
    log_level: str = "info"
    # "text" (a terminal's), or "json": one JSON object per line (adapter.logs)
    log_format: str = "text"
    # The legacy ERP of every biller without its own (none configured = billing base only).
    erp: ErpSettings = ErpSettings()
    # Forwarding payments to the ERP: poll interval and retry backoff (seconds).
    forward_poll: float = 2.0
    forward_retry_base: float = 2.0
    forward_retry_max: float = 300.0
    # Deliveries at once per forwarder (each worker process runs one), and how often an
    # ERP that failed is probed whatever the backoff (its backlog released when it answers).
    forward_concurrency: int = 4
    forward_probe: float = 10.0
    # PMC's collection API of every biller without its own: invoices created online
    # (AltaFactura) are sent there through its outbox (same poll, backoff and probe).
    pmc_api: PmcApiSettings = PmcApiSettings()
    # How far ahead of this server's clock a payment may be dated and still be applied.
    clock_skew: float = 300.0
    # seconds a WS-Security PasswordDigest's Created may be from now (its nonce is
    # remembered that long: a replay within it is refused)
    wss_window: float = 300.0
    # True: GET routes (WSDL, XSD) are open to any address, not only allowed_networks.
    public_wsdl: bool = False
    # True: every request reached a TLS-terminating proxy first, so that clear-text
    # secrets (HTTP Basic, a WS-Security PasswordText) arriving over plain HTTP are
    # accepted (otherwise only over HTTPS).
    tls_at_proxy: bool = False
    # The address the WSDL advertises (CXF's published endpoint URL), e.g.
    # "https://pmc.example.com/soap". Unset: the request's Host, when it is a valid
    # host[:port] (set it in production: a Host header is the client's to choose).
    public_url: str | None = None
    # Which XSD engines decide that a message is valid (adapter.soap.validation):
    # "libxml2" (xmlschema writes the message of every rejection) or "both".
    validation: str = "libxml2"
    # A payment may be reversed (AnularPago) on its business day in Buenos Aires until
    # this hour (0-24; 24: the end of that day). A biller's section may set its own.
    reversal_cutoff_hour: int = 24
    # A debt query without a notice naming it ends in a payment of the same client (and
    # invoice) made at most this many business days after it (0: the same day): the
    # network charges for those queries only.
    charge_window_days: int = 0
    # The network's FTPS server of payment reports (pmc-adapter fetch-cob); a biller's
    # section may set its own cob_ftp_* (each biller has its own account there).
    cob_ftp: FtpsSettings = FtpsSettings()
    cob_fetch_days: int = 5  # the last N business days' reports are looked for
    cob_download_dir: str = "cob-reports"
    # The billing base (pmc-adapter upload-fac): a file sent before this time (Buenos Aires)
    # on a business day counts for that day, else for the next; at most so many a day.
    fac_cutoff: time = DEFAULT_FAC_CUTOFF
    fac_max_files_per_day: int = DEFAULT_FAC_MAX_FILES
    # Proxies (networks) whose X-Forwarded-Proto/-Host say how clients reached us.
    # Unset: those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Who may scrape /metrics; unset: the same allow-list as every route.
    metrics_networks: tuple[str, ...] = ()
    # HTTPS, terminated by gunicorn (both files PEM; unset = plain HTTP).
    tls_cert: str | None = None
    tls_key: str | None = None
    # PEM bundle of the CAs whose client certificates are accepted (mutual TLS); a caller
    # is then known by its certificate's subject ([callers.NAME] certificate = "CN=...")
    tls_client_ca: str | None = None
    # Who may call: client networks, and callers by name.
    allowed_networks: tuple[str, ...] = ()
    callers: Mapping[str, CallerSettings] = field(default_factory=dict, repr=False)
    billers: Mapping[str, BillerSettings] = field(default_factory=dict)
    # The back office in a browser (/console/): none unless an operator is configured;
    # who may reach it (unset: allowed_networks), how long an idle session lasts
    # (seconds), and failed logins a name or an address may have in 15 minutes.
    operators: Mapping[str, OperatorSettings] = field(default_factory=dict, repr=False)
    console_networks: tuple[str, ...] = ()
    console_session_timeout: float = 900.0
    console_login_attempts: int = 5

    def serves(self, biller_id: str) -> bool:
        return not self.served_billers or biller_id in self.served_billers

    @property
    def known_billers(self) -> frozenset[str]:
        """The billers served and the billers with a section of their own."""
        return self.served_billers | frozenset(self.billers)

    def reversal_cutoff(self, biller_id: str) -> int:
        """The hour a payment of ``biller_id`` can no longer be reversed on its day."""
        section = self.billers.get(biller_id)
        if section is None or section.reversal_cutoff_hour is None:
            return self.reversal_cutoff_hour
        return section.reversal_cutoff_hour

    def erp_for(self, biller_id: str) -> ErpSettings:
        """The ERP of one biller: its [billers.NNNN] section's over the global one."""
        section = self.billers.get(biller_id)
        return self.erp if section is None else section.erp

    def pmc_api_for(self, biller_id: str) -> PmcApiSettings:
        """PMC's collection API for one biller: its section's over the global one."""
        section = self.billers.get(biller_id)
        return self.pmc_api if section is None else section.pmc_api

    def cob_ftp_for(self, biller_id: str) -> FtpsSettings:
        """The FTPS account of one biller: its [billers.NNNN] section's over the global one."""
        section = self.billers.get(biller_id)
        return self.cob_ftp if section is None else section.cob_ftp


# -- parsing one value -------------------------------------------------------------
# Each parser takes the key's full name (for the message) and the value as the file
# (TOML: typed) or the environment (always text) gave it.

Parser = Callable[[str, Any], Any]


def _split_list(name: str, value: Any) -> list[str]:
    if isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise ConfigurationError(f"{name} must be a list of text, got {value!r}")
        return [item.strip() for item in value]
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    raise ConfigurationError(f"{name} must be a list, got {value!r}")


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be text, got {value!r}")
    return value


def _optional_text(name: str, value: Any) -> str | None:
    return _text(name, value) or None


def _positive(kind: type) -> Parser:
    """A parser of positive ``kind`` (int or float) numbers."""
    def parse(name: str, value: Any):
        what = "a whole number" if kind is int else "a number"
        try:
            if isinstance(value, bool) or (kind is int and isinstance(value, float)):
                raise ValueError
            number = kind(value)
        except (TypeError, ValueError):
            raise ConfigurationError(f"{name} must be {what}, got {value!r}") from None
        if number <= 0:
            raise ConfigurationError(f"{name} must be positive, got {number}")
        return number
    return parse


_positive_int, _positive_float = _positive(int), _positive(float)


def _hour(name: str, value: Any) -> int:
    """``value`` as an hour of the day, 0 to 24, or a ConfigurationError naming it."""
    try:
        if isinstance(value, (bool, float)):
            raise ValueError
        hour = int(value)
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a whole hour, 0 to 24, got {value!r}") \
            from None
    if not 0 <= hour <= 24:
        raise ConfigurationError(f"{name} must be a whole hour, 0 to 24, got {hour}")
    return hour


def _xml_depth(name: str, value: Any) -> int:
    depth = _positive_int(name, value)
    if depth > LIBXML2_MAX_DEPTH:
        # deeper documents are refused by libxml2 itself (no huge_tree), whatever we say
        raise ConfigurationError(f"{name} must be at most {LIBXML2_MAX_DEPTH} "
                                 f"(the XML parser's own limit), got {depth}")
    return depth


def _password_hash(name: str, value: Any) -> str:
    from adapter.passwords import parse

    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be text, got {type(value).__name__}")
    try:
        parse(value)
    except ValueError as error:
        raise ConfigurationError(f"{name}: {error}") from None
    return value


def _clock_time(name: str, value: Any) -> time:
    """``"HH:MM"`` (or a TOML time) as a time of day, or a ConfigurationError naming it."""
    if isinstance(value, time) and value.tzinfo is None:
        return value
    try:
        if not isinstance(value, str) or not re.fullmatch(r"[0-9]{2}:[0-9]{2}", value):
            raise ValueError
        return time.fromisoformat(value)
    except ValueError:
        raise ConfigurationError(f"{name} must be a time of day as HH:MM (24 hours), got "
                                 f"{value!r}") from None


def _files_per_day(name: str, value: Any) -> int:
    files = _positive_int(name, value)
    if files > 99:
        raise ConfigurationError(f"{name} must be 1 to 99 (the file name's attempt number), "
                                 f"got {files}")
    return files


def _days(name: str, value: Any) -> int:
    try:
        if isinstance(value, (bool, float)):
            raise ValueError
        days = int(value)
        if days < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError(f"{name} must be a whole number of days, 0 or more, "
                                 f"got {value!r}") from None
    return days


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def _choice(*words: str, optional: bool = False) -> Parser:
    def parse(name: str, value: Any) -> str | None:
        if optional and value in (None, ""):
            return None
        if value not in words:
            raise ConfigurationError(f"{name}: {value!r} is not one of {', '.join(words)}")
        return value
    return parse


def _networks(name: str, value: Any) -> tuple[str, ...]:
    networks = tuple(_split_list(name, value))
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigurationError(f"{name}: {network!r} is not a network") from None
    return networks


def _biller_ids(name: str, value: Any) -> frozenset[str]:
    billers = frozenset(_split_list(name, value))
    bad = sorted(b for b in billers if not BILLER_ID.fullmatch(b))
    if bad:
        raise ConfigurationError(f"{name}: biller numbers are 4 digits; got {', '.join(bad)}")
    return billers


def _words(name: str, value: Any) -> frozenset[str]:
    return frozenset(_split_list(name, value))


def _connector(name: str, value: Any) -> str:
    text = _text(name, value)
    module, _, cls = text.partition(":")
    if not module or not cls:
        raise ConfigurationError(f"{name} must be module:Class, got {text!r}")
    return text


def _table(name: str, value: Any) -> dict:
    if not isinstance(value, dict):
        raise ConfigurationError(f"{name} must be a table, e.g. {{ key = \"value\" }}, "
                                 f"got {value!r}")
    return dict(value)


MIN_ACCESS_TOKEN = 16


def _access_token(name: str, value: Any) -> str | None:
    text = _optional_text(name, value)
    if text is not None and (len(text) < MIN_ACCESS_TOKEN or not text.isascii()
                             or not text.isprintable() or " " in text):
        raise ConfigurationError(f"{name} must be at least {MIN_ACCESS_TOKEN} printable ASCII "
                                 "characters without spaces (the token PMC was given)")
    return text


def _public_url(name: str, value: Any) -> str | None:
    text = _optional_text(name, value)
    if text is None:
        return None
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname \
            or parts.query or parts.fragment or parts.username or parts.password:
        raise ConfigurationError(f"{name} must be an http(s) URL without credentials, "
                                 f"query or fragment, e.g. https://pmc.example.com/soap; "
                                 f"got {text!r}")
    return text


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")


def _pmc_api_url(name: str, value: Any) -> str | None:
    """An http(s) base URL; plain http only on this machine (the token would travel in
    the clear): the bundled simulator, or a local TLS-terminating proxy."""
    text = _public_url(name, value)
    if text is not None and urlsplit(text).scheme == "http" \
            and urlsplit(text).hostname not in LOOPBACK_HOSTS:
        raise ConfigurationError(f"{name} must be https (its token would travel in the "
                                 f"clear); plain http only to this machine; got {text!r}")
    return text.rstrip("/") if text else None


# -- the keys of each section -----------------------------------------------------
# name -> Key(parser, default, doc). The ERP and FTPS keys are the global ones in
# [adapter] and a biller's own in [billers.NNNN]. ``doc`` is the key's meaning in one
# line: the manual's configuration tables are made from these (docs/_ext/pmcdocs.py).

class Key(NamedTuple):
    parser: Parser
    default: Any
    doc: str


ERP_KEYS: dict[str, Key] = {
    "erp_wsdl": Key(_optional_text, None,
                    "WSDL (URL or file) of the ERP; unset: the billing base only"),
    "erp_timeout": Key(_positive_float, 3.0,
                       "seconds; bounds every ERP call, whole (not per read: an ERP "
                       "dribbling its answer is cut at it)"),
    "erp_connector": Key(_connector, DEFAULT_ERP_CONNECTOR,
                         "the connector class, ``module:Class``"),
    "erp_auth": Key(_choice(*ERP_AUTH_MODES, optional=True), None,
                    "``wsse`` (WS-Security UsernameToken) or ``basic``; unset: none"),
    "erp_username": Key(_optional_text, None, "the user name for the ERP"),
    "erp_password": Key(_optional_text, None, "the password for the ERP"),
    "erp_options": Key(_table, {},
                       "a table of settings for the connector class alone (nothing "
                       "else of the configuration reaches a connector)"),
}
PMC_API_KEYS: dict[str, Key] = {
    "pmc_api_url": Key(_pmc_api_url, None,
                       "PMC's collection API (HTTPS), where AltaFactura's invoices are "
                       "sent; unset: invoices stay here"),
    "pmc_api_token": Key(_access_token, None,
                         "its Bearer token; required with the URL"),
    "pmc_api_timeout": Key(_positive_float, 5.0, "seconds; bounds every call, whole"),
}
FTPS_KEYS: dict[str, Key] = {
    "cob_ftp_host": Key(_optional_text, None,
                        "the network's FTPS server (payment reports, billing base); "
                        "unset: none"),
    "cob_ftp_port": Key(_positive_int, 990, "its port"),
    "cob_ftp_tls": Key(_choice(*FTPS_TLS_MODES), "implicit",
                       "``implicit`` (usually port 990) or ``explicit`` (AUTH TLS, "
                       "usually port 21)"),
    "cob_ftp_username": Key(_text, "", "the account's user name"),
    "cob_ftp_password": Key(_text, "", "the account's password"),
    "cob_ftp_folder": Key(_text, "Download",
                          "the folder of the payment reports and rejection files"),
    "cob_ftp_timeout": Key(_positive_float, 30.0,
                           "seconds, for connecting and for every read and write"),
    "cob_ftp_ca_file": Key(_optional_text, None,
                           "PEM bundle to verify the server; unset: the system's CAs"),
    "fac_ftp_folder": Key(_text, "Upload",  # FtpsSettings.upload_folder
                          "the folder the billing base files (FAC) are sent to"),
}
ADAPTER_KEYS: dict[str, Key] = {
    "database_url": Key(_text, DEFAULT_DATABASE_URL,
                        "SQLAlchemy URL; production: "
                        "``postgresql+psycopg://user@host/db``"),
    "bind": Key(_text, "127.0.0.1:8080", "address gunicorn listens on"),
    "workers": Key(_positive_int, 2, "gunicorn worker processes"),
    "threads": Key(_positive_int, 16,
                   "threads per worker (requests waiting on the ERP do not hold up "
                   "others)"),
    "billers": Key(_biller_ids, frozenset(),
                   "the 4-digit biller numbers this adapter serves (comma-separated in "
                   "the environment); empty: any biller, with a warning at start"),
    "max_request_bytes": Key(_positive_int, 64 * 1024,
                             "larger requests are refused (real messages are a few KiB)"),
    "max_xml_depth": Key(_xml_depth, 32, "deeper documents are refused"),
    "max_xml_elements": Key(_positive_int, 500,
                            "documents with more elements are refused, while being "
                            "parsed"),
    "max_xml_attributes": Key(_positive_int, 32,
                              "attributes (namespace declarations count) one element "
                              "may carry; refused while being parsed"),
    "max_xml_attributes_total": Key(_positive_int, 256,
                                    "attributes a whole document may carry; refused "
                                    "while being parsed, before any schema work"),
    "graceful_timeout": Key(_positive_float, 20.0,
                            "seconds a stopping server (SIGTERM) gives the requests and "
                            "ERP deliveries in flight; then the claims left are released"),
    "request_timeout": Key(_positive_float, 10.0,
                           "seconds a client has to send a whole request (headers and "
                           "body)"),
    "log_level": Key(_choice(*LOG_LEVELS), "info", "gunicorn's log level"),
    "log_format": Key(_choice("text", "json"), "text",
                      "``json``: the adapter's log lines as one JSON object each"),
    **ERP_KEYS,
    "forward_poll": Key(_positive_float, 2.0,
                        "seconds between outbox looks (a new payment wakes its worker "
                        "at once)"),
    "forward_retry_base": Key(_positive_float, 2.0,
                              "seconds: the first retry delay; doubles per failure"),
    "forward_retry_max": Key(_positive_float, 300.0,
                             "seconds: the longest delay between retries"),
    "forward_concurrency": Key(_positive_int, 4,
                               "deliveries at once per forwarder (each worker process "
                               "runs one)"),
    "forward_probe": Key(_positive_float, 10.0,
                         "seconds between probes of an ERP (or PMC API) that failed, "
                         "whatever the backoff"),
    **PMC_API_KEYS,
    "clock_skew": Key(_positive_float, 300.0,
                      "seconds a payment may be dated ahead of the server's clock (and "
                      "WS-Security timestamps may be off)"),
    "wss_window": Key(_positive_float, 300.0,
                      "seconds a ``PasswordDigest``'s ``Created`` may be from now"),
    "public_wsdl": Key(_flag, False,
                       "``true``: the WSDL and XSD routes are open to any address"),
    "tls_at_proxy": Key(_flag, False,
                        "``true``: TLS ends at a proxy in front (clear-text secrets "
                        "over plain HTTP are accepted)"),
    "public_url": Key(_public_url, None,
                      "the endpoint the WSDL advertises, e.g. "
                      "``https://pmc.example.com/soap``; unset: the request's Host, if a "
                      "valid host[:port], with a warning (set it in production)"),
    "validation": Key(_choice(*VALIDATION_ENGINES), "libxml2",
                      "who decides that a message is valid: ``libxml2`` (xmlschema "
                      "explains each rejection) or ``both`` (xmlschema judges every "
                      "message too)"),
    "reversal_cutoff_hour": Key(_hour, 24,
                                "a payment may be reversed on its business day until "
                                "this hour (0-24)"),
    "charge_window_days": Key(_days, 0,
                              "business days after a debt query a payment of the same "
                              "client may end it (0: the same day)"),
    **FTPS_KEYS,
    "cob_fetch_days": Key(_positive_int, 5,
                          "business days of payment reports ``fetch-cob`` looks back"),
    "cob_download_dir": Key(_text, "cob-reports",
                            "where ``fetch-cob`` puts the reports it downloads"),
    "fac_cutoff": Key(_clock_time, DEFAULT_FAC_CUTOFF,
                      "Buenos Aires time: a billing base file sent later counts for the "
                      "next business day"),
    "fac_max_files_per_day": Key(_files_per_day, DEFAULT_FAC_MAX_FILES,
                                 "billing base files a biller may send in a day "
                                 "(``FACnnnn.DDMMAA.1`` on)"),
    "trusted_proxies": Key(_networks, (),
                           "networks of proxies whose ``X-Forwarded-Proto``/``-Host`` "
                           "say how clients reached us; unset: those headers are "
                           "ignored"),
    "metrics_networks": Key(_networks, (),
                            "networks that may scrape ``/metrics`` (and only they); "
                            "unset: the allow-list of every route"),
    "tls_cert": Key(_optional_text, None,
                    "PEM certificate: with ``tls_key``, gunicorn serves HTTPS; unset: "
                    "plain HTTP"),
    "tls_key": Key(_optional_text, None, "the PEM key of ``tls_cert``"),
    "tls_client_ca": Key(_optional_text, None,
                         "PEM bundle of the CAs whose client certificates identify "
                         "callers (mutual TLS); unset: no client certificates"),
    "allowed_networks": Key(_networks, (),
                            "networks clients must come from (``10.20.0.0/16``); unset: "
                            "any address, with a warning"),
    "console_networks": Key(_networks, (),
                            "networks that may reach the console; unset: "
                            "``allowed_networks``"),
    "console_session_timeout": Key(_positive_float, 900.0,
                                   "idle seconds after which a console session ends"),
    "console_login_attempts": Key(_positive_int, 5,
                                  "failed console logins in 15 minutes, per name or "
                                  "per address, that block further tries for that time"),
}
CALLER_KEYS: dict[str, Key] = {
    "password": Key(_optional_text, None,
                    "its password (HTTP Basic or WS-Security UsernameToken)"),
    "certificate": Key(_optional_text, None,
                       "the subject of its client certificate "
                       "(``CN=pmc.example,O=PagoMisCuentas``; needs ``tls_client_ca``)"),
    "access_token": Key(_access_token, None,
                        "what PMC's JSON API puts in the body's ``access_token``"),
    "operations": Key(_words, None,
                      "the operations it may call; unset: every operation"),
    "billers": Key(_biller_ids, None,
                   "the billers it may act for; unset: every biller served"),
}
OPERATOR_KEYS: dict[str, Key] = {
    "password_hash": Key(_password_hash, None,
                         "the operator's scrypt password hash (``pmc-adapter "
                         "operator-password`` prints one); required"),
    "role": Key(_choice("viewer", "resolver"), "viewer",
                "``viewer`` looks; ``resolver`` may also apply, dismiss and retry"),
}
BILLER_KEYS: dict[str, Key] = {
    "name": Key(_optional_text, None, "the biller's name, for people"),
    "reversal_cutoff_hour": Key(_hour, None,
                                "this biller's reversal window (0-24); unset: the "
                                "global one"),
    **ERP_KEYS,
    **PMC_API_KEYS,
    **FTPS_KEYS,
}
TABLES = ("adapter", "callers", "billers", "operators")
#: Keys the environment cannot give (a table).
NOT_FROM_ENVIRONMENT = ("erp_options",)


def _closest(key: str, valid, spell: Callable[[str], str] = str) -> str:
    """" (did you mean X?)" for the valid key closest to ``key``, or nothing."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" (did you mean {spell(match[0])}?)" if match else ""


def _checked_keys(where: str, given: Mapping[str, Any], valid) -> dict[str, Any]:
    """``given`` with every alias under its English name; a ConfigurationError naming the
    first key that is neither a valid one nor an alias of one, with the closest valid
    key, or a key given under both of its names."""
    checked: dict[str, Any] = {}
    for key, value in given.items():
        name = ALIASES.get(key, key)
        if name not in valid:
            raise ConfigurationError(f"unknown setting {key!r} in {where}"
                                     f"{_closest(key, list(valid) + list(ALIASES))}")
        if name in checked:
            raise ConfigurationError(f"{where} sets {name} twice (as {name} and as its "
                                     f"alias {key}): keep {name}")
        checked[name] = value
    return checked


def _parsed(prefix: str, raw: Mapping[str, Any],
            keys: Mapping[str, Key]) -> dict[str, Any]:
    """Each key of ``keys`` given in ``raw``, parsed (named ``prefix + key`` in errors)."""
    return {name: keys[name].parser(prefix + name, value) for name, value in raw.items()}


# The file's names of the typed parts' fields: erp_wsdl is ErpSettings.wsdl, and so on.
def _erp(values: Mapping[str, Any]) -> ErpSettings:
    fields_ = {key.removeprefix("erp_"): values[key] for key in ERP_KEYS}
    fields_["options"] = dict(fields_["options"])  # each connector its own copy
    return ErpSettings(**fields_)


def _pmc_api(where: str, values: Mapping[str, Any]) -> PmcApiSettings:
    settings = PmcApiSettings(**{key.removeprefix("pmc_api_"): values[key]
                                 for key in PMC_API_KEYS})
    if settings.url and not settings.token:
        raise ConfigurationError(f"{where}: pmc_api_url needs pmc_api_token (PMC's API "
                                 "takes no call without one)")
    return settings


def _ftps(values: Mapping[str, Any]) -> FtpsSettings:
    named = {key: key.removeprefix("cob_ftp_") for key in FTPS_KEYS}
    named["fac_ftp_folder"] = "upload_folder"
    return FtpsSettings(**{field_: values[key] for key, field_ in named.items()})


def _read_document(path: Path) -> dict[str, Any]:
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigurationError(f"cannot read config file {path}: {exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
    document = _checked_keys(f"config file {path} (its tables are [adapter], "
                             "[callers.NAME], [billers.NNNN], [operators.NAME])", document,
                             TABLES)
    for table in TABLES:
        if not isinstance(document.get(table, {}), dict):
            raise ConfigurationError(f"{table} in config file {path} must be a table "
                                     f"([{table}]...)")
    for table in ("callers", "billers", "operators"):
        for name, section in document.get(table, {}).items():
            if not isinstance(section, dict):
                raise ConfigurationError(f"{table}.{name} in config file {path} must be a "
                                         f"table ([{table}.{name}])")
    return document


def environment_variable(key: str) -> str:
    """The environment variable that sets the [adapter] key ``key``."""
    return ENV_PREFIX + key.upper()


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The [adapter] keys the environment sets (PMC_ADAPTER_<KEY>); an unknown
    PMC_ADAPTER_* variable is refused by name."""
    found: dict[str, str] = {}
    special = (ENV_PREFIX + "CONFIG", ENV_PREFIX + "CALLERS")
    settable = [k for k in ADAPTER_KEYS if k not in NOT_FROM_ENVIRONMENT] + list(ALIASES)
    for variable in sorted(environ):
        if not variable.startswith(ENV_PREFIX) or variable in special \
                or variable.startswith(TEST_ENV_PREFIX):
            continue
        key = variable[len(ENV_PREFIX):].lower()
        if key not in settable:
            raise ConfigurationError(f"unknown environment variable {variable}" + _closest(
                key, settable, environment_variable))
        if environ[variable] == "":  # set but empty: not set
            continue
        name = ALIASES.get(key, key)
        if name in found:
            raise ConfigurationError(f"{environment_variable(name)} and its alias "
                                     f"{variable} are both set: keep "
                                     f"{environment_variable(name)}")
        found[name] = environ[variable]
    return found


def _callers(sections: Mapping[str, Any], environ: Mapping[str, str]) -> dict:
    raw: dict[str, dict[str, Any]] = {
        str(name): _checked_keys(f"[callers.{name}]", section, CALLER_KEYS)
        for name, section in sections.items()}
    # PMC_ADAPTER_CALLERS="name:password,name:password" (every operation allowed)
    for entry in _split_list(ENV_PREFIX + "CALLERS", environ.get(ENV_PREFIX + "CALLERS", "")):
        name, separator, password = entry.partition(":")
        if not separator or not name or not password:
            raise ConfigurationError("PMC_ADAPTER_CALLERS takes name:password pairs")
        raw[name] = {"password": password}
    callers = {}
    for name, given in raw.items():
        values = {name: key.default for name, key in CALLER_KEYS.items()}
        values.update(_parsed(f"callers.{name}.", given, CALLER_KEYS))
        if not values["password"] and not values["certificate"] and not values["access_token"]:
            raise ConfigurationError(f"caller {name} has no password, no certificate and no "
                                     "access_token")
        callers[name] = CallerSettings(name=name, **values)
    tokens = [caller.name for caller in callers.values() if caller.access_token]
    if len({callers[name].access_token for name in tokens}) != len(tokens):
        raise ConfigurationError(f"callers {', '.join(tokens)}: two of them have the same "
                                 "access_token (a token names one caller)")
    return callers


def _operators(sections: Mapping[str, Any]) -> dict[str, OperatorSettings]:
    operators = {}
    for name, section in sections.items():
        name = str(name)
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", name):
            raise ConfigurationError(f"[operators.{name}]: an operator's name is 1 to 64 "
                                     "letters, digits, '.', '_' or '-'")
        given = _parsed(f"operators.{name}.",
                        _checked_keys(f"[operators.{name}]", section, OPERATOR_KEYS),
                        OPERATOR_KEYS)
        if not given.get("password_hash"):
            raise ConfigurationError(f"[operators.{name}] has no password_hash (`pmc-adapter "
                                     "operator-password` prints one)")
        operators[name] = OperatorSettings(name=name, password_hash=given["password_hash"],
                                           role=given.get("role", "viewer"))
    return operators


def _billers(sections: Mapping[str, Any], globals_: Mapping[str, Any]) -> dict:
    billers = {}
    for biller_id, section in sections.items():
        biller_id = str(biller_id)
        if not BILLER_ID.fullmatch(biller_id):
            raise ConfigurationError(f"[billers.{biller_id}]: biller numbers are 4 digits")
        given = _parsed(f"billers.{biller_id}.",
                        _checked_keys(f"[billers.{biller_id}]", section, BILLER_KEYS),
                        BILLER_KEYS)
        merged = {**globals_, **given}  # the biller's ERP and FTPS keys over the global ones
        billers[biller_id] = BillerSettings(
            biller_id=biller_id, name=given.get("name"),
            reversal_cutoff_hour=given.get("reversal_cutoff_hour"),
            erp=_erp(merged), cob_ftp=_ftps(merged),
            pmc_api=_pmc_api(f"[billers.{biller_id}]", merged))
    return billers


def load_settings(config_file: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None,
                  overrides: Mapping[str, Any] | None = None) -> Settings:
    """The settings of the file (``config_file``, else ``PMC_ADAPTER_CONFIG``), the
    environment over it, and ``overrides`` (the command line's ``--workers``...) over
    both, each value checked the same way wherever it came from."""
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    document = _read_document(Path(config_file)) if config_file else {}

    raw = _checked_keys("[adapter]", document.get("adapter", {}), ADAPTER_KEYS)
    raw.update(_from_environment(environ))
    raw.update(_checked_keys("the command line", {
        key: value for key, value in (overrides or {}).items() if value is not None},
        ADAPTER_KEYS))
    values = {name: key.default for name, key in ADAPTER_KEYS.items()}
    values.update(_parsed("", raw, ADAPTER_KEYS))

    if bool(values["tls_cert"]) != bool(values["tls_key"]):
        raise ConfigurationError("HTTPS needs both tls_cert and tls_key")
    if values["tls_client_ca"] and not values["tls_cert"]:
        raise ConfigurationError("client certificates (tls_client_ca) need HTTPS: tls_cert, "
                                 "tls_key")

    callers = _callers(document.get("callers", {}), environ)
    if any(caller.certificate for caller in callers.values()) and not values["tls_client_ca"]:
        raise ConfigurationError("callers known by a certificate need tls_client_ca (and "
                                 "HTTPS): no client certificate is asked for otherwise")
    billers = _billers(document.get("billers", {}), values)
    operators = _operators(document.get("operators", {}))

    own = {f.name for f in fields(Settings)} - {"billers", "callers", "operators"}
    return Settings(
        **{key: value for key, value in values.items() if key in own},
        served_billers=values["billers"],
        erp=_erp(values), cob_ftp=_ftps(values), pmc_api=_pmc_api("[adapter]", values),
        callers=callers, billers=billers, operators=operators)
