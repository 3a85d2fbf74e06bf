"""The two outboxes' repositories: payments to the ERP (forwards), invoices to PMC's
collection API (PMC deliveries), on the queue both share (:mod:`.outbox`)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, exists, select
from sqlalchemy.orm import aliased

from adapter.domain.model import Invoice, PaymentNotice, ReversalNotice, utcnow
from adapter.storage.orm import (DecisionRow, ForwardRow, InvoiceRow, PaymentRow, PmcDeliveryRow,
                                 ReversalRow)
from adapter.storage.outbox import OutboxQueue
from adapter.storage.statements import ADD_FORWARD, ADD_PMC_DELIVERY
from adapter.storage.invoices import invoice_from_row
from adapter.storage.payments import notice_from_row
from adapter.storage.reversals import reversal_from_row


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
        self._tx.execute(ADD_FORWARD, dict(
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
        return [ForwardTask(forward.pk, notice_from_row(payment), payment.receipt_id,
                            forward.attempts,
                            None if reversal is None else reversal_from_row(reversal),
                            None if reversal is None else reversal.reversal_id,
                            payment_status == "rejected", apply_to)
                for forward, payment, reversal, payment_status, apply_to in rows]

    def listing(self, status: str | None = None, limit: int = 1000) -> list[ForwardState]:
        stmt = (select(ForwardRow, PaymentRow)
                .join(PaymentRow, PaymentRow.pk == ForwardRow.payment_pk)
                .order_by(ForwardRow.pk.desc()).limit(limit))
        if status is not None:
            stmt = stmt.where(self._in_state(status))
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
        self._tx.execute(ADD_PMC_DELIVERY, dict(
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
                        invoice_from_row(invoice), delivery.attempts)
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
            stmt = stmt.where(self._in_state(status))
        return [PmcDeliveryState(row.biller_id, customer_id, invoice_id, row.kind, row.status,
                                 row.attempts, row.next_attempt_at, row.last_error,
                                 row.reference, row.delivered_at, row.claimed_by)
                for row, customer_id, invoice_id in self._tx.session.execute(stmt)]
