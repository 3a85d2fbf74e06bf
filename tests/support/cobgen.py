"""Valid payment report (COB) files, built from plain dicts, for the tests and the benchmark.

A line is a dict of any of ``customer``, ``invoice``, ``amount`` (str or Decimal),
``paid_on``, ``due_on``, ``credited_on`` (dates, or 8 raw characters), ``flag``,
``movement``, ``channel`` and ``control``; what is left out gets a sensible default (see
:func:`detail`). Files are latin-1 with CRLF line endings, as the network writes them.
"""
from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

RECORD_LENGTH = 100
CRLF = "\r\n"
CHANNELS = ("PC", "HB", "S1")


def header(biller_id: str, day: date) -> str:
    return f"0400{biller_id}{day:%Y%m%d}".ljust(RECORD_LENGTH)


def trailer(biller_id: str, day: date, count: int, cents: int) -> str:
    if cents >= 10 ** 11:
        raise ValueError(f"a total of {cents} cents does not fit the trailer's 11 digits")
    return f"9400{biller_id}{day:%Y%m%d}{count:07d}{'':7}{cents:011d}".ljust(RECORD_LENGTH)


def cents(amount: str | Decimal) -> int:
    return int(Decimal(amount) * 100)


def detail(day: date, customer: str = "C1", invoice: str = "F1",
           amount: str | Decimal = "1500.00", paid_on: date | str | None = None,
           due_on: date | str | None = None, credited_on: date | str | None = None,
           flag: str = "0", movement: str = "2", channel: str = "PC",
           control: str = "0001") -> str:
    """A detail record; paid on the file's day, due 10 days later, credited 2 days later
    unless told otherwise."""
    paid_on = paid_on or day
    due_on = due_on or paid_on + timedelta(days=10)
    credited_on = credited_on or paid_on + timedelta(days=2)
    return _detail(customer, invoice, _yyyymmdd(due_on), flag, _yyyymmdd(paid_on),
                   cents(amount), movement, _yyyymmdd(credited_on), channel, control)


def _detail(customer: str, invoice: str, due_on: str, flag: str, paid_on: str, cents: int,
            movement: str, credited_on: str, channel: str, control: str) -> str:
    return (f"5{customer:<19}{invoice:<20}{due_on}{flag}{paid_on}{cents:011d}{movement}"
            f"{credited_on}{channel:<2}{control:<4}").ljust(RECORD_LENGTH)


def cob_text(biller_id: str, day: date, lines: list[dict]) -> str:
    """A whole file whose trailer counts and totals ``lines``."""
    records = [detail(day, **line) for line in lines]
    total = sum(int(record[57:68]) for record in records)
    return CRLF.join([header(biller_id, day), *records,
                      trailer(biller_id, day, len(records), total)]) + CRLF


def write_cob(path: str | Path, biller_id: str, day: date, lines: list[dict]) -> Path:
    path = Path(path)
    path.write_bytes(cob_text(biller_id, day, lines).encode("latin-1"))
    return path


def write_many(path: str | Path, biller_id: str, day: date, count: int,
               batch: int = 10_000) -> Path:
    """A valid file of ``count`` synthetic payments, written ``batch`` lines at a time
    (never all in memory): varied customers, invoices, amounts (up to 990.00, so that a
    million fit the trailer's 11 digits), channels, control numbers and payment days."""
    path = Path(path)
    paid = [day - timedelta(days=back) for back in range(1, 4)]
    days = [(f"{on + timedelta(days=10):%Y%m%d}", f"{on:%Y%m%d}",
             f"{on + timedelta(days=2):%Y%m%d}") for on in paid]
    total = 0
    with open(path, "w", encoding="latin-1", newline="") as handle:
        handle.write(header(biller_id, day) + CRLF)
        for start in range(0, count, batch):
            records = []
            for number in range(start, min(start + batch, count)):
                amount = (number * 7919) % 99_000 + 1
                total += amount
                due_on, paid_on, credited_on = days[number % 3]
                records.append(_detail(f"{number % 250_000:09d}", f"F-{number:012d}", due_on,
                                       "0", paid_on, amount, "2", credited_on,
                                       CHANNELS[number % 3], f"{number % 10_000:04d}") + CRLF)
            handle.writelines(records)
        handle.write(trailer(biller_id, day, count, total) + CRLF)
    return path


def put(text: str, line: int, at: int, value: str) -> str:
    """``text`` with ``value`` written over line ``line`` from position ``at`` (both
    1-based, as the layout counts them)."""
    lines = text.split("\n")
    record = lines[line - 1]
    lines[line - 1] = record[:at - 1] + value + record[at - 1 + len(value):]
    return "\n".join(lines)


def _yyyymmdd(on: date | str) -> str:
    return on if isinstance(on, str) else f"{on:%Y%m%d}"
