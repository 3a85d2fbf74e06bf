"""The payments: notices, and payments recorded from the network's report; what a notice
must know before it is stored; the observed ones waiting for a person."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import insert, select, update

from adapter.domain.calendar import local_day
from adapter.domain.model import (Currency, Outcome, PaymentNotice, PaymentState,
                                  PaymentStatus, utcnow)
from adapter.domain.charges import Paid
from adapter.domain.reconciliation import NotifiedPayment
from adapter.storage.orm import DecisionRow
from adapter.storage.statements import (INVOICES, PAYMENTS, PAYMENT_OF_OPERATION, ADD_PAYMENT,
                                        ONE_DAY)
from adapter.errors import Conflict
from adapter.storage.transaction import Transaction


def twin_parameters(notice: PaymentNotice) -> dict:
    day = local_day(notice.paid_at)
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


def notice_from_row(row) -> PaymentNotice:
    """The notice of a PaymentRow, or of a row of its table (same names)."""
    return PaymentNotice(
        biller_id=row.biller_id, operation_id=row.operation_id, customer_id=row.customer_id,
        invoice_id=row.invoice_id, amount=row.amount, currency=Currency(row.currency),
        paid_at=row.paid_at, channel=row.channel, query_id=row.query_id,
        paid_at_stated=row.paid_at_stated)


class Payments:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def status(self, biller_id: str, operation_id: str) -> PaymentStatus:
        """What became of this biller's notice with this operation ID, if any. (PMC
        numbers operations per biller: another biller's notice with the same operation
        ID is another payment.)"""
        row = self._tx.execute(
            PAYMENT_OF_OPERATION, {"k_biller": biller_id, "k_operation": operation_id}).first()
        if row is None:
            return PaymentStatus(Outcome.PAYMENT_UNKNOWN)
        return PaymentStatus(Outcome.OK, PaymentState(row.status), notice_from_row(row),
                             Outcome(row.response_code), row.receipt_id)

    def add(self, notice: PaymentNotice, outcome: Outcome, receipt_id: str,
            applied_invoice_pk: int | None, *, reversed_: bool = False,
            report_line_pk: int | None = None, covered_by_pk: int | None = None) -> int:
        """Store the notice (applied to that invoice, observed, or -- a reversal came
        first -- reversed; or covered by the payment recorded from the report); a payment
        recorded from a report line names it. Returns its key."""
        status = ("reversed" if reversed_ else "covered" if covered_by_pk is not None else
                  "applied" if applied_invoice_pk is not None else "observed")
        result = self._tx.execute(ADD_PAYMENT, dict(
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
        stmt = select(PAYMENTS).where(PAYMENTS.c.status == "observed") \
            .order_by(PAYMENTS.c.received_at, PAYMENTS.c.pk)
        if biller_id is not None:
            stmt = stmt.where(PAYMENTS.c.biller_id == biller_id)
        return [ObservedPayment(row.pk, row.receipt_id, notice_from_row(row),
                                Outcome(row.response_code), row.origin, row.received_at)
                for row in self._tx.execute(stmt)]

    def by_receipt(self, receipt_id: str, *, lock: bool = False):
        """The payment row with this receipt ID (idRecibo), or None."""
        stmt = select(PAYMENTS).where(PAYMENTS.c.receipt_id == receipt_id)
        return self._tx.execute(stmt.with_for_update() if lock else stmt).first()

    def decide(self, payment_pk: int, *, invoice_pk: int | None, operator: str, reason: str,
               at: datetime) -> None:
        """A person's decision on an observed payment: applied to ``invoice_pk`` (which
        becomes paid), or dismissed. The decision's unique key refuses a second one."""
        self._tx.execute(insert(DecisionRow.__table__).values(
            payment_pk=payment_pk, action="applied" if invoice_pk else "dismissed",
            invoice_pk=invoice_pk, operator=operator, reason=reason, decided_at=at))
        changed = self._tx.execute(
            update(PAYMENTS).where(PAYMENTS.c.pk == payment_pk,
                                    PAYMENTS.c.status == "observed")
            .values(status="resolved" if invoice_pk else "dismissed",
                    applied_invoice_pk=invoice_pk)).rowcount
        if changed != 1:
            raise Conflict(f"payment {payment_pk} is no longer observed")
        if invoice_pk is not None:
            self._tx.execute(update(INVOICES).where(INVOICES.c.pk == invoice_pk)
                             .values(status="paid", updated_at=at))

    def decision(self, payment_pk: int):
        return self._tx.execute(select(DecisionRow.__table__).where(
            DecisionRow.__table__.c.payment_pk == payment_pk)).first()

    def for_charges(self, biller_id: str, start: datetime, end: datetime) -> list[Paid]:
        """The notices paid in [start, end) that stand (not reversed), as the query
        charges need them."""
        rows = self._tx.execute(select(
            PAYMENTS.c.operation_id, PAYMENTS.c.customer_id, PAYMENTS.c.invoice_id,
            PAYMENTS.c.paid_at, PAYMENTS.c.query_id).where(
            PAYMENTS.c.biller_id == biller_id, PAYMENTS.c.origin == "notice",
            PAYMENTS.c.status != "reversed",
            PAYMENTS.c.paid_at >= start, PAYMENTS.c.paid_at < end))
        return [Paid(*row) for row in rows]

    def received_between(self, start: datetime, end: datetime) -> list[tuple]:
        """(biller, received at, status, response code) of the notices received in
        [start, end): what a day at a glance counts."""
        return [tuple(row) for row in self._tx.execute(
            select(PAYMENTS.c.biller_id, PAYMENTS.c.received_at, PAYMENTS.c.status,
                   PAYMENTS.c.response_code)
            .where(PAYMENTS.c.origin == "notice", PAYMENTS.c.received_at >= start,
                   PAYMENTS.c.received_at < end))]

    def history(self, biller_id: str | None = None, operation_id: str | None = None,
                customer_id: str | None = None, invoice_id: str | None = None,
                limit: int = 50) -> list:
        """The payment rows matching what is given (at least one), newest first."""
        stmt = select(PAYMENTS).order_by(PAYMENTS.c.received_at.desc()).limit(limit)
        for column, value in (("biller_id", biller_id), ("operation_id", operation_id),
                              ("customer_id", customer_id), ("invoice_id", invoice_id)):
            if value:
                stmt = stmt.where(PAYMENTS.c[column] == value)
        return list(self._tx.execute(stmt))

    def notices_between(self, biller_id: str, start: datetime,
                        end: datetime) -> list[NotifiedPayment]:
        """The notices (not the payments recorded from the report) paid in [start, end)."""
        rows = self._tx.execute(select(PAYMENTS).where(
            PAYMENTS.c.biller_id == biller_id, PAYMENTS.c.origin == "notice",
            PAYMENTS.c.paid_at >= start, PAYMENTS.c.paid_at < end))
        return [NotifiedPayment(row.operation_id, row.customer_id, row.invoice_id, row.amount,
                                Currency(row.currency), local_day(row.paid_at),
                                reversed=row.status == "reversed", channel=row.channel)
                for row in rows]

    def reverse(self, biller_id: str, operation_id: str) -> int:
        """Mark this biller's stored notice reversed, and open again the invoice it paid
        (if it paid one); returns the payment's key."""
        row = self._tx.execute(
            select(PAYMENTS.c.pk, PAYMENTS.c.applied_invoice_pk)
            .where(PAYMENTS.c.biller_id == biller_id,
                   PAYMENTS.c.operation_id == operation_id)).one()
        self._tx.execute(update(PAYMENTS).where(PAYMENTS.c.pk == row.pk)
                         .values(status="reversed", applied_invoice_pk=None))
        if row.applied_invoice_pk is not None:
            self._tx.execute(update(INVOICES)
                             .where(INVOICES.c.pk == row.applied_invoice_pk,
                                    INVOICES.c.status == "paid")
                             .values(status="open", updated_at=utcnow()))
        return row.pk


@dataclass(frozen=True)
class ObservedPayment:
    key: int
    receipt_id: str
    notice: PaymentNotice
    outcome: Outcome  # why it was not applied
    origin: str  # notice, report
    received_at: datetime
