"""A notice dated after the server's clock, beyond the allowed skew, is observed, not applied.

The money moved, so the notice is stored (a fact is never dropped), but a payment
cannot have happened later than now: it pays nothing, is answered 11, and the
invoice stays payable. The server runs with the default skew (300 s).
"""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapter.domain.calendar import local_day
from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.orm import PaymentRow
from support.data import today, unique

FUTURE = (11, "Fecha de pago posterior a la fecha actual")


@pytest.fixture
def open_invoice(billing_base) -> Invoice:
    """A fresh client with one open invoice: 100.00 until today, 110.00 for ten days."""
    day = today()
    return billing_base(Invoice("1234", unique("C"), "F-1", Currency.ARS,
                                (DueDate(day, Decimal("100.00")),
                                 DueDate(day + timedelta(10), Decimal("110.00"))),
                                Origin.BILLING_BASE))


def ahead(delta: timedelta) -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0) + delta


def pay(client, invoice: Invoice, paid_at: datetime, operation: str | None = None):
    """Pays exactly what ``invoice`` costs on the Buenos Aires day of ``paid_at``: were
    that instant not in the future, this notice would pay it."""
    return client.service.InformarPago(
        idEmpresa="1234", idOperacion=operation or unique("OP"),
        idCliente=invoice.customer_id, idFactura=invoice.invoice_id,
        importe=invoice.amount_due_on(local_day(paid_at)), moneda="ARS",
        fechaPago=paid_at.isoformat())


def payments(db, invoice: Invoice):
    return db.rows(select(PaymentRow.status, PaymentRow.response_code, PaymentRow.receipt_id,
                          PaymentRow.applied_invoice_pk, PaymentRow.paid_at)
                   .where(PaymentRow.customer_id == invoice.customer_id)
                   .order_by(PaymentRow.pk))


def invoice_status(db, invoice: Invoice) -> str:
    return db.rows("SELECT status FROM invoices WHERE customer_id = :c",
                   c=invoice.customer_id)[0][0]


def test_a_notice_an_hour_ahead_is_stored_observed_and_answered_11(client, db, open_invoice):
    paid_at, operation = ahead(timedelta(hours=1)), unique("OP")
    answer = pay(client, open_invoice, paid_at, operation)
    assert (answer.codigoRespuesta, answer.descripcion) == FUTURE and answer.idRecibo
    assert payments(db, open_invoice) == [("observed", 11, answer.idRecibo, None, paid_at)]
    assert invoice_status(db, open_invoice) == "open"
    # a replay gets the first answer, and stores nothing more
    replay = pay(client, open_invoice, paid_at, operation)
    assert (replay.codigoRespuesta, replay.idRecibo) == (11, answer.idRecibo)
    assert len(payments(db, open_invoice)) == 1
    # PMC still finds the invoice, at today's price
    debt = client.service.ConsultarDeuda(idEmpresa="1234", idCliente=open_invoice.customer_id)
    assert debt.codigoRespuesta == 0
    assert [(f.idFactura, f.importeAPagar) for f in debt.facturas.factura] == \
        [("F-1", open_invoice.amount_due_on(today()))]


def test_within_the_skew_a_notice_pays_the_invoice_a_future_one_left_payable(
        client, db, open_invoice):
    future = pay(client, open_invoice, ahead(timedelta(hours=1)))
    assert future.codigoRespuesta == 11
    # one minute ahead: another clock a little fast, well within the 300 s allowed
    paid_at = ahead(timedelta(minutes=1))
    applied = pay(client, open_invoice, paid_at)
    assert (applied.codigoRespuesta, applied.descripcion) == (0, "OK")
    (observed, paid) = payments(db, open_invoice)
    assert observed[:2] == ("observed", 11)
    assert paid[:2] == ("applied", 0) and paid[3] is not None and paid[4] == paid_at
    assert invoice_status(db, open_invoice) == "paid"
