"""Real processes on loopback: ``pmc-adapter serve`` (gunicorn) and the bundled simulators
(``pmc-adapter erp-sim``...), and the database they write, read back by SQL."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from sqlalchemy import create_engine, text

from support.data import free_port

SERVED_BILLERS = ("1234", "5678")


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


