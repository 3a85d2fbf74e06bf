"""AnularPago end to end: the reversal window, idempotency, a reversal before its
payment (both orders, concurrently, on 3 workers), and the ERP hearing of a payment
and its reversal in order, once each, across a kill -9.

Everything over real HTTP: `pmc-adapter serve`, the bundled legacy ERP
(`pmc-adapter erp-sim`), and the database (SQLite and PostgreSQL); PMC's side is a
zeep client built only from /soap?wsdl, or hand-built envelopes checked against the
XSD (conftest's RawSoap) where many threads race.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest
import zeep

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome, PaymentNotice,
                                  PaymentState, ReversalNotice, ReversalState)
from adapter.service.billing import BillingService
from adapter.storage.db import make_engine
from adapter.storage.unit_of_work import Storage
from support.data import today, unique
from support.servers import ErpSim, erp_env, start_server, stop_server, wait_until
from support.soap import RawSoap, contract_client

CLI = str(Path(sys.executable).with_name("pmc-adapter"))
STRICT_BILLER = "5678"  # its reversal window closes at 00:00 of the payment's day


def erp_rows() -> list[str]:
    soon = today() + timedelta(10)
    return [f"ERV{n},ERF-{n},ARS,{soon},40.00,,,," for n in range(1, 4)]


@pytest.fixture(scope="module")
def erp(tmp_path_factory):
    sim = ErpSim(tmp_path_factory.mktemp("erp"), erp_rows()).start()
    yield sim
    sim.stop()


@pytest.fixture(autouse=True)
def erp_up_and_well(erp):
    """Every test starts with the ERP running and behaving."""
    erp.restore()


def config_file(directory: Path) -> Path:
    path = directory / "pmc-adapter.toml"
    path.write_text(f'[empresas.{STRICT_BILLER}]\nreversal_cutoff_hour = 0\n')
    return path


@pytest.fixture(scope="module")
def rev_server(database_url, erp, tmp_path_factory):
    directory = tmp_path_factory.mktemp("reversal-server")
    running = start_server(database_url, directory, **erp_env(erp),
                           PMC_ADAPTER_CONFIG=str(config_file(directory)))
    yield running
    stop_server(running)


@pytest.fixture(scope="module")
def pmc(rev_server, schema):
    return contract_client(rev_server, schema)


@pytest.fixture(scope="module")
def raw(rev_server, schema):
    return RawSoap(rev_server.soap_url, schema)


def add_invoice(storage: Storage, customer: str, amount: str = "100.00",
                biller: str = "1234", invoice_id: str = "F-1") -> str:
    """An invoice in the billing base, due in 10 days; returns its client."""
    with storage.unit_of_work() as uow:
        uow.invoices.save(Invoice(biller, customer, invoice_id, Currency.ARS,
                                  (DueDate(today() + timedelta(10), Decimal(amount)),),
                                  Origin.BILLING_BASE))
        uow.commit()
    return customer


@pytest.fixture(scope="module")
def base(rev_server):
    storage = Storage(make_engine(rev_server.database.url))
    yield lambda customer, **terms: add_invoice(storage, customer, **terms)
    storage.engine.dispose()


def now_ba() -> str:
    return datetime.now(BUSINESS_TZ).isoformat(timespec="seconds")


def pay(pmc, customer, operation, amount="100.00", biller="1234", invoice_id="F-1",
        paid_at=None):
    return pmc.service.InformarPago(
        idEmpresa=biller, idOperacion=operation, idCliente=customer, idFactura=invoice_id,
        importe=amount, moneda="ARS", fechaPago=paid_at or now_ba())


def reverse(pmc, customer, operation, amount="100.00", biller="1234", invoice_id="F-1",
            moneda="ARS", reversed_at=None, motivo="desistido por el cliente"):
    return pmc.service.AnularPago(
        idEmpresa=biller, idOperacion=operation, idCliente=customer, idFactura=invoice_id,
        importe=amount, moneda=moneda, fechaAnulacion=reversed_at or now_ba(), motivo=motivo)


def status(pmc, operation, biller="1234"):
    return pmc.service.ConsultarPago(idEmpresa=biller, idOperacion=operation)


def owed(pmc, customer, biller="1234"):
    answer = pmc.service.ConsultarDeuda(idEmpresa=biller, idCliente=customer)
    return [f.idFactura for f in (answer.facturas.factura if answer.facturas else [])]


def reversal_rows(db, operation):
    return db.rows("SELECT status, response_code, refusal_code, reversal_id FROM reversals "
                   "WHERE operation_id = :o", o=operation)


def payment_row(db, operation):
    (row,) = db.rows("SELECT p.status, p.response_code, p.applied_invoice_pk FROM payments p "
                     "WHERE p.operation_id = :o", o=operation)
    return tuple(row)


def forward(db, operation, kind):
    rows = db.rows("SELECT f.status, f.attempts, f.last_error FROM erp_forwards f "
                   "JOIN payments p ON p.pk = f.payment_pk "
                   "WHERE p.operation_id = :o AND f.kind = :k", o=operation, k=kind)
    return rows[0] if rows else None


def delivered(db, operation, kind) -> bool:
    state = forward(db, operation, kind)
    return state is not None and state[0] == "delivered"


# -- 0, its replays, and what a reversal changes ----------------------------------------

def test_a_reversal_reopens_the_invoice_and_a_replay_gets_the_first_answer(pmc, base, rev_server):
    db = rev_server.database
    customer, operation, paid_at = base(unique("RV")), unique("OP"), now_ba()
    paid = pay(pmc, customer, operation, paid_at=paid_at)
    assert paid.codigoRespuesta == 0 and owed(pmc, customer) == []

    reversed_at = now_ba()
    answer = reverse(pmc, customer, operation, reversed_at=reversed_at)
    assert (answer.codigoRespuesta, answer.descripcion) == (0, "OK") and answer.idAnulacion
    assert owed(pmc, customer) == ["F-1"]  # payable again
    state = status(pmc, operation)
    assert (state.codigoRespuesta, state.estado, state.codigoRespuestaAviso, state.idRecibo) == \
        (0, "ANULADO", 0, paid.idRecibo)
    assert payment_row(db, operation) == ("reversed", 0, None)

    again = reverse(pmc, customer, operation, reversed_at=reversed_at)
    assert (again.codigoRespuesta, again.idAnulacion) == (0, answer.idAnulacion)
    other = reverse(pmc, customer, operation, reversed_at=reversed_at, motivo="otro motivo")
    assert (other.codigoRespuesta, other.idAnulacion) == (7, answer.idAnulacion)
    assert [tuple(row) for row in reversal_rows(db, operation)] == \
        [("applied", 0, None, answer.idAnulacion)]
    # the notice, replayed, is answered as the first time and pays nothing
    replayed = pay(pmc, customer, operation, paid_at=paid_at)
    assert (replayed.codigoRespuesta, replayed.idRecibo) == (0, paid.idRecibo)
    assert owed(pmc, customer) == ["F-1"]
    # and the invoice can be paid again, by another operation
    assert pay(pmc, customer, unique("OP")).codigoRespuesta == 0
    assert owed(pmc, customer) == []


def test_an_observed_payment_is_closed_as_reversed(pmc, rev_server):
    customer, operation = unique("NOBODY"), unique("OP")
    assert pay(pmc, customer, operation, amount="12.34").codigoRespuesta == 3
    answer = reverse(pmc, customer, operation, amount="12.34")
    assert answer.codigoRespuesta == 0 and answer.idAnulacion
    state = status(pmc, operation)
    assert (state.estado, state.codigoRespuestaAviso) == ("ANULADO", 3)
    assert payment_row(rev_server.database, operation) == ("reversed", 3, None)


# -- 9 and 10: nothing changes ----------------------------------------------------------

@pytest.mark.parametrize("change", [
    dict(amount="100.01"), dict(invoice_id="F-2"), dict(moneda="USD"), dict(customer="OTHER")])
def test_a_reversal_with_other_data_is_10_and_changes_nothing(pmc, base, rev_server, change):
    customer, operation = base(unique("RV")), unique("OP")
    assert pay(pmc, customer, operation).codigoRespuesta == 0
    arguments = {"customer": customer, **change}
    answer = reverse(pmc, operation=operation, **arguments)
    assert (answer.codigoRespuesta, answer.idAnulacion) == (10, None)
    assert answer.descripcion == "Los datos de la anulacion no coinciden con el pago"
    assert reversal_rows(rev_server.database, operation) == []
    assert status(pmc, operation).estado == "APLICADO" and owed(pmc, customer) == []
    assert forward(rev_server.database, operation, "reversal") is None


def test_a_reversal_after_the_payments_day_is_9_and_changes_nothing(pmc, base, rev_server):
    customer, operation = base(unique("RV")), unique("OP")
    two_days_ago = datetime.now(BUSINESS_TZ) - timedelta(days=2)
    assert pay(pmc, customer, operation,
               paid_at=two_days_ago.isoformat(timespec="seconds")).codigoRespuesta == 0
    answer = reverse(pmc, customer, operation)
    assert (answer.codigoRespuesta, answer.descripcion, answer.idAnulacion) == \
        (9, "Anulacion fuera de plazo", None)
    assert reversal_rows(rev_server.database, operation) == []
    assert status(pmc, operation).estado == "APLICADO" and owed(pmc, customer) == []


def test_a_billers_own_cutoff_hour_closes_its_window(pmc, base, rev_server):
    """Biller 5678's window closes at 00:00 of the payment's day: even a payment made a
    second ago cannot be reversed; biller 1234's (the default, 24) still can."""
    customer = base(unique("RV"), biller=STRICT_BILLER)
    operation = unique("OP")
    assert pay(pmc, customer, operation, biller=STRICT_BILLER).codigoRespuesta == 0
    answer = reverse(pmc, customer, operation, biller=STRICT_BILLER)
    assert (answer.codigoRespuesta, answer.idAnulacion) == (9, None)
    assert status(pmc, operation, biller=STRICT_BILLER).estado == "APLICADO"
    # operation IDs are per biller: 1234 has no payment with that ID
    assert reverse(pmc, customer, operation).codigoRespuesta == 8


# -- 8: a reversal before its payment ---------------------------------------------------

def test_a_reversal_before_its_payment_is_kept_and_reverses_it_on_arrival(pmc, base, rev_server):
    db = rev_server.database
    customer, operation, reversed_at = base(unique("RV")), unique("OP"), now_ba()
    early = reverse(pmc, customer, operation, reversed_at=reversed_at)
    assert (early.codigoRespuesta, early.descripcion) == (8, "Pago inexistente")
    assert early.idAnulacion
    assert status(pmc, operation).codigoRespuesta == 8  # no payment was made up
    assert [tuple(row)[:3] for row in reversal_rows(db, operation)] == [("pending", 8, None)]

    paid = pay(pmc, customer, operation)
    assert paid.codigoRespuesta == 0  # the notice's own answer: it was received
    state = status(pmc, operation)
    assert (state.estado, state.codigoRespuestaAviso, state.idRecibo) == \
        ("ANULADO", 0, paid.idRecibo)
    assert owed(pmc, customer) == ["F-1"]  # never paid
    assert [tuple(row) for row in reversal_rows(db, operation)] == \
        [("applied", 8, None, early.idAnulacion)]
    # the reversal, replayed, gets its first answer
    again = reverse(pmc, customer, operation, reversed_at=reversed_at)
    assert (again.codigoRespuesta, again.idAnulacion) == (8, early.idAnulacion)


def test_an_early_reversal_that_does_not_fit_its_payment_is_refused_when_it_comes(
        pmc, base, rev_server):
    db = rev_server.database
    customer, operation = base(unique("RV")), unique("OP")
    assert reverse(pmc, customer, operation, amount="99.00").codigoRespuesta == 8
    assert pay(pmc, customer, operation).codigoRespuesta == 0
    assert status(pmc, operation).estado == "APLICADO" and owed(pmc, customer) == []
    assert [tuple(row)[:3] for row in reversal_rows(db, operation)] == [("refused", 8, 10)]
    assert forward(db, operation, "reversal") is None


# -- the race, both orders, on 3 workers -------------------------------------------------

def payment_fields(customer, operation):
    return [("idEmpresa", "1234"), ("idOperacion", operation), ("idCliente", customer),
            ("idFactura", "F-1"), ("importe", "100.00"), ("moneda", "ARS"),
            ("fechaPago", now_ba())]


def reversal_fields(customer, operation):
    return [("idEmpresa", "1234"), ("idOperacion", operation), ("idCliente", customer),
            ("idFactura", "F-1"), ("importe", "100.00"), ("moneda", "ARS"),
            ("fechaAnulacion", now_ba())]


def test_payment_and_reversal_racing_end_reversed_whichever_wins(raw, base, rev_server, erp):
    """Each pair's two messages leave at once (a barrier), the reversal held back by 0 to
    23 ms: the payment's way (an ERP lookup, then its transaction) is that much longer,
    so some pairs overlap their transactions exactly, whichever order the workers
    finish in."""
    db = rev_server.database
    pairs = [(base(unique("RACE")), unique("OP")) for _ in range(24)]
    start = threading.Barrier(2 * len(pairs))

    def send(operation_name, fields, delay):
        start.wait()
        time.sleep(delay)
        return raw.call(operation_name, fields)

    with ThreadPoolExecutor(2 * len(pairs)) as pool:
        futures = [(pool.submit(send, "InformarPago", payment_fields(customer, operation), 0),
                    pool.submit(send, "AnularPago", reversal_fields(customer, operation),
                                n / 1000))
                   for n, (customer, operation) in enumerate(pairs)]
        answers = [[future.result() for future in pair] for pair in futures]

    orders = set()
    for (customer, operation), replies in zip(pairs, answers):
        by_name = {reply.entry.tag.split("}")[1]: reply for reply in replies}
        assert by_name["InformarPagoResponse"].field("codigoRespuesta") == "0"
        reversal_code = by_name["AnularPagoResponse"].field("codigoRespuesta")
        assert reversal_code in ("0", "8")
        orders.add(reversal_code)
        assert payment_row(db, operation)[0] == "reversed"
        assert [tuple(row)[:3] for row in reversal_rows(db, operation)] == \
            [("applied", int(reversal_code), None)]
        assert db.count("invoices", customer_id=customer, status="open") == 1
    print(f"reversal answers seen in the race: {sorted(orders)}")
    # the ERP hears of each payment, then of its reversal, once each
    wait_until(lambda: all(delivered(db, op, "reversal") for _, op in pairs), timeout=60,
               what="every reversal delivered")
    state = erp.state()
    for _, operation in pairs:
        assert state["payments"][operation] == {"received": 1, "applied": 1}
        assert state["reversals"][operation] == {"received": 1, "applied": 1, "refused": 0}


def test_concurrent_identical_reversals_store_one_and_answer_alike(raw, base, rev_server):
    customer, operation = base(unique("RV")), unique("OP")
    assert raw.call("InformarPago", payment_fields(customer, operation)) \
        .field("codigoRespuesta") == "0"
    fields = reversal_fields(customer, operation)
    start = threading.Barrier(8)

    def send():
        start.wait()
        reply = raw.call("AnularPago", fields)
        return reply.field("codigoRespuesta"), reply.field("idAnulacion")

    with ThreadPoolExecutor(8) as pool:
        answers = {future.result() for future in [pool.submit(send) for _ in range(8)]}
    assert len(answers) == 1 and next(iter(answers))[0] == "0"
    assert len(reversal_rows(rev_server.database, operation)) == 1


# -- the ERP: in order, once, across a kill -9; a refused reversal is listed -------------

def test_the_erp_gets_payment_then_reversal_once_and_unpays_its_item(
        pmc, base, erp, rev_server):
    # in the base too: with the ERP down, the payment is judged (and applied) there
    base("ERV1", amount="40.00", invoice_id="ERF-1")
    operation = unique("OP")
    erp.stop()
    assert pay(pmc, "ERV1", operation, amount="40.00", invoice_id="ERF-1").codigoRespuesta == 0
    assert reverse(pmc, "ERV1", operation, amount="40.00", invoice_id="ERF-1") \
        .codigoRespuesta == 0
    db = rev_server.database
    wait_until(lambda: forward(db, operation, "payment")[1] > 0, what="a failed attempt")
    assert forward(db, operation, "reversal")[1] == 0  # not tried before its payment
    erp.start()
    wait_until(lambda: delivered(db, operation, "reversal"), what="the reversal delivered")
    state = erp.state()
    assert state["payments"][operation] == {"received": 1, "applied": 1}
    assert state["reversals"][operation] == {"received": 1, "applied": 1, "refused": 0}
    assert ["ERV1", "ERF-1"] not in state["paid"]
    assert owed(pmc, "ERV1") == ["ERF-1"]


def test_payment_and_reversal_reach_the_erp_in_order_once_across_a_kill_9(
        database_url, erp, tmp_path):
    if database_url.startswith("sqlite"):
        database_url = f"sqlite:///{tmp_path / 'killed.sqlite3'}"
    adapter = start_server(database_url, tmp_path, **erp_env(erp))
    client = zeep.Client(adapter.soap_url + "?wsdl")
    storage = Storage(make_engine(database_url))
    add_invoice(storage, "ERV2", amount="40.00", invoice_id="ERF-2")
    storage.engine.dispose()
    operation = unique("OP")
    erp.stop()
    assert pay(client, "ERV2", operation, amount="40.00", invoice_id="ERF-2") \
        .codigoRespuesta == 0
    assert reverse(client, "ERV2", operation, amount="40.00", invoice_id="ERF-2") \
        .codigoRespuesta == 0
    subprocess.run(["pkill", "-KILL", "-P", str(adapter.process.pid)], check=False)
    adapter.process.kill()
    adapter.process.wait(timeout=30)
    assert forward(adapter.database, operation, "payment")[0] == "pending"
    assert forward(adapter.database, operation, "reversal")[0] == "pending"

    erp.start()
    restarted = start_server(database_url, tmp_path, **erp_env(erp))
    try:
        wait_until(lambda: delivered(restarted.database, operation, "reversal"),
                   what="delivery after the restart")
        state = erp.state()
        assert state["payments"][operation] == {"received": 1, "applied": 1}
        assert state["reversals"][operation] == {"received": 1, "applied": 1, "refused": 0}
    finally:
        stop_server(restarted)


def test_a_reversal_the_erp_refuses_is_rejected_and_listed(own_database, erp, tmp_path):
    """A payment stored while no ERP was configured never reached it; its reversal, sent
    once an ERP is, is refused there for good: listed, not retried."""
    customer, operation = unique("RV"), unique("OP")
    plain = start_server(own_database, tmp_path)
    try:
        client = zeep.Client(plain.soap_url + "?wsdl")
        assert pay(client, customer, operation, amount="5.00").codigoRespuesta == 3
    finally:
        stop_server(plain)
    adapter = start_server(own_database, tmp_path, **erp_env(erp))
    try:
        client = zeep.Client(adapter.soap_url + "?wsdl")
        assert reverse(client, customer, operation, amount="5.00").codigoRespuesta == 0
        wait_until(lambda: forward(adapter.database, operation, "reversal")[0] == "rejected",
                   what="the reversal rejected")
        assert "Pago inexistente" in forward(adapter.database, operation, "reversal")[2]
        listing = subprocess.run(
            [CLI, "forwards", "--status", "rejected", "--json"], capture_output=True,
            text=True, check=True,
            env={**os.environ, "PMC_ADAPTER_DATABASE_URL": own_database})
        rows = [row for row in json.loads(listing.stdout) if row["operation_id"] == operation]
        assert [(row["kind"], row["status"]) for row in rows] == [("reversal", "rejected")]
        assert erp.state()["reversals"][operation]["refused"] == 1
    finally:
        stop_server(adapter)


# -- the lock that orders them, made to matter -------------------------------------------

@pytest.mark.parametrize("first", ["payment", "reversal"])
def test_whichever_comes_second_waits_for_the_first_and_then_sees_it(engine, first):
    """The first transaction is held open, past its lookups (the use case reads the clock
    there, and this clock waits), while the second one starts: the second must wait for
    the first to end, then see it; the payment ends reversed either way. (Over HTTP the
    overlap is a matter of microseconds; here it is certain.)"""
    storage = Storage(engine)
    customer, operation = unique("LOCK"), unique("OP")
    add_invoice(storage, customer)
    inside, release = threading.Event(), threading.Event()

    def clock():
        if threading.current_thread().name == first:
            inside.set()
            assert release.wait(30)
        return datetime.now(timezone.utc)

    billing = BillingService(storage, clock=clock)
    now = datetime.now(timezone.utc)
    notice = PaymentNotice("1234", operation, customer, "F-1", Decimal("100.00"), Currency.ARS,
                           now)
    reversal = ReversalNotice("1234", operation, customer, "F-1", Decimal("100.00"),
                              Currency.ARS, now)
    answers = {}
    calls = {"payment": lambda: billing.record_payment(notice),
             "reversal": lambda: billing.reverse_payment(reversal)}
    threads = {name: threading.Thread(target=lambda name=name: answers.update(
        {name: calls[name]()}), name=name) for name in calls}
    second = "reversal" if first == "payment" else "payment"
    try:
        threads[first].start()
        assert inside.wait(30)
        threads[second].start()
        threads[second].join(1.0)
        assert threads[second].is_alive(), f"the {second} did not wait for the {first}"
    finally:
        release.set()
        for thread in threads.values():
            thread.join(30)
    assert answers["payment"].outcome is Outcome.OK
    assert answers["reversal"].outcome is (Outcome.OK if first == "payment"
                                           else Outcome.PAYMENT_UNKNOWN)
    assert billing.payment_status("1234", operation).state is PaymentState.REVERSED
    with storage.unit_of_work(read_only=True) as uow:
        assert uow.invoices.get("1234", customer, "F-1").paid is False
        assert uow.reversals.get("1234", operation).state is ReversalState.APPLIED
