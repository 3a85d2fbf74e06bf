"""The database itself refuses what must never happen, on SQLite and PostgreSQL."""
import time
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome, PaymentNotice)
from adapter.service.billing import BillingService
import adapter.storage.db as db
from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.orm import InvoiceRow, PaymentRow
from adapter.storage.unit_of_work import Storage
from support.data import unique

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)


def invoice_row(**overrides) -> InvoiceRow:
    values = dict(biller_id="1234", customer_id=unique("C"), invoice_id="F1", currency="ARS",
                  origin="BASE", status="open", due_date_1=date(2026, 12, 1),
                  amount_1=Decimal("10.00"), created_at=NOW, updated_at=NOW)
    return InvoiceRow(**{**values, **overrides})


def payment_row(**overrides) -> PaymentRow:
    values = dict(operation_id=unique("OP"), receipt_id=unique("R"), biller_id="1234",
                  customer_id="C", invoice_id="F1", amount=Decimal("10.00"), currency="ARS",
                  paid_at=NOW, status="observed", response_code=3, received_at=NOW)
    return PaymentRow(**{**values, **overrides})


def refused(engine, *rows) -> bool:
    with Session(engine, expire_on_commit=False) as session:
        session.add_all(rows)
        try:
            session.commit()
        except IntegrityError:
            return True
    return False


def test_an_operation_id_is_stored_once(engine):
    operation = unique("OP")
    assert not refused(engine, payment_row(operation_id=operation))
    assert refused(engine, payment_row(operation_id=operation))


def test_an_operation_id_is_stored_once_per_biller(engine):
    # PMC numbers operations per biller: the same ID for another biller is another payment
    operation = unique("OP")
    assert not refused(engine, payment_row(operation_id=operation, biller_id="1234"))
    assert not refused(engine, payment_row(operation_id=operation, biller_id="5678"))
    assert refused(engine, payment_row(operation_id=operation, biller_id="5678"))


def test_a_future_dated_payment_is_stored_observed_with_code_11(engine):
    assert not refused(engine, payment_row(status="observed", response_code=11))
    invoice = invoice_row()
    assert not refused(engine, invoice)
    assert refused(engine, payment_row(status="applied", response_code=11,
                                       applied_invoice_pk=invoice.pk))
    for reserved in (8, 9, 10, 12):  # 8-10: reversals, not yet
        assert refused(engine, payment_row(response_code=reserved)), reserved


def test_an_invoice_takes_one_applied_payment(engine):
    invoice = invoice_row()
    assert not refused(engine, invoice)
    applied = dict(status="applied", response_code=0, applied_invoice_pk=invoice.pk)
    assert not refused(engine, payment_row(**applied))
    assert refused(engine, payment_row(**applied))


@pytest.mark.parametrize("row", [
    dict(status="applied", response_code=0),  # applied to nothing
    dict(status="observed", response_code=0),  # observed with an OK answer
    dict(response_code=7),  # a conflict answer is never stored
    dict(amount=Decimal("-0.01")),
    dict(currency="EUR"),
])
def test_payment_rows_that_make_no_sense_are_refused(engine, row):
    assert refused(engine, payment_row(**row))


@pytest.mark.parametrize("row", [
    dict(due_date_2=date(2026, 12, 1), amount_2=Decimal("1")),  # not after the first
    dict(due_date_2=date(2026, 12, 5)),  # date without amount
    dict(due_date_3=date(2026, 12, 9), amount_3=Decimal("1")),  # third without second
    dict(amount_1=Decimal("-1")),
    dict(status="gone"), dict(origin="FAX"),
])
def test_invoice_rows_that_make_no_sense_are_refused(engine, row):
    assert refused(engine, invoice_row(**row))


def test_same_invoice_twice_for_a_client_is_refused(engine):
    customer = unique("C")
    assert not refused(engine, invoice_row(customer_id=customer))
    assert refused(engine, invoice_row(customer_id=customer))


def test_money_and_time_round_trip_exactly(engine):
    operation = unique("OP")
    paid_at = datetime(2026, 11, 26, 22, 30, 15, tzinfo=timezone(timedelta(hours=-3)))
    refused(engine, payment_row(operation_id=operation, amount=Decimal("9876543210123.45"),
                                paid_at=paid_at))
    with Session(engine) as session:
        row = session.scalars(select(PaymentRow).where(PaymentRow.operation_id == operation)).one()
        assert row.amount == Decimal("9876543210123.45")
        assert row.paid_at == paid_at and row.paid_at.tzinfo is not None


@pytest.mark.postgresql
def test_a_notice_stored_by_another_worker_mid_transaction_wins(postgres_server_url):
    """Two workers receive the same notice; the other one commits between our read and our
    write. The unique key refuses our row, and we answer with the other worker's answer.
    (PostgreSQL only: SQLite serializes writers with BEGIN IMMEDIATE, so this interleaving
    cannot happen there.)"""
    engine = make_engine(postgres_server_url)
    upgrade_schema(engine)
    notice = PaymentNotice("1234", unique("OP"), unique("C"), "F1", Decimal("5.00"),
                           Currency.ARS, NOW)
    other_worker = Storage(make_engine(postgres_server_url))
    interfered = []

    def clock_that_lets_the_other_worker_in():
        # called after our transaction looked the operation up, before it writes
        if not interfered:
            interfered.append(True)
            with other_worker.unit_of_work() as uow:
                uow.payments.add(notice, Outcome.INVOICE_UNKNOWN, "OTHER-WORKER", None)
                uow.commit()
        return NOW

    answer = BillingService(Storage(engine), clock=clock_that_lets_the_other_worker_in) \
        .record_payment(notice)
    assert interfered
    assert (answer.outcome, answer.receipt_id) == (Outcome.INVOICE_UNKNOWN, "OTHER-WORKER")
    with Session(engine) as session:
        rows = session.scalars(select(PaymentRow.receipt_id)
                               .where(PaymentRow.operation_id == notice.operation_id)).all()
    assert rows == ["OTHER-WORKER"]
    other_worker.engine.dispose()
    engine.dispose()


def test_invoices_round_trip_through_the_repository(engine):
    storage = Storage(engine)
    invoice = Invoice("1234", unique("C"), "F1", Currency.USD,
                      (DueDate(date(2026, 12, 1), Decimal("1.5")),
                       DueDate(date(2026, 12, 15), Decimal("2"))),
                      Origin.CREATED_ONLINE, description="d", ticket_message="t",
                      screen_message="s")
    with storage.unit_of_work() as uow:
        uow.invoices.save(invoice)
        uow.commit()
    with storage.unit_of_work() as uow:
        assert uow.invoices.get("1234", invoice.customer_id, "F1") == invoice


@pytest.mark.postgresql
def test_a_pooled_connection_the_server_dropped_is_replaced_unnoticed(postgres_server_url,
                                                                      monkeypatch):
    """Connections in use are not pinged (a round trip per unit of work); one idle for
    a second is, and a dead one is replaced before the unit of work sees it."""
    engine = make_engine(postgres_server_url)
    upgrade_schema(engine)
    storage, pings = Storage(engine), []
    ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping",
                        lambda connection: pings.append(1) or ping(connection))
    monkeypatch.setattr(db, "IDLE_BEFORE_PING_S", 0.3)

    def read() -> list:
        with storage.unit_of_work(read_only=True) as uow:
            return uow.invoices.of_customer("1234", "nobody")

    for _ in range(20):
        assert read() == []
    assert pings == [], "a connection in use was pinged"
    with engine.connect() as connection:
        backend = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = create_engine(postgres_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        assert connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                                  {"pid": backend}).scalar_one()
    admin.dispose()
    time.sleep(0.5)
    assert read() == []  # the dead connection was pinged, found dead and replaced
    assert pings, "an idle connection was not pinged"
    engine.dispose()


def test_a_new_notice_looks_up_what_came_before_in_one_statement(engine):
    """A notice with no replay, no report twin and no early reversal (nearly all of them):
    one statement asks for the three, then the invoice is read; the reversal and the
    stored notice are read only when that statement says there is one."""
    from sqlalchemy import event

    from adapter.domain.model import ReversalNotice

    storage = Storage(engine)
    billing = BillingService(storage)
    customer = unique("C")
    with storage.unit_of_work() as uow:
        uow.invoices.save(Invoice("1234", customer, "F1", Currency.ARS,
                                  (DueDate(date.today() + timedelta(days=30),
                                           Decimal("10.00")),), Origin.BILLING_BASE))
        uow.commit()
    selects: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    now = datetime.now(timezone.utc)
    event.listen(engine, "before_cursor_execute", seen)
    try:
        operation = unique("OP")
        answer = billing.record_payment(PaymentNotice(
            "1234", operation, customer, "F1", Decimal("10.00"), Currency.ARS, now))
        fresh = list(selects)
        selects.clear()
        billing.record_payment(PaymentNotice(
            "1234", operation, customer, "F1", Decimal("10.00"), Currency.ARS, now))
        replayed = list(selects)
        selects.clear()
        late = unique("OP")
        billing.reverse_payment(ReversalNotice("1234", late, customer, "F1",
                                               Decimal("10.00"), Currency.ARS, now))
        selects.clear()
        billing.record_payment(PaymentNotice(
            "1234", late, customer, "F1", Decimal("10.00"), Currency.ARS, now))
        after_reversal = list(selects)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert answer.outcome is Outcome.OK
    locks = 1 if engine.dialect.name == "postgresql" else 0
    assert len(fresh) == locks + 2, fresh  # what came before, the invoice
    assert "reversals" in fresh[locks] and "report_lines" in fresh[locks]
    # a replay reads the stored notice; a notice whose reversal came first, the reversal
    assert len(replayed) == locks + 2, replayed
    assert len(after_reversal) == locks + 3, after_reversal
    assert any(s.lstrip().upper().startswith("SELECT") and "FROM reversals" in s
               for s in after_reversal[locks + 1:])
