"""Invoices, due dates and payment notices, and the rules that judge them.

Everything here is plain Python: no spyne, no SQLAlchemy, no clock. Callers
pass the day ("today" in Buenos Aires) or the instant ("now") explicitly, so
every rule is testable without a server or a database.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal

from adapter.domain.calendar import BUSINESS_TZ, local_day
from adapter.errors import InvalidInvoice

CENT = Decimal("0.01")
MAX_DUE_DATES = 3


class Currency(str, enum.Enum):
    ARS = "ARS"
    USD = "USD"


class Origin(str, enum.Enum):
    """Where an invoice comes from."""

    BILLING_BASE = "BASE"  # the billing base the biller informed to PMC
    CREATED_ONLINE = "ALTA"  # created by the biller's web/app (AltaFactura)
    ERP = "ERP"  # found in the biller's ERP


class Outcome(enum.IntEnum):
    """Business outcome of an operation; the wire's ``codigoRespuesta``."""

    OK = 0
    CUSTOMER_UNKNOWN = 1
    NOTHING_OWED = 2
    INVOICE_UNKNOWN = 3
    ALREADY_PAID = 4
    EXPIRED = 5
    AMOUNT_MISMATCH = 6
    OPERATION_CONFLICT = 7
    PAYMENT_UNKNOWN = 8  # no notice with that operation ID
    REVERSAL_NOT_ALLOWED = 9  # outside the reversal window
    REVERSAL_MISMATCH = 10  # the reversal's data differs from the payment it names
    FUTURE_PAYMENT = 11


def utcnow() -> datetime:
    """Now, as an aware UTC instant (the default clock of the use cases)."""
    return datetime.now(timezone.utc)


def money(value: Decimal | int | str) -> Decimal:
    """A Decimal with exactly two places; refuses values that would lose cents."""
    amount = Decimal(value)
    quantized = amount.quantize(CENT)
    if quantized != amount:
        raise ValueError(f"{value} has more than 2 decimal places")
    return quantized


@dataclass(frozen=True)
class DueDate:
    on: date
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    biller_id: str
    customer_id: str
    invoice_id: str
    currency: Currency
    due_dates: tuple[DueDate, ...]
    origin: Origin
    description: str = ""
    ticket_message: str = ""
    screen_message: str = ""
    paid: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.due_dates) <= MAX_DUE_DATES:
            raise InvalidInvoice(
                f"an invoice has 1 to {MAX_DUE_DATES} due dates, not {len(self.due_dates)}")
        days = [due.on for due in self.due_dates]
        if any(later <= earlier for earlier, later in zip(days, days[1:])):
            raise InvalidInvoice("due dates must be in strictly ascending order")
        for due in self.due_dates:
            if due.amount < 0:
                raise InvalidInvoice("a due date's amount cannot be negative")
        object.__setattr__(
            self, "due_dates",
            tuple(DueDate(due.on, money(due.amount)) for due in self.due_dates))

    @property
    def last_due_date(self) -> date:
        return self.due_dates[-1].on

    def is_expired_on(self, day: date) -> bool:
        return day > self.last_due_date

    def amount_due_on(self, day: date) -> Decimal | None:
        """Amount of the first due date not yet passed on ``day``; None once expired."""
        for due in self.due_dates:
            if day <= due.on:
                return due.amount
        return None

    def is_payable_on(self, day: date) -> bool:
        return not self.paid and not self.is_expired_on(day)

    def same_terms_as(self, other: Invoice) -> bool:
        """Whether ``other`` says exactly what this invoice says (a resend)."""
        return replace(other, paid=self.paid) == self


@dataclass(frozen=True)
class PaymentNotice:
    """A payment PMC already collected: a fact to record, not a request."""

    biller_id: str
    operation_id: str
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: Currency
    paid_at: datetime
    channel: str | None = None
    query_id: str | None = None
    # False: the notice gave no time (PMC's JSON notice may not), paid_at is when it
    # was received -- and a replay, received later, is the same notice all the same
    paid_at_stated: bool = True

    def __post_init__(self) -> None:
        if self.paid_at.tzinfo is None or self.paid_at.utcoffset() is None:
            raise ValueError("a payment's time must carry its UTC offset")
        object.__setattr__(self, "amount", money(self.amount))

    def same_as(self, other: PaymentNotice) -> bool:
        """Whether ``other`` is a replay of this notice (same data, same instant -- or,
        for two notices that gave no time, whenever each was received)."""
        if not (self.paid_at_stated or other.paid_at_stated):
            return replace(other, paid_at=self.paid_at) == self
        return self == other  # aware datetimes compare as instants


def judge_payment(notice: PaymentNotice, invoice: Invoice | None, *, now: datetime,
                  skew: timedelta = timedelta(0)) -> Outcome:
    """Whether a notice pays ``invoice`` (OK) or must be kept for reconciliation.

    A notice dated later than ``now`` plus ``skew`` (how far another clock may run
    ahead of ours) tells of a payment that has not happened yet: its date cannot be
    trusted, so it pays nothing, whatever the invoice -- it is judged before the
    invoice is.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware instant")
    if notice.paid_at > now + skew:
        return Outcome.FUTURE_PAYMENT
    if invoice is None:
        return Outcome.INVOICE_UNKNOWN
    if invoice.paid:
        return Outcome.ALREADY_PAID
    day = local_day(notice.paid_at)
    due = invoice.amount_due_on(day)
    if due is None:
        return Outcome.EXPIRED
    if notice.currency != invoice.currency or notice.amount != due:
        return Outcome.AMOUNT_MISMATCH
    return Outcome.OK


@dataclass(frozen=True)
class OpenInvoice:
    """An invoice as shown to PMC: with what it costs today."""

    invoice: Invoice
    amount_due: Decimal


@dataclass(frozen=True)
class DebtAnswer:
    outcome: Outcome
    query_id: str
    open_invoices: tuple[OpenInvoice, ...] = field(default=())


def merge_invoices(stored: list[Invoice], from_erp: list[Invoice]) -> list[Invoice]:
    """A client's invoices from both places, one per invoice ID.

    An invoice in both is the ERP's (the current truth) -- except that a
    payment this adapter already applied keeps it paid, even while the ERP
    has not been told yet.
    """
    paid_here = {inv.invoice_id for inv in stored if inv.paid}
    erp_ids = {inv.invoice_id for inv in from_erp}
    merged = [inv for inv in stored if inv.invoice_id not in erp_ids]
    merged += [replace(inv, paid=True) if inv.invoice_id in paid_here else inv
               for inv in from_erp]
    return merged


def judge_debt(invoices: list[Invoice], day: date, invoice_id: str | None = None,
               customer_known: bool = False) -> tuple[Outcome, tuple[OpenInvoice, ...]]:
    """What a client owes on ``day``, from all the invoices known for them.

    ``customer_known`` says the client exists even without invoices (the ERP
    may know clients who owe nothing).
    """
    if not invoices and not customer_known:
        return Outcome.CUSTOMER_UNKNOWN, ()
    if invoice_id is not None:
        invoices = [inv for inv in invoices if inv.invoice_id == invoice_id]
        if not invoices:
            return Outcome.INVOICE_UNKNOWN, ()
    open_invoices = tuple(
        OpenInvoice(inv, inv.amount_due_on(day))
        for inv in sorted(invoices, key=lambda inv: (inv.last_due_date, inv.invoice_id))
        if inv.is_payable_on(day))
    if not open_invoices:
        return Outcome.NOTHING_OWED, ()
    return Outcome.OK, open_invoices


@dataclass(frozen=True)
class PaymentAnswer:
    outcome: Outcome
    receipt_id: str


class PaymentState(enum.Enum):
    """What became of a stored notice."""

    APPLIED = "applied"  # it paid its invoice
    OBSERVED = "observed"  # kept for reconciliation (answered 3-6 or 11)
    REVERSED = "reversed"  # annulled by a reversal (its invoice, if it paid one, is open again)
    # a notice that came after its payment had been recorded from the network's report:
    # that payment applied it (answered 0)
    COVERED = "covered"
    RESOLVED = "resolved"  # an observed payment a person applied to an invoice
    DISMISSED = "dismissed"  # an observed payment a person closed without applying it


@dataclass(frozen=True)
class PaymentStatus:
    """The answer to "did you get operation X?": the notice as stored, or nothing."""

    outcome: Outcome  # OK, or PAYMENT_UNKNOWN
    state: PaymentState | None = None
    notice: PaymentNotice | None = None
    notice_outcome: Outcome | None = None  # the code the notice was answered
    receipt_id: str | None = None


# -- reversals ------------------------------------------------------------------------

# By default a payment may be reversed until the end of its business day.
DEFAULT_REVERSAL_CUTOFF_HOUR = 24


@dataclass(frozen=True)
class ReversalNotice:
    """The network cancels a payment it notified, naming it by its operation ID and
    repeating its data (a reversal is not a refund: no money goes back to the payer
    through the biller)."""

    biller_id: str
    operation_id: str  # the payment's
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: Currency
    reversed_at: datetime  # as the network dates it
    reason: str | None = None

    def __post_init__(self) -> None:
        if self.reversed_at.tzinfo is None or self.reversed_at.utcoffset() is None:
            raise ValueError("a reversal's time must carry its UTC offset")
        object.__setattr__(self, "amount", money(self.amount))

    def same_as(self, other: ReversalNotice) -> bool:
        """Whether ``other`` is a replay of this reversal."""
        return self == other

    def names(self, payment: PaymentNotice) -> bool:
        """Whether this reversal describes ``payment`` (its client, invoice and money)."""
        return (self.biller_id, self.operation_id, self.customer_id, self.invoice_id,
                self.amount, self.currency) == (
            payment.biller_id, payment.operation_id, payment.customer_id, payment.invoice_id,
            payment.amount, payment.currency)


def reversal_deadline(paid_at: datetime, cutoff_hour: int) -> datetime:
    """The last instant a payment made at ``paid_at`` may be reversed: its business
    day in Buenos Aires at ``cutoff_hour`` (0-24; 24 is the end of that day)."""
    if not 0 <= cutoff_hour <= 24:
        raise ValueError(f"a cut-off hour is 0 to 24, not {cutoff_hour}")
    midnight = datetime.combine(local_day(paid_at), time(0), tzinfo=BUSINESS_TZ)
    # wall-clock arithmetic in Buenos Aires (no DST there today; zoneinfo stays right if
    # it returns), then the instant
    return (midnight + timedelta(hours=cutoff_hour)).astimezone(timezone.utc)


def judge_reversal(reversal: ReversalNotice, payment: PaymentNotice | None, *,
                   received_at: datetime, cutoff_hour: int) -> Outcome:
    """Whether ``reversal`` cancels ``payment``: OK; PAYMENT_UNKNOWN when there is no
    such payment (yet); REVERSAL_MISMATCH when it names the payment with other data;
    REVERSAL_NOT_ALLOWED when it reached us (``received_at``) after the payment's
    reversal window closed."""
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be an aware instant")
    if payment is None:
        return Outcome.PAYMENT_UNKNOWN
    if not reversal.names(payment):
        return Outcome.REVERSAL_MISMATCH
    if received_at > reversal_deadline(payment.paid_at, cutoff_hour):
        return Outcome.REVERSAL_NOT_ALLOWED
    return Outcome.OK


@dataclass(frozen=True)
class ReversalAnswer:
    outcome: Outcome
    reversal_id: str | None = None  # only when the reversal was stored (0, 8)


class ReversalState(enum.Enum):
    """What became of a stored reversal."""

    PENDING = "pending"  # its payment has not arrived (answered 8)
    APPLIED = "applied"  # it reversed its payment
    REFUSED = "refused"  # its payment arrived, and the reversal did not fit it (9 or 10)


@dataclass(frozen=True)
class StoredReversal:
    reversal: ReversalNotice
    reversal_id: str
    outcome: Outcome  # the answer AnularPago gave (OK or PAYMENT_UNKNOWN)
    state: ReversalState
    received_at: datetime
    refusal: Outcome | None = None  # why a pending one was refused when its payment came
