"""What a digit is, wherever the outside world sends numbers as text: the fields of
the network's files, HTTP headers, the files this product keeps beside its database.

``str.isdigit`` alone takes ``¹``, ``²`` (latin-1 has them) and other scripts'
digits, which ``int`` then refuses with an exception nobody expected, or reads.
"""


def ascii_digits(text: str) -> bool:
    """True when ``text`` is one or more of ``0``-``9``."""
    return text.isascii() and text.isdigit()
