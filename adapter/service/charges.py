"""The debt queries of a period, each billable (it ended in a payment) or not: what the
network charges the biller for (the rule is :func:`adapter.domain.charges.associate`).
Read only."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.charges import Charge, associate
from adapter.storage.unit_of_work import Storage


def midnight(day: date) -> datetime:
    """The start of ``day`` in Buenos Aires."""
    return datetime.combine(day, time(0), tzinfo=BUSINESS_TZ)


def month_span(year: int, month: int) -> tuple[datetime, datetime]:
    """The first instant of the month and of the next one, in Buenos Aires."""
    first = date(year, month, 1)
    return midnight(first), midnight(date(year + month // 12, month % 12 + 1, 1))


class Charges:
    def __init__(self, storage: Storage, window_days: int = 0):
        self._storage = storage
        self._window = window_days

    def payments_until(self, end: datetime) -> datetime:
        """Until when a payment may end a query asked before ``end``: the window's
        business days, each at most three calendar days (a weekend, a holiday), and a
        week more for the payments of the period's last queries."""
        return end + timedelta(days=7 + 2 * self._window)

    def between(self, biller_id: str, start: datetime, end: datetime) -> list[Charge]:
        """The biller's queries asked from ``start`` until ``end``, each with the
        payment that ended it, if any."""
        with self._storage.unit_of_work(read_only=True) as uow:
            return associate(uow.queries.between(biller_id, start, end),
                             uow.payments.for_charges(biller_id, start,
                                                      self.payments_until(end)),
                             self._window)

    def month(self, year: int, month: int,
              billers: list[str] | None = None) -> dict[str, list[Charge]]:
        """Each biller's queries of the month (``billers``; none named: every one that was
        asked something)."""
        start, end = month_span(year, month)
        if not billers:
            with self._storage.unit_of_work(read_only=True) as uow:
                billers = sorted(uow.queries.billers())
        return {biller: self.between(biller, start, end) for biller in billers}
