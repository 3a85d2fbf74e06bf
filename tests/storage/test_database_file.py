"""The SQLite file under a running service: deleted, replaced, its -wal deleted, made
unreadable. A notice that got a response code is in the database the settings name;
one that was refused is stored nowhere, and stored once when PMC sends it again.

Real processes: ``pmc-adapter serve`` with three workers on a file of its own, a load
of InformarPago from eight threads, the file changed under it by the test as an
operator would, then a restart and a count."""
from __future__ import annotations

import os
import re
import shutil
import sqlite3
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from lxml import etree

from support.data import today, unique
from support.servers import start_server, stop_server, wait_until
from support.soap import SOAP_ENV, TNS, envelope

SENDERS = 8
STORAGE_FAULT = "Server.StorageUnavailable"


@dataclass
class Sent:
    operation: str
    sent_at: float  # time.monotonic() when the request left
    outcome: str  # the response code, or the fault code


def notice(operation: str) -> bytes:
    return envelope("InformarPago", [
        ("idEmpresa", "1234"), ("idOperacion", operation), ("idCliente", "C-" + operation),
        ("idFactura", "F-1"), ("importe", "10.00"), ("moneda", "ARS"),
        ("fechaPago", f"{today().isoformat()}T00:00:00-03:00")])


def send(session: requests.Session, url: str, operation: str) -> Sent:
    sent_at = time.monotonic()
    response = session.post(url, data=notice(operation), timeout=60, headers={
        "Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"InformarPago"'})
    entry = etree.fromstring(response.content).find(f"{{{SOAP_ENV}}}Body")[0]
    if entry.tag == f"{{{SOAP_ENV}}}Fault":
        assert response.status_code == 500
        outcome = entry.findtext("faultcode").partition(":")[2]
    else:
        assert response.status_code == 200
        outcome = entry.findtext(f"{{{TNS}}}codigoRespuesta")
    return Sent(operation, sent_at, outcome)


class Load:
    """InformarPago from ``SENDERS`` threads, each a new operation, until stopped."""

    def __init__(self, url: str):
        self.url = url
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(SENDERS)
        self._futures = [self._pool.submit(self._run) for _ in range(SENDERS)]

    def _run(self) -> None:
        with requests.Session() as session:
            while not self._stop.is_set():
                one = send(session, self.url, unique("OP"))
                with self._lock:
                    self.sent.append(one)

    def count(self) -> int:
        with self._lock:
            return len(self.sent)

    def stop(self) -> list[Sent]:
        self._stop.set()
        for future in self._futures:
            future.result()  # a sender's exception (no answer at all) fails the test
        self._pool.shutdown()
        return self.sent


def stored(path: Path) -> list[str]:
    connection = sqlite3.connect(path)
    try:
        return [row[0] for row in connection.execute("SELECT operation_id FROM payments")]
    finally:
        connection.close()


def acknowledged(sent: list[Sent]) -> set[str]:
    return {one.operation for one in sent if one.outcome not in (STORAGE_FAULT,)}


def run_until(load: Load, more: int) -> None:
    """Let ``more`` further requests be answered."""
    target = load.count() + more
    wait_until(lambda: load.count() >= target, timeout=60, what=f"{more} more answers")


def workers_of(master_pid: int) -> list[int]:
    children = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == master_pid:
                children.append(int(entry))
    return children


def deleted_database(master_pid: int, path: Path) -> Path:
    """Where a worker still has the deleted file open: ``/proc/PID/fd/N``."""
    for pid in workers_of(master_pid):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target == f"{path} (deleted)":
                return Path(f"/proc/{pid}/fd/{fd}")
    raise AssertionError(f"no worker has {path} open")


@pytest.fixture
def service(tmp_path):
    path = tmp_path / "adapter.sqlite3"
    servers = []

    def start():
        servers.append(start_server(f"sqlite:///{path}", tmp_path))
        return servers[-1]

    yield path, start
    for server in servers:
        if server.process.poll() is None:
            stop_server(server)


def set_aside_the_old_log(path: Path) -> None:
    """The README's step after a stop: the old file's -wal and -shm, left at the path
    (its last connection could not checkpoint into a file that is gone), moved aside."""
    for suffix in ("-wal", "-shm"):
        left = path.with_name(path.name + suffix)
        if left.exists():
            os.replace(left, left.with_name(left.name + ".set-aside"))


def resend(url: str, refused: list[str]) -> set[str]:
    with requests.Session() as session:
        again = [send(session, url, operation) for operation in refused]
    assert all(one.outcome != STORAGE_FAULT for one in again), "refused after the restart"
    return {one.operation for one in again}


def assert_each_once(operations: list[str]) -> None:
    assert len(operations) == len(set(operations)), "a notice stored twice"


def test_after_the_file_is_deleted_every_notice_is_refused_and_the_acknowledged_are_recoverable(
        service):
    """The README's procedure: copy the deleted file back from /proc with its -wal while
    the service runs, stop it, restore the pair, start again."""
    path, start = service
    server = start()
    load = Load(server.soap_url)
    run_until(load, 40)
    os.unlink(path)
    deleted_at = time.monotonic()
    run_until(load, 40)
    sent = load.stop()

    after = [one for one in sent if one.sent_at > deleted_at]
    assert after and {one.outcome for one in after} == {STORAGE_FAULT}, \
        "a notice sent after the delete was acknowledged: written into the deleted file"
    assert requests.get(server.base_url + "/health", timeout=10).status_code == 503
    assert re.search(r"error \S+ in InformarPago: Server\.StorageUnavailable", server.log())
    assert f"the database file {path} was deleted or replaced" in server.log()

    restored = path.with_name("restored.sqlite3")
    shutil.copyfile(deleted_database(server.process.pid, path), restored)
    shutil.copyfile(path.with_name(path.name + "-wal"), restored.with_name(restored.name + "-wal"))
    stop_server(server)
    sqlite3.connect(restored).execute("PRAGMA wal_checkpoint(TRUNCATE)").connection.close()
    set_aside_the_old_log(path)
    os.replace(restored, path)

    server = start()
    in_database = stored(path)
    assert_each_once(in_database)
    assert acknowledged(sent) <= set(in_database), "an acknowledged notice is lost"
    refused = [one.operation for one in sent if one.outcome == STORAGE_FAULT]
    # refused yet stored: committed as the file went, then not acknowledged (PMC's
    # resend gets the stored answer); none sent after the delete
    assert not {one.operation for one in after} & set(in_database)
    resend(server.soap_url, refused)
    in_database = stored(path)
    assert_each_once(in_database)
    assert set(in_database) == {one.operation for one in sent}


@pytest.mark.parametrize("change", ["the file replaced by a copy", "its -wal deleted"])
def test_a_changed_file_takes_no_notice_until_the_restart_and_loses_none_acknowledged(
        service, change):
    path, start = service
    server = start()
    load = Load(server.soap_url)
    run_until(load, 40)
    if change == "the file replaced by a copy":  # an operator restoring a backup
        copy = path.with_name("copy.sqlite3")
        source = sqlite3.connect(path)
        target = sqlite3.connect(copy)
        source.backup(target)
        source.close()
        target.close()
        in_copy = set(stored(copy))
        os.replace(copy, path)
    else:
        os.unlink(path.with_name(path.name + "-wal"))
    changed_at = time.monotonic()
    run_until(load, 40)
    sent = load.stop()

    after = [one for one in sent if one.sent_at > changed_at]
    assert after and {one.outcome for one in after} == {STORAGE_FAULT}
    assert requests.get(server.base_url + "/health", timeout=10).status_code == 503
    stop_server(server)
    if change == "the file replaced by a copy":
        # the old file's -wal is still at the path: applied to the copy, it would
        # corrupt it; the service refuses to start until it is set aside
        with pytest.raises(RuntimeError, match="belongs to another file than"):
            start()
        set_aside_the_old_log(path)

    server = start()
    in_database = stored(path)
    assert_each_once(in_database)
    refused = [one.operation for one in sent if one.outcome == STORAGE_FAULT]
    assert not {one.operation for one in after} & set(in_database), "a refused notice stored"
    if change == "the file replaced by a copy":
        # what the backup held, and nothing else: the notices acknowledged between the
        # backup and its restore were in the file the operator replaced
        assert set(in_database) == in_copy
    else:  # the workers held the -wal open: their last close put it into the file
        assert acknowledged(sent) <= set(in_database), "an acknowledged notice is lost"
    resend(server.soap_url, refused)
    in_database = stored(path)
    assert_each_once(in_database)
    assert set(refused) <= set(in_database)


def test_an_unreadable_file_loses_no_acknowledged_notice(service):
    """``chmod 000`` mid-load, then back: the open connections still write the same file
    (and as root nothing changes); a connection that cannot open it refuses."""
    path, start = service
    server = start()
    load = Load(server.soap_url)
    run_until(load, 40)
    mode = stat.S_IMODE(path.stat().st_mode)
    path.chmod(0)
    try:
        run_until(load, 40)
    finally:
        path.chmod(mode)
    run_until(load, 20)
    sent = load.stop()
    stop_server(server)

    server = start()
    in_database = stored(path)
    assert_each_once(in_database)
    assert acknowledged(sent) <= set(in_database), "an acknowledged notice is lost"
    refused = [one.operation for one in sent if one.outcome == STORAGE_FAULT]
    resend(server.soap_url, [operation for operation in refused if operation not in in_database])
    assert set(stored(path)) == {one.operation for one in sent}
