"""Importing the network's payment reports (COB files).

A file is read twice, streaming: once for every whole-file check
(:func:`adapter.files.cob.check_cob`: a file failing one is refused whole, nothing
written), then to store its lines, in batches, in one transaction -- committed
only if the second pass read the very records the first one checked. A file is
known by its records' digest (its line endings aside): importing one whose
records were imported before changes nothing; a re-issue (same
lines, some corrected) updates the corrected lines and adds none twice: a line
is known by its identity (:attr:`adapter.files.cob.CobLine.identity`).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Callable

from adapter.batches import batched
from adapter.domain.model import utcnow
from adapter.errors import Conflict
from adapter.files.cob import CobLine, InvalidCobFile, RejectedLine, check_cob, read_cob
from adapter.storage.unit_of_work import Storage

log = logging.getLogger(__name__)

BATCH = 1000


@dataclass(frozen=True)
class ReportImport:
    """What importing one file did."""

    name: str
    biller_id: str
    day: date
    records: int
    created: int = 0
    corrected: int = 0
    unchanged: int = 0
    rejected: tuple[RejectedLine, ...] = ()
    already_imported_as: str | None = None  # the same content was imported before


class ReportImporter:
    def __init__(self, storage: Storage, serves: Callable[[str], bool] = lambda biller: True,
                 clock: Callable[[], datetime] = utcnow):
        self._storage = storage
        self._serves = serves
        self._clock = clock

    def import_file(self, path: str | os.PathLike,
                    progress: Callable[[int], None] = lambda lines: None) -> ReportImport:
        """Import one COB file; raises InvalidCobFile (nothing written) for a file that
        fails a whole-file check or names a biller not served here. ``progress`` is told
        how many detail records were stored after each batch."""
        name = Path(path).name
        summary = check_cob(path)
        if not self._serves(summary.biller_id):
            raise InvalidCobFile(f"biller {summary.biller_id} is not served here")
        sha256 = summary.sha256
        try:
            return self._import(path, name, summary, sha256, progress)
        except Conflict:  # the same file imported at this very moment by someone else
            return self._import(path, name, summary, sha256, progress)

    def _import(self, path, name, summary, sha256, progress) -> ReportImport:
        now = self._clock()
        with self._storage.unit_of_work() as uow:
            earlier = uow.reports.file_imported(summary.biller_id, sha256)
            if earlier is not None:
                return ReportImport(name, summary.biller_id, summary.day, summary.records,
                                    unchanged=summary.records - len(summary.rejected),
                                    rejected=summary.rejected, already_imported_as=earlier)
            file_pk = uow.reports.add_file(summary.biller_id, name, summary.day, sha256,
                                           summary.records, len(summary.rejected),
                                           summary.total, now)
            created = corrected = unchanged = done = 0
            next_analysis = BATCH
            rejected = list(summary.rejected)
            lines = (item for item in read_cob(path, checked=sha256)
                     if isinstance(item, CobLine))
            for batch in batched(lines, BATCH):
                counts = uow.reports.put_lines(summary.biller_id, file_pk, batch, now)
                created += counts.created
                corrected += counts.corrected
                unchanged += counts.unchanged
                rejected += [RejectedLine(line, "identity", f"same channel, control number, "
                                          f"invoice ID and payment date as line {earlier_line}")
                             for line, earlier_line in counts.repeated]
                done += len(batch)
                if done >= next_analysis:  # at 1, 2, 4, 8... thousand lines
                    uow.reports.refresh_statistics()
                    next_analysis *= 2
                progress(done)
            uow.commit()
        rejected.sort(key=lambda item: item.line)
        log.info("payment report %s of biller %s imported: %d new, %d corrected, %d unchanged, "
                 "%d rejected", name, summary.biller_id, created, corrected, unchanged,
                 len(rejected))
        return ReportImport(name, summary.biller_id, summary.day, summary.records, created,
                            corrected, unchanged, tuple(rejected))
