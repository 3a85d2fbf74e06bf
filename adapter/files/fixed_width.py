"""The network's fixed-width files (FAC, COB): their lines, dates and amounts, one
reading for both formats, ASCII digits only (:func:`adapter.text.ascii_digits`);
``strptime`` would take ``2026 1 1`` and full-width digits for a date.
"""
from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from functools import lru_cache

from adapter.text import ascii_digits


@lru_cache(maxsize=1024)  # a file's dates are few and repeat on every line
def day(text: str) -> date | None:
    """A ``YYYYMMDD`` date, or None."""
    if len(text) != 8 or not ascii_digits(text):
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def cents(text: str) -> Decimal | None:
    """An amount of ASCII digits with 2 implied decimals (``000001050`` = 10.50), exact
    whatever the decimal context, 2 places always; None unless ``text`` is digits."""
    if not ascii_digits(text):
        return None
    text = text.rjust(3, "0")
    return Decimal(f"{text[:-2]}.{text[-2:]}")


# A line is read at most this many bytes at a time, so that a file without line endings
# cannot be read into memory whole.
READ_LIMIT = 4096


def lines(handle, record_length: int, refuse: type[Exception], encoding: str = "latin-1",
          digest=None) -> Iterator[tuple[int, str]]:
    """(line number, record) of each line of the binary ``handle``, its line ending (CRLF
    or LF) removed; the last line may have none. A line longer than READ_LIMIT is refused
    (``refuse``, naming its length) without being held. ``digest``, when given, gets each
    non-empty record and a LF, whatever the line ending was."""
    number = 0
    while raw := handle.readline(READ_LIMIT):
        number += 1
        if raw.endswith(b"\r\n"):
            raw = raw[:-2]
        elif raw.endswith(b"\n"):
            raw = raw[:-1]
        elif len(raw) == READ_LIMIT:
            length = len(raw)
            while (more := handle.readline(READ_LIMIT)) and not more.endswith(b"\n"):
                length += len(more)
            length += len(more.rstrip(b"\r\n"))
            raise refuse(f"line {number}: records are {record_length} characters, "
                         f"not {length}")
        if raw and digest is not None:  # (empty lines after the trailer are no records)
            digest.update(raw + b"\n")
        yield number, raw.decode(encoding)
