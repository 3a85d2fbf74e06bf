"""Unit of work and repositories: the only code that speaks SQL.

Repositories hand out domain objects (:mod:`adapter.domain.model`), never rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome,
                                  PaymentNotice, utcnow)
from adapter.errors import StorageUnavailable
from adapter.storage.orm import ForwardRow, InvoiceRow, PaymentRow, QueryRow


class Conflict(Exception):
    """A unique or check constraint refused the transaction; retry it from the start."""


def _invoice_from_row(row: InvoiceRow) -> Invoice:
    pairs = [(row.due_date_1, row.amount_1), (row.due_date_2, row.amount_2),
             (row.due_date_3, row.amount_3)]
    return Invoice(
        biller_id=row.biller_id, customer_id=row.customer_id, invoice_id=row.invoice_id,
        currency=Currency(row.currency),
        due_dates=tuple(DueDate(on, amount) for on, amount in pairs if on is not None),
        origin=Origin(row.origin), description=row.description,
        ticket_message=row.ticket_message, screen_message=row.screen_message,
        paid=row.status == "paid")


def _write_invoice(row: InvoiceRow, invoice: Invoice) -> None:
    row.biller_id = invoice.biller_id
    row.customer_id = invoice.customer_id
    row.invoice_id = invoice.invoice_id
    row.currency = invoice.currency.value
    row.origin = invoice.origin.value
    row.description = invoice.description
    row.ticket_message = invoice.ticket_message
    row.screen_message = invoice.screen_message
    row.status = "paid" if invoice.paid else "open"
    padded = list(invoice.due_dates) + [None] * (3 - len(invoice.due_dates))
    for position, due in enumerate(padded, start=1):
        setattr(row, f"due_date_{position}", due.on if due else None)
        setattr(row, f"amount_{position}", due.amount if due else None)
    row.updated_at = utcnow()


def _notice_from_row(row: PaymentRow) -> PaymentNotice:
    return PaymentNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        paid_at=row.paid_at, channel=row.channel, query_id=row.query_id)


class Invoices:
    def __init__(self, session: Session):
        self._session = session

    def _row(self, biller_id: str, customer_id: str, invoice_id: str, *,
             lock: bool = False) -> InvoiceRow | None:
        stmt = select(InvoiceRow).where(
            InvoiceRow.biller_id == biller_id, InvoiceRow.customer_id == customer_id,
            InvoiceRow.invoice_id == invoice_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._session.scalars(stmt).one_or_none()

    def get(self, biller_id: str, customer_id: str, invoice_id: str, *,
            lock: bool = False) -> Invoice | None:
        """One invoice; ``lock`` holds it until commit (PostgreSQL: row lock)."""
        row = self._row(biller_id, customer_id, invoice_id, lock=lock)
        return None if row is None else _invoice_from_row(row)

    def of_customer(self, biller_id: str, customer_id: str) -> list[Invoice]:
        stmt = (select(InvoiceRow)
                .where(InvoiceRow.biller_id == biller_id, InvoiceRow.customer_id == customer_id)
                .order_by(InvoiceRow.pk))
        return [_invoice_from_row(row) for row in self._session.scalars(stmt)]

    def save(self, invoice: Invoice) -> int:
        """Insert the invoice, or overwrite the stored one with the same identity;
        returns its key."""
        row = self._row(invoice.biller_id, invoice.customer_id, invoice.invoice_id)
        if row is None:
            row = InvoiceRow(created_at=utcnow())
            self._session.add(row)
        _write_invoice(row, invoice)
        self._session.flush()
        return row.pk


class Payments:
    def __init__(self, session: Session):
        self._session = session

    def by_operation(self, biller_id: str,
                     operation_id: str) -> tuple[PaymentNotice, Outcome, str] | None:
        """The notice stored for this biller with this operation ID, its outcome and
        receipt. (PMC numbers operations per biller: another biller's notice with the
        same operation ID is another payment.)"""
        row = self._session.scalars(
            select(PaymentRow).where(PaymentRow.biller_id == biller_id,
                                     PaymentRow.operation_id == operation_id)).one_or_none()
        if row is None:
            return None
        return _notice_from_row(row), Outcome(row.response_code), row.receipt_id

    def add(self, notice: PaymentNotice, outcome: Outcome, receipt_id: str,
            applied_invoice_pk: int | None) -> int:
        """Store the notice (applied to that invoice, or observed); returns its key."""
        row = PaymentRow(
            operation_id=notice.operation_id, receipt_id=receipt_id,
            biller_id=notice.biller_id, customer_id=notice.customer_id,
            invoice_id=notice.invoice_id, amount=notice.amount,
            currency=notice.currency.value, paid_at=notice.paid_at,
            channel=notice.channel, query_id=notice.query_id,
            status="applied" if applied_invoice_pk is not None else "observed",
            response_code=int(outcome),
            applied_invoice_pk=applied_invoice_pk,
            received_at=utcnow())
        self._session.add(row)
        self._session.flush()
        return row.pk


class Queries:
    def __init__(self, session: Session):
        self._session = session

    def add(self, query_id: str, biller_id: str, customer_id: str, invoice_id: str | None,
            outcome: Outcome, invoice_count: int) -> None:
        self._session.add(QueryRow(
            query_id=query_id, biller_id=biller_id, customer_id=customer_id,
            invoice_id=invoice_id, response_code=int(outcome),
            invoice_count=invoice_count, asked_at=utcnow()))


@dataclass(frozen=True)
class ForwardTask:
    """A payment a forwarder has claimed and must deliver to the ERP."""

    forward_pk: int
    notice: PaymentNotice
    receipt_id: str
    attempts: int


@dataclass(frozen=True)
class ForwardState:
    operation_id: str
    biller_id: str
    status: str  # pending, delivered, rejected
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    erp_reference: str | None
    delivered_at: datetime | None
    claimed_by: str | None


class Forwards:
    """The outbox of payments for the ERP."""

    def __init__(self, session: Session):
        self._session = session

    def enqueue(self, payment_pk: int) -> None:
        now = utcnow()
        self._session.add(ForwardRow(payment_pk=payment_pk, status="pending", attempts=0,
                                     next_attempt_at=now, created_at=now))

    def claim_due(self, worker: str, now: datetime, lease_until: datetime,
                  limit: int) -> list[ForwardTask]:
        """Claim up to ``limit`` due forwards for ``worker``; each is claimed by one
        worker only (a conditional UPDATE), until ``lease_until``."""
        free = or_(ForwardRow.claimed_until.is_(None), ForwardRow.claimed_until < now)
        candidates = self._session.scalars(
            select(ForwardRow.pk)
            .where(ForwardRow.status == "pending", ForwardRow.next_attempt_at <= now, free)
            .order_by(ForwardRow.next_attempt_at, ForwardRow.pk).limit(limit)).all()
        claimed = []
        for pk in candidates:
            result = self._session.execute(
                update(ForwardRow)
                .where(ForwardRow.pk == pk, ForwardRow.status == "pending", free)
                .values(claimed_by=worker, claimed_until=lease_until))
            if result.rowcount == 1:
                claimed.append(pk)
        if not claimed:
            return []
        rows = self._session.execute(
            select(ForwardRow, PaymentRow).join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
            .where(ForwardRow.pk.in_(claimed)).order_by(ForwardRow.pk)).all()
        return [ForwardTask(forward.pk, _notice_from_row(payment), payment.receipt_id,
                            forward.attempts) for forward, payment in rows]

    def _finish(self, task: ForwardTask, worker: str, **values) -> bool:
        result = self._session.execute(
            update(ForwardRow)
            .where(ForwardRow.pk == task.forward_pk, ForwardRow.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None, attempts=ForwardRow.attempts + 1,
                    **values))
        return result.rowcount == 1

    def delivered(self, task: ForwardTask, worker: str, reference: str | None) -> bool:
        return self._finish(task, worker, status="delivered", erp_reference=reference,
                            delivered_at=utcnow(), last_error=None)

    def rejected(self, task: ForwardTask, worker: str, error: str) -> bool:
        return self._finish(task, worker, status="rejected", last_error=error[:500])

    def retry_later(self, task: ForwardTask, worker: str, error: str, at: datetime) -> bool:
        return self._finish(task, worker, next_attempt_at=at, last_error=error[:500])

    def listing(self, status: str | None = None, limit: int = 1000) -> list[ForwardState]:
        stmt = (select(ForwardRow, PaymentRow)
                .join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
                .order_by(ForwardRow.pk.desc()).limit(limit))
        if status is not None:
            stmt = stmt.where(ForwardRow.status == status)
        return [ForwardState(payment.operation_id, payment.biller_id, forward.status,
                             forward.attempts, forward.next_attempt_at, forward.last_error,
                             forward.erp_reference, forward.delivered_at, forward.claimed_by)
                for forward, payment in self._session.execute(stmt)]


class UnitOfWork:
    """``with uow: ...; uow.commit()`` — one transaction; rolled back unless committed."""

    def __init__(self, session_factory: sessionmaker):
        self._session_factory = session_factory
        self._session: Session | None = None

    def __enter__(self) -> UnitOfWork:
        self._session = self._session_factory()
        self.invoices = Invoices(self._session)
        self.payments = Payments(self._session)
        self.queries = Queries(self._session)
        self.forwards = Forwards(self._session)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            self._session.rollback()
        finally:
            self._session.close()
            self._session = None
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        if isinstance(exc, OperationalError):
            raise StorageUnavailable(f"database error: {exc.orig}") from exc
        return False

    def commit(self) -> None:
        self._session.commit()


class Storage:
    """What the service layer needs from the database: units of work."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._session_factory = sessionmaker(engine, expire_on_commit=False)

    def unit_of_work(self) -> UnitOfWork:
        return UnitOfWork(self._session_factory)
