"""Helpers every layer of the suite imports by name: free ports, fresh identifiers, today."""
from __future__ import annotations

import socket
import uuid
from datetime import date, datetime

from adapter.domain.calendar import BUSINESS_TZ


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def today() -> date:
    """Today in Buenos Aires, as the server sees it."""
    return datetime.now(BUSINESS_TZ).date()


def unique(prefix: str) -> str:
    """A fresh identifier, so that tests sharing a server never see each other's data."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"

