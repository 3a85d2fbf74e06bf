"""InformarPago: every notice is a fact, stored once, answered the same every time."""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.orm import PaymentRow
from support.data import today, unique
from support.soap import envelope


@pytest.fixture
def open_invoice(billing_base):
    """A fresh client with one open invoice: 100.00 until today, 110.00 for ten days."""
    customer, day = unique("C"), today()
    billing_base(Invoice("1234", customer, "F-1", Currency.ARS,
                         (DueDate(day, Decimal("100.00")),
                          DueDate(day + timedelta(10), Decimal("110.00"))),
                         Origin.BILLING_BASE))
    return customer


@pytest.fixture
def first_due_date_passed(billing_base):
    """A fresh client whose invoice was 100.00 until yesterday, and is 110.00 for ten days."""
    customer, day = unique("C"), today()
    billing_base(Invoice("1234", customer, "F-1", Currency.ARS,
                         (DueDate(day - timedelta(1), Decimal("100.00")),
                          DueDate(day + timedelta(10), Decimal("110.00"))),
                         Origin.BILLING_BASE))
    return customer


def day_start(days_from_today=0) -> str:
    """That day's first instant in Buenos Aires. Today's and earlier ones are never ahead
    of the server's clock: a notice dated later is not applied (test_future_payment.py)."""
    day = today() + timedelta(days_from_today)
    return f"{day.isoformat()}T00:00:00-03:00"


def pay(client, customer, amount, *, invoice_id="F-1", operation=None, when=None,
        currency="ARS", **extra):
    return client.service.InformarPago(
        idEmpresa="1234", idOperacion=operation or unique("OP"), idCliente=customer,
        idFactura=invoice_id, importe=amount, moneda=currency,
        fechaPago=when or day_start(), **extra)


def payment_rows(db, customer):
    return db.rows(select(PaymentRow.operation_id, PaymentRow.status, PaymentRow.response_code,
                          PaymentRow.receipt_id, PaymentRow.amount, PaymentRow.applied_invoice_pk)
                   .where(PaymentRow.customer_id == customer).order_by(PaymentRow.pk))


def test_matching_payment_is_applied_and_the_invoice_is_paid(client, db, open_invoice):
    debt = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=open_invoice)
    answer = pay(client, open_invoice, "100.00", operation="OP-" + open_invoice,
                 canal="HOMEBANKING", idConsulta=debt.idConsulta)
    assert (answer.codigoRespuesta, answer.descripcion) == (0, "OK") and answer.idRecibo
    (row,) = payment_rows(db, open_invoice)
    assert row[:5] == ("OP-" + open_invoice, "applied", 0, answer.idRecibo, Decimal("100.00"))
    assert db.rows("SELECT channel, query_id FROM payments WHERE customer_id = :c",
                   c=open_invoice) == [("HOMEBANKING", debt.idConsulta)]
    assert db.rows("SELECT status FROM invoices WHERE customer_id = :c",
                   c=open_invoice) == [("paid",)]
    after = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=open_invoice)
    assert after.codigoRespuesta == 2


def test_amount_due_is_judged_at_the_payment_date_in_buenos_aires(client,
                                                                 first_due_date_passed):
    # 01:30 UTC today is 22:30 yesterday in Buenos Aires: yesterday's due date still applies
    day = today()
    late_last_night = datetime(day.year, day.month, day.day, 1, 30,
                               tzinfo=timezone.utc).isoformat()
    assert pay(client, first_due_date_passed, "100.00",
               when=late_last_night).codigoRespuesta == 0


def test_second_due_date_amount_after_the_first_passed(client, first_due_date_passed):
    assert pay(client, first_due_date_passed, "100.00").codigoRespuesta == 6
    assert pay(client, first_due_date_passed, "110.00").codigoRespuesta == 0


@pytest.mark.parametrize("case, code, description", [
    ("unknown invoice", 3, "Factura inexistente"),
    ("already paid", 4, "Factura ya pagada"),
    ("expired", 5, "Factura vencida"),
    ("wrong amount", 6, "El importe no coincide con el importe a pagar"),
    ("wrong currency", 6, "El importe no coincide con el importe a pagar"),
])
def test_notices_that_do_not_match_are_stored_as_observed(client, db, billing_base,
                                                          open_invoice, case, code,
                                                          description):
    if case == "already paid":
        assert pay(client, open_invoice, "100.00").codigoRespuesta == 0
    if case == "expired":  # its last due date was yesterday
        billing_base(Invoice("1234", open_invoice, "F-OLD", Currency.ARS,
                             (DueDate(today() - timedelta(1), Decimal("100.00")),),
                             Origin.BILLING_BASE))
    kwargs = {
        "unknown invoice": dict(amount="100.00", invoice_id="NOPE"),
        "already paid": dict(amount="100.00"),
        "expired": dict(amount="100.00", invoice_id="F-OLD"),
        "wrong amount": dict(amount="99.99"),
        "wrong currency": dict(amount="100.00", currency="USD"),
    }[case]
    operation = unique("OP")
    answer = pay(client, open_invoice, operation=operation, **kwargs)
    assert (answer.codigoRespuesta, answer.descripcion) == (code, description)
    assert answer.idRecibo
    stored = db.rows("SELECT status, response_code, receipt_id, applied_invoice_pk "
                     "FROM payments WHERE operation_id = :o", o=operation)
    assert stored == [("observed", code, answer.idRecibo, None)]
    expected = {"F-1": "paid" if case == "already paid" else "open"}
    if case == "expired":
        expected["F-OLD"] = "open"
    assert dict(db.rows("SELECT invoice_id, status FROM invoices WHERE customer_id = :c",
                        c=open_invoice)) == expected


def test_replayed_notice_gets_the_first_answer(client, db, open_invoice):
    operation = unique("OP")
    first = pay(client, open_invoice, "100.00", operation=operation, canal="ATM")
    # same instant spelled in UTC: still the same notice
    replay = pay(client, open_invoice, "100.0", operation=operation, canal="ATM",
                 when=(today().isoformat() + "T03:00:00Z"))
    assert (replay.codigoRespuesta, replay.idRecibo) == (first.codigoRespuesta, first.idRecibo) \
        == (0, first.idRecibo)
    assert len(payment_rows(db, open_invoice)) == 1


def test_replay_of_an_observed_notice_gets_the_same_observation(client, db, open_invoice):
    operation = unique("OP")
    first = pay(client, open_invoice, "1.00", operation=operation)
    replay = pay(client, open_invoice, "1.00", operation=operation)
    assert (first.codigoRespuesta, first.idRecibo) == (replay.codigoRespuesta, replay.idRecibo)
    assert first.codigoRespuesta == 6
    assert len(payment_rows(db, open_invoice)) == 1


@pytest.mark.parametrize("change", [dict(amount="110.00"), dict(when=day_start(-1)),
                                    dict(canal="OTHER"), dict(invoice_id="F-2")])
def test_known_operation_with_different_data_answers_7_and_changes_nothing(
        client, db, open_invoice, change):
    operation = unique("OP")
    first = pay(client, open_invoice, "100.00", operation=operation)
    before = payment_rows(db, open_invoice)
    different = pay(client, open_invoice, **{"amount": "100.00", **change},
                    operation=operation)
    assert different.codigoRespuesta == 7
    assert different.descripcion == "idOperacion ya recibido con otros datos"
    assert payment_rows(db, open_invoice) == before
    again = pay(client, open_invoice, "100.00", operation=operation)
    assert (again.codigoRespuesta, again.idRecibo) == (0, first.idRecibo)


def _simultaneously(count, send):
    barrier = threading.Barrier(count)

    def one(_):
        barrier.wait()
        return send()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_replays_on_several_workers_store_one_payment(soap, db, open_invoice):
    request = envelope("InformarPago", [
        ("idEmpresa", "1234"), ("idOperacion", unique("OP")), ("idCliente", open_invoice),
        ("idFactura", "F-1"), ("importe", "100.00"), ("moneda", "ARS"),
        ("fechaPago", day_start())])
    replies = _simultaneously(12, lambda: soap.post(request, soap_action="InformarPago"))
    answers = {(r.field("codigoRespuesta"), r.field("idRecibo")) for r in replies}
    assert len(answers) == 1 and answers.pop()[0] == "0"
    assert len(payment_rows(db, open_invoice)) == 1


def test_concurrent_different_payments_pay_an_invoice_once(soap, db, open_invoice):
    def send():
        return soap.call("InformarPago", [
            ("idEmpresa", "1234"), ("idOperacion", unique("OP")), ("idCliente", open_invoice),
            ("idFactura", "F-1"), ("importe", "100.00"), ("moneda", "ARS"),
            ("fechaPago", day_start())])

    codes = sorted(r.field("codigoRespuesta") for r in _simultaneously(8, send))
    assert codes == ["0"] + ["4"] * 7
    rows = payment_rows(db, open_invoice)
    assert [row[1] for row in rows].count("applied") == 1 and len(rows) == 8
