"""The outbox under a slow, dribbling or recovering ERP, over real processes: every ERP
call ends by its timeout, no payment is ever sent twice at the same time, and a backlog
is released when the ERP answers again (probe, or `forwards --retry-now`)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import zeep
from sqlalchemy import select

from adapter.storage.orm import ForwardRow
from support.data import today, unique
from support.servers import ErpSim, erp_env, start_server, stop_server, wait_until

CLI = str(Path(sys.executable).with_name("pmc-adapter"))


@pytest.fixture
def erp(tmp_path):
    (tmp_path / "erp").mkdir()
    sim = ErpSim(tmp_path / "erp", [])
    yield sim
    sim.stop()


def settings(erp: ErpSim, **overrides) -> dict:
    return {**erp_env(erp), **{f"PMC_ADAPTER_{key.upper()}": str(value)
                               for key, value in overrides.items()}}


def pay_many(server, count: int) -> list[str]:
    """``count`` payments of unknown invoices (observed, forwarded all the same)."""
    pmc = zeep.Client(server.soap_url + "?wsdl")
    operations = [unique("OP") for _ in range(count)]
    for operation in operations:
        assert pmc.service.InformarPago(
            idEmpresa="1234", idOperacion=operation, idCliente="NOBODY", idFactura="F-1",
            importe="1.00", moneda="ARS",
            fechaPago=f"{today()}T00:00:00-03:00").codigoRespuesta == 3
    return operations


def forwards(server) -> list[tuple]:
    return [tuple(row) for row in server.database.rows(
        select(ForwardRow.status, ForwardRow.attempts, ForwardRow.next_attempt_at,
               ForwardRow.last_error))]


def all_delivered(server, count: int) -> bool:
    rows = forwards(server)
    return len(rows) == count and all(row[0] == "delivered" for row in rows)


def test_forwarders_racing_a_slow_erp_never_send_a_payment_twice(own_database, erp, tmp_path):
    """A 2.5 s ERP (timeout 4 s: lease 30 s), 24 payments: the server's 3 workers and
    2 `worker` processes all claim at once (a claim of 20 delivered one after another, as
    forwarders did before, outlasts its lease: 2 payments were sent twice at once). Each claim covers one delivery, which ends by the
    timeout: every payment reaches the ERP once, none while it is already in flight."""
    environment = settings(erp, erp_timeout=4, forward_concurrency=4)
    server = start_server(own_database, tmp_path, **environment)
    workers = []
    try:
        operations = pay_many(server, 24)  # the ERP is not running: they pile up
        erp.start()
        erp.configure(latency_ms=2500)
        workers = [subprocess.Popen([CLI, "worker"], stdout=open(tmp_path / f"w{n}.log", "wb"),
                                    stderr=subprocess.STDOUT,
                                    env={**os.environ, **environment,
                                         "PMC_ADAPTER_DATABASE_URL": own_database})
                   for n in range(2)]
        wait_until(lambda: all_delivered(server, 24), timeout=120, what="all delivered")
        state = erp.state()
        assert state["overlaps"] == 0
        assert {op: state["payments"][op]["received"] for op in operations} == \
            dict.fromkeys(operations, 1)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
        stop_server(server)


def test_a_dribbling_erp_costs_each_delivery_its_timeout_and_no_more(own_database, erp,
                                                                     tmp_path):
    erp.start()
    erp.configure(trickle_ms=500)  # ~0.5 KiB answers: minutes each, without a deadline
    server = start_server(own_database, tmp_path,
                          **settings(erp, forward_retry_base=0.2, forward_retry_max=0.5))
    try:
        (operation,) = pay_many(server, 1)
        started = time.monotonic()
        wait_until(lambda: forwards(server)[0][1] >= 3, timeout=20,
                   what="three bounded attempts")
        assert time.monotonic() - started < 12  # 3 attempts of 1 s (timeout) + backoff
        assert "no complete answer within 1 s" in forwards(server)[0][3]
        erp.configure(trickle_ms=0)
        wait_until(lambda: all_delivered(server, 1), timeout=30, what="delivered")
        assert erp.state()["payments"][operation]["applied"] == 1
    finally:
        stop_server(server)


def test_an_erp_back_from_an_outage_gets_the_backlog_at_once(own_database, erp, tmp_path):
    """Retries backed off to 16-20 s; the ERP comes back; the probe (every second) finds
    it and releases the backlog: delivered long before the backoff would have ended."""
    server = start_server(own_database, tmp_path, **settings(
        erp, forward_retry_base=20, forward_retry_max=300, forward_probe=1))
    try:
        pay_many(server, 12)
        wait_until(lambda: all(row[1] >= 1 for row in forwards(server)), timeout=30,
                   what="a failed attempt each")
        erp.start()
        back = datetime.now(timezone.utc)
        waiting = [row[2] for row in forwards(server) if row[0] == "pending"]
        assert min(waiting) - back > timedelta(seconds=10)  # the backoff is long
        started = time.monotonic()
        wait_until(lambda: all_delivered(server, 12), timeout=60, what="the backlog")
        assert time.monotonic() - started < 8
    finally:
        stop_server(server)


def test_an_operator_releases_the_backlog_with_retry_now(own_database, erp, tmp_path):
    environment = settings(erp, forward_retry_base=30, forward_retry_max=300,
                           forward_probe=3600)
    server = start_server(own_database, tmp_path, **environment)
    try:
        operations = pay_many(server, 3)
        wait_until(lambda: all(row[1] >= 1 for row in forwards(server)), timeout=30,
                   what="a failed attempt each")
        erp.start()
        time.sleep(2)
        assert not any(row[0] == "delivered" for row in forwards(server))  # backed off
        released = subprocess.run(
            [CLI, "forwards", "--retry-now", operations[0]], capture_output=True, text=True,
            env={**os.environ, **environment, "PMC_ADAPTER_DATABASE_URL": own_database})
        assert released.returncode == 0 and "1 pending forward(s) due now" in released.stdout
        # a delivered retry means the ERP is back: the rest follows without waiting
        wait_until(lambda: all_delivered(server, 3), timeout=20, what="the backlog")
    finally:
        stop_server(server)


def test_sigterm_mid_load_loses_nothing_and_leaves_no_claim(own_database, erp, tmp_path):
    """Notices arrive and deliveries are in flight (a 1 s ERP) when the server gets
    SIGTERM: every notice it answered is stored, the deliveries in flight end and are
    recorded, and the claims left are released -- none waits for its lease -- so that a
    server started again delivers the rest at once, each payment once."""
    import threading

    import requests
    from lxml import etree

    from support.soap import TNS, envelope

    erp.start()
    erp.configure(latency_ms=1000)
    environment = settings(erp, erp_timeout=4, forward_concurrency=2)
    server = start_server(own_database, tmp_path, **environment)
    answered: list[str] = []
    stop = threading.Event()

    def notices():
        while not stop.is_set():
            operation = unique("OP")
            try:
                reply = requests.post(server.soap_url, timeout=10, data=envelope(
                    "InformarPago", [("idEmpresa", "1234"), ("idOperacion", operation),
                                     ("idCliente", "NOBODY"), ("idFactura", "F-1"),
                                     ("importe", "1.00"), ("moneda", "ARS"),
                                     ("fechaPago", f"{today()}T00:00:00-03:00")]),
                    headers={"Content-Type": "text/xml; charset=utf-8",
                             "SOAPAction": '"InformarPago"'})
            except requests.RequestException:
                continue  # refused or cut while stopping: not answered, not counted
            if reply.status_code == 200 and etree.fromstring(reply.content).findtext(
                    f".//{{{TNS}}}codigoRespuesta") == "3":
                answered.append(operation)

    senders = [threading.Thread(target=notices) for _ in range(4)]
    for sender in senders:
        sender.start()
    try:
        wait_until(lambda: len(answered) >= 10, timeout=60, what="notices answered")
        wait_until(lambda: any(row[0] == "delivered" for row in forwards(server)),
                   timeout=30, what="deliveries under way")
        server.process.terminate()  # SIGTERM to gunicorn's master
        server.process.wait(timeout=60)
    finally:
        stop.set()
        for sender in senders:
            sender.join(timeout=30)
        server.database.engine.dispose()
    stored = {row[0] for row in server.database.rows("SELECT operation_id FROM payments")}
    assert set(answered) <= stored
    claimed = server.database.rows(
        "SELECT count(*) FROM erp_forwards WHERE status = 'pending' AND claimed_by IS NOT NULL")
    assert claimed[0][0] == 0
    assert erp.state()["overlaps"] == 0
    # every worker's exit ran on an open database: its last deliveries recorded, its
    # claims released (the SQLite connections were once closed before: held claims
    # were left to their leases, one run in a few)
    stopping = server.log_path.read_text()
    assert "Exception ignored in atexit" not in stopping
    assert "could not record" not in stopping and "could not release" not in stopping

    erp.configure(latency_ms=0)
    again = start_server(own_database, tmp_path, **environment)
    try:
        wait_until(lambda: all(row[0] == "delivered" for row in forwards(again)), timeout=60,
                   what="the rest delivered")
        received = erp.state()["payments"]
        assert all(received[op]["received"] == 1 for op in stored)
    finally:
        stop_server(again)
