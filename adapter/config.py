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
    empresas = ["1234", "5678"]
    max_request_bytes = 65536     # real messages are a few KiB
    max_xml_depth = 32
    max_xml_elements = 500
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

    # the ERP of every biller served (optional; none = billing base only)
    erp_wsdl = "http://erp.internal:8090/erp?wsdl"
    erp_timeout = 3.0

    # HTTPS (PEM files); unset = plain HTTP, e.g. behind a TLS-terminating proxy
    tls_cert = "/etc/pmc-adapter/cert.pem"
    tls_key = "/etc/pmc-adapter/key.pem"
    tls_client_ca = "/etc/pmc-adapter/clients-ca.pem"   # optional: mutual TLS
    # who may call (both optional; unset = anyone, with a warning at start)
    allowed_networks = ["10.20.0.0/16", "127.0.0.1/32"]
    trusted_proxies = ["10.20.0.5/32"]   # its X-Forwarded-Proto/-Host name the WSDL's address
    metrics_networks = ["10.30.0.0/24"]  # optional: who may scrape /metrics (Prometheus)

    [callers.pmc]            # the network: HTTP Basic or WS-Security UsernameToken
    password = "change-me"
    certificate = "CN=pmc.example,O=PagoMisCuentas"  # or (and) its client certificate
    operations = ["ConsultarDeuda", "InformarPago", "AnularPago", "ConsultarPago", "Eco"]
    empresas = ["1234"]      # optional: the billers this caller may act for

    [callers.web]            # the biller's web/app
    password = "change-me-too"
    operations = ["AltaFactura", "ConsultarDeuda"]

    [empresas.1234]          # per-biller settings override the ERP ones above
    name = "Aguas del Sur"
    reversal_cutoff_hour = 21                      # this biller's reversal window
    erp_wsdl = "/etc/pmc-adapter/aguas-erp.wsdl"
    erp_connector = "mycompany.erp:SapConnector"   # module:Class, see adapter/erp/connector.py
    erp_auth = "wsse"                              # or "basic"
    erp_username = "pmc"
    erp_password = "secret"
"""
from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from adapter.errors import ConfigurationError

#: libxml2's own nesting limit when lxml parses without huge_tree (as the gateway
#: does): a deeper document is refused by the parser whatever max_xml_depth says, so
#: max_xml_depth may not promise more.
LIBXML2_MAX_DEPTH = 256

ENV_PREFIX = "PMC_ADAPTER_"
DEFAULT_DATABASE_URL = "sqlite:///pmc-adapter.sqlite3"
BILLER_ID = re.compile(r"[0-9]{4}")
OPTIONAL_TEXT_KEYS = ("tls_cert", "tls_key", "tls_client_ca", "cob_ftp_host", "cob_ftp_username",
                      "cob_ftp_password", "cob_ftp_ca_file")
# the network's FTPS server of payment reports; a biller's section may set its own
COB_FTP_KEYS = ("cob_ftp_host", "cob_ftp_port", "cob_ftp_tls", "cob_ftp_username",
                "cob_ftp_password", "cob_ftp_folder", "cob_ftp_ca_file")
ERP_KEYS = ("erp_wsdl", "erp_timeout", "erp_connector", "erp_auth", "erp_username",
            "erp_password")
FLOAT_KEYS = ("erp_timeout", "forward_poll", "forward_retry_base", "forward_retry_max",
              "forward_probe", "graceful_timeout",
              "request_timeout", "clock_skew", "wss_window")
INT_KEYS = ("workers", "threads", "max_request_bytes", "max_xml_depth", "max_xml_elements",
            "cob_ftp_port", "cob_fetch_days", "forward_concurrency")
VALIDATION_ENGINES = ("libxml2", "both")  # see adapter.soap.validation
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


@dataclass(frozen=True)
class Settings:
    database_url: str = DEFAULT_DATABASE_URL
    bind: str = "127.0.0.1:8080"
    workers: int = 2
    # Threads per worker: a request waiting on a slow ERP must not hold up the others.
    threads: int = 16
    # Billers (4-digit numbers) this adapter serves; empty serves any biller.
    empresas: frozenset[str] = frozenset()
    # Caps on a request, checked before anything else is done with it. Real
    # messages are a few KiB and a dozen levels deep; the caps leave room for
    # WS-Security headers and long descriptions, and no more.
    max_request_bytes: int = 64 * 1024
    max_xml_depth: int = 32
    max_xml_elements: int = 500
    # Seconds a stopping server (SIGTERM) gives the requests and deliveries in flight.
    graceful_timeout: float = 20.0
    # Seconds a client has to send a whole request (headers and body), from its first byte.
    request_timeout: float = 10.0
    log_level: str = "info"
    # "text" (a terminal's), or "json": one JSON object per line (adapter.logs)
    log_format: str = "text"
    # The legacy ERP (none configured = billing base only).
    erp_wsdl: str | None = None
    erp_timeout: float = 3.0
    erp_connector: str = "adapter.erp.legacy:LegacyErp"
    erp_auth: str | None = None  # "wsse" (UsernameToken) or "basic"
    erp_username: str | None = None
    erp_password: str | None = field(default=None, repr=False)
    # Forwarding payments to the ERP: poll interval and retry backoff (seconds).
    forward_poll: float = 2.0
    forward_retry_base: float = 2.0
    forward_retry_max: float = 300.0
    # Deliveries at once per forwarder (each worker process runs one), and how often an
    # ERP that failed is probed whatever the backoff (its backlog released when it answers).
    forward_concurrency: int = 4
    forward_probe: float = 10.0
    # How far ahead of this server's clock a payment may be dated and still be applied.
    clock_skew: float = 300.0
    # seconds a WS-Security PasswordDigest's Created may be from now (its nonce is
    # remembered that long: a replay within it is refused)
    wss_window: float = 300.0
    # True: GET routes (WSDL, XSD) are open to any address, not only allowed_networks.
    public_wsdl: bool = False
    # True: every request reached a TLS-terminating proxy first, so that a WS-Security
    # PasswordText arriving over plain HTTP is accepted (otherwise only over HTTPS).
    tls_at_proxy: bool = False
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
    cob_ftp_host: str | None = None
    cob_ftp_port: int = 990
    cob_ftp_tls: str = "implicit"
    cob_ftp_username: str | None = None
    cob_ftp_password: str | None = field(default=None, repr=False)
    cob_ftp_folder: str = "Download"
    cob_ftp_ca_file: str | None = None
    cob_fetch_days: int = 5  # the last N business days' reports are looked for
    cob_download_dir: str = "cob-reports"
    # Proxies (networks) whose X-Forwarded-Proto/-Host say the address clients use:
    # the WSDL then advertises that address. Unset: those headers are ignored.
    trusted_proxies: tuple[str, ...] = ()
    # Who may scrape /metrics; unset: the same allow-list as every route.
    metrics_networks: tuple[str, ...] = ()
    # HTTPS, terminated by gunicorn (both files PEM; unset = plain HTTP).
    tls_cert: str | None = None
    tls_key: str | None = None
    # PEM bundle of the CAs whose client certificates are accepted (mutual TLS); a caller
    # is then known by its certificate's subject ([callers.NAME] certificate = "CN=...")
    tls_client_ca: str | None = None
    # Who may call: client networks, and callers by name ({"password", "operations"}).
    allowed_networks: tuple[str, ...] = ()
    callers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, repr=False)
    billers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def serves(self, biller_id: str) -> bool:
        return not self.empresas or biller_id in self.empresas

    def reversal_cutoff(self, biller_id: str) -> int:
        """The hour a payment of ``biller_id`` can no longer be reversed on its day."""
        return self.billers.get(biller_id, {}).get("reversal_cutoff_hour",
                                                   self.reversal_cutoff_hour)

    def cob_ftp_options(self, biller_id: str) -> dict[str, Any]:
        """The FTPS settings of one biller: its [empresas.NNNN] section over the global
        ones."""
        section = self.billers.get(biller_id, {})
        return {name: section.get(name, getattr(self, name)) for name in COB_FTP_KEYS}

    def erp_options(self, biller_id: str) -> dict[str, Any]:
        """The ERP settings of one biller: its [empresas.NNNN] section over the global ones."""
        section = self.billers.get(biller_id, {})
        options = {name: section.get(name, getattr(self, name)) for name in ERP_KEYS}
        options["erp_timeout"] = _positive("erp_timeout", options["erp_timeout"], float)
        return options


def _split_list(value: str | list) -> list[str]:
    if isinstance(value, list):
        return [str(item).strip() for item in value]
    return [item.strip() for item in value.split(",") if item.strip()]


def _positive(name: str, value: Any, kind: type = int):
    """``value`` as a positive ``kind`` (int or float), or a ConfigurationError naming it."""
    try:
        number = kind(value)
    except (TypeError, ValueError):
        what = "a whole number" if kind is int else "a number"
        raise ConfigurationError(f"{name} must be {what}, got {value!r}") from None
    if number <= 0:
        raise ConfigurationError(f"{name} must be positive, got {number}")
    return number


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


def _networks(name: str, value: str | list) -> tuple[str, ...]:
    networks = tuple(_split_list(value))
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise ConfigurationError(f"{name}: {network!r} is not a network") from None
    return networks


def _flag(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS or word in FALSE_WORDS:
        return word in TRUE_WORDS
    raise ConfigurationError(f"{name} must be true or false, got {value!r}")


def load_settings(config_file: str | os.PathLike | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    config_file = config_file or environ.get(ENV_PREFIX + "CONFIG")
    raw: dict[str, Any] = {}
    billers: dict[str, Any] = {}
    callers: dict[str, dict] = {}
    if config_file:
        path = Path(config_file)
        try:
            document = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ConfigurationError(f"cannot read config file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigurationError(f"config file {path} is not valid TOML: {exc}") from None
        raw.update(document.get("adapter", {}))
        billers = {str(key): dict(value) for key, value in document.get("empresas", {}).items()}
        callers = {str(key): dict(value) for key, value in document.get("callers", {}).items()}

    for name in Settings.__dataclass_fields__:
        if name in ("billers", "callers"):
            continue
        value = environ.get(ENV_PREFIX + name.upper())
        if value not in (None, ""):
            raw[name] = value

    # PMC_ADAPTER_CALLERS="name:password,name:password" (every operation allowed)
    for entry in _split_list(environ.get(ENV_PREFIX + "CALLERS", "")):
        name, separator, password = entry.partition(":")
        if not separator or not name or not password:
            raise ConfigurationError("PMC_ADAPTER_CALLERS takes name:password pairs")
        callers[name] = {"password": password}
    for name, caller in callers.items():
        if not caller.get("password") and not caller.get("certificate"):
            raise ConfigurationError(f"caller {name} has no password and no certificate")

    networks = _networks("allowed_networks", raw.pop("allowed_networks", []))
    proxies = _networks("trusted_proxies", raw.pop("trusted_proxies", []))
    monitoring = _networks("metrics_networks", raw.pop("metrics_networks", []))

    if bool(raw.get("tls_cert")) != bool(raw.get("tls_key")):
        raise ConfigurationError("HTTPS needs both tls_cert and tls_key")
    if raw.get("tls_client_ca") and not raw.get("tls_cert"):
        raise ConfigurationError("client certificates (tls_client_ca) need HTTPS: tls_cert, "
                                 "tls_key")

    unknown = set(raw) - set(Settings.__dataclass_fields__)
    if unknown:
        raise ConfigurationError(f"unknown setting(s) in [adapter]: {', '.join(sorted(unknown))}")

    empresas = frozenset(_split_list(raw.get("empresas", [])))
    bad = sorted(e for e in empresas if not BILLER_ID.fullmatch(e))
    if bad:
        raise ConfigurationError(f"biller numbers are 4 digits; got {', '.join(bad)}")

    log_format = str(raw.get("log_format", Settings.log_format))
    if log_format not in ("text", "json"):
        raise ConfigurationError(f"log_format: {log_format!r} is not 'text' or 'json'")

    validation = str(raw.get("validation", Settings.validation))
    if validation not in VALIDATION_ENGINES:
        raise ConfigurationError(f"validation: {validation!r} is not one of "
                                 f"{', '.join(VALIDATION_ENGINES)}")

    for biller_id, section in billers.items():
        if "reversal_cutoff_hour" in section:
            section["reversal_cutoff_hour"] = _hour(
                f"empresas.{biller_id}.reversal_cutoff_hour", section["reversal_cutoff_hour"])

    try:
        charge_window = int(raw.get("charge_window_days", Settings.charge_window_days))
        if charge_window < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ConfigurationError("charge_window_days must be a whole number of days, 0 or "
                                 f"more, got {raw.get('charge_window_days')!r}") from None

    tls_mode = str(raw.get("cob_ftp_tls", Settings.cob_ftp_tls))
    if tls_mode not in ("implicit", "explicit") or any(
            section.get("cob_ftp_tls", tls_mode) not in ("implicit", "explicit")
            for section in billers.values()):
        raise ConfigurationError("cob_ftp_tls must be 'implicit' or 'explicit'")

    integers = {name: _positive(name, raw.get(name, getattr(Settings, name)))
                for name in INT_KEYS}
    if integers["max_xml_depth"] > LIBXML2_MAX_DEPTH:
        # deeper documents are refused by libxml2 itself (no huge_tree), whatever we say
        raise ConfigurationError(f"max_xml_depth must be at most {LIBXML2_MAX_DEPTH} "
                                 f"(the XML parser's own limit), got {integers['max_xml_depth']}")
    return Settings(
        log_format=log_format,
        validation=validation,
        charge_window_days=charge_window,
        cob_ftp_tls=tls_mode,
        cob_ftp_folder=str(raw.get("cob_ftp_folder", Settings.cob_ftp_folder)),
        cob_download_dir=str(raw.get("cob_download_dir", Settings.cob_download_dir)),
        reversal_cutoff_hour=_hour("reversal_cutoff_hour",
                                   raw.get("reversal_cutoff_hour", Settings.reversal_cutoff_hour)),
        database_url=str(raw.get("database_url", Settings.database_url)),
        bind=str(raw.get("bind", Settings.bind)),
        empresas=empresas,
        public_wsdl=_flag("public_wsdl", raw.get("public_wsdl", Settings.public_wsdl)),
        tls_at_proxy=_flag("tls_at_proxy", raw.get("tls_at_proxy", Settings.tls_at_proxy)),
        **integers,
        log_level=str(raw.get("log_level", Settings.log_level)),
        **{name: raw.get(name, getattr(Settings, name))
           for name in ERP_KEYS + OPTIONAL_TEXT_KEYS if name not in FLOAT_KEYS},
        **{name: _positive(name, raw.get(name, getattr(Settings, name)), float)
           for name in FLOAT_KEYS},
        allowed_networks=networks,
        trusted_proxies=proxies,
        metrics_networks=monitoring,
        callers=callers,
        billers=billers,
    )
