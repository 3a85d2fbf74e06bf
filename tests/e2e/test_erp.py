"""The legacy ERP: two-place debt lookup within a deadline, durable payment forwarding.

Everything runs over real HTTP: the adapter (`pmc-adapter serve`), the bundled
legacy ERP (`pmc-adapter erp-sim`), `pmc-adapter worker` processes, and the
database (SQLite and PostgreSQL).
"""
import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import zeep

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.db import make_engine
from adapter.storage.unit_of_work import Storage
from support.data import today, unique
from support.servers import ErpSim, erp_env, start_server, stop_server, wait_until

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
ERP_TIMEOUT = 1.0  # erp_env()'s


def erp_rows() -> list[str]:
    day = today()
    soon, later, past = day + timedelta(10), day + timedelta(20), day - timedelta(30)
    return [
        f"M1,EF-A,ARS,{soon},150.00,,,,",          # also in the base, at 100.00
        f"M1,EF-C,ARS,{later},300.00,,,,",
        f"K1,EK-1,ARS,{past},10.00,,,,",             # known to the ERP, nothing owed
        f"K2,EK-2,USD,{soon},12.34,{later},13.00,,",
        f"P1,EP-1,ARS,{soon},150.00,,,,",            # paid in a test
        f"W1,EW-1,ARS,{soon},150.00,,,,",            # also in the base, at 100.00
    ]


@pytest.fixture(scope="module")
def erp(database_url, tmp_path_factory):
    sim = ErpSim(tmp_path_factory.mktemp("erp"), erp_rows()).start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def erp_up_and_well(erp):
    """Every test starts with the ERP running and behaving."""
    erp.restore()


@pytest.fixture(scope="module")
def erp_server(database_url, erp, tmp_path_factory):
    running = start_server(database_url, tmp_path_factory.mktemp("erp-server"), **erp_env(erp))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def pmc(erp_server):
    return zeep.Client(erp_server.soap_url + "?wsdl")


@pytest.fixture(scope="module")
def base(erp_server):
    storage = Storage(make_engine(erp_server.database.url))

    def add(customer, invoice_id, amount, days=10):
        with storage.unit_of_work() as uow:
            uow.invoices.save(Invoice("1234", customer, invoice_id, Currency.ARS,
                                      (DueDate(today() + timedelta(days), Decimal(amount)),),
                                      Origin.BILLING_BASE))
            uow.commit()

    add("M1", "EF-A", "100.00")
    add("M1", "EF-B", "20.00")
    add("W1", "EW-1", "100.00")
    yield add
    storage.engine.dispose()


def ask(pmc, customer):
    started = time.monotonic()
    answer = pmc.service.ConsultarDeuda(idEmpresa="1234", idCliente=customer)
    listed = [(f.idFactura, f.importeAPagar, f.origen) for f in (answer.facturas.factura
                                                                 if answer.facturas else [])]
    return answer.codigoRespuesta, listed, time.monotonic() - started


def pay(pmc, customer, invoice_id, amount, operation=None):
    operation = operation or unique("OP")
    answer = pmc.service.InformarPago(
        idEmpresa="1234", idOperacion=operation, idCliente=customer, idFactura=invoice_id,
        importe=amount, moneda="ARS", fechaPago=f"{today()}T00:00:00-03:00")
    return answer, operation


def forward_state(server, operation):
    rows = server.database.rows(
        "SELECT f.status, f.attempts, f.last_error FROM erp_forwards f "
        "JOIN payments p ON p.pk = f.payment_pk WHERE p.operation_id = :o AND f.kind = 'payment'",
        o=operation)
    return rows[0] if rows else None


def delivered(server, operation):
    state = forward_state(server, operation)
    return state is not None and state[0] == "delivered"


BASE_ONLY_M1 = [("EF-B", Decimal("20.00"), "BASE"), ("EF-A", Decimal("100.00"), "BASE")]


# -- ConsultarDeuda -------------------------------------------------------------------

def test_debt_merges_base_and_erp_and_the_erp_wins(pmc, base):
    code, listed, _ = ask(pmc, "M1")
    assert code == 0
    assert sorted(listed) == [("EF-A", Decimal("150.00"), "ERP"),
                              ("EF-B", Decimal("20.00"), "BASE"),
                              ("EF-C", Decimal("300.00"), "ERP")]


def test_unknown_no_debt_and_debt_stay_right_across_both_places(pmc, base):
    assert ask(pmc, "K1")[0] == 2  # only the ERP knows K1, and K1 owes nothing
    code, listed, _ = ask(pmc, "K2")
    assert code == 0 and listed == [("EK-2", Decimal("12.34"), "ERP")]
    assert ask(pmc, unique("NOBODY"))[0] == 1


def test_erp_down_answers_from_the_base(pmc, base, erp):
    erp.stop()
    code, listed, elapsed = ask(pmc, "M1")
    assert code == 0 and sorted(listed) == sorted(BASE_ONLY_M1)
    assert elapsed < ERP_TIMEOUT + 2
    assert ask(pmc, "K2")[0] == 1  # nobody else knows K2


def test_slow_erp_costs_at_most_its_timeout(pmc, base, erp):
    erp.configure(latency_ms=4000)
    code, listed, elapsed = ask(pmc, "M1")
    assert code == 0 and sorted(listed) == sorted(BASE_ONLY_M1)
    # the deadline: the ERP's timeout plus our own work, far below its 4 s
    assert elapsed < ERP_TIMEOUT + 2


def test_faulting_erp_answers_from_the_base(pmc, base, erp):
    erp.configure(fail_rate=1.0)
    code, listed, _ = ask(pmc, "M1")
    assert code == 0 and sorted(listed) == sorted(BASE_ONLY_M1)


# -- InformarPago and forwarding ---------------------------------------------------------

def test_payment_of_an_erp_invoice_is_applied_and_forwarded_once(pmc, erp, erp_server):
    answer, operation = pay(pmc, "P1", "EP-1", "150.00")
    assert answer.codigoRespuesta == 0
    wait_until(lambda: delivered(erp_server, operation), what="the forward to be delivered")
    assert erp.payment(operation) == {"received": 1, "applied": 1}
    assert ["P1", "EP-1"] in erp.state()["paid"]
    # a replay is answered the same and not forwarded again
    replay, _ = pay(pmc, "P1", "EP-1", "150.00", operation=operation)
    assert (replay.codigoRespuesta, replay.idRecibo) == (0, answer.idRecibo)
    time.sleep(1)
    assert erp.payment(operation) == {"received": 1, "applied": 1}
    assert erp_server.database.count("erp_forwards") >= 1
    assert ask(pmc, "P1")[0] == 2


def test_payment_matches_the_erp_terms_when_both_places_have_the_invoice(pmc, base):
    assert pay(pmc, "W1", "EW-1", "100.00")[0].codigoRespuesta == 6  # the base's stale price
    assert pay(pmc, "W1", "EW-1", "150.00")[0].codigoRespuesta == 0


def test_payment_is_forwarded_after_the_erp_comes_back(pmc, base, erp, erp_server):
    customer = unique("D")
    base(customer, "F-1", "10.00")
    erp.stop()
    started = time.monotonic()
    answer, operation = pay(pmc, customer, "F-1", "10.00")
    assert answer.codigoRespuesta == 0
    assert time.monotonic() - started < ERP_TIMEOUT + 2  # the answer did not wait for the ERP
    wait_until(lambda: (forward_state(erp_server, operation) or (None, 0))[1] >= 2,
               what="two failed attempts")
    listing = subprocess.run([CLI, "forwards", "--status", "failing"], capture_output=True,
                             text=True, timeout=60, check=True,
                             env={**os.environ,
                                  "PMC_ADAPTER_DATABASE_URL": erp_server.database.url})
    assert operation in listing.stdout and "failing" in listing.stdout
    erp.start()
    wait_until(lambda: delivered(erp_server, operation), what="delivery after the ERP is back")
    assert erp.payment(operation) == {"received": 1, "applied": 1}


def test_late_acknowledgement_is_retried_and_applied_once(pmc, base, erp, erp_server):
    customer = unique("S")
    base(customer, "F-1", "10.00")
    erp.configure(latency_ms=1500)  # applies, then answers after our 1 s timeout
    answer, operation = pay(pmc, customer, "F-1", "10.00")
    assert answer.codigoRespuesta == 0
    wait_until(lambda: (erp.payment(operation) or {}).get("received", 0) >= 2,
               what="a second delivery")
    erp.configure(latency_ms=0)
    wait_until(lambda: delivered(erp_server, operation), what="the acknowledgement")
    assert erp.payment(operation)["applied"] == 1


def test_nothing_is_lost_when_the_adapter_is_killed_before_forwarding(
        database_url, erp, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'killed.sqlite3'}"
    adapter = start_server(database_url, tmp_path, **erp_env(erp))
    client = zeep.Client(adapter.soap_url + "?wsdl")
    customer = unique("K")
    storage = Storage(make_engine(database_url))
    with storage.unit_of_work() as uow:
        uow.invoices.save(Invoice("1234", customer, "F-1", Currency.ARS,
                                  (DueDate(today() + timedelta(5), Decimal("7.00")),),
                                  Origin.BILLING_BASE))
        uow.commit()
    erp.stop()
    answer, operation = pay(client, customer, "F-1", "7.00")
    assert answer.codigoRespuesta == 0
    # kill -9 the master and every worker: nothing gets a chance to clean up
    subprocess.run(["pkill", "-KILL", "-P", str(adapter.process.pid)], check=False)
    adapter.process.kill()
    adapter.process.wait(timeout=30)
    assert forward_state(adapter, operation)[0] == "pending"

    erp.start()
    restarted = start_server(database_url, tmp_path, **erp_env(erp))
    try:
        wait_until(lambda: delivered(restarted, operation), what="delivery after the restart")
        assert erp.payment(operation) == {"received": 1, "applied": 1}
    finally:
        stop_server(restarted)
        storage.engine.dispose()


def test_racing_forwarders_deliver_each_payment_once(pmc, base, erp, erp_server, tmp_path):
    customers = [unique("R") for _ in range(12)]
    for customer in customers:
        base(customer, "F-1", "5.00")
    erp.stop()
    operations = [pay(pmc, customer, "F-1", "5.00")[1] for customer in customers]
    environment = {**os.environ, **erp_env(erp),
                   "PMC_ADAPTER_DATABASE_URL": erp_server.database.url}
    workers = [subprocess.Popen([CLI, "worker"], env=environment,
                                stdout=open(tmp_path / f"worker{n}.log", "wb"),
                                stderr=subprocess.STDOUT) for n in range(2)]
    try:
        time.sleep(1)
        erp.start()  # now the server's 3 workers and 2 worker processes all race
        wait_until(lambda: all(delivered(erp_server, op) for op in operations), timeout=60,
                   what="every payment delivered")
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    received = {op: erp.payment(op) for op in operations}
    assert {op: got["applied"] for op, got in received.items()} == dict.fromkeys(operations, 1)
    # Each payment is claimed by one forwarder at a time. It reaches the ERP a second time
    # only when a delivery of it ran out of its timeout (1 s here) while the ERP -- just
    # started, on a busy machine -- was still answering: sent again, at least once, as
    # designed. Any other repeat would be two forwarders delivering it at once.
    logs = erp_server.log() + "".join((tmp_path / f"worker{n}.log").read_text()
                                      for n in range(2))
    timed_out = {op: len(re.findall(rf"payment {op} not delivered to the ERP \(attempt \d+\), "
                                    r"retry in [\d.]+ s: \w+: no complete answer within",
                                    logs))
                 for op in operations}
    assert {op: got["received"] - 1 for op, got in received.items() if got["received"] > 1
            and got["received"] - 1 > timed_out[op]} == {}
