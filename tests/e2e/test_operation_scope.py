"""PMC numbers operations per biller: one idOperacion for two billers is two payments.

Both billers this server serves (1234 and 5678) get a notice with the same
idOperacion; each is stored, answered and replayed as its own, and no answer
for one biller ever carries the other's idRecibo.
"""
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from adapter.domain.model import Currency, DueDate, Invoice, Origin
from adapter.storage.orm import InvoiceRow, PaymentRow
from support.data import today, unique
from support.servers import SERVED_BILLERS
from support.soap import envelope

A, B = SERVED_BILLERS


@pytest.fixture
def customer(billing_base):
    """One client ID with an open invoice F-1 (100.00 until today) at each biller."""
    customer = unique("C")
    for biller in (A, B):
        billing_base(Invoice(biller, customer, "F-1", Currency.ARS,
                             (DueDate(today(), Decimal("100.00")),
                              DueDate(today() + timedelta(10), Decimal("110.00"))),
                             Origin.BILLING_BASE))
    return customer


def day_start() -> str:
    """Today's first instant in Buenos Aires: never ahead of the server's clock."""
    return f"{today().isoformat()}T00:00:00-03:00"


def pay(client, biller, customer, operation, amount="100.00", **extra):
    return client.service.InformarPago(
        idEmpresa=biller, idOperacion=operation, idCliente=customer, idFactura="F-1",
        importe=amount, moneda="ARS", fechaPago=day_start(), **extra)


def stored(db, operation):
    return db.rows(select(PaymentRow.biller_id, PaymentRow.status, PaymentRow.response_code,
                          PaymentRow.receipt_id, InvoiceRow.biller_id)
                   .outerjoin(InvoiceRow, InvoiceRow.pk == PaymentRow.applied_invoice_pk)
                   .where(PaymentRow.operation_id == operation)
                   .order_by(PaymentRow.biller_id))


def test_one_operation_id_for_two_billers_is_two_payments(client, db, customer):
    operation = unique("OP")
    first_a = pay(client, A, customer, operation)
    first_b = pay(client, B, customer, operation)
    assert (first_a.codigoRespuesta, first_b.codigoRespuesta) == (0, 0)
    assert first_a.idRecibo != first_b.idRecibo
    # each applied to its own biller's invoice
    assert stored(db, operation) == [(A, "applied", 0, first_a.idRecibo, A),
                                     (B, "applied", 0, first_b.idRecibo, B)]
    for biller in (A, B):
        debt = client.service.ConsultarDeuda(idEmpresa=biller, idCliente=customer)
        assert debt.codigoRespuesta == 2, biller


def test_each_biller_s_replay_gets_its_own_first_answer(client, db, customer):
    operation = unique("OP")
    first_a = pay(client, A, customer, operation, canal="ATM")
    first_b = pay(client, B, customer, operation, amount="99.00")  # observed: wrong amount
    assert (first_a.codigoRespuesta, first_b.codigoRespuesta) == (0, 6)
    for _ in range(2):
        replay_b = pay(client, B, customer, operation, amount="99.00")
        replay_a = pay(client, A, customer, operation, canal="ATM")
        assert (replay_a.codigoRespuesta, replay_a.descripcion, replay_a.idRecibo) == \
            (first_a.codigoRespuesta, first_a.descripcion, first_a.idRecibo)
        assert (replay_b.codigoRespuesta, replay_b.descripcion, replay_b.idRecibo) == \
            (first_b.codigoRespuesta, first_b.descripcion, first_b.idRecibo)
    assert len(stored(db, operation)) == 2


def test_a_conflict_answers_with_the_same_biller_s_receipt_only(client, db, customer):
    operation = unique("OP")
    first_a = pay(client, A, customer, operation)
    first_b = pay(client, B, customer, operation)
    assert (first_a.codigoRespuesta, first_b.codigoRespuesta) == (0, 0)
    assert first_a.idRecibo != first_b.idRecibo
    before = stored(db, operation)
    conflict_b = pay(client, B, customer, operation, amount="110.00")
    conflict_a = pay(client, A, customer, operation, canal="OTHER")
    assert (conflict_b.codigoRespuesta, conflict_b.idRecibo) == (7, first_b.idRecibo)
    assert (conflict_a.codigoRespuesta, conflict_a.idRecibo) == (7, first_a.idRecibo)
    assert stored(db, operation) == before


def test_concurrent_notices_of_both_billers_store_one_payment_each(soap, db, customer):
    operation = unique("OP")
    requests = {biller: envelope("InformarPago", [
        ("idEmpresa", biller), ("idOperacion", operation), ("idCliente", customer),
        ("idFactura", "F-1"), ("importe", "100.00"), ("moneda", "ARS"),
        ("fechaPago", day_start())]) for biller in (A, B)}
    senders = [A, B] * 6
    barrier = threading.Barrier(len(senders))

    def send(biller):
        barrier.wait()
        reply = soap.post(requests[biller], soap_action="InformarPago")
        return biller, reply.field("codigoRespuesta"), reply.field("idRecibo")

    with ThreadPoolExecutor(len(senders)) as pool:
        replies = list(pool.map(send, senders))
    answers = {biller: {(code, receipt) for who, code, receipt in replies if who == biller}
               for biller in (A, B)}
    assert len(answers[A]) == len(answers[B]) == 1, answers
    (code_a, receipt_a), (code_b, receipt_b) = answers[A].pop(), answers[B].pop()
    assert (code_a, code_b) == ("0", "0") and receipt_a != receipt_b
    assert stored(db, operation) == [(A, "applied", 0, receipt_a, A),
                                     (B, "applied", 0, receipt_b, B)]
