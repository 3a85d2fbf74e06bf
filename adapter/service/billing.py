"""The three use cases: debt query, payment notice, invoice creation.

Each runs in one database transaction. A transaction refused by a unique
constraint (two workers storing the same notice or invoice at once) is run
again from the start; the second run sees the first one's row and answers
from it, so the database, not a Python check, decides who was first.
"""
from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from typing import Callable, TypeVar

from adapter.domain.model import (DebtAnswer, Invoice, Outcome, PaymentAnswer,
                                  PaymentNotice, business_day, judge_debt, judge_payment)
from adapter.storage.uow import Conflict, Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
CONFLICT_RETRIES = 5


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


def new_query_id() -> str:
    return uuid.uuid4().hex


def new_receipt_id(at: datetime) -> str:
    return f"{at:%Y%m%d}-{secrets.token_hex(6).upper()}"


class BillingService:
    def __init__(self, storage: Storage, clock: Callable[[], datetime] = _utcnow):
        self._storage = storage
        self._clock = clock

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for retry in range(CONFLICT_RETRIES):
            try:
                return attempt()
            except Conflict as conflict:
                log.info("transaction conflict, retrying (%d): %s", retry + 1, conflict)
        return attempt()

    def query_debt(self, biller_id: str, customer_id: str,
                   invoice_id: str | None = None) -> DebtAnswer:
        """What ``customer_id`` owes today; the query itself is stored."""
        today = business_day(self._clock())
        query_id = new_query_id()
        with self._storage.unit_of_work() as uow:
            invoices = uow.invoices.of_customer(biller_id, customer_id)
            outcome, open_invoices = judge_debt(invoices, today, invoice_id)
            uow.queries.add(query_id, biller_id, customer_id, invoice_id, outcome,
                            len(open_invoices))
            uow.commit()
        return DebtAnswer(outcome, query_id, open_invoices)

    def record_payment(self, notice: PaymentNotice) -> PaymentAnswer:
        """Store the notice durably (exactly once per operation ID), then answer."""
        return self._retrying(lambda: self._record_payment_once(notice))

    def _record_payment_once(self, notice: PaymentNotice) -> PaymentAnswer:
        with self._storage.unit_of_work() as uow:
            stored = uow.payments.by_operation(notice.operation_id)
            if stored is not None:
                first_notice, first_outcome, receipt_id = stored
                if first_notice.same_as(notice):
                    return PaymentAnswer(first_outcome, receipt_id)
                log.warning("operation %s received again with different data",
                            notice.operation_id)
                return PaymentAnswer(Outcome.OPERATION_CONFLICT, receipt_id)

            invoice = uow.invoices.get(notice.biller_id, notice.customer_id,
                                       notice.invoice_id, lock=True)
            outcome = judge_payment(notice, invoice)
            receipt_id = new_receipt_id(self._clock())
            applied = invoice if outcome is Outcome.OK else None
            uow.payments.add(notice, outcome, receipt_id, applied_to=applied)
            if applied is not None:
                uow.invoices.save(replace(applied, paid=True))
            uow.commit()
        if outcome is not Outcome.OK:
            log.warning("payment %s observed for reconciliation: %s",
                        notice.operation_id, outcome.name)
        return PaymentAnswer(outcome, receipt_id)

    def create_invoice(self, invoice: Invoice) -> Outcome:
        """Create an invoice, or replace it while unpaid; a resend changes nothing."""
        return self._retrying(lambda: self._create_invoice_once(invoice))

    def _create_invoice_once(self, invoice: Invoice) -> Outcome:
        if invoice.is_expired_on(business_day(self._clock())):
            return Outcome.EXPIRED
        with self._storage.unit_of_work() as uow:
            stored = uow.invoices.get(invoice.biller_id, invoice.customer_id,
                                      invoice.invoice_id, lock=True)
            if stored is not None and stored.paid:
                return Outcome.ALREADY_PAID
            if stored is not None and stored.same_terms_as(invoice):
                return Outcome.OK
            uow.invoices.save(invoice)
            uow.commit()
        return Outcome.OK
