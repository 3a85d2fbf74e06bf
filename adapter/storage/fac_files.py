"""The billing base files (FAC) sent to the network, in the database: the files, what each
carried of every invoice (its detail record's digest), and the rejections.

A file is first *claimed* (a row being sent, under a lease its run renews while it works:
the database lets one run at a time send a biller's file), then its records are written
batch by batch in transactions of their own, then it is marked sent -- or failed, its
records dropped, so that its invoices go into the next file. What was sent of an
invoice is the record of the latest file *sent* that carried it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import and_, bindparam, delete, exists, func, insert, select, update

from adapter.storage.orm import FacFileRow, FacRecordRow, FacRejectionRow
from adapter.storage.transaction import Transaction

_FILES = FacFileRow.__table__
_RECORDS = FacRecordRow.__table__
_REJECTIONS = FacRejectionRow.__table__
_ADD_RECORD = insert(_RECORDS)
_REJECT_RECORD = (update(_RECORDS)
                  .where(_RECORDS.c.file_pk == bindparam("k_file"),
                         _RECORDS.c.customer_id == bindparam("k_customer"),
                         _RECORDS.c.invoice_id == bindparam("k_invoice"))
                  .values(rejected=True, reason=bindparam("v_reason")))


def _customers(keys: list[tuple[str, str]]) -> list[str]:
    """The clients of (client, invoice) keys: looked up by client, the invoice checked
    after. (SQLite's planner uses only the index's first column for a row-value IN, a
    scan of the biller's records per batch; by client it seeks.)"""
    return sorted({customer for customer, _ in keys})


@dataclass(frozen=True)
class Claimed:
    pk: int
    name: str
    attempt: int


@dataclass(frozen=True)
class Busy:
    """Another run is sending this biller's file."""
    name: str
    started_at: datetime


@dataclass(frozen=True)
class LimitReached:
    files: int  # the day's files (sent or failed) already


@dataclass(frozen=True)
class SentRecord:
    """What the latest file sent carried of an invoice."""
    fingerprint: str
    rejected: bool
    reason: str | None


@dataclass(frozen=True)
class FacFileState:
    name: str
    day: date
    state: str
    records: int
    total: Decimal
    started_at: datetime
    sent_at: datetime | None
    error: str | None
    rejection: str | None  # the rejection file's name
    rejected: int  # records marked rejected
    whole: bool | None


@dataclass(frozen=True)
class PendingRejection:
    file: str
    customer_id: str
    invoice_id: str
    reason: str


class FacFiles:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def claim(self, biller_id: str, day: date, name_of, max_files: int, now: datetime,
              until: datetime) -> Claimed | Busy | LimitReached:
        """The next file of ``day`` for this run to send (``name_of(attempt)`` names it),
        unless another run is sending one (its lease not expired) or the day has had
        ``max_files``. A run whose lease expired (killed, say) has its file marked failed:
        its invoices go into the next file. Two runs claiming at once: the database's
        unique indexes let one through (the other's transaction raises a conflict)."""
        stale = select(_FILES.c.pk).where(_FILES.c.biller_id == biller_id,
                                          _FILES.c.state == "sending",
                                          _FILES.c.claimed_until < now)
        for (pk,) in self._tx.execute(stale).all():
            self.fail(pk, "abandoned: its run stopped before the file was sent (its lease "
                          "expired)")
        live = self._tx.execute(select(_FILES.c.name, _FILES.c.started_at).where(
            _FILES.c.biller_id == biller_id, _FILES.c.state == "sending")).first()
        if live is not None:
            return Busy(live.name, live.started_at)
        done = self._tx.execute(select(func.max(_FILES.c.attempt)).where(
            _FILES.c.biller_id == biller_id, _FILES.c.day == day)).scalar() or 0
        if done >= max_files:
            return LimitReached(done)
        attempt = done + 1
        name = name_of(attempt)
        pk = self._tx.execute(insert(_FILES).values(
            biller_id=biller_id, name=name, day=day, attempt=attempt, state="sending",
            records=0, total=Decimal("0.00"), started_at=now, claimed_until=until)
            .returning(_FILES.c.pk)).scalar_one()
        return Claimed(pk, name, attempt)

    def renew(self, pk: int, until: datetime) -> bool:
        """Extend the claim's lease; False when it is no longer this run's."""
        return self._tx.execute(update(_FILES).where(
            _FILES.c.pk == pk, _FILES.c.state == "sending").values(claimed_until=until)
        ).rowcount == 1

    def add_records(self, file_pk: int, biller_id: str,
                    records: list[tuple[str, str, str]]) -> None:
        """(client, invoice, fingerprint) of invoices in the file, in one statement; an
        invoice the file already has is refused by the database (a conflict)."""
        if records:
            self._tx.execute(_ADD_RECORD, [
                {"file_pk": file_pk, "biller_id": biller_id, "customer_id": customer,
                 "invoice_id": invoice, "fingerprint": printed, "rejected": False}
                for customer, invoice, printed in records])

    def last_sent(self, biller_id: str,
                  keys: list[tuple[str, str]]) -> dict[tuple[str, str], SentRecord]:
        """What the latest file sent carried of each of these (client, invoice)."""
        if not keys:
            return {}
        wanted = set(keys)
        rows = self._tx.execute(
            select(_RECORDS.c.customer_id, _RECORDS.c.invoice_id, _RECORDS.c.fingerprint,
                   _RECORDS.c.rejected, _RECORDS.c.reason)
            .join(_FILES, _FILES.c.pk == _RECORDS.c.file_pk)
            .where(_RECORDS.c.biller_id == biller_id, _FILES.c.state == "sent",
                   _RECORDS.c.customer_id.in_(_customers(keys)))
            .order_by(_RECORDS.c.file_pk))
        return {(row.customer_id, row.invoice_id): SentRecord(row.fingerprint, row.rejected,
                                                              row.reason)
                for row in rows  # ordered by file: the latest one stays
                if (row.customer_id, row.invoice_id) in wanted}

    def finish(self, pk: int, records: int, total: Decimal, sha256: str,
               now: datetime) -> bool:
        """Mark the claimed file sent; False when the claim was lost meanwhile."""
        return self._tx.execute(update(_FILES).where(
            _FILES.c.pk == pk, _FILES.c.state == "sending").values(
            state="sent", records=records, total=total, sha256=sha256, sent_at=now)
        ).rowcount == 1

    def fail(self, pk: int, error: str) -> None:
        """The file was not sent: its records go (its invoices are for the next file),
        its name stays taken (a name is never used for two files)."""
        self._drop_records(pk)
        self._tx.execute(update(_FILES).where(_FILES.c.pk == pk, _FILES.c.state == "sending")
                         .values(state="failed", error=error[:500]))

    def discard(self, pk: int) -> None:
        """Forget a claimed file that was not sent and took no name on the server
        (nothing to send, or built only)."""
        self._drop_records(pk)
        self._tx.execute(delete(_FILES).where(_FILES.c.pk == pk, _FILES.c.state == "sending"))

    def _drop_records(self, pk: int, chunk: int = 10_000) -> None:
        """Delete the file's records ``chunk`` at a time: SQLite gathers the keys of the
        rows a DELETE removes before removing them (memory in proportion to a million
        records, otherwise)."""
        some = (select(_RECORDS.c.pk).where(_RECORDS.c.file_pk == pk).limit(chunk)
                .scalar_subquery())
        while self._tx.execute(delete(_RECORDS).where(_RECORDS.c.pk.in_(some))).rowcount:
            pass

    # -- rejections ------------------------------------------------------------------

    def awaiting_rejection(self, biller_id: str, since: date) -> list[tuple[int, str]]:
        """(key, name) of the files sent for ``since`` or later with no rejection stored."""
        rows = self._tx.execute(
            select(_FILES.c.pk, _FILES.c.name)
            .where(_FILES.c.biller_id == biller_id, _FILES.c.state == "sent",
                   _FILES.c.day >= since,
                   ~exists().where(_REJECTIONS.c.file_pk == _FILES.c.pk))
            .order_by(_FILES.c.pk))
        return [(row.pk, row.name) for row in rows]

    def carried(self, file_pk: int, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (client, invoice) the file carried."""
        if not keys:
            return set()
        found = {(row.customer_id, row.invoice_id) for row in self._tx.execute(
            select(_RECORDS.c.customer_id, _RECORDS.c.invoice_id).where(
                _RECORDS.c.file_pk == file_pk, _RECORDS.c.customer_id.in_(_customers(keys))))}
        return found & set(keys)

    def reject(self, file_pk: int, name: str, content: bytes, now: datetime,
               records: list[tuple[str, str, str | None]] | None) -> int:
        """Store a rejection file as it came, and mark rejected the (client, invoice,
        reason) it names -- every record of the file when ``records`` is None (the file
        rejected whole, no reason per invoice). Returns how many were marked."""
        if records is None:
            marked = self._tx.execute(update(_RECORDS).where(_RECORDS.c.file_pk == file_pk)
                                      .values(rejected=True, reason=None)).rowcount
        else:
            for customer, invoice, reason in records:
                self._tx.execute(_REJECT_RECORD, {"k_file": file_pk, "k_customer": customer,
                                                  "k_invoice": invoice,
                                                  "v_reason": reason and reason[:200]})
            marked = len(records)
        self._tx.execute(insert(_REJECTIONS).values(
            file_pk=file_pk, name=name, content=content, whole=records is None,
            marked=marked, received_at=now))
        return marked

    def pending_rejections(self, biller_id: str) -> list[PendingRejection]:
        """Invoices rejected with a reason, not sent since: they wait for a correction."""
        later = _RECORDS.alias("later")
        later_file = _FILES.alias("later_file")
        rows = self._tx.execute(
            select(_FILES.c.name, _RECORDS.c.customer_id, _RECORDS.c.invoice_id,
                   _RECORDS.c.reason)
            .join(_FILES, _FILES.c.pk == _RECORDS.c.file_pk)
            .where(_RECORDS.c.biller_id == biller_id, _RECORDS.c.rejected,
                   _RECORDS.c.reason.is_not(None),
                   ~exists().where(and_(
                       later.c.biller_id == _RECORDS.c.biller_id,
                       later.c.customer_id == _RECORDS.c.customer_id,
                       later.c.invoice_id == _RECORDS.c.invoice_id,
                       later.c.file_pk > _RECORDS.c.file_pk,
                       later_file.c.pk == later.c.file_pk,
                       later_file.c.state == "sent")))
            .order_by(_RECORDS.c.file_pk, _RECORDS.c.pk))
        return [PendingRejection(*row) for row in rows]

    # -- what was sent ---------------------------------------------------------------------

    def listing(self, biller_id: str, limit: int = 50) -> list[FacFileState]:
        """The biller's latest files, newest first."""
        rows = self._tx.execute(
            select(_FILES, _REJECTIONS.c.name.label("rejection"),
                   _REJECTIONS.c.marked, _REJECTIONS.c.whole)
            .outerjoin(_REJECTIONS, _REJECTIONS.c.file_pk == _FILES.c.pk)
            .where(_FILES.c.biller_id == biller_id)
            .order_by(_FILES.c.pk.desc()).limit(limit))
        return [FacFileState(row.name, row.day, row.state, row.records, row.total,
                             row.started_at, row.sent_at, row.error, row.rejection,
                             row.marked or 0, row.whole) for row in rows]

    def counts(self) -> list[tuple[str, int, int]]:
        """(biller, records sent, records rejected) over every file sent."""
        sent = dict(self._tx.execute(
            select(_FILES.c.biller_id, func.sum(_FILES.c.records))
            .where(_FILES.c.state == "sent").group_by(_FILES.c.biller_id)).all())
        rejected = dict(self._tx.execute(
            select(_RECORDS.c.biller_id, func.count())
            .where(_RECORDS.c.rejected).group_by(_RECORDS.c.biller_id)).all())
        return [(biller, int(sent.get(biller) or 0), int(rejected.get(biller) or 0))
                for biller in sorted(set(sent) | set(rejected))]
