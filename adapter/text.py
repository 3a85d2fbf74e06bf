"""What a digit is, wherever the outside world sends numbers as text: the fields of
the network's files, HTTP headers, the files this product keeps beside its database.

``str.isdigit`` alone takes ``¹``, ``²`` (latin-1 has them) and other scripts'
digits, which ``int`` then refuses with an exception nobody expected, or reads. And
what a control character is, which no ID or message of those files may hold.
"""
import re


def ascii_digits(text: str) -> bool:
    """True when ``text`` is one or more of ``0``-``9``."""
    return text.isascii() and text.isdigit()


# C0, DEL and C1 (latin-1 decodes the bytes 0x80-0x9f to them): in no ID or message
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def control_character(text: str) -> str | None:
    """``U+001B`` for the first control character in ``text``; None when it has none."""
    found = _CONTROL.search(text)
    return None if found is None else f"U+{ord(found[0]):04X}"
