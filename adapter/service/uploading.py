"""Sending the billing base: the next FAC file of a biller, built from its invoices (only
what changed since the last file sent), uploaded to the network's FTPS account, and the
rejection files the network leaves for the files sent, brought back.

The invoices a file may carry come from two sources: the invoices created online
(AltaFactura, stored here, unpaid) and the biller's own invoice list (the CSV its ERP
exports). An invoice in both is the list's, the ERP's current truth, as a debt query
merges them (:func:`adapter.domain.model.merge_invoices`); an invoice paid here is not
sent whatever the list says.

One run at a time sends a biller's file: the run claims the file's name in the database
(a unique index refuses a second claim) under a lease it renews while it builds and
uploads; a run killed half-way leaves its claim to expire, and its file is then taken as
failed (its invoices go into the next one, and its name is never used again). A file is
marked sent only once the server holds it whole under its name; a failed upload leaves
its invoices to the next run.

Rejection files: their layout is not public. This product's reading: a line that is a
FAC detail record (``5``, the client ID in 2-20 and the invoice ID in 21-40) names a
rejected invoice of that file, its reason whatever follows the record's 280 characters;
a file none of whose lines names an invoice of the file sent rejects it whole. An
invoice rejected with a reason waits for a correction (a change in its record) before it
is sent again; one rejected without a reason (a file rejected whole) goes into the next
file as it is.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from adapter.batches import batched
from adapter.domain.billing_base import (DEFAULT_CUTOFF, DEFAULT_MAX_FILES_PER_DAY, Novelty,
                                         file_day, file_name, fingerprint, key_of, novelties)
from adapter.domain.calendar import business_days_back, local_day
from adapter.domain.model import Invoice, Origin, utcnow
from adapter.errors import AdapterError, Conflict
from adapter.files import fac
from adapter.storage.fac_files import Busy, Claimed, LimitReached
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)

BATCH = 500
LEASE = timedelta(minutes=2)  # renewed at least every RENEW while a run works
RENEW = timedelta(seconds=30)
REJECTION_DAYS = 5  # business days back a file's rejection file is looked for
REJECTION_LIMIT = 64 * 1024 * 1024  # bytes a rejection file may have
CLAIM_LOST = "this run's claim on the file expired (another run took it as failed): nothing sent"


class Account(Protocol):
    """The biller's account on the network's FTPS server (adapter.files.ftps.Account)."""

    def upload(self, path: Path, name: str, progress: Callable[[int], None]) -> None: ...

    def fetch(self, names: Iterable[str], limit: int) -> dict[str, bytes]: ...


class UploadError(AdapterError):
    """The file could not be built (a source refused) or sent; nothing was sent."""


@dataclass(frozen=True)
class Upload:
    """What a run did: ``state`` is sent, built (``--output``: written, not sent), nothing
    (no novelty), busy (another run is sending) or limit (the day's files are used)."""

    biller_id: str
    day: date
    state: str
    name: str | None = None
    records: int = 0
    new: int = 0
    total: Decimal = Decimal("0.00")
    path: Path | None = None
    since: datetime | None = None  # busy: when the other run started
    files: int = 0  # limit: the day's files


@dataclass(frozen=True)
class Rejection:
    file: str  # the file sent
    name: str  # its rejection file
    marked: int
    whole: bool
    ignored: int  # lines naming invoices the file did not carry


class _Lease:
    """The claim's lease, renewed when due (each renewal its own short transaction)."""

    def __init__(self, storage: Storage, pk: int, clock: Callable[[], datetime]):
        self._storage, self._pk, self._clock = storage, pk, clock
        self._renewed = clock()

    def renew(self, force: bool = False) -> None:
        now = self._clock()
        if not force and now - self._renewed < RENEW:
            return
        with self._storage.unit_of_work() as uow:
            if not uow.fac_files.renew(self._pk, now + LEASE):
                raise UploadError(CLAIM_LOST)
            uow.commit()
        self._renewed = now


class BillingBaseUploads:
    def __init__(self, storage: Storage, clock: Callable[[], datetime] = utcnow,
                 cutoff: time = DEFAULT_CUTOFF,
                 max_files_per_day: int = DEFAULT_MAX_FILES_PER_DAY):
        self._storage = storage
        self._clock = clock
        self._cutoff = cutoff
        self._max_files = max_files_per_day

    # -- the next file -------------------------------------------------------------------

    def upload(self, biller_id: str, account: Account | None,
               invoices: Callable[[], Iterable[Invoice]] | None = None,
               at: datetime | None = None, output: Path | None = None) -> Upload:
        """Build the biller's next file, for the day a file sent at ``at`` (default: now)
        counts for, from the invoices created online and ``invoices`` (the biller's list,
        read once), and upload it to ``account`` -- or, with ``output``, write it in that
        folder and send nothing. Raises :class:`UploadError` (nothing sent) when a source
        is refused or the upload fails."""
        now = self._clock()
        moment = at or now
        day = file_day(moment, self._cutoff)
        claim = self._claim(biller_id, day, now)
        if not isinstance(claim, Claimed):
            if isinstance(claim, Busy):
                return Upload(biller_id, day, "busy", claim.name, since=claim.started_at)
            return Upload(biller_id, day, "limit", files=claim.files)
        lease = _Lease(self._storage, claim.pk, self._clock)
        handle, temporary = tempfile.mkstemp(dir=output, prefix=f".{claim.name}.",
                                             suffix=".part")
        uploading = False  # from then on the name may be on the server: never used again
        try:
            with open(handle, "wb") as out:
                built = self._build(claim, biller_id, day, invoices, lease, out)
                out.flush()
                os.fsync(out.fileno())
            records, new, total, digest = built
            if records == 0:
                self._forget(claim.pk)
                return Upload(biller_id, day, "nothing")
            if output is not None:
                path = Path(output) / claim.name
                os.replace(temporary, path)
                self._forget(claim.pk)  # built, not sent: what it carries is still to send
                return Upload(biller_id, day, "built", claim.name, records, new, total, path)
            if account is None:
                raise UploadError(f"no FTPS account (cob_ftp_host) for biller {biller_id}")
            lease.renew(force=True)
            uploading = True
            account.upload(Path(temporary), claim.name, lambda sent: lease.renew())
            with self._storage.unit_of_work() as uow:
                finished = uow.fac_files.finish(claim.pk, records, total, digest, self._clock())
                uow.commit()
            if not finished:
                log.error("%s was uploaded after this run's claim expired: its invoices go "
                          "again in the next file", claim.name)
            return Upload(biller_id, day, "sent", claim.name, records, new, total)
        except BaseException as error:
            if uploading:
                self._fail(claim.pk, error)
            else:
                self._forget_quietly(claim.pk)
            if isinstance(error, (AdapterError, ValueError)) and \
                    not isinstance(error, UploadError):
                raise UploadError(f"{claim.name} not sent: {error}") from error
            raise
        finally:
            Path(temporary).unlink(missing_ok=True)

    def _claim(self, biller_id: str, day: date, now: datetime) -> Claimed | Busy | LimitReached:
        def attempt():
            with self._storage.unit_of_work() as uow:
                claim = uow.fac_files.claim(biller_id, day,
                                            lambda n: file_name(biller_id, day, n),
                                            self._max_files, now, now + LEASE)
                uow.commit()
            return claim
        try:
            return attempt()
        except Conflict:  # another run claimed at the same moment: it goes, this one sees it
            return attempt()

    def _forget(self, pk: int) -> None:
        with self._storage.unit_of_work() as uow:
            uow.fac_files.discard(pk)
            uow.commit()

    def _forget_quietly(self, pk: int) -> None:
        try:
            self._forget(pk)
        except Exception:  # the claim then expires: the next run takes it as failed
            log.exception("could not forget file %d", pk)

    def _fail(self, pk: int, error: BaseException) -> None:
        try:
            with self._storage.unit_of_work() as uow:
                uow.fac_files.fail(pk, f"{error.__class__.__name__}: {error}")
                uow.commit()
        except Exception:  # the claim then expires: the next run takes it as failed
            log.exception("could not record file %d as failed", pk)

    def _candidates(self, biller_id: str,
                    invoices: Iterable[Invoice] | None) -> Iterator[tuple[Invoice, ...]]:
        """Batches of the invoices a file may carry: the list's (less those paid here),
        then those created online that the list does not name."""
        with self._storage.unit_of_work(read_only=True) as uow:
            online = uow.invoices.open_keys(biller_id, Origin.CREATED_ONLINE)
        named: set[tuple[str, str]] = set()  # created online and in the list
        for chunk in batched(invoices or (), BATCH):
            for invoice in chunk:
                if invoice.biller_id != biller_id:
                    raise UploadError(f"invoice {invoice.invoice_id} is biller "
                                      f"{invoice.biller_id}'s, not {biller_id}'s")
            with self._storage.unit_of_work(read_only=True) as uow:
                stored = uow.invoices.of_keys(list(dict.fromkeys(map(key_of, chunk))))
            kept = []
            for invoice in chunk:
                here = stored.get(key_of(invoice))
                if (invoice.customer_id, invoice.invoice_id) in online:
                    named.add((invoice.customer_id, invoice.invoice_id))
                kept.append(invoice if here is None or not here.paid else None)
            yield tuple(invoice for invoice in kept if invoice is not None)
        after = 0
        while True:
            with self._storage.unit_of_work(read_only=True) as uow:
                page = uow.invoices.open_of_origin(biller_id, Origin.CREATED_ONLINE, after,
                                                   BATCH)
            if not page:
                return
            after = page[-1][0]
            yield tuple(invoice for _, invoice in page
                        if (invoice.customer_id, invoice.invoice_id) not in named)

    def _build(self, claim: Claimed, biller_id: str, day: date,
               invoices: Callable[[], Iterable[Invoice]] | None, lease: _Lease,
               out) -> tuple[int, int, Decimal, str]:
        """Write the file (header, the novelties, trailer) to ``out`` and record what it
        carries, batch by batch; returns its records, how many are new, its total and
        its digest."""
        digest = hashlib.sha256()

        def write(record: str) -> None:
            line = (record + fac.LINE_END).encode(fac.ENCODING)
            digest.update(line)
            out.write(line)

        write(fac.header_record(biller_id, day))
        records = new = 0
        total = Decimal("0.00")
        for chunk in self._candidates(biller_id, invoices() if invoices else None):
            printed = [(invoice, fac.detail_record(invoice)) for invoice in chunk]
            keys = [(invoice.customer_id, invoice.invoice_id) for invoice in chunk]
            with self._storage.unit_of_work(read_only=True) as uow:
                last = uow.fac_files.last_sent(biller_id, keys)
            sent = {(biller_id, *key): record.fingerprint for key, record in last.items()
                    if not (record.rejected and record.reason is None)}  # rejected whole: again
            chosen = novelties(((inv, fingerprint(record)) for inv, record in printed),
                               sent, day)
            by_key = {key_of(inv): record for inv, record in printed}
            self._record(claim, biller_id, chosen, lease)
            for novelty in chosen:
                write(by_key[key_of(novelty.invoice)])
                records += 1
                new += novelty.new
                total += novelty.invoice.due_dates[0].amount
        write(fac.trailer_record(biller_id, day, records, total))
        return records, new, total, digest.hexdigest()

    def _record(self, claim: Claimed, biller_id: str, chosen: list[Novelty],
                lease: _Lease) -> None:
        rows = [(n.invoice.customer_id, n.invoice.invoice_id, n.fingerprint) for n in chosen]
        try:
            with self._storage.unit_of_work() as uow:
                uow.fac_files.add_records(claim.pk, biller_id, rows)
                if not uow.fac_files.renew(claim.pk, self._clock() + LEASE):
                    raise UploadError(CLAIM_LOST)
                uow.commit()
        except Conflict:
            with self._storage.unit_of_work(read_only=True) as uow:
                twice = uow.fac_files.carried(claim.pk, [row[:2] for row in rows])
            customer, invoice = sorted(twice)[0] if twice else rows[0][:2]
            raise UploadError(f"invoice {invoice} of client {customer} is named twice "
                              "(in the invoice list twice, say)") from None

    # -- rejections ----------------------------------------------------------------------

    def bring_back_rejections(self, biller_id: str, account: Account,
                              at: datetime | None = None) -> list[Rejection]:
        """Look for the rejection file of each file sent in the last business days (before
        ``at``, default now) that has none yet; store each one found and mark the
        invoices it rejects."""
        today = local_day(at or self._clock())
        since = business_days_back(today, REJECTION_DAYS)[0]
        with self._storage.unit_of_work(read_only=True) as uow:
            awaiting = uow.fac_files.awaiting_rejection(biller_id, since)
        if not awaiting:
            return []
        wanted = {f"RECHAZADO_{name}": (pk, name) for pk, name in awaiting}
        found = account.fetch(wanted, REJECTION_LIMIT)
        brought = []
        for rejection_name, content in found.items():
            pk, name = wanted[rejection_name]
            brought.append(self._store_rejection(pk, name, rejection_name, content))
        return brought

    def _store_rejection(self, pk: int, name: str, rejection_name: str,
                         content: bytes) -> Rejection:
        lines = fac.rejected_records(content)
        with self._storage.unit_of_work() as uow:
            named: list[tuple[str, str, str | None]] = []
            for chunk in batched(lines, BATCH):
                carried = uow.fac_files.carried(pk, [(line.customer_id, line.invoice_id)
                                                     for line in chunk])
                named += [(line.customer_id, line.invoice_id, line.reason) for line in chunk
                          if (line.customer_id, line.invoice_id) in carried]
            named = list({(c, i): (c, i, r) for c, i, r in named}.values())
            whole = not named
            marked = uow.fac_files.reject(pk, rejection_name, content, self._clock(),
                                          None if whole else named)
            uow.commit()
        ignored = len(lines) - len(named) if not whole else len(lines)
        log.warning("%s: %s rejected %s", rejection_name, name,
                    "whole" if whole else f"{marked} invoice(s)")
        return Rejection(name, rejection_name, marked, whole, ignored)

    # -- what was sent ---------------------------------------------------------------------

    def status(self, biller_id: str, limit: int = 50):
        """The biller's latest files (newest first) and the rejected invoices waiting for
        a correction."""
        with self._storage.unit_of_work(read_only=True) as uow:
            return uow.fac_files.listing(biller_id, limit), \
                uow.fac_files.pending_rejections(biller_id)

    def pending_rejections(self, biller_id: str):
        with self._storage.unit_of_work(read_only=True) as uow:
            return uow.fac_files.pending_rejections(biller_id)
