"""``pmc-adapter check-config``: is this configuration one the service can start and work
with? Without starting it: the settings (file and environment) are loaded as ``serve``
loads them, then every outside thing they name is tried -- files readable, TLS material
loadable, the database reachable (and at which schema revision), each ERP's WSDL loadable,
each PMC collection API's echo answered -- and the effective settings are printed with every secret masked.
"""
from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable, Mapping

from sqlalchemy.engine import make_url

from adapter.config import Settings

MASK = "********"
SECRET_NAMES = ("password", "secret", "token")


@dataclass(frozen=True)
class Finding:
    what: str
    problem: str | None  # None: fine
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.problem is None


def masked_settings(settings: Settings) -> dict[str, Any]:
    """The effective settings, every secret replaced by a mask: passwords of callers, the
    ERP and the FTPS server, and the database URL's."""
    def shown(name: str, value: Any) -> Any:
        if is_dataclass(value):
            return {f.name: shown(f.name, getattr(value, f.name)) for f in fields(value)}
        if isinstance(value, Mapping):
            return {str(key): shown(str(key), inner) for key, inner in value.items()}
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, (tuple, list)):
            return [shown(name, inner) for inner in value]
        if isinstance(value, str) and value and any(word in name for word in SECRET_NAMES):
            return MASK
        return value

    everything = shown("", settings)
    everything["database_url"] = make_url(settings.database_url).render_as_string(
        hide_password=True)
    return everything


def _readable(what: str, path: str | None) -> Finding | None:
    if not path:
        return None
    if not os.path.isfile(path):
        return Finding(what, f"{path} does not exist (or is not a file)")
    if not os.access(path, os.R_OK):
        return Finding(what, f"{path} is not readable by this user")
    return Finding(what, None, path)


def _ca_files(settings: Settings) -> dict[str, str | None]:
    """Every CA bundle the settings name, by the key that names it."""
    files = {"tls_client_ca": settings.tls_client_ca,
             "cob_ftp_ca_file": settings.cob_ftp.ca_file}
    for biller_id, section in sorted(settings.billers.items()):
        if section.cob_ftp.ca_file != settings.cob_ftp.ca_file:
            files[f"billers.{biller_id}.cob_ftp_ca_file"] = section.cob_ftp.ca_file
    return files


def check_tls(settings: Settings) -> list[Finding]:
    cas = _ca_files(settings)
    found = [finding for finding in (
        _readable("tls_cert", settings.tls_cert), _readable("tls_key", settings.tls_key),
        *(_readable(name, path) for name, path in cas.items())) if finding]
    if settings.tls_cert and all(f.ok for f in found if f.what in ("tls_cert", "tls_key")):
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(
                settings.tls_cert, settings.tls_key)
            found.append(Finding("tls_cert + tls_key", None, "a matching certificate and key"))
        except (ssl.SSLError, OSError, ValueError) as error:
            found.append(Finding("tls_cert + tls_key", f"not a usable certificate and key: "
                                                       f"{error}"))
    for name, path in cas.items():
        if path and os.access(path, os.R_OK):
            try:
                ssl.create_default_context().load_verify_locations(cafile=path)
            except (ssl.SSLError, OSError, ValueError) as error:
                found.append(Finding(name, f"{path} holds no usable CA certificates: {error}"))
    return found


def check_database(settings: Settings) -> Finding:
    from adapter.errors import StorageUnavailable
    from adapter.storage.db import check_ready, make_engine, schema_heads

    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite" and url.database and \
            not os.path.exists(url.database):
        folder = os.path.dirname(os.path.abspath(url.database))
        if os.access(folder, os.W_OK):
            return Finding("database", None, f"{url.database} does not exist yet: `pmc-adapter "
                                             "serve` creates it")
        return Finding("database", f"{url.database} does not exist and {folder} is not "
                                   "writable")
    engine = make_engine(settings.database_url)
    try:
        check_ready(engine, timeout=5)
    except StorageUnavailable as error:
        message = str(error)
        # reachable, not (yet) at this version's schema: `serve` migrates it at start
        if "alembic_version" in message:
            return Finding("database", None, "reachable, no schema yet (`pmc-adapter serve` "
                                             "or `upgrade-schema` creates it)")
        if "schema is at" in message:
            return Finding("database", None, f"reachable; {message} (`pmc-adapter serve` or "
                                             "`upgrade-schema` migrates it)")
        return Finding("database", message)
    finally:
        engine.dispose()
    return Finding("database", None, f"reachable, schema at {sorted(schema_heads())}")


def check_erps(settings: Settings, load: Callable[[Any], None] | None = None) -> list[Finding]:
    """Each distinct ERP configuration: its connector built and its WSDL loaded."""
    from adapter.erp.connector import ErpDirectory
    from adapter.errors import AdapterError

    directory = ErpDirectory(settings)
    found = []
    seen: set[int] = set()
    for biller in [""] + sorted(settings.known_billers):
        what = f"ERP of biller {biller}" if biller else "ERP (global)"
        try:
            connector = directory.for_biller(biller)
        except AdapterError as error:
            found.append(Finding(what, str(error)))
            continue
        if connector is None or id(connector) in seen:
            continue
        seen.add(id(connector))
        try:
            (load or _load_wsdl)(connector)
        except Exception as error:  # whatever zeep, requests or lxml raise
            found.append(Finding(what, f"WSDL {connector.options.wsdl} not loadable: "
                                       f"{error.__class__.__name__}: {error}"))
        else:
            found.append(Finding(what, None, f"WSDL {connector.options.wsdl} loaded"))
    return found


def check_pmc_apis(settings: Settings) -> list[Finding]:
    """Each distinct PMC collection API: its ``echo`` answered, with our token."""
    from adapter.errors import PmcError
    from adapter.pmc.client import PmcDirectory

    directory = PmcDirectory(settings)
    found = []
    seen: set[int] = set()
    for biller in [""] + sorted(settings.known_billers):
        what = f"PMC API of biller {biller}" if biller else "PMC API (global)"
        api = directory.for_biller(biller)
        if api is None or id(api) in seen:
            continue
        seen.add(id(api))
        try:
            api.echo("PING")
        except PmcError as error:
            found.append(Finding(what, f"{api.settings.url}: echo failed: {error}"))
        else:
            found.append(Finding(what, None, f"{api.settings.url}: echo answered"))
    return found


def check_ftps(settings: Settings,
               probe: Callable[[Any], str] | None = None) -> list[Finding]:
    """Each distinct FTPS account (fetch-cob, upload-fac): logged in, both folders
    opened (the reports' and rejections' cob_ftp_folder, the billing base's
    fac_ftp_folder)."""
    from adapter.files.ftps import FetchError
    from adapter.files.ftps import probe as login

    probe = probe or login
    found = []
    seen: set = set()
    accounts = [("", settings.cob_ftp)] + [(biller, settings.cob_ftp_for(biller))
                                           for biller in sorted(settings.known_billers)]
    for biller, options in accounts:
        if not options.host or options in seen:
            continue
        seen.add(options)
        what = f"FTPS account of biller {biller}" if biller else "FTPS account (global)"
        try:
            found.append(Finding(what, None, f"{options.address}: {probe(options)}"))
        except FetchError as error:
            found.append(Finding(what, str(error)))
    return found


def _load_wsdl(connector) -> None:
    service = getattr(connector, "_service", None)
    if service is not None:
        service()


def cautions(settings: Settings) -> list[str]:
    """What the settings leave open that production should close: ``serve`` logs each as
    a warning at start, ``check-config`` prints them (they are not problems)."""
    said = []
    if not settings.served_billers:
        said.append("billers (PMC_ADAPTER_BILLERS) is not set: serving every biller number")
    if not settings.callers:
        said.append("no callers configured (PMC_ADAPTER_CALLERS): requests are not "
                    "authenticated; do this only behind a gateway that authenticates PMC")
    if not settings.allowed_networks:
        said.append("allowed_networks (PMC_ADAPTER_ALLOWED_NETWORKS) is not set: any address "
                    "may call")
    if settings.operators and not (settings.console_networks or settings.allowed_networks):
        said.append("operators are configured and neither console_networks nor "
                    "allowed_networks is set: the console answers any address")
    if settings.operators and not (settings.tls_cert or settings.tls_at_proxy):
        said.append("operators are configured without HTTPS (tls_cert, or tls_at_proxy behind "
                    "a TLS proxy): their passwords and session cookies would cross the "
                    "network in clear")
    if not settings.public_url:
        said.append("public_url is not set: the WSDL advertises the address in each "
                    "request's Host header, which the client chooses; set it in production")
    return said


def check_all(settings: Settings) -> list[Finding]:
    return [*check_tls(settings), check_database(settings), *check_erps(settings),
            *check_pmc_apis(settings), *check_ftps(settings)]
