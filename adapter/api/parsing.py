"""A JSON request, read once and strictly, before anything else looks at it.

``application/json`` in UTF-8 (RFC 8259: no other charset, no byte order mark);
a duplicate key, NaN or Infinity, a number beyond what money needs, or nesting
deeper than :data:`MAX_DEPTH` is refused here, so that no later step can read the
body differently from the way it was checked. Numbers become Decimal (or int),
never float.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from adapter.errors import MalformedJson, UnsupportedCharset, UnsupportedMediaType
from adapter.soap import transport

JSON_MEDIA_TYPE = "application/json"
# The contract's requests are flat objects; its deepest answer is 4 levels deep.
MAX_DEPTH = 8
# Digits a number may carry (money has 15 at most): a longer one is no amount, and
# exact arithmetic on it (multipleOf) would cost time or fail.
MAX_NUMBER_DIGITS = 20


def check_content_type(header: str | None) -> None:
    """``application/json``, with at most ``charset=utf-8``."""
    media_type, parameters = transport.media_type(header)
    if media_type != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(f"PMC's API takes {JSON_MEDIA_TYPE}, not "
                                   f"{media_type or 'a request without Content-Type'}")
    charset = parameters.get("charset")
    if charset is not None and charset.lower() != "utf-8":
        raise UnsupportedCharset(f"charset {charset[:40]!r} is not allowed: JSON is UTF-8 "
                                 "(RFC 8259)")


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            raise MalformedJson(f"key {key[:40]!r} appears twice in one object")
        seen[key] = value
    return seen


def _number(text: str) -> Decimal:
    if sum(c.isdigit() for c in text) > MAX_NUMBER_DIGITS:
        raise MalformedJson(f"the number {text[:30]}... is beyond what this API reads")
    value = Decimal(text)
    if abs(value.adjusted()) > MAX_NUMBER_DIGITS:
        raise MalformedJson(f"the number {text[:30]} is beyond what this API reads")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise MalformedJson(f"the number {text[:30]}... is beyond what this API reads")
    return int(text)


def _constant(name: str):
    raise MalformedJson(f"{name} is not a JSON number")


def _depth(value: Any) -> int:
    """How deep ``value`` nests (0 for a scalar), counted up to one level past the cap."""
    if not isinstance(value, (dict, list)):
        return 0
    deepest, level = 1, [(value, 1)]
    while level:
        item, depth = level.pop()
        deepest = max(deepest, depth)
        if deepest > MAX_DEPTH:
            break
        children = item.values() if isinstance(item, dict) else item
        level += [(child, depth + 1) for child in children if isinstance(child, (dict, list))]
    return deepest


def parse(body: bytes) -> Any:
    """The JSON document of ``body``, refused (MalformedJson) unless it reads one way."""
    if body.startswith(b"\xef\xbb\xbf"):
        raise MalformedJson("the body starts with a byte order mark (RFC 8259 forbids it)")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise MalformedJson(f"the body is not UTF-8 (byte {error.start})") from None
    try:
        document = json.loads(text, object_pairs_hook=_refuse_duplicates, parse_float=_number,
                              parse_int=_integer, parse_constant=_constant)
    except json.JSONDecodeError as error:
        raise MalformedJson(f"not JSON: {error.msg} at line {error.lineno} column "
                            f"{error.colno}") from None
    except RecursionError:
        raise MalformedJson(f"nested deeper than {MAX_DEPTH} levels") from None
    if _depth(document) > MAX_DEPTH:
        raise MalformedJson(f"nested deeper than {MAX_DEPTH} levels")
    return document
