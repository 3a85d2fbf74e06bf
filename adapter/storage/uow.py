"""Unit of work and repositories: the only code that speaks SQL.

Repositories hand out domain objects (:mod:`adapter.domain.model`), never rows.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import (Connection, Engine, and_, bindparam, exists, func, insert,
                        select, update)
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, aliased

from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome, PaymentNotice,
                                  PaymentState, PaymentStatus, ReversalNotice, ReversalState,
                                  StoredReversal, business_day, utcnow)
from adapter.domain.billing_base import InvoiceKey
from adapter.domain.charges import Paid, Query
from adapter.domain.reconciliation import NotifiedPayment
from adapter import metrics
from adapter.errors import StorageUnavailable
from adapter.storage.db import READ_ONLY
from adapter.storage.orm import (DecisionRow, ForwardRow, InvoiceRow, PaymentRow,
                                 PmcDeliveryRow, QueryRow, ReportLineRow, ReversalRow)
from adapter.storage.console import ConsoleJournal
from adapter.storage.fac_files import FacFiles
from adapter.storage.outbox import OutboxQueue
from adapter.storage.reports import Reports


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
_ADD_PMC_DELIVERY = insert(PmcDeliveryRow.__table__)
_REVERSALS = ReversalRow.__table__
_REVERSAL_OF_OPERATION = select(_REVERSALS).where(
    _REVERSALS.c.biller_id == bindparam("k_biller"),
    _REVERSALS.c.operation_id == bindparam("k_operation"))
_ADD_REVERSAL = insert(_REVERSALS)
_QUERIES = QueryRow.__table__
_OPERATION_LOCK = select(func.pg_advisory_xact_lock(bindparam("k_lock")))
_COVERING = _PAYMENTS.alias("covering")
_LINES = ReportLineRow.__table__
# The payment recorded from a report line that a notice is the late notice of (same
# client, invoice and amount in pesos, paid the same day or the one before or after),
# if there is one no other notice covers yet.
_REPORTED_TWIN = (
    select(_PAYMENTS.c.pk)
    .join(_LINES, _LINES.c.pk == _PAYMENTS.c.report_line_pk)
    .where(bindparam("k_currency") == Currency.ARS.value,  # the report is in pesos
           _LINES.c.biller_id == bindparam("k_biller"),
           _LINES.c.paid_on.between(bindparam("k_first_day"), bindparam("k_last_day")),
           _LINES.c.customer_id == bindparam("k_customer"),
           _LINES.c.invoice_id == bindparam("k_invoice"),
           _PAYMENTS.c.amount == bindparam("k_amount"),
           ~exists().where(_COVERING.c.covered_by_pk == _PAYMENTS.c.pk))
    .order_by(_PAYMENTS.c.pk).limit(1))
# What a notice must know before it is stored, in one round trip: whether its operation
# was stored already (a replay), the report's payment it is the late notice of, and a
# reversal that came first and waits for it.
_PRECEDENTS = select(
    select(_PAYMENTS.c.pk).where(_PAYMENTS.c.biller_id == bindparam("k_biller"),
                                 _PAYMENTS.c.operation_id == bindparam("k_operation"))
    .scalar_subquery().label("stored"),
    _REPORTED_TWIN.scalar_subquery().label("twin"),
    select(_REVERSALS.c.pk).where(_REVERSALS.c.biller_id == bindparam("k_biller"),
                                  _REVERSALS.c.operation_id == bindparam("k_operation"),
                                  _REVERSALS.c.status == ReversalState.PENDING.value)
    .scalar_subquery().label("reversal"))
ONE_DAY = timedelta(days=1)


def _twin_parameters(notice: PaymentNotice) -> dict:
    day = business_day(notice.paid_at)
    return {"k_biller": notice.biller_id, "k_customer": notice.customer_id,
            "k_invoice": notice.invoice_id, "k_amount": notice.amount,
            "k_currency": notice.currency.value,
            "k_first_day": day - ONE_DAY if day > date.min else day,
            "k_last_day": day + ONE_DAY if day < date.max else day}


@dataclass(frozen=True)
class Precedents:
    """What is already stored about a notice's operation (:meth:`UnitOfWork.precedents`)."""

    stored: bool  # a notice with this operation ID (a replay, or a contradiction)
    twin_pk: int | None  # the report's payment this notice is the late notice of
    pending_reversal: bool  # a reversal that came first waits for this payment


def _lock_key(biller_id: str, operation_id: str) -> int:
    """A signed 64-bit number for (biller, operation): a PostgreSQL advisory lock key."""
    digest = hashlib.blake2b(f"{biller_id}:{operation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


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


def _invoice_values(invoice: Invoice, now: datetime) -> dict:
    """An invoice's columns (all but ``pk`` and ``created_at``)."""
    values = dict(biller_id=invoice.biller_id, customer_id=invoice.customer_id,
                  invoice_id=invoice.invoice_id, currency=invoice.currency.value,
                  origin=invoice.origin.value, description=invoice.description,
                  ticket_message=invoice.ticket_message,
                  screen_message=invoice.screen_message,
                  status="paid" if invoice.paid else "open", updated_at=now)
    padded = list(invoice.due_dates) + [None] * (3 - len(invoice.due_dates))
    for position, due in enumerate(padded, start=1):
        values[f"due_date_{position}"] = due.on if due else None
        values[f"amount_{position}"] = due.amount if due else None
    return values


def _write_invoice(row: InvoiceRow, invoice: Invoice) -> None:
    for column, value in _invoice_values(invoice, utcnow()).items():
        setattr(row, column, value)


_INVOICE_COLUMNS = tuple(column.name for column in _INVOICES.columns
                         if column.name not in ("pk", "created_at"))
_REPLACE_INVOICE = (update(_INVOICES).where(_INVOICE_KEY)
                    .values({column: bindparam(f"v_{column}") for column in _INVOICE_COLUMNS}))


def _notice_from_row(row) -> PaymentNotice:
    """The notice of a PaymentRow, or of a row of its table (same names)."""
    return PaymentNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        paid_at=row.paid_at, channel=row.channel, query_id=row.query_id,
        paid_at_stated=row.paid_at_stated)


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
    def dialect(self) -> str:
        return self._connection.dialect.name

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
        found = self.keyed(biller_id, customer_id, invoice_id, lock=lock)
        return None if found is None else found[1]

    def keyed(self, biller_id: str, customer_id: str, invoice_id: str, *,
              lock: bool = False) -> tuple[int, Invoice] | None:
        """One invoice with its key, or None; ``lock`` as for :meth:`get`."""
        row = self._tx.execute(
            _INVOICE_LOCKED if lock else _INVOICE,
            _invoice_key(biller_id, customer_id, invoice_id)).first()
        return None if row is None else (row.pk, _invoice_from_row(row))

    def of_customer(self, biller_id: str, customer_id: str) -> list[Invoice]:
        rows = self._tx.execute(
            _INVOICES_OF_CUSTOMER, {"k_biller": biller_id, "k_customer": customer_id})
        return [_invoice_from_row(row) for row in rows]

    def mark_paid(self, biller_id: str, customer_id: str, invoice_id: str) -> int | None:
        """Mark the stored, open invoice paid; its key, or None if there is no such one."""
        return self._tx.execute(
            _PAY_INVOICE, {**_invoice_key(biller_id, customer_id, invoice_id),
                           "now": utcnow()}).scalar_one_or_none()

    def of_keys(self, keys: list[InvoiceKey], *, lock: bool = False) -> dict[InvoiceKey, Invoice]:
        """The stored invoices of these (biller, customer, invoice) keys, one statement per
        biller; ``lock`` as for :meth:`get`. Looked up by biller and client (an index
        seek on SQLite, whose planner would scan the table for a row-value IN), the
        invoice checked after."""
        wanted = set(keys)
        found: dict[InvoiceKey, Invoice] = {}
        for biller_id in sorted({key[0] for key in wanted}):
            stmt = select(_INVOICES).where(
                _INVOICES.c.biller_id == biller_id,
                _INVOICES.c.customer_id.in_(sorted({key[1] for key in wanted
                                                    if key[0] == biller_id})))
            if lock:
                stmt = stmt.with_for_update()
            for row in self._tx.execute(stmt):
                key = (row.biller_id, row.customer_id, row.invoice_id)
                if key in wanted:
                    found[key] = _invoice_from_row(row)
        return found

    def open_keys(self, biller_id: str, origin: Origin) -> set[tuple[str, str]]:
        """(client, invoice) of the biller's open invoices from ``origin``."""
        return {(row.customer_id, row.invoice_id) for row in self._tx.execute(
            select(_INVOICES.c.customer_id, _INVOICES.c.invoice_id).where(
                _INVOICES.c.biller_id == biller_id, _INVOICES.c.origin == origin.value,
                _INVOICES.c.status == "open"))}

    def open_of_origin(self, biller_id: str, origin: Origin, after: int,
                       limit: int) -> list[tuple[int, Invoice]]:
        """The biller's open invoices from ``origin`` stored under keys above ``after``,
        ``limit`` of them in key order, with their keys (page by page: flat memory)."""
        rows = self._tx.execute(
            select(_INVOICES).where(_INVOICES.c.biller_id == biller_id,
                                    _INVOICES.c.origin == origin.value,
                                    _INVOICES.c.status == "open", _INVOICES.c.pk > after)
            .order_by(_INVOICES.c.pk).limit(limit))
        return [(row.pk, _invoice_from_row(row)) for row in rows]

    def write_many(self, created: list[Invoice], replaced: list[Invoice]) -> None:
        """Insert ``created`` and overwrite the stored invoices with the identities of
        ``replaced``, each list in one batch (``executemany``)."""
        now = utcnow()
        if created:
            self._tx.execute(insert(_INVOICES), [
                {**_invoice_values(invoice, now), "created_at": now} for invoice in created])
        if replaced:
            self._tx.execute(_REPLACE_INVOICE, [
                {**{f"v_{column}": value for column, value in
                    _invoice_values(invoice, now).items()},
                 **_invoice_key(invoice.biller_id, invoice.customer_id, invoice.invoice_id)}
                for invoice in replaced])

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
            applied_invoice_pk: int | None, *, reversed_: bool = False,
            report_line_pk: int | None = None, covered_by_pk: int | None = None) -> int:
        """Store the notice (applied to that invoice, observed, or -- a reversal came
        first -- reversed; or covered by the payment recorded from the report); a payment
        recorded from a report line names it. Returns its key."""
        status = ("reversed" if reversed_ else "covered" if covered_by_pk is not None else
                  "applied" if applied_invoice_pk is not None else "observed")
        result = self._tx.execute(_ADD_PAYMENT, dict(
            operation_id=notice.operation_id, receipt_id=receipt_id,
            biller_id=notice.biller_id, customer_id=notice.customer_id,
            invoice_id=notice.invoice_id, amount=notice.amount,
            currency=notice.currency.value, paid_at=notice.paid_at,
            channel=notice.channel, query_id=notice.query_id,
            paid_at_stated=notice.paid_at_stated, status=status,
            response_code=int(outcome),
            applied_invoice_pk=applied_invoice_pk,
            received_at=utcnow(),
            origin="notice" if report_line_pk is None else "report",
            report_line_pk=report_line_pk, covered_by_pk=covered_by_pk))
        return result.inserted_primary_key[0]

    def observed(self, biller_id: str | None = None) -> list[ObservedPayment]:
        """The payments waiting for a person: notices answered 3-6 or 11, and report
        lines that could not be applied; oldest first."""
        stmt = select(_PAYMENTS).where(_PAYMENTS.c.status == "observed") \
            .order_by(_PAYMENTS.c.received_at, _PAYMENTS.c.pk)
        if biller_id is not None:
            stmt = stmt.where(_PAYMENTS.c.biller_id == biller_id)
        return [ObservedPayment(row.pk, row.receipt_id, _notice_from_row(row),
                                Outcome(row.response_code), row.origin, row.received_at)
                for row in self._tx.execute(stmt)]

    def by_receipt(self, receipt_id: str, *, lock: bool = False):
        """The payment row with this receipt ID (idRecibo), or None."""
        stmt = select(_PAYMENTS).where(_PAYMENTS.c.receipt_id == receipt_id)
        return self._tx.execute(stmt.with_for_update() if lock else stmt).first()

    def decide(self, payment_pk: int, *, invoice_pk: int | None, operator: str, reason: str,
               at: datetime) -> None:
        """A person's decision on an observed payment: applied to ``invoice_pk`` (which
        becomes paid), or dismissed. The decision's unique key refuses a second one."""
        self._tx.execute(insert(DecisionRow.__table__).values(
            payment_pk=payment_pk, action="applied" if invoice_pk else "dismissed",
            invoice_pk=invoice_pk, operator=operator, reason=reason, decided_at=at))
        changed = self._tx.execute(
            update(_PAYMENTS).where(_PAYMENTS.c.pk == payment_pk,
                                    _PAYMENTS.c.status == "observed")
            .values(status="resolved" if invoice_pk else "dismissed",
                    applied_invoice_pk=invoice_pk)).rowcount
        if changed != 1:
            raise Conflict(f"payment {payment_pk} is no longer observed")
        if invoice_pk is not None:
            self._tx.execute(update(_INVOICES).where(_INVOICES.c.pk == invoice_pk)
                             .values(status="paid", updated_at=at))

    def decision(self, payment_pk: int):
        return self._tx.execute(select(DecisionRow.__table__).where(
            DecisionRow.__table__.c.payment_pk == payment_pk)).first()

    def for_charges(self, biller_id: str, start: datetime, end: datetime) -> list[Paid]:
        """The notices paid in [start, end) that stand (not reversed), as the query
        charges need them."""
        rows = self._tx.execute(select(
            _PAYMENTS.c.operation_id, _PAYMENTS.c.customer_id, _PAYMENTS.c.invoice_id,
            _PAYMENTS.c.paid_at, _PAYMENTS.c.query_id).where(
            _PAYMENTS.c.biller_id == biller_id, _PAYMENTS.c.origin == "notice",
            _PAYMENTS.c.status != "reversed",
            _PAYMENTS.c.paid_at >= start, _PAYMENTS.c.paid_at < end))
        return [Paid(*row) for row in rows]

    def received_between(self, start: datetime, end: datetime) -> list[tuple]:
        """(biller, received at, status, response code) of the notices received in
        [start, end): what a day at a glance counts."""
        return [tuple(row) for row in self._tx.execute(
            select(_PAYMENTS.c.biller_id, _PAYMENTS.c.received_at, _PAYMENTS.c.status,
                   _PAYMENTS.c.response_code)
            .where(_PAYMENTS.c.origin == "notice", _PAYMENTS.c.received_at >= start,
                   _PAYMENTS.c.received_at < end))]

    def history(self, biller_id: str | None = None, operation_id: str | None = None,
                customer_id: str | None = None, invoice_id: str | None = None,
                limit: int = 50) -> list:
        """The payment rows matching what is given (at least one), newest first."""
        stmt = select(_PAYMENTS).order_by(_PAYMENTS.c.received_at.desc()).limit(limit)
        for column, value in (("biller_id", biller_id), ("operation_id", operation_id),
                              ("customer_id", customer_id), ("invoice_id", invoice_id)):
            if value:
                stmt = stmt.where(_PAYMENTS.c[column] == value)
        return list(self._tx.execute(stmt))

    def notices_between(self, biller_id: str, start: datetime,
                        end: datetime) -> list[NotifiedPayment]:
        """The notices (not the payments recorded from the report) paid in [start, end)."""
        rows = self._tx.execute(select(_PAYMENTS).where(
            _PAYMENTS.c.biller_id == biller_id, _PAYMENTS.c.origin == "notice",
            _PAYMENTS.c.paid_at >= start, _PAYMENTS.c.paid_at < end))
        return [NotifiedPayment(row.operation_id, row.customer_id, row.invoice_id, row.amount,
                                Currency(row.currency), business_day(row.paid_at),
                                reversed=row.status == "reversed", channel=row.channel)
                for row in rows]

    def reverse(self, biller_id: str, operation_id: str) -> int:
        """Mark this biller's stored notice reversed, and open again the invoice it paid
        (if it paid one); returns the payment's key."""
        row = self._tx.execute(
            select(_PAYMENTS.c.pk, _PAYMENTS.c.applied_invoice_pk)
            .where(_PAYMENTS.c.biller_id == biller_id,
                   _PAYMENTS.c.operation_id == operation_id)).one()
        self._tx.execute(update(_PAYMENTS).where(_PAYMENTS.c.pk == row.pk)
                         .values(status="reversed", applied_invoice_pk=None))
        if row.applied_invoice_pk is not None:
            self._tx.execute(update(_INVOICES)
                             .where(_INVOICES.c.pk == row.applied_invoice_pk,
                                    _INVOICES.c.status == "paid")
                             .values(status="open", updated_at=utcnow()))
        return row.pk


def _reversal_from_row(row) -> ReversalNotice:
    return ReversalNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        reversed_at=row.reversed_at, reason=row.reason)


@dataclass(frozen=True)
class ObservedPayment:
    key: int
    receipt_id: str
    notice: PaymentNotice
    outcome: Outcome  # why it was not applied
    origin: str  # notice, report
    received_at: datetime


class Reversals:
    def __init__(self, transaction: _Transaction):
        self._tx = transaction

    def get(self, biller_id: str, operation_id: str) -> StoredReversal | None:
        """The reversal of this biller's payment with this operation ID, if one came."""
        row = self._tx.execute(
            _REVERSAL_OF_OPERATION, {"k_biller": biller_id, "k_operation": operation_id}).first()
        if row is None:
            return None
        return StoredReversal(
            _reversal_from_row(row), row.reversal_id, Outcome(row.response_code),
            ReversalState(row.status), row.received_at,
            None if row.refusal_code is None else Outcome(row.refusal_code))

    def add(self, reversal: ReversalNotice, reversal_id: str, outcome: Outcome,
            received_at: datetime, payment_pk: int | None) -> None:
        """Store a reversal: applied to that payment, or (none) pending."""
        self._tx.execute(_ADD_REVERSAL, dict(
            reversal_id=reversal_id, biller_id=reversal.biller_id,
            operation_id=reversal.operation_id, customer_id=reversal.customer_id,
            invoice_id=reversal.invoice_id, amount=reversal.amount,
            currency=reversal.currency.value, reversed_at=reversal.reversed_at,
            reason=reversal.reason,
            status="applied" if payment_pk is not None else "pending",
            response_code=int(outcome), refusal_code=None, payment_pk=payment_pk,
            received_at=received_at))

    def settle(self, biller_id: str, operation_id: str, *, payment_pk: int | None = None,
               refusal: Outcome | None = None) -> None:
        """A pending reversal whose payment arrived: applied to it, or refused."""
        values = (dict(status="applied", payment_pk=payment_pk) if refusal is None
                  else dict(status="refused", refusal_code=int(refusal)))
        self._tx.execute(update(_REVERSALS).where(
            _REVERSALS.c.biller_id == biller_id, _REVERSALS.c.operation_id == operation_id,
            _REVERSALS.c.status == "pending").values(**values))


@dataclass(frozen=True)
class ForwardTask:
    """A payment, or the reversal of one, that a forwarder has claimed and must deliver
    to the ERP."""

    forward_pk: int
    notice: PaymentNotice
    receipt_id: str
    attempts: int
    reversal: ReversalNotice | None = None
    reversal_id: str | None = None
    # a reversal's (or resolution's) payment was rejected by the ERP: nothing to act on
    payment_rejected: bool = False
    # a resolution: the invoice a person applied the (observed) payment to
    apply_to_invoice: str | None = None

    @property
    def pk(self) -> int:
        return self.forward_pk

    @property
    def biller_id(self) -> str:
        return self.notice.biller_id


@dataclass(frozen=True)
class ForwardState:
    operation_id: str
    biller_id: str
    kind: str  # payment, reversal
    status: str  # pending, delivered, rejected
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    erp_reference: str | None
    delivered_at: datetime | None
    claimed_by: str | None

    @property
    def reference(self) -> str | None:
        """What the receiver answered (as :class:`PmcDeliveryState` names it)."""
        return self.erp_reference


class Forwards(OutboxQueue):
    """The outbox of payments, and of their reversals, for the ERP."""

    row = ForwardRow
    reference = "erp_reference"

    def enqueue(self, payment_pk: int, kind: str = "payment") -> None:
        """Forward the payment, or (``kind`` "reversal") its reversal."""
        now = utcnow()
        self._tx.execute(_ADD_FORWARD, dict(
            payment_pk=payment_pk, kind=kind, status="pending", attempts=0,
            next_attempt_at=now, created_at=now))

    def _held_back(self):
        """A reversal (or resolution) is due only once its payment's forward is settled
        (delivered or rejected), so that the ERP never hears of it before its payment."""
        its_payment = aliased(ForwardRow)
        return and_(ForwardRow.kind != "payment", exists().where(
            its_payment.payment_pk == ForwardRow.payment_pk, its_payment.kind == "payment",
            its_payment.status == "pending"))

    def _of_biller(self, biller_id: str):
        return ForwardRow.payment_pk.in_(
            select(PaymentRow.pk).where(PaymentRow.biller_id == biller_id))

    def _named(self, ids: list[str]):
        """The items of these operation IDs."""
        return ForwardRow.payment_pk.in_(
            select(PaymentRow.pk).where(PaymentRow.operation_id.in_(ids)))

    def _tasks(self, pks: list[int]) -> list[ForwardTask]:
        its_payment = aliased(ForwardRow)
        rows = self._tx.session.execute(
            select(ForwardRow, PaymentRow, ReversalRow, its_payment.status,
                   InvoiceRow.invoice_id)
            .join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
            .outerjoin(ReversalRow, and_(ForwardRow.kind == "reversal",
                                         ReversalRow.payment_pk == ForwardRow.payment_pk))
            .outerjoin(its_payment, and_(ForwardRow.kind != "payment",
                                         its_payment.payment_pk == ForwardRow.payment_pk,
                                         its_payment.kind == "payment"))
            .outerjoin(DecisionRow, and_(ForwardRow.kind == "resolution",
                                         DecisionRow.payment_pk == ForwardRow.payment_pk))
            .outerjoin(InvoiceRow, InvoiceRow.pk == DecisionRow.invoice_pk)
            .where(ForwardRow.pk.in_(pks)).order_by(ForwardRow.pk)).all()
        return [ForwardTask(forward.pk, _notice_from_row(payment), payment.receipt_id,
                            forward.attempts,
                            None if reversal is None else _reversal_from_row(reversal),
                            None if reversal is None else reversal.reversal_id,
                            payment_status == "rejected", apply_to)
                for forward, payment, reversal, payment_status, apply_to in rows]

    def listing(self, status: str | None = None, limit: int = 1000) -> list[ForwardState]:
        stmt = (select(ForwardRow, PaymentRow)
                .join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
                .order_by(ForwardRow.pk.desc()).limit(limit))
        if status is not None:
            stmt = stmt.where(ForwardRow.status == status)
        return [ForwardState(payment.operation_id, payment.biller_id, forward.kind, forward.status,
                             forward.attempts, forward.next_attempt_at, forward.last_error,
                             forward.erp_reference, forward.delivered_at, forward.claimed_by)
                for forward, payment in self._tx.session.execute(stmt)]


@dataclass(frozen=True)
class PmcTask:
    """An invoice a publisher has claimed and must add to PMC (as it is now), or remove."""

    pk: int
    biller_id: str
    kind: str  # add, remove
    invoice: Invoice
    attempts: int


@dataclass(frozen=True)
class PmcDeliveryState:
    biller_id: str
    customer_id: str
    invoice_id: str
    kind: str  # add, remove
    status: str  # pending, delivered, rejected
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    reference: str | None
    delivered_at: datetime | None
    claimed_by: str | None


class PmcDeliveries(OutboxQueue):
    """The outbox of invoices for PMC's collection API; one invoice's items go in the
    order they were written."""

    row = PmcDeliveryRow
    reference = "reference"

    def enqueue(self, biller_id: str, invoice_pk: int, kind: str) -> None:
        """Add the invoice to PMC (as it will be when delivered), or remove it."""
        now = utcnow()
        self._tx.execute(_ADD_PMC_DELIVERY, dict(
            biller_id=biller_id, invoice_pk=invoice_pk, kind=kind, status="pending",
            attempts=0, next_attempt_at=now, created_at=now))

    def was_added(self, invoice_pk: int) -> bool:
        """Whether the invoice was (or is being) added to PMC."""
        return self._tx.session.scalar(select(exists().where(
            PmcDeliveryRow.invoice_pk == invoice_pk, PmcDeliveryRow.kind == "add",
            PmcDeliveryRow.status != "rejected")))

    def _held_back(self):
        earlier = aliased(PmcDeliveryRow)
        return exists().where(earlier.invoice_pk == PmcDeliveryRow.invoice_pk,
                              earlier.pk < PmcDeliveryRow.pk, earlier.status == "pending")

    def _of_biller(self, biller_id: str):
        return PmcDeliveryRow.biller_id == biller_id

    def _tasks(self, pks: list[int]) -> list[PmcTask]:
        rows = self._tx.session.execute(
            select(PmcDeliveryRow, InvoiceRow)
            .join(InvoiceRow, InvoiceRow.pk == PmcDeliveryRow.invoice_pk)
            .where(PmcDeliveryRow.pk.in_(pks)).order_by(PmcDeliveryRow.pk)).all()
        return [PmcTask(delivery.pk, delivery.biller_id, delivery.kind,
                        _invoice_from_row(invoice), delivery.attempts)
                for delivery, invoice in rows]

    def _named(self, ids: list[str]):
        """The items of these invoice IDs."""
        return PmcDeliveryRow.invoice_pk.in_(
            select(InvoiceRow.pk).where(InvoiceRow.invoice_id.in_(ids)))

    def listing(self, status: str | None = None, limit: int = 1000) -> list[PmcDeliveryState]:
        stmt = (select(PmcDeliveryRow, InvoiceRow.customer_id, InvoiceRow.invoice_id)
                .join(InvoiceRow, InvoiceRow.pk == PmcDeliveryRow.invoice_pk)
                .order_by(PmcDeliveryRow.pk.desc()).limit(limit))
        if status is not None:
            stmt = stmt.where(PmcDeliveryRow.status == status)
        return [PmcDeliveryState(row.biller_id, customer_id, invoice_id, row.kind, row.status,
                                 row.attempts, row.next_attempt_at, row.last_error,
                                 row.reference, row.delivered_at, row.claimed_by)
                for row, customer_id, invoice_id in self._tx.session.execute(stmt)]


class Queries:
    """The debt queries recorded (:mod:`adapter.storage.query_log` writes them)."""

    def __init__(self, transaction: _Transaction):
        self._tx = transaction

    def billers(self) -> list[str]:
        return list(self._tx.execute(select(_QUERIES.c.biller_id).distinct()).scalars())

    def between(self, biller_id: str, start: datetime, end: datetime) -> list[Query]:
        rows = self._tx.execute(select(
            _QUERIES.c.query_id, _QUERIES.c.customer_id, _QUERIES.c.invoice_id,
            _QUERIES.c.asked_at, _QUERIES.c.response_code).where(
            _QUERIES.c.biller_id == biller_id, _QUERIES.c.asked_at >= start,
            _QUERIES.c.asked_at < end))
        return [Query(*row) for row in rows]


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
        try:
            connection = self._engine.connect()
        except OperationalError as error:  # the database cannot be opened
            metrics.DATABASE_ERRORS.inc()
            raise StorageUnavailable(f"database error: {error.orig}") from error
        self._tx = _Transaction(connection)
        self.invoices = Invoices(self._tx)
        self.payments = Payments(self._tx)
        self.reversals = Reversals(self._tx)
        self.forwards = Forwards(self._tx)
        self.pmc_deliveries = PmcDeliveries(self._tx)
        self.reports = Reports(self._tx)
        self.fac_files = FacFiles(self._tx)
        self.console = ConsoleJournal(self._tx)
        self.queries = Queries(self._tx)
        return self

    def lock_operation(self, biller_id: str, operation_id: str) -> None:
        """Hold, until this transaction ends, the lock that a payment and its reversal
        both take before they look for each other: two transactions that store them at
        once run one after the other, and the second sees the first. (On SQLite every
        write transaction holds the database's one write lock already.)"""
        if self._tx.dialect == "postgresql":
            self._tx.execute(_OPERATION_LOCK, {"k_lock": _lock_key(biller_id, operation_id)})

    def precedents(self, notice: PaymentNotice) -> Precedents:
        """What a notice must know before it is stored (:class:`Precedents`), in one
        statement: most notices have none, and are stored after four round trips, not
        six."""
        row = self._tx.execute(_PRECEDENTS, {"k_operation": notice.operation_id,
                                             **_twin_parameters(notice)}).one()
        return Precedents(row.stored is not None, row.twin, row.reversal is not None)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._tx.close()
        self._tx = None
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        if isinstance(exc, OperationalError):
            metrics.DATABASE_ERRORS.inc()
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
