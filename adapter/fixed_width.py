"""Fields of the network's fixed-width files (FAC, COB): dates and amounts, one
reading for both formats, ASCII digits only (:func:`adapter.text.ascii_digits`);
``strptime`` would take ``2026 1 1`` and full-width digits for a date.
"""
from __future__ import annotations

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
