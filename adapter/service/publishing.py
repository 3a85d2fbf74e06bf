"""Publishing invoices created online to PMC's collection API, from its outbox, until
PMC acknowledges.

An invoice created or replaced by ``AltaFactura``, for a biller with
``pmc_api_url``, is put in the outbox in the same transaction ('add'); one that a
person settles by applying an observed payment to it, once it was added, leaves PMC
('remove': it is paid, PMC must not collect it again). The :class:`Publisher` is the
outbox loop of :mod:`adapter.service.outbox` over that outbox: one invoice's items go
in the order they were written (an add before its remove), and an add sends the
invoice as it is when delivered (a replacement is never overtaken by the invoice it
replaced). PMC replaces an invoice added twice, so a delivery repeated after a crash
changes nothing.
"""
from __future__ import annotations

from adapter.errors import PmcRejected, PmcUnavailable
from adapter.pmc.client import PmcDirectory
from adapter.service.outbox import Delivered, OutboxWorker
from adapter.storage.deliveries import PmcTask
from adapter.storage.unit_of_work import Storage


class Publisher(OutboxWorker):
    receiver = "PMC API"
    rejection = PmcRejected

    def __init__(self, storage: Storage, apis: PmcDirectory, **loop):
        super().__init__(storage, **loop)
        self._apis = apis

    def queue(self, uow):
        return uow.pmc_deliveries

    def describe(self, task: PmcTask) -> str:
        invoice = task.invoice
        return (f"{'removal' if task.kind == 'remove' else 'invoice'} {invoice.invoice_id} "
                f"of client {invoice.customer_id} (biller {invoice.biller_id})")

    def send(self, task: PmcTask) -> Delivered:
        api = self._apis.for_biller(task.biller_id)
        if api is None:
            raise PmcUnavailable(f"no PMC API is configured for biller {task.biller_id}")
        if task.kind == "remove":
            return Delivered(api.remove_invoice(task.invoice))
        return Delivered(api.add_invoice(task.invoice))
