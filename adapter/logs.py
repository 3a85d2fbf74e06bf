"""How the adapter's log lines look: plain text (the default, for a terminal) or JSON
lines (``log_format = "json"``), one object per line with the time, level, logger,
process, message and the fields a line carries (a SOAP request's line carries its
request ID, operation, biller, idOperacion/idConsulta, outcome and duration)."""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone

TEXT_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


class JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": datetime.fromtimestamp(record.created, timezone.utc)
                 .isoformat(timespec="milliseconds"),
                 "level": record.levelname.lower(), "logger": record.name,
                 "pid": record.process, "message": record.getMessage()}
        entry.update(getattr(record, "fields", None) or {})
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def use_format(name: str) -> None:
    """Give the root logger's handlers the format ``name`` ("text" or "json")."""
    formatter = JsonLines() if name == "json" else logging.Formatter(TEXT_FORMAT)
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
