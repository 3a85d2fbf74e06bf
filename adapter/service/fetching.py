"""The network's payment reports fetched from its FTPS server: the reports of the last
business days not imported yet are downloaded (:func:`adapter.files.ftps.fetch_reports`),
then imported like any other (:class:`adapter.service.reports.ReportImporter`)."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

from adapter.config import FtpsSettings
from adapter.domain.calendar import business_days_back, local_day
from adapter.domain.model import utcnow
from adapter.files.ftps import FetchError, fetch_reports
from adapter.storage.unit_of_work import Storage

# A report is named by the day its funds reach the biller, 48 business hours after the
# payments: the names of the last days' reports may lie a few days ahead.
DAYS_AHEAD = 5


@dataclass(frozen=True)
class Fetched:
    biller_id: str
    paths: list[Path]  # downloaded, complete, oldest day first
    error: str | None = None  # the server could not be reached, or a download failed


class ReportFetcher:
    def __init__(self, storage: Storage, destination: Path, days_back: int,
                 clock: Callable[[], datetime] = utcnow):
        self._storage = storage
        self._destination = Path(destination)
        self._days_back = days_back
        self._clock = clock

    def days(self, days_back: int | None = None) -> list[date]:
        """The days whose reports are looked for: the last business days and the next
        few."""
        today = local_day(self._clock())
        return business_days_back(today, days_back or self._days_back) + [
            today + timedelta(days=ahead) for ahead in range(DAYS_AHEAD)]

    def fetch(self, biller_id: str, account: FtpsSettings,
              days_back: int | None = None) -> Fetched:
        """Download the biller's reports of :meth:`days` not imported yet."""
        self._destination.mkdir(parents=True, exist_ok=True)
        with self._storage.unit_of_work(read_only=True) as uow:
            imported = uow.reports.names(biller_id)
        try:
            return Fetched(biller_id, fetch_reports(account, biller_id, self.days(days_back),
                                                    self._destination, imported.__contains__))
        except FetchError as error:
            return Fetched(biller_id, list(error.downloaded), str(error))
