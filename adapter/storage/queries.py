"""The debt queries recorded (read side: what the charges rule reads)."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from adapter.domain.charges import Query
from adapter.storage.statements import QUERIES
from adapter.storage.transaction import Transaction


class Queries:
    """The debt queries recorded (:mod:`adapter.storage.query_log` writes them)."""

    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def billers(self) -> list[str]:
        return list(self._tx.execute(select(QUERIES.c.biller_id).distinct()).scalars())

    def between(self, biller_id: str, start: datetime, end: datetime) -> list[Query]:
        rows = self._tx.execute(select(
            QUERIES.c.query_id, QUERIES.c.customer_id, QUERIES.c.invoice_id,
            QUERIES.c.asked_at, QUERIES.c.response_code).where(
            QUERIES.c.biller_id == biller_id, QUERIES.c.asked_at >= start,
            QUERIES.c.asked_at < end))
        return [Query(*row) for row in rows]
