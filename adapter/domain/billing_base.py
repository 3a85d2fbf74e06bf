"""The billing base the biller sends the network: which day a file counts for, its name,
and what goes in it (the "novedades": only what changed since the last file sent).

Pure rules, no files and no database: :mod:`adapter.files.fac` writes the records, the service
layer keeps what was sent.
"""
from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time

from adapter.domain.calendar import BUSINESS_TZ, is_business_day, local_day, next_business_day
from adapter.domain.model import Invoice

DEFAULT_CUTOFF = time(14, 30)  # the network's FAQ: a file sent before 14:30 counts that day
DEFAULT_MAX_FILES_PER_DAY = 10  # the public WHMCS module stops at 10 a day

InvoiceKey = tuple[str, str, str]  # biller, customer, invoice


def file_day(moment: datetime, cutoff: time = DEFAULT_CUTOFF) -> date:
    """The business day a file sent at ``moment`` counts for, in Buenos Aires time: that
    day before the cut-off on a business day, else the next business day."""
    day = local_day(moment)
    local = moment.astimezone(BUSINESS_TZ).time().replace(tzinfo=None)
    if is_business_day(day) and local < cutoff:
        return day
    return next_business_day(day)


def file_name(biller_id: str, day: date, attempt: int) -> str:
    """``FACnnnn.DDMMAA.N``: ``N`` the day's attempt, from 1."""
    if attempt < 1:
        raise ValueError(f"a file's attempt counts from 1, not {attempt}")
    return f"FAC{biller_id}.{day:%d%m%y}.{attempt}"


def key_of(invoice: Invoice) -> InvoiceKey:
    return invoice.biller_id, invoice.customer_id, invoice.invoice_id


def fingerprint(record: str) -> str:
    """What was sent of an invoice: the digest of its FAC detail record (a change in
    anything the network reads of it -- amounts, due dates, currency, messages -- is a
    change)."""
    return hashlib.sha256(record.encode("latin-1")).hexdigest()


@dataclass(frozen=True)
class Novelty:
    invoice: Invoice
    fingerprint: str
    new: bool  # never sent before (else: changed since it was)


def novelties(candidates: Iterable[tuple[Invoice, str]], sent: Mapping[InvoiceKey, str],
              day: date) -> list[Novelty]:
    """What a file for ``day`` carries, of ``candidates`` (each invoice with its record's
    :func:`fingerprint`), given the fingerprints of what was last sent (less what came
    back rejected): the invoices never sent and those whose record changed. Nothing
    unchanged is sent again; a paid invoice, or one whose last due date is before
    ``day``, is not sent. An invoice named twice is an error (two sources disagree on
    what it is: the caller decides which one wins before this)."""
    chosen: list[Novelty] = []
    seen: set[InvoiceKey] = set()
    for invoice, printed in candidates:
        key = key_of(invoice)
        if key in seen:
            raise ValueError(f"invoice {invoice.invoice_id} of client {invoice.customer_id} "
                             "is named twice")
        seen.add(key)
        if invoice.paid or invoice.is_expired_on(day):
            continue
        before = sent.get(key)
        if before == printed:
            continue
        chosen.append(Novelty(invoice, printed, before is None))
    return chosen
