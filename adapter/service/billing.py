"""The use cases: debt query, payment notice and its reversal, payment status,
invoice creation.

Each writes in one database transaction. A transaction refused by a unique
constraint (two workers storing the same notice or invoice at once) is run
again from the start; the second run sees the first one's row and answers
from it, so the database, not a Python check, decides who was first.

Where the biller has an ERP, debt and payments are looked up there too, each
call bounded by the ERP's timeout: a slow, down or faulting ERP costs at most
that, and the answer then comes from the database alone. A stored payment is
put in the outbox in the same transaction; forwarding it is
:mod:`adapter.service.forwarding`'s job.

A payment and its reversal may arrive in either order, at once, on different
workers: both transactions first take the operation's lock
(:meth:`UnitOfWork.lock_operation`), then look for each other. A reversal that
finds no payment is kept (answered 8); the notice that comes later finds it, is
stored, and is reversed in the same transaction if the reversal fits it.
"""
from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Callable, TypeVar

from adapter.batches import batched
from adapter.domain.billing_base import InvoiceKey, key_of
from adapter.domain.calendar import local_day
from adapter.domain.model import (DEFAULT_REVERSAL_CUTOFF_HOUR, DebtAnswer, Invoice, Outcome,
                                  PaymentAnswer, PaymentNotice, PaymentStatus, ReversalAnswer,
                                  ReversalNotice, ReversalState, judge_debt, judge_payment,
                                  judge_reversal, merge_invoices, utcnow)
from adapter.erp.connector import ErpConnector, ErpDirectory, ErpLookup
from adapter.errors import Conflict, ErpError
from adapter.storage.query_log import QueryLog, QueryRecord
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)

T = TypeVar("T")
CONFLICT_RETRIES = 5


def _storing(stored: Invoice | None, invoice: Invoice) -> str:
    """What storing ``invoice`` over the ``stored`` one does: created, replaced,
    unchanged (the same terms) or paid (a paid invoice is kept as it is)."""
    if stored is None:
        return "created"
    if stored.paid:
        return "paid"
    return "unchanged" if stored.same_terms_as(invoice) else "replaced"


def new_query_id() -> str:
    return uuid.uuid4().hex


def new_receipt_id(at: datetime) -> str:
    return f"{at:%Y%m%d}-{secrets.token_hex(6).upper()}"


def new_reversal_id(at: datetime) -> str:
    return f"{at:%Y%m%d}-A{secrets.token_hex(6).upper()}"


class BillingService:
    def __init__(self, storage: Storage, erps: ErpDirectory | None = None,
                 clock: Callable[[], datetime] = utcnow,
                 on_payment_stored: Callable[[], None] = lambda: None,
                 concurrency: int = 8, clock_skew: timedelta = timedelta(0),
                 query_log: QueryLog | None = None,
                 reversal_cutoff: Callable[[str], int] = lambda biller_id:
                 DEFAULT_REVERSAL_CUTOFF_HOUR,
                 publishes: Callable[[str], bool] = lambda biller_id: False,
                 on_invoice_published: Callable[[], None] = lambda: None):
        if clock_skew < timedelta(0):
            raise ValueError("clock_skew cannot be negative")
        self._storage = storage
        # where debt queries are recorded (see adapter.storage.query_log)
        self._query_log = query_log or QueryLog(storage.engine)
        self._erps = erps
        self._clock = clock
        # how far ahead of our clock a payment may be dated and still pay its invoice
        self._clock_skew = clock_skew
        self._on_payment_stored = on_payment_stored
        # a biller's reversal window: its payments' business day up to this hour
        self._reversal_cutoff = reversal_cutoff
        # whether a biller's invoices created online go to PMC's collection API
        self._publishes = publishes
        self._on_invoice_published = on_invoice_published
        # ERP calls run here, so that a late one can be abandoned at its deadline. An
        # abandoned call lingers until its own timeout: room for two per request thread.
        self._erp_calls = ThreadPoolExecutor(max_workers=2 * concurrency,
                                             thread_name_prefix="erp-lookup")

    def _retrying(self, attempt: Callable[[], T]) -> T:
        for retry in range(CONFLICT_RETRIES):
            try:
                return attempt()
            except Conflict as conflict:
                log.info("transaction conflict, retrying (%d): %s", retry + 1, conflict)
        return attempt()

    # -- the ERP, bounded ------------------------------------------------------------

    def _erp_of(self, biller_id: str) -> ErpConnector | None:
        return None if self._erps is None else self._erps.for_biller(biller_id)

    def _ask_erp(self, biller_id: str, customer_id: str) -> Future | None:
        connector = self._erp_of(biller_id)
        if connector is None:
            return None
        return self._erp_calls.submit(connector.customer_invoices, biller_id, customer_id)

    def _erp_answer(self, biller_id: str, asked: Future | None) -> ErpLookup | None:
        """The ERP's answer, or None when it has none within its timeout."""
        if asked is None:
            return None
        try:
            return asked.result(timeout=self._erp_of(biller_id).options.timeout)
        except FutureTimeout:
            log.warning("ERP of %s did not answer in time; answering from the database",
                        biller_id)
        except ErpError as error:
            log.warning("ERP of %s failed (%s); answering from the database", biller_id, error)
        except Exception:  # a connector bug must not cost PMC its answer
            log.exception("ERP connector of %s broke; answering from the database", biller_id)
        return None

    # -- ConsultarDeuda ----------------------------------------------------------------

    def query_debt(self, biller_id: str, customer_id: str,
                   invoice_id: str | None = None) -> DebtAnswer:
        """What ``customer_id`` owes today, from the database and the ERP at once;
        the query itself is recorded (committed with those of concurrent queries)."""
        asked_at = self._clock()
        query_id = new_query_id()
        asked = self._ask_erp(biller_id, customer_id)
        with self._storage.unit_of_work(read_only=True) as uow:
            stored = uow.invoices.of_customer(biller_id, customer_id)
        erp = self._erp_answer(biller_id, asked)
        invoices = merge_invoices(stored, list(erp.invoices) if erp else [])
        outcome, open_invoices = judge_debt(invoices, local_day(asked_at), invoice_id,
                                            customer_known=bool(erp and erp.customer_known))
        self._query_log.record(QueryRecord(query_id, biller_id, customer_id, invoice_id,
                                           int(outcome), len(open_invoices), asked_at))
        return DebtAnswer(outcome, query_id, open_invoices)

    # -- InformarPago ------------------------------------------------------------------

    def record_payment(self, notice: PaymentNotice) -> PaymentAnswer:
        """Store the notice durably (exactly once per biller and operation ID), then
        answer."""
        erp = None
        if self._erp_of(notice.biller_id) is not None:
            # a replay is answered without asking the ERP (and the ERP's answer may
            # be late): looked up first, and again in the transaction that stores
            with self._storage.unit_of_work(read_only=True) as uow:
                replayed = self._replay_answer(uow, notice)
            if replayed is not None:
                return replayed
            erp = self._erp_answer(notice.biller_id,
                                   self._ask_erp(notice.biller_id, notice.customer_id))
        from_erp = next((inv for inv in (erp.invoices if erp else ())
                         if inv.invoice_id == notice.invoice_id), None)
        answer = self._retrying(lambda: self._record_payment_once(notice, from_erp))
        if self._erp_of(notice.biller_id) is not None:
            self._on_payment_stored()
        return answer

    @staticmethod
    def _replay_answer(uow, notice: PaymentNotice) -> PaymentAnswer | None:
        # Operation IDs are PMC's per biller: only this biller's notice can be replayed
        # (or contradicted) here, so no answer ever carries another biller's receipt.
        stored = uow.payments.status(notice.biller_id, notice.operation_id)
        if stored.notice is None:
            return None
        if stored.notice.same_as(notice):
            return PaymentAnswer(stored.notice_outcome, stored.receipt_id)
        log.warning("operation %s of biller %s received again with different data",
                    notice.operation_id, notice.biller_id)
        return PaymentAnswer(Outcome.OPERATION_CONFLICT, stored.receipt_id)

    def _record_payment_once(self, notice: PaymentNotice,
                             from_erp: Invoice | None) -> PaymentAnswer:
        with self._storage.unit_of_work() as uow:
            uow.lock_operation(notice.biller_id, notice.operation_id)
            before = uow.precedents(notice)
            replayed = self._replay_answer(uow, notice) if before.stored else None
            if replayed is not None:
                return replayed
            twin = before.twin_pk
            if twin is not None:  # already recorded from the report: applied once, by it
                receipt_id = new_receipt_id(self._clock())
                uow.payments.add(notice, Outcome.OK, receipt_id, None, covered_by_pk=twin)
                uow.commit()
                log.warning("payment %s of biller %s came after the report's line, recorded "
                            "then: not applied again", notice.operation_id, notice.biller_id)
                return PaymentAnswer(Outcome.OK, receipt_id)
            stored = uow.invoices.get(notice.biller_id, notice.customer_id,
                                      notice.invoice_id, lock=True)
            candidates = merge_invoices([stored] if stored else [],
                                        [from_erp] if from_erp else [])
            invoice = candidates[0] if candidates else None
            now = self._clock()
            outcome = judge_payment(notice, invoice, now=now, skew=self._clock_skew)
            # a reversal that came first: judged as it would have been on arrival
            early = uow.reversals.get(notice.biller_id, notice.operation_id) \
                if before.pending_reversal else None
            reversal_outcome = None
            if early is not None and early.state is ReversalState.PENDING:
                reversal_outcome = judge_reversal(
                    early.reversal, notice, received_at=early.received_at,
                    cutoff_hour=self._reversal_cutoff(notice.biller_id))
            reversed_now = reversal_outcome is Outcome.OK
            receipt_id = new_receipt_id(now)
            applied_pk = None
            if outcome is Outcome.OK and reversed_now:
                pass  # the invoice it would pay stays payable
            elif outcome is Outcome.OK and from_erp is None:  # the stored one, as it is
                applied_pk = uow.invoices.mark_paid(notice.biller_id, notice.customer_id,
                                                    notice.invoice_id)
            elif outcome is Outcome.OK:  # with the ERP's terms, the current truth
                applied_pk = uow.invoices.save(replace(invoice, paid=True))
            payment_pk = uow.payments.add(notice, outcome, receipt_id, applied_pk,
                                          reversed_=reversed_now)
            if reversal_outcome is not None:
                uow.reversals.settle(notice.biller_id, notice.operation_id,
                                     payment_pk=payment_pk if reversed_now else None,
                                     refusal=None if reversed_now else reversal_outcome)
            if self._erp_of(notice.biller_id) is not None:
                uow.forwards.enqueue(payment_pk)
                if reversed_now:
                    uow.forwards.enqueue(payment_pk, "reversal")
            uow.commit()
        if reversal_outcome is not None:
            log.warning("payment %s of biller %s arrived after its reversal: %s",
                        notice.operation_id, notice.biller_id,
                        "reversed" if reversed_now else f"reversal refused ({reversal_outcome.name})")
        if outcome is not Outcome.OK:
            log.warning("payment %s of biller %s observed for reconciliation: %s",
                        notice.operation_id, notice.biller_id, outcome.name)
        return PaymentAnswer(outcome, receipt_id)

    # -- AnularPago --------------------------------------------------------------------

    def reverse_payment(self, reversal: ReversalNotice) -> ReversalAnswer:
        """Reverse the payment ``reversal`` names (stored durably, exactly once per biller
        and operation ID, before the answer), or keep it until that payment arrives."""
        answer = self._retrying(lambda: self._reverse_payment_once(reversal))
        if answer.outcome is Outcome.OK and self._erp_of(reversal.biller_id) is not None:
            self._on_payment_stored()
        return answer

    def _reverse_payment_once(self, reversal: ReversalNotice) -> ReversalAnswer:
        with self._storage.unit_of_work() as uow:
            uow.lock_operation(reversal.biller_id, reversal.operation_id)
            stored = uow.reversals.get(reversal.biller_id, reversal.operation_id)
            if stored is not None and stored.reversal.same_as(reversal):
                return ReversalAnswer(stored.outcome, stored.reversal_id)
            if stored is not None:
                log.warning("reversal of operation %s of biller %s received again with "
                            "different data", reversal.operation_id, reversal.biller_id)
                return ReversalAnswer(Outcome.OPERATION_CONFLICT, stored.reversal_id)
            payment = uow.payments.status(reversal.biller_id, reversal.operation_id)
            now = self._clock()
            outcome = judge_reversal(reversal, payment.notice, received_at=now,
                                     cutoff_hour=self._reversal_cutoff(reversal.biller_id))
            if outcome not in (Outcome.OK, Outcome.PAYMENT_UNKNOWN):
                log.warning("reversal of operation %s of biller %s refused: %s",
                            reversal.operation_id, reversal.biller_id, outcome.name)
                return ReversalAnswer(outcome)  # nothing stored, nothing changed
            reversal_id = new_reversal_id(now)
            payment_pk = None
            if outcome is Outcome.OK:
                payment_pk = uow.payments.reverse(reversal.biller_id, reversal.operation_id)
                if self._erp_of(reversal.biller_id) is not None:
                    uow.forwards.enqueue(payment_pk, "reversal")
            uow.reversals.add(reversal, reversal_id, outcome, now, payment_pk)
            uow.commit()
        if outcome is Outcome.PAYMENT_UNKNOWN:
            log.warning("reversal of operation %s of biller %s came before its payment: "
                        "kept until the payment arrives", reversal.operation_id,
                        reversal.biller_id)
        return ReversalAnswer(outcome, reversal_id)

    # -- ConsultarPago -----------------------------------------------------------------

    def payment_status(self, biller_id: str, operation_id: str) -> PaymentStatus:
        """What became of the notice of this operation: the database alone, no writes."""
        with self._storage.unit_of_work(read_only=True) as uow:
            return uow.payments.status(biller_id, operation_id)

    # -- AltaFactura -------------------------------------------------------------------

    def create_invoice(self, invoice: Invoice) -> Outcome:
        """Create an invoice, or replace it while unpaid; a resend changes nothing."""
        return self._retrying(lambda: self._create_invoice_once(invoice))

    def _create_invoice_once(self, invoice: Invoice) -> Outcome:
        """A new or changed invoice goes to PMC's API (where the biller has one) in the
        same transaction: through the outbox, the answer does not wait for PMC."""
        if invoice.is_expired_on(local_day(self._clock())):
            return Outcome.EXPIRED
        publishes = self._publishes(invoice.biller_id)
        with self._storage.unit_of_work() as uow:
            stored, invoice_pk = self._store_invoice(uow, invoice)
            published = publishes and stored in ("created", "replaced")
            if published:
                uow.pmc_deliveries.enqueue(invoice.biller_id, invoice_pk, "add")
            uow.commit()
        if published:
            self._on_invoice_published()
        return Outcome.ALREADY_PAID if stored == "paid" else Outcome.OK

    @staticmethod
    def _store_invoice(uow, invoice: Invoice) -> tuple[str, int | None]:
        """Create or replace ``invoice``, unless it is paid or stored just so already;
        says which (created, replaced, unchanged or paid), with the key it is stored
        under when it was written."""
        stored = uow.invoices.get(invoice.biller_id, invoice.customer_id, invoice.invoice_id,
                                  lock=True)
        verdict = _storing(stored, invoice)
        if verdict not in ("created", "replaced"):
            return verdict, None
        return verdict, uow.invoices.save(invoice)

    # -- the billing base (FAC file) ------------------------------------------------------

    def import_billing_base(self, read: Callable[[], Iterable[Invoice]],
                            batch: int = 500) -> dict[str, int]:
        """Store the invoices of a billing base file in one transaction; paid invoices
        are kept as they are. Returns how many were created, replaced, unchanged, paid.

        ``read`` gives the invoices afresh for each attempt (a file streamed again: what
        one transaction stores is what that reading checked), one at a time (a base of a
        million invoices is stored with flat memory); an error it raises, however late
        (a file's trailer is checked at its end), rolls the whole import back. They are
        looked up and written ``batch`` at a time (three statements a batch, not three an
        invoice); an invoice the file names twice ends as its last record says."""
        def attempt() -> dict[str, int]:
            counts = dict.fromkeys(("created", "replaced", "unchanged", "paid"), 0)
            with self._storage.unit_of_work() as uow:
                for chunk in batched(read(), batch):  # PMC has the base: nothing to publish
                    self._store_batch(uow, chunk, counts)
                uow.commit()
            return counts
        return self._retrying(attempt)

    @staticmethod
    def _store_batch(uow, invoices: tuple[Invoice, ...], counts: dict[str, int]) -> None:
        """As :meth:`_store_invoice` for each, in file order, in three statements."""
        stored = uow.invoices.of_keys(list(dict.fromkeys(map(key_of, invoices))), lock=True)
        existed = set(stored)
        written: dict[InvoiceKey, Invoice] = {}
        for invoice in invoices:
            key = key_of(invoice)
            verdict = _storing(stored.get(key), invoice)
            counts[verdict] += 1
            if verdict in ("created", "replaced"):
                stored[key] = written[key] = invoice
        uow.invoices.write_many([inv for k, inv in written.items() if k not in existed],
                                [inv for k, inv in written.items() if k in existed])
