"""How the adapter's log lines look: plain text (the default, for a terminal) or JSON
lines (``log_format = "json"``), one object per line with the time, level, logger,
process, message and the fields a line carries (a SOAP request's line carries its
request ID, operation, biller, idOperacion/idConsulta, outcome and duration).

A record is one line, whatever it carries: what came from outside (a parser's message
quoting the document, a path, a user name) cannot start another record. In text, every
character that could break or disguise a line -- control characters, line and paragraph
separators, non-ASCII spaces, the backslash itself -- is written as an escape
(``\\n``, ``\\x1b``, ``\\u2028``), a message is cut at :data:`MAX_MESSAGE` characters,
and a traceback's lines are each marked ``| ``; in JSON, the encoder escapes them
(ASCII only). gunicorn's own lines (its access log included) go through the same
formatter (:func:`format_for`). A request has one access line: the SOAP and API
gateways' record of an operation (who, what, the answer, how long), or gunicorn's access
line for everything else (the contract, /health, /metrics, a worker's own refusals).
"""
from __future__ import annotations

import json
import logging
import re
import unicodedata
from datetime import datetime, timezone

# Set in a request's environ by the gateway that wrote that request's own record (SOAP and
# API operations): that record is the request's access line, and gunicorn writes none.
RECORDED = "pmc_adapter.recorded"


def recorded(environ: dict) -> None:
    """This request's record is written: it is the request's one access line."""
    environ[RECORDED] = True


TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")
MAX_MESSAGE = 4000

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
# controls (C0, DEL, C1), the backslash, and any non-ASCII character (looked at below)
_CANDIDATES = re.compile(r"[\x00-\x1f\x7f-\x9f\\]|[^\x00-\x7f]")
# non-ASCII characters that break or disguise a line: separators, spaces other than
# U+0020, format characters (bidirectional overrides, zero-width ones), unassigned,
# private-use and surrogate code points
_HIDING = ("Zs", "Zl", "Zp", "Cf", "Cn", "Co", "Cs")


def _escape(match: re.Match) -> str:
    char = match[0]
    code = ord(char)
    if code > 0x9f and unicodedata.category(char) not in _HIDING:
        return char  # printable (a name with an accent): as it is
    if char in _NAMED:
        return _NAMED[char]
    return f"\\x{code:02x}" if code <= 0xff else f"\\u{code:04x}" if code <= 0xffff \
        else f"\\U{code:08x}"


def _cut(text: str, limit: int = MAX_MESSAGE) -> str:
    return f"{text[:limit]}... ({len(text) - limit} more characters)" if len(text) > limit \
        else text


def escaped(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one line that shows what it holds, cut at ``limit`` characters."""
    return _CANDIDATES.sub(_escape, _cut(text, limit))


class TextLines(logging.Formatter):
    def __init__(self):
        super().__init__(TEXT_FORMAT)

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = escaped(record.message)
        return super().formatMessage(record)

    def formatException(self, exc_info) -> str:
        # our own text, many lines: each marked, so that none reads as a record
        return "\n".join(f"  | {escaped(line)}"
                         for line in super().formatException(exc_info).splitlines())

    def formatStack(self, stack_info: str) -> str:
        return "\n".join(f"  | {escaped(line)}" for line in stack_info.splitlines())


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        message = _cut(record.getMessage())
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                 .isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "pid": record.process, "message": message}
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        # ASCII only: U+2028, U+0085 and every control character travel escaped
        return json.dumps(entry, default=str, ensure_ascii=True)


def format_for(name: str) -> logging.Formatter:
    return JsonLines() if name == "json" else TextLines()


def use_format(name: str) -> None:
    """Give the root logger's handlers the format ``name`` ("text" or "json")."""
    formatter = format_for(name)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
