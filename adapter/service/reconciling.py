"""Closing a day: the report's lines against the notices (see
:mod:`adapter.domain.reconciliation` for the states).

A line no notice came for is money the network collected: the adapter records
it as a payment (origin "report", operation ID ``COB:<line>``), applies it to
its invoice when the invoice is open and the amount is the one due that day
(otherwise it is observed, like a notice answered 3-6), and forwards it to the
ERP through the outbox -- once: the line's key is unique among payments, and a
notice arriving later for the same payment is stored as *covered* by it, not
applied again (:meth:`BillingService.record_payment`).

Running it again, after a late notice or a re-issued report, moves items between
states and records nothing twice.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Callable

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import Currency, Outcome, PaymentNotice, judge_payment, utcnow
from adapter.domain.reconciliation import DAY_SLACK, Item, ReportedPayment, State, pair
from adapter.errors import Conflict
from adapter.service.billing import new_receipt_id
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)


def reported_operation_id(line_key: int) -> str:
    """The operation ID of a payment recorded from report line ``line_key``."""
    return f"COB:{line_key}"


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=BUSINESS_TZ)


@dataclass(frozen=True)
class DayClose:
    biller_id: str
    first: date
    last: date
    items: tuple[Item, ...]
    recorded: int  # payments recorded from the report in this run

    @property
    def needs_attention(self) -> list[Item]:
        return [item for item in self.items if item.state.needs_attention]


class Reconciler:
    def __init__(self, storage: Storage, *, erp_configured: Callable[[str], bool],
                 on_payment_stored: Callable[[], None] = lambda: None,
                 clock: Callable[[], datetime] = utcnow):
        self._storage = storage
        self._erp_configured = erp_configured
        self._on_payment_stored = on_payment_stored
        self._clock = clock

    def billers(self) -> list[str]:
        with self._storage.unit_of_work(read_only=True) as uow:
            return uow.reports.billers()

    def close(self, biller_id: str, first: date, last: date) -> DayClose:
        """Reconcile the payments made from ``first`` to ``last`` (business days in
        Buenos Aires), recording the payments only the report knows of."""
        recorded = 0
        for item in self._pair(biller_id, first, last):
            if item.state is State.REPORTED_ONLY and item.line.recorded_as is None:
                recorded += self._record(biller_id, item.line)
        if recorded:
            self._on_payment_stored()
        items = tuple(item for item in self._pair(biller_id, first, last)
                      if first <= item.day <= last)
        return DayClose(biller_id, first, last, items, recorded)

    def preview(self, biller_id: str, first: date, last: date) -> list[Item]:
        """The items of those days as they stand, nothing recorded (what a page shows):
        those needing attention first."""
        items = [item for item in self._pair(biller_id, first, last)
                 if first <= item.day <= last]
        return sorted(items, key=lambda item: (not item.state.needs_attention, item.day))

    def _pair(self, biller_id: str, first: date, last: date) -> list[Item]:
        # the days around too: a pair across midnight is found whichever day is asked
        wider_first, wider_last = first - DAY_SLACK, last + DAY_SLACK
        with self._storage.unit_of_work(read_only=True) as uow:
            lines = uow.reports.lines_between(biller_id, wider_first, wider_last)
            notices = uow.payments.notices_between(
                biller_id, _midnight(wider_first), _midnight(wider_last + timedelta(days=1)))
            last_report = uow.reports.last_report_day(biller_id)
        # a report covers payments of days before its own date
        reported = set() if last_report is None else {
            wider_first + timedelta(days=n)
            for n in range((min(wider_last, last_report - timedelta(days=1))
                            - wider_first).days + 1)}
        return pair(lines, notices, reported)

    def _record(self, biller_id: str, line: ReportedPayment) -> int:
        """Record the payment of a line no notice came for; 1 if this run did."""
        operation_id = reported_operation_id(line.key)
        notice = PaymentNotice(biller_id, operation_id, line.customer_id, line.invoice_id,
                               line.amount, Currency.ARS, _midnight(line.paid_on),
                               channel=line.channel)
        for attempt in range(2):
            try:
                with self._storage.unit_of_work() as uow:
                    uow.lock_operation(biller_id, operation_id)
                    if uow.payments.status(biller_id, operation_id).notice is not None:
                        return 0  # another run recorded it meanwhile
                    invoice = uow.invoices.get(biller_id, line.customer_id, line.invoice_id,
                                               lock=True)
                    now = self._clock()
                    outcome = judge_payment(notice, invoice, now=now)
                    applied_pk = None
                    if outcome is Outcome.OK:
                        applied_pk = uow.invoices.mark_paid(biller_id, line.customer_id,
                                                            line.invoice_id)
                    payment_pk = uow.payments.add(notice, outcome, new_receipt_id(now),
                                                  applied_pk, report_line_pk=line.key)
                    if self._erp_configured(biller_id):
                        uow.forwards.enqueue(payment_pk)
                    uow.commit()
            except Conflict:
                if attempt:
                    raise
                continue
            log.warning("payment of %s %s (report line %d, %s %s) recorded from the report: "
                        "%s", line.customer_id, line.invoice_id, line.key, line.channel,
                        line.control, "applied" if outcome is Outcome.OK else outcome.name)
            return 1
        return 0
