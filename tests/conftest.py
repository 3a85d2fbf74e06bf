"""Fixtures: real servers (``pmc-adapter serve`` = gunicorn) on loopback, real databases.

Every end-to-end test runs once per database: SQLite (always) and PostgreSQL
(``PMC_ADAPTER_TEST_POSTGRES_URL``, default the local ``test`` database; each
session works in a database of its own, created and dropped here). Where
PostgreSQL does not answer, its tests are skipped with the reason -- unless
``PMC_ADAPTER_TEST_REQUIRE_POSTGRES=1`` (as in CI), where they fail.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import pytest
import requests
import xmlschema
from lxml import etree
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.domain.model import BUSINESS_TZ
from adapter.soap import contract
from adapter.storage.db import make_engine, upgrade_schema

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
TNS = "urn:pmc-adapter:empresa:v1"
SERVED_BILLERS = ("1234", "5678")
POSTGRES_URL = os.environ.get("PMC_ADAPTER_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_POSTGRES") == "1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def today() -> date:
    """Today in Buenos Aires, as the server sees it."""
    return datetime.now(BUSINESS_TZ).date()


def unique(prefix: str) -> str:
    """A fresh identifier, so that tests sharing a server never see each other's data."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


# -- the order of the files ----------------------------------------------------------

# The files that take a minute or more (wall time on 2 cores), longest first, run first:
# scripts/test gives each process a whole file at a time, and a long file started last
# keeps the suite running while the other processes have nothing left to do.
LONGEST_FIRST = ("test_outbox.py", "test_install.py", "test_observed.py", "test_erp.py",
                 "test_reversal.py", "test_reconciliation.py", "test_security.py",
                 "test_contract.py", "test_api.py", "test_pmc_api.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep
    # their order


# -- databases ------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server_url():
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {error.__class__.__name__}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (PMC_ADAPTER_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    engine.dispose()
    with fresh_postgres_database(POSTGRES_URL, f"pmc_adapter_test_{os.getpid()}") as url:
        yield url
        stop_kept_server(url)  # before its database is dropped


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, prefix: str):
    """The URL of a new, empty database on ``server_url``'s server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# pytest tears a parametrized session fixture down whenever the parameter changes, and
# a test process running one file after another (scripts/test) changes it in every file:
# the session's database and server of each kind are kept here instead, made once, and
# stopped at the end of the session.
_KEPT: dict[tuple[str, str], object] = {}


def stop_kept_server(database_url: str) -> None:
    running = _KEPT.pop(("server", database_url), None)
    if running is not None:
        stop_server(running)


@pytest.fixture(scope="session")
def kept_until_the_end():
    yield _KEPT
    for key in [key for key in _KEPT if key[0] == "server"]:
        stop_kept_server(key[1])


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request, tmp_path_factory, kept_until_the_end):
    key = ("database", request.param)
    if key not in _KEPT:
        _KEPT[key] = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'adapter.sqlite3'}" \
            if request.param == "sqlite" else request.getfixturevalue("postgres_server_url")
    return _KEPT[key]


@pytest.fixture
def engine(database_url):
    """The adapter's own engine on the test database, its schema up to date."""
    engine = make_engine(database_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


@dataclass
class Database:
    url: str

    def __post_init__(self):
        self.engine = create_engine(self.url)

    def count(self, table: str, **where) -> int:
        clause = " AND ".join(f"{column} = :{column}" for column in where) or "1 = 1"
        with self.engine.connect() as connection:
            return connection.execute(
                text(f"SELECT count(*) FROM {table} WHERE {clause}"), where).scalar_one()

    def counts(self) -> dict[str, int]:
        return {table: self.count(table) for table in ("invoices", "payments", "debt_queries")}

    def rows(self, sql, **params) -> list:
        """Rows of raw SQL, or of a ``select()`` of ORM columns (typed: Decimal money)."""
        statement = text(sql) if isinstance(sql, str) else sql
        with self.engine.connect() as connection:
            return connection.execute(statement, params).all()


# -- servers --------------------------------------------------------------------

@dataclass
class Server:
    base_url: str
    database: Database
    process: subprocess.Popen
    log_path: Path

    @property
    def soap_url(self) -> str:
        return self.base_url + "/soap"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    verify: str | bool = True

    def alive(self) -> bool:
        return self.process.poll() is None and requests.get(
            self.base_url + "/health", timeout=5, verify=self.verify).status_code == 200


def start_server(database_url: str, workdir: Path, scheme: str = "http",
                 verify: str | bool = True, health_status: int = 200, **env) -> Server:
    """``pmc-adapter serve`` on a free port, once ``/health`` answers ``health_status``
    (403 for a server whose address allow-list leaves the tests out)."""
    port = free_port()
    log_path = workdir / f"server-{port}.log"
    environment = {**os.environ, "PMC_ADAPTER_DATABASE_URL": database_url,
                   "PMC_ADAPTER_EMPRESAS": ",".join(SERVED_BILLERS),
                   "PMC_ADAPTER_WORKERS": "3", **env}
    command = [str(Path(sys.executable).with_name("pmc-adapter")), "serve",
               "--bind", f"127.0.0.1:{port}"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   cwd=workdir, env=environment)
    base_url = f"{scheme}://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n"
                                   f"{log_path.read_text()}")
            try:
                if requests.get(base_url + "/health", timeout=2,
                                verify=verify).status_code == health_status:
                    return Server(base_url, Database(database_url), process, log_path, verify)
            except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server did not become healthy:\n{log_path.read_text()}")
    except BaseException:  # whatever stops the wait, no server is left behind
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        raise


def stop_server(server: Server) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
    server.database.engine.dispose()


@pytest.fixture(scope="session")
def server(database_url, tmp_path_factory):
    """The session's server on ``database_url`` (one per database, kept: see _KEPT)."""
    key = ("server", database_url)
    if key not in _KEPT:
        _KEPT[key] = start_server(database_url, tmp_path_factory.mktemp("server"))
    return _KEPT[key]


@pytest.fixture
def db(server) -> Database:
    return server.database


# -- SOAP clients -----------------------------------------------------------------

@pytest.fixture(scope="session")
def schema() -> xmlschema.XMLSchema:
    """The bundled XSD, compiled by the tests themselves."""
    return xmlschema.XMLSchema(str(contract.xsd_path()))


@pytest.fixture(scope="session")
def client(server, schema):
    """A zeep client built only from the server's /soap?wsdl, as any consumer would.

    Every message it sends and receives is checked against the bundled XSD.
    """
    key = ("client", server.base_url)
    if key not in _KEPT:
        _KEPT[key] = contract_client(server, schema)
    return _KEPT[key]


def contract_client(server: Server, schema: xmlschema.XMLSchema):
    """The ``client`` fixture's zeep client, for any server."""
    import zeep
    from zeep import Plugin

    class ContractCheck(Plugin):
        def egress(self, envelope, http_headers, operation, binding_options):
            schema.validate(envelope.find(f"{{{SOAP_ENV}}}Body")[0])
            return envelope, http_headers

        def ingress(self, envelope, http_headers, operation):
            entry = envelope.find(f"{{{SOAP_ENV}}}Body")[0]
            if entry.tag == f"{{{SOAP_ENV}}}Fault":
                schema.validate(entry.find(f"detail/{{{TNS}}}falla"))
            else:
                schema.validate(entry)
            return envelope, http_headers

    return zeep.Client(server.soap_url + "?wsdl", plugins=[ContractCheck()])


@dataclass
class SoapReply:
    status: int
    envelope: etree._Element

    @property
    def entry(self) -> etree._Element:
        return self.envelope.find(f"{{{SOAP_ENV}}}Body")[0]

    @property
    def is_fault(self) -> bool:
        return self.entry.tag == f"{{{SOAP_ENV}}}Fault"

    @property
    def fault_code(self) -> str:
        """``soap:Client.X`` whatever prefix the server chose for the envelope namespace."""
        prefix, _, code = self.entry.findtext("faultcode").partition(":")
        assert self.entry.nsmap[prefix] == SOAP_ENV, "faultcode must be a SOAP-ENV QName"
        return f"soap:{code}"

    @property
    def fault_string(self) -> str:
        return self.entry.findtext("faultstring")

    def field(self, name: str) -> str | None:
        return self.entry.findtext(f"{{{TNS}}}{name}")


class RawSoap:
    """Posts hand-built envelopes; checks every answer against the bundled XSD."""

    def __init__(self, url: str, schema: xmlschema.XMLSchema):
        self.url, self.schema = url, schema

    def post(self, payload: bytes | str, soap_action: str | None = None,
             content_type: str = "text/xml; charset=utf-8",
             headers: dict | None = None) -> SoapReply:
        headers = {"Content-Type": content_type, **(headers or {})}
        if soap_action is not None:
            headers["SOAPAction"] = f'"{soap_action}"'
        if isinstance(payload, str):
            payload = payload.encode()
        response = requests.post(self.url, data=payload, headers=headers, timeout=60)
        reply = SoapReply(response.status_code, etree.fromstring(response.content))
        if reply.is_fault:
            assert response.status_code == 500, "SOAP 1.1 faults travel with HTTP 500"
            self.schema.validate(reply.entry.find(f"detail/{{{TNS}}}falla"))
        else:
            assert response.status_code == 200
            self.schema.validate(reply.entry)
        return reply

    def call(self, operation: str, fields: list[tuple[str, object]]) -> SoapReply:
        return self.post(envelope(operation, fields), soap_action=operation)


def envelope(operation: str, fields: list[tuple[str, object]]) -> bytes:
    """A request envelope; a field's value may be a nested list of (name, value)."""
    def fill(parent, items):
        for name, value in items:
            child = etree.SubElement(parent, f"{{{TNS}}}{name}")
            if isinstance(value, list):
                fill(child, value)
            else:
                child.text = str(value)

    root = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV, "p": TNS})
    body = etree.SubElement(root, f"{{{SOAP_ENV}}}Body")
    fill(etree.SubElement(body, f"{{{TNS}}}{operation}"), fields)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def soap(server, schema) -> RawSoap:
    return RawSoap(server.soap_url, schema)


@pytest.fixture
def billing_base(server):
    """Puts invoices in the billing base (origin BASE), as a FAC upload would."""
    from adapter.storage.db import make_engine
    from adapter.storage.unit_of_work import Storage

    storage = Storage(make_engine(server.database.url))

    def add(invoice):
        with storage.unit_of_work() as uow:
            uow.invoices.save(invoice)
            uow.commit()
        return invoice

    yield add
    storage.engine.dispose()


# -- the bundled legacy ERP ---------------------------------------------------------

ERP_CSV_HEADER = ("cliente,factura,moneda,vencimiento1,importe1,vencimiento2,importe2,"
                  "vencimiento3,importe3")


def wait_until(condition, timeout: float = 30, interval: float = 0.1, what: str = "condition"):
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class SimProcess:
    """A bundled simulator (``pmc-adapter <command>``) in a subprocess, stoppable and
    restartable on its port; subclasses give the command and its own arguments."""

    command: str

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = workdir / f"{self.command}.log"

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def start(self, *extra: str):
        command = [str(Path(sys.executable).with_name("pmc-adapter")), self.command,
                   "--bind", f"127.0.0.1:{self.port}", *self.arguments(), *extra]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._healthy, timeout=30, what=f"{self.command} to start")
        return self

    def _healthy(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(self.log_path.read_text())
        try:
            return requests.get(self.base_url + "/health", timeout=1).status_code == 200
        except (requests.ConnectionError, requests.Timeout):  # not up yet, or busy: poll again
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class ErpSim(SimProcess):
    """`pmc-adapter erp-sim`, knowing the invoices of ``rows``."""

    command = "erp-sim"

    def __init__(self, workdir: Path, rows: list[str]):
        super().__init__(workdir)
        self.csv = workdir / "erp-invoices.csv"
        self.csv.write_text("\n".join([ERP_CSV_HEADER, *rows]) + "\n")

    @property
    def wsdl_url(self) -> str:
        return self.base_url + "/erp?wsdl"

    def arguments(self) -> list[str]:
        return ["--invoices", str(self.csv), "--state", str(self.workdir / "erp-state.json")]

    def state(self) -> dict:
        return requests.get(self.base_url + "/_sim/state", timeout=10).json()

    def payment(self, operation_id: str) -> dict | None:
        return self.state()["payments"].get(operation_id)

    def restore(self) -> None:
        """Running and behaving again, after a test that stopped it or turned its knobs."""
        if self.process.poll() is not None:
            self.start()
        self.configure(latency_ms=0, fail_rate=0, trickle_ms=0)

    def configure(self, latency_ms: int = 0, fail_rate: float = 0.0, trickle_ms: int = 0) -> None:
        requests.post(self.base_url + "/_sim/config", timeout=10,
                      json={"latency_ms": latency_ms, "fail_rate": fail_rate,
                            "trickle_ms": trickle_ms}).raise_for_status()


@contextlib.contextmanager
def server_with_erp(database_url: str, workdir: Path, erp_rows: list[str]):
    """A server of its own, with a bundled ERP of its own knowing ``erp_rows``, and the
    database's storage (to put invoices in the billing base): (server, erp, storage)."""
    from adapter.storage.db import make_engine
    from adapter.storage.unit_of_work import Storage

    (workdir / "erp").mkdir()
    erp = ErpSim(workdir / "erp", erp_rows).start()
    storage = Storage(make_engine(database_url))
    try:
        server = start_server(database_url, workdir, **erp_env(erp))
        try:
            yield server, erp, storage
        finally:
            stop_server(server)
    finally:
        erp.stop()
        storage.engine.dispose()


def erp_env(erp: ErpSim) -> dict:
    """Settings of an adapter talking to ``erp``: 1 s timeout, quick retries for tests."""
    return {"PMC_ADAPTER_ERP_WSDL": erp.wsdl_url, "PMC_ADAPTER_ERP_TIMEOUT": "1",
            "PMC_ADAPTER_FORWARD_POLL": "0.2", "PMC_ADAPTER_FORWARD_RETRY_BASE": "0.2",
            "PMC_ADAPTER_FORWARD_RETRY_MAX": "1"}


# -- reading any answer, as an attacker's or a generator's test needs -----------------

@dataclass
class Result:
    """What the server answered, parsed as far as it parses."""

    status: int
    content_type: str
    body: bytes
    envelope: etree._Element | None = None
    entry: etree._Element | None = None
    problem: str | None = None  # why this is not a contract-shaped SOAP 1.1 answer

    @property
    def is_soap(self) -> bool:
        return self.problem is None

    @property
    def is_fault(self) -> bool:
        return self.entry is not None and self.entry.tag == f"{{{SOAP_ENV}}}Fault"

    @property
    def fault_code(self) -> str | None:
        if not self.is_fault:
            return None
        prefix, _, code = (self.entry.findtext("faultcode") or "").strip().partition(":")
        if self.entry.nsmap.get(prefix) != SOAP_ENV:
            return f"(not a SOAP-ENV QName) {prefix}:{code}"
        return f"soap:{code}"

    @property
    def fault_string(self) -> str | None:
        return self.entry.findtext("faultstring") if self.is_fault else None

    def value(self, name: str) -> str | None:
        return None if self.entry is None else self.entry.findtext(f"{{{TNS}}}{name}")

    def describe(self) -> str:
        if self.problem is not None:
            return (f"HTTP {self.status} ({self.content_type or 'no Content-Type'}), "
                    f"{self.problem}: {self.body[:300]!r}")
        if self.is_fault:
            return f"HTTP {self.status} fault {self.fault_code}: {self.fault_string!r}"
        return (f"HTTP {self.status} {etree.QName(self.entry).localname} "
                f"codigoRespuesta={self.value('codigoRespuesta')}")


def read_result(status: int, content_type: str, body: bytes, schema) -> Result:
    """Parses an answer and checks it the way conftest's RawSoap does: a fault travels
    with HTTP 500 and carries the contract's falla (codigo = the fault's sub-code); a
    normal answer travels with HTTP 200 and is valid against the XSD."""
    result = Result(status, content_type, body)
    try:
        result.envelope = etree.fromstring(body, etree.XMLParser(resolve_entities=False,
                                                                 no_network=True))
    except etree.XMLSyntaxError as error:
        result.problem = f"not XML ({error})"
        return result
    soap_body = result.envelope.find(f"{{{SOAP_ENV}}}Body")
    if result.envelope.tag != f"{{{SOAP_ENV}}}Envelope" or soap_body is None:
        result.problem = "not a SOAP 1.1 envelope"
        return result
    entries = [child for child in soap_body if isinstance(child.tag, str)]
    if len(entries) != 1:
        result.problem = f"{len(entries)} body entries"
        return result
    result.entry = entries[0]
    if result.is_fault:
        falla = result.entry.find(f"detail/{{{TNS}}}falla")
        if status != 500:
            result.problem = "a SOAP 1.1 fault must travel with HTTP 500"
        elif falla is None:
            result.problem = "fault without the contract's falla detail"
        elif not schema.is_valid(falla):
            result.problem = "falla detail invalid against the XSD"
        elif f"soap:{falla.findtext(f'{{{TNS}}}codigo')}" != result.fault_code:
            result.problem = "falla/codigo differs from faultcode"
    elif status != 200:
        result.problem = "a normal answer must travel with HTTP 200"
    elif not schema.is_valid(result.entry):
        result.problem = "response invalid against the XSD"
    return result


@pytest.fixture
def own_database(database_url, tmp_path):
    """A fresh, empty database of the same kind as ``database_url``, for a test that
    breaks or inspects its database alone."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'own.sqlite3'}"
        return
    with fresh_postgres_database(database_url, "pmc_adapter_own") as url:
        yield url
