"""Observed payments: the notices answered 3-6 or 11, and the report lines that could
not be applied, wait for a person. A person applies one to an invoice, or dismisses
it; the decision is kept (who, when, why) and made once: the decisions' unique key
refuses a second one, whoever comes second.

Applying one to an invoice marks that invoice paid (it must be open, of the same
biller and currency, and the payment's amount one of its due-date amounts) and,
with an ERP, tells it through the outbox to apply the payment -- which it already
received, as unapplied -- to that invoice; an invoice that was sent to PMC's
collection API is withdrawn from it (remove_invoice), through its outbox.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from adapter.domain.model import utcnow
from adapter.errors import ClientError, Conflict
from adapter.storage.payments import ObservedPayment
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)


class DecisionRefused(ClientError):
    fault_code = "Client.DecisionRefused"


@dataclass(frozen=True)
class Decision:
    receipt_id: str
    operation_id: str
    action: str  # applied, dismissed
    invoice_id: str | None


class ObservedPayments:
    def __init__(self, storage: Storage, *, erp_configured: Callable[[str], bool],
                 clock: Callable[[], datetime] = utcnow):
        self._storage = storage
        self._erp_configured = erp_configured
        self._clock = clock

    def waiting(self, biller_id: str | None = None) -> list[ObservedPayment]:
        with self._storage.unit_of_work(read_only=True) as uow:
            return uow.payments.observed(biller_id)

    def apply(self, receipt_id: str, invoice_id: str, *, operator: str, reason: str,
              customer_id: str | None = None) -> Decision:
        """Apply the observed payment with this receipt ID to an invoice of its biller (of
        its client, unless ``customer_id`` names another)."""
        return self._decide(receipt_id, operator, reason, (invoice_id, customer_id))

    def dismiss(self, receipt_id: str, *, operator: str, reason: str) -> Decision:
        return self._decide(receipt_id, operator, reason, None)

    def _decide(self, receipt_id: str, operator: str, reason: str,
                target: tuple[str, str | None] | None) -> Decision:
        if not operator.strip():
            raise DecisionRefused("say who decides (--operator)")
        if not reason.strip():
            raise DecisionRefused("say why (--reason)")
        try:
            with self._storage.unit_of_work() as uow:
                payment = uow.payments.by_receipt(receipt_id, lock=True)
                if payment is None:
                    raise DecisionRefused(f"no payment with receipt {receipt_id}")
                if payment.status != "observed":
                    raise DecisionRefused(self._why_not(uow, payment))
                invoice_pk = invoice_id = None
                if target is not None:
                    invoice_id, customer_id = target
                    invoice_pk = self._invoice_for(uow, payment, invoice_id,
                                                   customer_id or payment.customer_id)
                uow.payments.decide(payment.pk, invoice_pk=invoice_pk, operator=operator,
                                    reason=reason, at=self._clock())
                if invoice_pk is not None and self._erp_configured(payment.biller_id):
                    uow.forwards.enqueue(payment.pk, "resolution")
                if invoice_pk is not None and uow.pmc_deliveries.was_added(invoice_pk):
                    # paid here: PMC, which has it, must not collect it again
                    uow.pmc_deliveries.enqueue(payment.biller_id, invoice_pk, "remove")
                uow.commit()
        except Conflict:  # someone decided at the same moment
            with self._storage.unit_of_work(read_only=True) as uow:
                raise DecisionRefused(self._why_not(
                    uow, uow.payments.by_receipt(receipt_id))) from None
        action = "applied" if invoice_pk else "dismissed"
        log.warning("observed payment %s (receipt %s) %s by %s: %s", payment.operation_id,
                    receipt_id, f"applied to {invoice_id}" if invoice_pk else "dismissed",
                    operator, reason)
        return Decision(receipt_id, payment.operation_id, action, invoice_id)

    @staticmethod
    def _why_not(uow, payment) -> str:
        decision = uow.payments.decision(payment.pk)
        if decision is None:
            return f"payment {payment.receipt_id} is not observed (it is {payment.status})"
        return (f"payment {payment.receipt_id} was already {decision.action} by "
                f"{decision.operator} at {decision.decided_at:%Y-%m-%d %H:%M:%S} UTC: "
                f"{decision.reason}")

    @staticmethod
    def _invoice_for(uow, payment, invoice_id: str, customer_id: str) -> int:
        found = uow.invoices.keyed(payment.biller_id, customer_id, invoice_id, lock=True)
        if found is None:
            raise DecisionRefused(f"no invoice {invoice_id} of client {customer_id} "
                                  f"(biller {payment.biller_id})")
        invoice_pk, invoice = found
        if invoice.paid:
            raise DecisionRefused(f"invoice {invoice_id} is paid already")
        if invoice.currency.value != payment.currency:
            raise DecisionRefused(f"invoice {invoice_id} is in {invoice.currency.value}, the "
                                  f"payment in {payment.currency}")
        if payment.amount not in {due.amount for due in invoice.due_dates}:
            raise DecisionRefused(
                f"the payment's {payment.amount} is none of invoice {invoice_id}'s amounts ("
                + ", ".join(str(due.amount) for due in invoice.due_dates) + ")")
        return invoice_pk
