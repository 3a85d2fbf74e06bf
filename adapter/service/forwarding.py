"""Forwarding stored payments, and their reversals, to the ERP, from the outbox,
until the ERP acknowledges.

A :class:`Forwarder` is the outbox loop of :mod:`adapter.service.outbox` (claims
with a lease, retries with backoff, a probe after an outage) over the ERP's outbox:
it posts each item to its biller's ERP. A forwarder killed mid-delivery leaves its
claim to expire; the payment is then delivered again, which the ERP absorbs (it
applies each operation ID once).

A reversal, or a person's application of an observed payment to an invoice (a
"resolution"), is claimed only once its payment's forward is settled
(:meth:`Forwards.claim_due`), so the ERP hears of it after the payment; if the
ERP rejected the payment, it is rejected too, without asking the ERP.
"""
from __future__ import annotations

from adapter.erp.connector import ErpDirectory
from adapter.errors import ErpRejected, ErpUnavailable
from adapter.service.outbox import Delivered, OutboxWorker
from adapter.storage.deliveries import ForwardTask
from adapter.storage.unit_of_work import Storage


class Forwarder(OutboxWorker):
    """Payments, reversals and resolutions to each biller's ERP."""

    receiver = "ERP"
    rejection = ErpRejected

    def __init__(self, storage: Storage, erps: ErpDirectory, **loop):
        super().__init__(storage, **loop)
        self._erps = erps

    def queue(self, uow):
        return uow.forwards

    def describe(self, task: ForwardTask) -> str:
        what = ("reversal of payment" if task.reversal is not None else
                "application of payment" if task.apply_to_invoice is not None else "payment")
        return f"{what} {task.notice.operation_id}"

    def send(self, task: ForwardTask) -> Delivered:
        notice = task.notice
        if task.payment_rejected:
            raise ErpRejected("its payment was rejected by the ERP: nothing to reverse")
        connector = self._erps.for_biller(notice.biller_id)
        if connector is None:
            raise ErpUnavailable(f"no ERP is configured for biller {notice.biller_id}")
        if task.reversal is not None:
            ack = connector.reverse_payment(task.reversal, task.reversal_id)
        elif task.apply_to_invoice is not None:
            ack = connector.apply_payment(notice, task.apply_to_invoice, task.receipt_id)
        else:
            ack = connector.post_payment(notice, task.receipt_id)
        return Delivered(ack.reference, ack.duplicate)
