"""The network's calendar: Buenos Aires time, and Argentina's business days.

Two different questions, two names:

* :func:`local_day` -- which calendar day an instant falls on in Buenos Aires (due dates,
  the day a payment was made, "today"): any day of the week;
* :func:`is_business_day` and the functions after it -- the days the network works:
  Monday to Friday, not one of Argentina's national holidays (the ``holidays`` package).
  The payment reports, the billing base files' days, the charge window and the default
  day to close count in these.

Plain Python, no clock: callers pass the instant or the day.
"""
from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

import holidays

# PMC settles, and due dates fall, in Argentine civil time.
BUSINESS_TZ = ZoneInfo("America/Argentina/Buenos_Aires")


def local_day(moment: datetime) -> date:
    """The Buenos Aires calendar day of an aware instant."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("a naive datetime has no day in Buenos Aires")
    return moment.astimezone(BUSINESS_TZ).date()


@lru_cache(maxsize=64)
def _holidays(year: int) -> holidays.HolidayBase:
    return holidays.country_holidays("AR", years=year)


def is_business_day(day: date) -> bool:
    """Monday to Friday, and not one of Argentina's national holidays."""
    return day.weekday() < 5 and day not in _holidays(day.year)


def previous_business_day(day: date) -> date:
    day -= timedelta(days=1)
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def next_business_day(day: date) -> date:
    day += timedelta(days=1)
    while not is_business_day(day):
        day += timedelta(days=1)
    return day


def business_days_back(day: date, count: int) -> list[date]:
    """The ``count`` business days before ``day``, oldest first."""
    days = []
    while len(days) < count:
        day = previous_business_day(day)
        days.append(day)
    return days[::-1]


def business_days_between(first: date, last: date) -> int:
    """How many business days after ``first`` ``last`` is (0: the same day, or a day
    the network is closed right after it)."""
    count, day = 0, first
    while day < last:
        day += timedelta(days=1)
        count += is_business_day(day)
    return count
