"""The network's payment reports in the database: files imported, lines reported.

Lines are written in batches: the batch's stored twins are read in one query,
then new lines inserted and corrected ones updated, all in the import's one
transaction (a file is imported whole or not at all).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import bindparam, func, insert, select, text, update

from adapter.files.cob import CobLine
from adapter.domain.reconciliation import ReportedPayment
from adapter.storage.orm import PaymentRow, ReportFileRow, ReportLineRow
from adapter.storage.transaction import Transaction

_FILES = ReportFileRow.__table__
_LINES = ReportLineRow.__table__
# what a re-issue may correct in a line (its identity aside)
TERMS = ("customer_id", "due_on", "amount", "movement", "credited_on")
# by invoice alone: the identity's unique index (biller, invoice, ...) serves it whatever
# the planner's statistics say of a table being filled in this very transaction
_TWINS = select(_LINES).where(_LINES.c.biller_id == bindparam("k_biller"),
                              _LINES.c.invoice_id.in_(bindparam("k_invoices", expanding=True)))
_ADD_LINE = insert(_LINES)
_CORRECT_LINE = (update(_LINES).where(_LINES.c.pk == bindparam("k_pk"))
                 .values(**{name: bindparam(name) for name in TERMS},
                         file_pk=bindparam("file_pk"), line=bindparam("line"),
                         updated_at=bindparam("updated_at")))
_SEEN_AGAIN = (update(_LINES).where(_LINES.c.pk == bindparam("k_pk"))
               .values(file_pk=bindparam("file_pk"), line=bindparam("line")))


@dataclass
class LineCounts:
    created: int = 0
    corrected: int = 0
    unchanged: int = 0
    # lines whose identity an earlier line of the same file had: (line, earlier line)
    repeated: list[tuple[int, int]] | None = None


class Reports:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def file_imported(self, biller_id: str, sha256: str) -> str | None:
        """The name under which this very content was imported, if it was."""
        return self._tx.execute(select(_FILES.c.name).where(
            _FILES.c.biller_id == biller_id, _FILES.c.sha256 == sha256)).scalar_one_or_none()

    def add_file(self, biller_id: str, name: str, day, sha256: str, records: int,
                 rejected: int, total: Decimal, at: datetime) -> int:
        return self._tx.execute(insert(_FILES).values(
            biller_id=biller_id, name=name, day=day, sha256=sha256, records=records,
            rejected=rejected, total=total, imported_at=at)).inserted_primary_key[0]

    def names(self, biller_id: str) -> set[str]:
        """The names of the report files imported for this biller."""
        return set(self._tx.execute(select(_FILES.c.name).distinct()
                                    .where(_FILES.c.biller_id == biller_id)).scalars())

    def files(self, biller_id: str | None = None, limit: int = 30) -> list[tuple]:
        """(biller, name, day, records, rejected, total, imported_at) of the latest report
        files imported, newest first."""
        stmt = select(_FILES.c.biller_id, _FILES.c.name, _FILES.c.day, _FILES.c.records,
                      _FILES.c.rejected, _FILES.c.total, _FILES.c.imported_at) \
            .order_by(_FILES.c.day.desc(), _FILES.c.pk.desc()).limit(limit)
        if biller_id is not None:
            stmt = stmt.where(_FILES.c.biller_id == biller_id)
        return [tuple(row) for row in self._tx.execute(stmt)]

    def last_report_day(self, biller_id: str) -> date | None:
        """The latest day of a report file of this biller (its header's date)."""
        return self._tx.execute(select(func.max(_FILES.c.day))
                                .where(_FILES.c.biller_id == biller_id)).scalar()

    def billers(self) -> list[str]:
        return list(self._tx.execute(select(_FILES.c.biller_id).distinct()).scalars())

    def lines_between(self, biller_id: str, first: date, last: date) -> list[ReportedPayment]:
        """The lines of payments made from ``first`` to ``last``, with the operation ID of
        the payment recorded from each, where one was."""
        payments = PaymentRow.__table__
        rows = self._tx.execute(
            select(_LINES, payments.c.operation_id)
            .outerjoin(payments, payments.c.report_line_pk == _LINES.c.pk)
            .where(_LINES.c.biller_id == biller_id, _LINES.c.paid_on >= first,
                   _LINES.c.paid_on <= last))
        return [ReportedPayment(row.pk, row.customer_id, row.invoice_id, row.amount,
                                row.paid_on, row.channel, row.control, row.operation_id)
                for row in rows]

    def refresh_statistics(self) -> None:
        """Let PostgreSQL's planner know how many lines there are now, this transaction's
        included (ANALYZE counts them): filled in one transaction, the table still looks
        empty to it, and it would scan all of it for every batch's twins instead of using
        the identity's index -- quadratic in the file's size."""
        if self._tx.dialect == "postgresql":
            self._tx.execute(text("ANALYZE report_lines"))

    def put_lines(self, biller_id: str, file_pk: int, lines: list[CobLine],
                  at: datetime) -> LineCounts:
        """Store a batch of one file's lines: new ones added, corrected ones updated; a
        line whose identity an earlier line of this file had is counted in ``repeated``
        and not stored (the earlier one stands)."""
        counts = LineCounts(repeated=[])
        stored = {_identity(row): row for row in self._tx.execute(_TWINS, {
            "k_biller": biller_id, "k_invoices": sorted({line.invoice_id for line in lines})})}
        new, corrected, seen_again = [], [], []
        for line in lines:
            twin = stored.get(line.identity)
            if twin is not None and twin.file_pk == file_pk:
                counts.repeated.append((line.line, twin.line))
                continue
            terms = {name: getattr(line, name) for name in TERMS}
            if twin is None:
                new.append({**terms, "biller_id": biller_id, "channel": line.channel,
                            "control": line.control, "invoice_id": line.invoice_id,
                            "paid_on": line.paid_on, "file_pk": file_pk, "line": line.line,
                            "first_seen_at": at, "updated_at": at})
                counts.created += 1
            elif any(getattr(twin, name) != value for name, value in terms.items()):
                corrected.append({**terms, "k_pk": twin.pk, "file_pk": file_pk,
                                  "line": line.line, "updated_at": at})
                counts.corrected += 1
            else:
                seen_again.append({"k_pk": twin.pk, "file_pk": file_pk, "line": line.line})
                counts.unchanged += 1
            # a later line of this batch with the same identity is a repeat
            stored[line.identity] = _Seen(file_pk, line.line)
        if new:
            self._tx.execute(_ADD_LINE, new)
        if corrected:
            self._tx.execute(_CORRECT_LINE, corrected)
        if seen_again:
            self._tx.execute(_SEEN_AGAIN, seen_again)
        return counts


@dataclass(frozen=True)
class _Seen:
    file_pk: int
    line: int


def _identity(row) -> tuple:
    return (row.channel, row.control, row.invoice_id, row.paid_on)
