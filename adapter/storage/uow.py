"""Unit of work and repositories: the only code that speaks SQL.

Repositories hand out domain objects (:mod:`adapter.domain.model`), never rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, bindparam, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome,
                                  PaymentNotice, PaymentState, PaymentStatus, utcnow)
from adapter.errors import StorageUnavailable
from adapter.storage.db import READ_ONLY
from adapter.storage.orm import ForwardRow, InvoiceRow, PaymentRow


# The statements of the hot paths (every debt query, every notice), built once: Core
# on the tables, not ORM objects. Key parameters are named k_* (not column names,
# which an UPDATE's SET clause reserves).
_INVOICES = InvoiceRow.__table__
_PAYMENTS = PaymentRow.__table__
_INVOICE_KEY = and_(_INVOICES.c.biller_id == bindparam("k_biller"),
                    _INVOICES.c.customer_id == bindparam("k_customer"),
                    _INVOICES.c.invoice_id == bindparam("k_invoice"))
_INVOICE = select(_INVOICES).where(_INVOICE_KEY)
_INVOICE_LOCKED = _INVOICE.with_for_update()
_INVOICES_OF_CUSTOMER = (select(_INVOICES)
                         .where(_INVOICES.c.biller_id == bindparam("k_biller"),
                                _INVOICES.c.customer_id == bindparam("k_customer"))
                         .order_by(_INVOICES.c.pk))
_PAY_INVOICE = (update(_INVOICES).where(_INVOICE_KEY, _INVOICES.c.status == "open")
                .values(status="paid", updated_at=bindparam("now"))
                .returning(_INVOICES.c.pk))
_PAYMENT_OF_OPERATION = select(_PAYMENTS).where(
    _PAYMENTS.c.biller_id == bindparam("k_biller"),
    _PAYMENTS.c.operation_id == bindparam("k_operation"))
_ADD_PAYMENT = insert(_PAYMENTS)
_ADD_FORWARD = insert(ForwardRow.__table__)


def _invoice_key(biller_id: str, customer_id: str, invoice_id: str) -> dict[str, str]:
    return {"k_biller": biller_id, "k_customer": customer_id, "k_invoice": invoice_id}


class Conflict(Exception):
    """A unique or check constraint refused the transaction; retry it from the start."""


def _invoice_from_row(row) -> Invoice:
    """The invoice of an InvoiceRow, or of a row of its table (same names)."""
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


def _notice_from_row(row) -> PaymentNotice:
    """The notice of a PaymentRow, or of a row of its table (same names)."""
    return PaymentNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        paid_at=row.paid_at, channel=row.channel, query_id=row.query_id)


class _Transaction:
    """A unit of work's connection and transaction: Core statements run on it
    directly (the hot paths), and an ORM session joins it only when a repository
    needs one (creating or replacing an invoice, the outbox)."""

    def __init__(self, connection: Connection):
        self._connection = connection
        self._session: Session | None = None

    def execute(self, statement, parameters: dict | list | None = None):
        return self._connection.execute(statement, parameters)

    @property
    def session(self) -> Session:
        if self._session is None:
            if not self._connection.in_transaction():
                self._connection.begin()
            # joins the connection's transaction, which the unit of work ends
            self._session = Session(bind=self._connection, expire_on_commit=False,
                                    autoflush=True)
        return self._session

    def commit(self) -> None:
        if self._session is not None:
            self._session.flush()
        self._connection.commit()

    def close(self) -> None:
        try:
            if self._session is not None:
                self._session.close()
        finally:
            self._connection.close()  # an open transaction is rolled back


class Invoices:
    def __init__(self, transaction: _Transaction):
        self._tx = transaction

    def _row(self, biller_id: str, customer_id: str, invoice_id: str, *,
             lock: bool = False) -> InvoiceRow | None:
        stmt = select(InvoiceRow).where(
            InvoiceRow.biller_id == biller_id, InvoiceRow.customer_id == customer_id,
            InvoiceRow.invoice_id == invoice_id)
        if lock:
            stmt = stmt.with_for_update()
        return self._tx.session.scalars(stmt).one_or_none()

    def get(self, biller_id: str, customer_id: str, invoice_id: str, *,
            lock: bool = False) -> Invoice | None:
        """One invoice; ``lock`` holds it until commit (PostgreSQL: row lock)."""
        row = self._tx.execute(
            _INVOICE_LOCKED if lock else _INVOICE,
            _invoice_key(biller_id, customer_id, invoice_id)).first()
        return None if row is None else _invoice_from_row(row)

    def of_customer(self, biller_id: str, customer_id: str) -> list[Invoice]:
        rows = self._tx.execute(
            _INVOICES_OF_CUSTOMER, {"k_biller": biller_id, "k_customer": customer_id})
        return [_invoice_from_row(row) for row in rows]

    def mark_paid(self, biller_id: str, customer_id: str, invoice_id: str) -> int | None:
        """Mark the stored, open invoice paid; its key, or None if there is no such one."""
        return self._tx.execute(
            _PAY_INVOICE, {**_invoice_key(biller_id, customer_id, invoice_id),
                           "now": utcnow()}).scalar_one_or_none()

    def save(self, invoice: Invoice) -> int:
        """Insert the invoice, or overwrite the stored one with the same identity;
        returns its key."""
        row = self._row(invoice.biller_id, invoice.customer_id, invoice.invoice_id)
        if row is None:
            row = InvoiceRow(created_at=utcnow())
            self._tx.session.add(row)
        _write_invoice(row, invoice)
        self._tx.session.flush()
        return row.pk


class Payments:
    def __init__(self, transaction: _Transaction):
        self._tx = transaction

    def status(self, biller_id: str, operation_id: str) -> PaymentStatus:
        """What became of this biller's notice with this operation ID, if any. (PMC
        numbers operations per biller: another biller's notice with the same operation
        ID is another payment.)"""
        row = self._tx.execute(
            _PAYMENT_OF_OPERATION, {"k_biller": biller_id, "k_operation": operation_id}).first()
        if row is None:
            return PaymentStatus(Outcome.PAYMENT_UNKNOWN)
        return PaymentStatus(Outcome.OK, PaymentState(row.status), _notice_from_row(row),
                             Outcome(row.response_code), row.receipt_id)

    def add(self, notice: PaymentNotice, outcome: Outcome, receipt_id: str,
            applied_invoice_pk: int | None) -> int:
        """Store the notice (applied to that invoice, or observed); returns its key."""
        result = self._tx.execute(_ADD_PAYMENT, dict(
            operation_id=notice.operation_id, receipt_id=receipt_id,
            biller_id=notice.biller_id, customer_id=notice.customer_id,
            invoice_id=notice.invoice_id, amount=notice.amount,
            currency=notice.currency.value, paid_at=notice.paid_at,
            channel=notice.channel, query_id=notice.query_id,
            status="applied" if applied_invoice_pk is not None else "observed",
            response_code=int(outcome),
            applied_invoice_pk=applied_invoice_pk,
            received_at=utcnow()))
        return result.inserted_primary_key[0]


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

    def __init__(self, transaction: _Transaction):
        self._tx = transaction

    def enqueue(self, payment_pk: int) -> None:
        now = utcnow()
        self._tx.execute(_ADD_FORWARD, dict(
            payment_pk=payment_pk, status="pending", attempts=0, next_attempt_at=now,
            created_at=now))

    def claim_due(self, worker: str, now: datetime, lease_until: datetime,
                  limit: int) -> list[ForwardTask]:
        """Claim up to ``limit`` due forwards for ``worker``; each is claimed by one
        worker only (a conditional UPDATE), until ``lease_until``."""
        free = or_(ForwardRow.claimed_until.is_(None), ForwardRow.claimed_until < now)
        candidates = self._tx.session.scalars(
            select(ForwardRow.pk)
            .where(ForwardRow.status == "pending", ForwardRow.next_attempt_at <= now, free)
            .order_by(ForwardRow.next_attempt_at, ForwardRow.pk).limit(limit)).all()
        claimed = []
        for pk in candidates:
            result = self._tx.session.execute(
                update(ForwardRow)
                .where(ForwardRow.pk == pk, ForwardRow.status == "pending", free)
                .values(claimed_by=worker, claimed_until=lease_until))
            if result.rowcount == 1:
                claimed.append(pk)
        if not claimed:
            return []
        rows = self._tx.session.execute(
            select(ForwardRow, PaymentRow).join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
            .where(ForwardRow.pk.in_(claimed)).order_by(ForwardRow.pk)).all()
        return [ForwardTask(forward.pk, _notice_from_row(payment), payment.receipt_id,
                            forward.attempts) for forward, payment in rows]

    def _finish(self, task: ForwardTask, worker: str, **values) -> bool:
        result = self._tx.session.execute(
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
                for forward, payment in self._tx.session.execute(stmt)]


class UnitOfWork:
    """``with uow: ...; uow.commit()`` — one transaction; rolled back unless committed.

    A ``read_only`` one must not write: on SQLite it takes no write lock (in WAL
    mode it reads a snapshot while a writer commits); on PostgreSQL each of its
    statements runs on its own (autocommit: no BEGIN and ROLLBACK round trips),
    so that it sees the latest commit, not one snapshot for all of them.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._tx: _Transaction | None = None

    def __enter__(self) -> UnitOfWork:
        self._tx = _Transaction(self._engine.connect())
        self.invoices = Invoices(self._tx)
        self.payments = Payments(self._tx)
        self.forwards = Forwards(self._tx)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._tx.close()
        self._tx = None
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        if isinstance(exc, OperationalError):
            raise StorageUnavailable(f"database error: {exc.orig}") from exc
        return False

    def commit(self) -> None:
        self._tx.commit()


class Storage:
    """What the service layer needs from the database: units of work."""

    def __init__(self, engine: Engine):
        self.engine = engine
        reading = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            reading["isolation_level"] = "AUTOCOMMIT"
        self._reader = engine.execution_options(**reading)

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A transaction (see :class:`UnitOfWork` for ``read_only``)."""
        return UnitOfWork(self._reader if read_only else self.engine)
