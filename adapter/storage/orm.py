"""Tables. (Every change here comes with a migration in ``migrations/versions``.)

The database enforces what must never happen:

* one row per biller and PMC operation ID (``payments`` unique on
  ``biller_id, operation_id``): a replayed notice can never be stored, or
  credited, twice, and one biller's operation ID never answers for another's;
* a report line recorded as a payment once (``payments.report_line_pk``
  unique), and such a payment covered by at most one late notice
  (``payments.covered_by_pk`` unique);
* at most one applied payment per invoice (``payments.applied_invoice_pk``
  unique), and a payment is applied iff it points at an invoice (a reversed one
  points at none: its invoice may be paid again);
* at most one reversal per payment (``reversals`` unique on ``biller_id,
  operation_id``, and on ``payment_pk``), and a reversal has reversed a payment
  iff it points at one;
* one invoice per (biller, client, invoice ID); 1 to 3 due dates, strictly
  ascending; no negative amounts; only known currencies, origins and states;
* one billing base file (FAC) per biller, day and attempt, at most one being sent per
  biller at a time (a partial unique index), an invoice once per file, and at most
  one rejection file per file sent.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from decimal import Decimal

from sqlalchemy import (BigInteger, Boolean, CheckConstraint, Date, DateTime, ForeignKey, Index,
                        Integer, LargeBinary, MetaData, Numeric, String, UniqueConstraint, text,
                        true)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator):
    """Aware datetimes in, aware (UTC) datetimes out, on every backend.

    SQLite has no time zone type; storing UTC and re-attaching it on load keeps
    "time is timezone-aware" true there too.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("refusing to store a naive datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


class Money(TypeDecorator):
    """Decimal money with two places: NUMERIC(15, 2) where the database has it,
    integer cents on SQLite (whose NUMERIC is a float)."""

    impl = Numeric(15, 2)
    cache_ok = True

    def load_dialect_impl(self, dialect):
        if dialect.name == "sqlite":
            return dialect.type_descriptor(BigInteger())
        return dialect.type_descriptor(Numeric(15, 2, asdecimal=True))

    def process_bind_param(self, value: Decimal | None, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            cents = Decimal(value) * 100
            if cents != cents.to_integral_value():
                raise ValueError(f"{value} has more than 2 decimal places")
            return int(cents)
        return Decimal(value)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if dialect.name == "sqlite":
            return (Decimal(value) / 100).quantize(Decimal("0.01"))
        return Decimal(value).quantize(Decimal("0.01"))


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class InvoiceRow(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("biller_id", "customer_id", "invoice_id"),
        CheckConstraint("currency IN ('ARS', 'USD')", name="currency"),
        CheckConstraint("origin IN ('BASE', 'ALTA', 'ERP')", name="origin"),
        CheckConstraint("status IN ('open', 'paid')", name="status"),
        CheckConstraint("amount_1 >= 0 AND (amount_2 IS NULL OR amount_2 >= 0)"
                        " AND (amount_3 IS NULL OR amount_3 >= 0)", name="amounts"),
        CheckConstraint("(due_date_2 IS NULL) = (amount_2 IS NULL)"
                        " AND (due_date_3 IS NULL) = (amount_3 IS NULL)", name="due_pairs"),
        CheckConstraint("due_date_2 IS NULL OR due_date_2 > due_date_1", name="due_2_after_1"),
        CheckConstraint("due_date_3 IS NULL OR (due_date_2 IS NOT NULL AND due_date_3 > due_date_2)",
                        name="due_3_after_2"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[str] = mapped_column(String(19))
    invoice_id: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(String(3))
    description: Mapped[str] = mapped_column(String(100), default="")
    ticket_message: Mapped[str] = mapped_column(String(40), default="")
    screen_message: Mapped[str] = mapped_column(String(15), default="")
    origin: Mapped[str] = mapped_column(String(4))
    status: Mapped[str] = mapped_column(String(6), default="open")
    due_date_1: Mapped[date] = mapped_column(Date)
    amount_1: Mapped[Decimal] = mapped_column(Money)
    due_date_2: Mapped[date | None] = mapped_column(Date)
    amount_2: Mapped[Decimal | None] = mapped_column(Money)
    due_date_3: Mapped[date | None] = mapped_column(Date)
    amount_3: Mapped[Decimal | None] = mapped_column(Money)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("biller_id", "operation_id"),
        UniqueConstraint("receipt_id"),
        UniqueConstraint("applied_invoice_pk"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("currency IN ('ARS', 'USD')", name="currency"),
        # 7 (a conflicting replay) is answered, never stored; 8-10 are kept for reversals
        CheckConstraint("response_code BETWEEN 0 AND 6 OR response_code = 11",
                        name="response_code"),
        CheckConstraint("(status = 'applied' AND applied_invoice_pk IS NOT NULL AND response_code = 0)"
                        " OR (status = 'observed' AND applied_invoice_pk IS NULL AND response_code > 0)"
                        " OR (status = 'reversed' AND applied_invoice_pk IS NULL)"
                        " OR (status = 'covered' AND applied_invoice_pk IS NULL"
                        " AND covered_by_pk IS NOT NULL AND response_code = 0)"
                        " OR (status = 'resolved' AND applied_invoice_pk IS NOT NULL"
                        " AND response_code > 0)"
                        " OR (status = 'dismissed' AND applied_invoice_pk IS NULL"
                        " AND response_code > 0)",
                        name="applied_iff_linked"),
        UniqueConstraint("report_line_pk"),
        UniqueConstraint("covered_by_pk"),
        CheckConstraint("(origin = 'notice' AND report_line_pk IS NULL)"
                        " OR (origin = 'report' AND report_line_pk IS NOT NULL"
                        " AND covered_by_pk IS NULL)", name="origin"),
        Index("ix_payments_paid", "biller_id", "paid_at"),  # reconciliation, charges
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    operation_id: Mapped[str] = mapped_column(String(36))
    receipt_id: Mapped[str] = mapped_column(String(36))
    biller_id: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[str] = mapped_column(String(19))
    invoice_id: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    paid_at: Mapped[datetime] = mapped_column(UtcDateTime)
    channel: Mapped[str | None] = mapped_column(String(30))
    query_id: Mapped[str | None] = mapped_column(String(36))
    # false: the notice gave no time, paid_at is when it was received
    paid_at_stated: Mapped[bool] = mapped_column(Boolean, server_default=true())
    # 'applied' (paid the invoice), 'observed' (kept for reconciliation), 'reversed',
    # 'covered' (a notice that came after its payment was recorded from the report), or
    # 'resolved' / 'dismissed' (an observed one a person applied, or closed)
    status: Mapped[str] = mapped_column(String(9))
    response_code: Mapped[int] = mapped_column(Integer)
    applied_invoice_pk: Mapped[int | None] = mapped_column(ForeignKey("invoices.pk"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)
    # 'notice' (InformarPago) or 'report' (a report line no notice came for)
    origin: Mapped[str] = mapped_column(String(6), default="notice")
    report_line_pk: Mapped[int | None] = mapped_column(ForeignKey("report_lines.pk"))
    covered_by_pk: Mapped[int | None] = mapped_column(ForeignKey("payments.pk"))


class ReversalRow(Base):
    """A reversal the network sent (AnularPago), stored before it is answered: applied
    to its payment, or pending until that payment's notice arrives, or refused then."""

    __tablename__ = "reversals"
    __table_args__ = (
        UniqueConstraint("biller_id", "operation_id"),
        UniqueConstraint("reversal_id"),
        UniqueConstraint("payment_pk"),
        CheckConstraint("amount >= 0", name="amount"),
        CheckConstraint("currency IN ('ARS', 'USD')", name="currency"),
        CheckConstraint("response_code IN (0, 8)", name="response_code"),
        CheckConstraint("(status = 'applied' AND payment_pk IS NOT NULL AND refusal_code IS NULL)"
                        " OR (status = 'pending' AND payment_pk IS NULL AND refusal_code IS NULL"
                        " AND response_code = 8)"
                        " OR (status = 'refused' AND payment_pk IS NULL AND refusal_code IN (9, 10))",
                        name="state"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    reversal_id: Mapped[str] = mapped_column(String(36))
    biller_id: Mapped[str] = mapped_column(String(4))
    operation_id: Mapped[str] = mapped_column(String(36))  # the payment's
    customer_id: Mapped[str] = mapped_column(String(19))
    invoice_id: Mapped[str] = mapped_column(String(20))
    amount: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    reversed_at: Mapped[datetime] = mapped_column(UtcDateTime)
    reason: Mapped[str | None] = mapped_column(String(100))
    # 'applied', 'pending' (its payment not here yet) or 'refused'
    status: Mapped[str] = mapped_column(String(8))
    response_code: Mapped[int] = mapped_column(Integer)  # what AnularPago answered
    refusal_code: Mapped[int | None] = mapped_column(Integer)  # 9 or 10, when refused
    payment_pk: Mapped[int | None] = mapped_column(ForeignKey("payments.pk"))
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class QueryRow(Base):
    """Every debt query, so that PMC's billing (per query ending in a payment) can be checked."""

    __tablename__ = "debt_queries"
    __table_args__ = (UniqueConstraint("query_id"),
                      Index("ix_debt_queries_asked", "biller_id", "asked_at"))  # the charges

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    query_id: Mapped[str] = mapped_column(String(36))
    biller_id: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[str] = mapped_column(String(19))
    invoice_id: Mapped[str | None] = mapped_column(String(20))
    response_code: Mapped[int] = mapped_column(Integer)
    invoice_count: Mapped[int] = mapped_column(Integer)
    asked_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ForwardRow(Base):
    """The outbox: one row per payment to forward to the ERP, written in the same
    transaction as the payment, so that no stored payment can miss the ERP; and one
    per reversal of a payment (``kind`` 'reversal', same ``payment_pk``), delivered
    only once its payment's forward is settled.

    A forwarder claims a row by setting ``claimed_by``/``claimed_until`` with a
    conditional UPDATE; until the lease runs out nobody else may deliver it.
    """

    __tablename__ = "erp_forwards"
    __table_args__ = (
        UniqueConstraint("payment_pk", "kind"),
        CheckConstraint("kind IN ('payment', 'reversal', 'resolution')", name="kind"),
        CheckConstraint("status IN ('pending', 'delivered', 'rejected')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="delivered"),
        Index("ix_erp_forwards_due", "status", "next_attempt_at"),  # what forwarders poll
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_pk: Mapped[int] = mapped_column(ForeignKey("payments.pk"))
    kind: Mapped[str] = mapped_column(String(10), default="payment")
    status: Mapped[str] = mapped_column(String(9), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    erp_reference: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class PmcDeliveryRow(Base):
    """The outbox of PMC's collection API: one row per thing to tell it about an invoice
    created online (``kind`` 'add': the invoice as it is when delivered; 'remove': it
    must leave PMC), written in the same transaction as the invoice. The rows of one
    invoice are delivered in the order they were written (an add before its remove);
    claimed with a lease, as the ERP's outbox is."""

    __tablename__ = "pmc_deliveries"
    __table_args__ = (
        CheckConstraint("kind IN ('add', 'remove')", name="kind"),
        CheckConstraint("status IN ('pending', 'delivered', 'rejected')", name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        CheckConstraint("(status = 'delivered') = (delivered_at IS NOT NULL)", name="delivered"),
        Index("ix_pmc_deliveries_due", "status", "next_attempt_at"),  # what publishers poll
        Index("ix_pmc_deliveries_invoice", "invoice_pk", "status"),  # the order per invoice
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(String(4))
    invoice_pk: Mapped[int] = mapped_column(ForeignKey("invoices.pk"))
    kind: Mapped[str] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(9), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(64))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
    reference: Mapped[str | None] = mapped_column(String(64))  # what PMC answered
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ReportFileRow(Base):
    """A payment report file (COB) imported: one row per distinct content, so that the
    same file imported again is recognised, and a re-issue (same name, other content)
    is imported as what it is."""

    __tablename__ = "report_files"
    __table_args__ = (
        UniqueConstraint("biller_id", "sha256"),
        CheckConstraint("records >= 0 AND rejected >= 0 AND rejected <= records",
                        name="records"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(64))
    day: Mapped[date] = mapped_column(Date)  # the header's date
    sha256: Mapped[str] = mapped_column(String(64))
    records: Mapped[int] = mapped_column(Integer)  # detail records
    rejected: Mapped[int] = mapped_column(Integer)
    total: Mapped[Decimal] = mapped_column(Money)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ReportLineRow(Base):
    """A payment the network's report says it collected. A line's identity within a
    biller is its channel, control number, invoice ID and payment date (see
    :mod:`adapter.files.cob`): a line reported again (the same file, or a re-issue) is this
    row, updated if the re-issue corrected it, never a second one."""

    __tablename__ = "report_lines"
    __table_args__ = (
        # the identity, invoice first: what an import looks its batch's twins up by
        UniqueConstraint("biller_id", "invoice_id", "paid_on", "channel", "control"),
        CheckConstraint("amount >= 0", name="amount"),
        Index("ix_report_lines_day", "biller_id", "paid_on"),  # reconciliation, per day
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(String(4))
    channel: Mapped[str] = mapped_column(String(2))
    control: Mapped[str] = mapped_column(String(4))
    invoice_id: Mapped[str] = mapped_column(String(20))
    paid_on: Mapped[date] = mapped_column(Date)
    customer_id: Mapped[str] = mapped_column(String(19))
    due_on: Mapped[date] = mapped_column(Date)
    amount: Mapped[Decimal] = mapped_column(Money)
    movement: Mapped[str] = mapped_column(String(1))
    credited_on: Mapped[date] = mapped_column(Date)
    file_pk: Mapped[int] = mapped_column(ForeignKey("report_files.pk"))  # the latest to carry it
    line: Mapped[int] = mapped_column(Integer)  # in that file
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class DecisionRow(Base):
    """What a person decided about an observed payment: applied to an invoice, or
    dismissed; by whom, when and why. One per payment: a decision is not made twice."""

    __tablename__ = "payment_decisions"
    __table_args__ = (
        UniqueConstraint("payment_pk"),
        CheckConstraint("(action = 'applied' AND invoice_pk IS NOT NULL)"
                        " OR (action = 'dismissed' AND invoice_pk IS NULL)", name="action"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_pk: Mapped[int] = mapped_column(ForeignKey("payments.pk"))
    action: Mapped[str] = mapped_column(String(9))
    invoice_pk: Mapped[int | None] = mapped_column(ForeignKey("invoices.pk"))
    operator: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(500))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime)


class NonceRow(Base):
    """The WS-Security nonces seen, per caller, until their token could no longer be
    fresh: a PasswordDigest token is accepted once, by every worker and instance that
    shares the database (the unique key decides)."""

    __tablename__ = "ws_nonces"
    __table_args__ = (
        UniqueConstraint("caller", "nonce"),
        Index("ix_ws_nonces_expires_at", "expires_at"),  # the purge
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    caller: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[str] = mapped_column(String(128))
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class FacFileRow(Base):
    """A billing base file (``FACnnnn.DDMMAA.N``) this adapter built to send: being sent
    (claimed by one run, its lease renewed while it works), sent, or failed. A name is
    never used twice: a failed attempt keeps its ``N``."""

    __tablename__ = "fac_files"
    __table_args__ = (
        UniqueConstraint("biller_id", "day", "attempt"),
        UniqueConstraint("biller_id", "name"),
        CheckConstraint("attempt >= 1", name="attempt"),
        CheckConstraint("state IN ('sending', 'sent', 'failed')", name="state"),
        CheckConstraint("(state = 'sent') = (sent_at IS NOT NULL)", name="sent"),
        CheckConstraint("records >= 0", name="records"),
        # one run sends a biller's file at a time: a second one is refused by the database
        Index("ux_fac_files_sending", "biller_id", unique=True,
              sqlite_where=text("state = 'sending'"), postgresql_where=text("state = 'sending'")),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    biller_id: Mapped[str] = mapped_column(String(4))
    name: Mapped[str] = mapped_column(String(32))
    day: Mapped[date] = mapped_column(Date)  # the business day it counts for
    attempt: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(7))
    records: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[Decimal] = mapped_column(Money, default=Decimal("0.00"))
    sha256: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    claimed_until: Mapped[datetime] = mapped_column(UtcDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(String(500))


class FacRecordRow(Base):
    """An invoice in a FAC file: what was sent of it (its detail record's digest), and
    whether the network rejected it (with its reason, where the rejection gives one)."""

    __tablename__ = "fac_records"
    __table_args__ = (
        UniqueConstraint("file_pk", "customer_id", "invoice_id"),  # once per file
        CheckConstraint("reason IS NULL OR rejected", name="reason"),
        # what was last sent of an invoice
        Index("ix_fac_records_invoice", "biller_id", "customer_id", "invoice_id", "file_pk"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_pk: Mapped[int] = mapped_column(ForeignKey("fac_files.pk"))
    biller_id: Mapped[str] = mapped_column(String(4))
    customer_id: Mapped[str] = mapped_column(String(19))
    invoice_id: Mapped[str] = mapped_column(String(20))
    fingerprint: Mapped[str] = mapped_column(String(64))
    rejected: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(String(200))


class FacRejectionRow(Base):
    """A rejection file (``RECHAZADO_FACnnnn.DDMMAA.N``) the network left for a file
    sent, stored as it came."""

    __tablename__ = "fac_rejections"
    __table_args__ = (
        UniqueConstraint("file_pk"),
        CheckConstraint("marked >= 0", name="marked"),
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_pk: Mapped[int] = mapped_column(ForeignKey("fac_files.pk"))
    name: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    whole: Mapped[bool] = mapped_column(Boolean)  # no line named a record: all rejected
    marked: Mapped[int] = mapped_column(Integer)  # records marked rejected
    received_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsoleSessionRow(Base):
    """A signed-in operator of the back office: the session's ID is a random token held
    by the browser alone (its digest here), with the form token (CSRF) of the session."""

    __tablename__ = "console_sessions"
    __table_args__ = (UniqueConstraint("token_sha256"),)

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    operator: Mapped[str] = mapped_column(String(64))
    csrf: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    seen_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ConsoleEventRow(Base):
    """What happened in the back office: each login (failed ones count against the rate
    limit), logout and action, with who, from where, when and what changed."""

    __tablename__ = "console_events"
    __table_args__ = (
        Index("ix_console_events_login", "action", "at"),  # the rate limit's look-back
    )

    pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    operator: Mapped[str] = mapped_column(String(64))
    address: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    ok: Mapped[bool] = mapped_column(Boolean)
    detail: Mapped[str] = mapped_column(String(1000))
