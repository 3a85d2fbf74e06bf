"""The record of debt queries, committed in groups by one thread per process.

Every ConsultarDeuda is recorded with its ``idConsulta`` (PMC charges the
queries that end in a payment, and the biller checks that bill against this
table). Written in each request's own transaction, every query cost a commit:
on SQLite the database's one write lock and an fsync, so that concurrent
queries queued for the lock one by one. Here a request hands its record to the
process's query-log thread and waits; the thread writes every record handed to
it since its last commit in one transaction (one lock, one fsync, one
round trip), then wakes their requests. While it commits, the next group
gathers; alone, a query waits for one commit, as before.

So an ``idConsulta`` is answered only once it is committed: a kill -9 or a
power cut loses none that PMC received, and a shutdown has nothing left to
write. A failed commit fails every query of its group (a ``Server`` fault, as
a failed commit of its own did), and the next group is tried afresh.
"""
from __future__ import annotations

import atexit
import logging
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime

from sqlalchemy import Engine, insert

from adapter.errors import StorageUnavailable
from adapter.storage.orm import QueryRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueryRecord:
    """One debt query as the ``debt_queries`` table keeps it."""

    query_id: str
    biller_id: str
    customer_id: str
    invoice_id: str | None
    response_code: int
    invoice_count: int
    asked_at: datetime


@dataclass(eq=False)
class _Group:
    """The records of one commit, and how it went."""

    records: list[QueryRecord] = field(default_factory=list)
    committed: threading.Event = field(default_factory=threading.Event)
    error: Exception | None = None


class QueryLog:
    def __init__(self, engine: Engine):
        self._engine = engine
        self._lock = threading.Condition()
        self._gathering = _Group()
        self._closing = False
        self._thread: threading.Thread | None = None

    def start(self) -> QueryLog:
        """Start this process's query-log thread (until then, each record is written by
        the thread that hands it in)."""
        self._thread = threading.Thread(target=self._run, name="query-log", daemon=True)
        self._thread.start()
        atexit.register(self.close)
        return self

    def record(self, record: QueryRecord) -> None:
        """Return once ``record`` is committed; raise StorageUnavailable if it cannot be."""
        with self._lock:
            alone = self._thread is None or self._closing
            if alone:
                group = _Group([record])
            else:
                group = self._gathering
                group.records.append(record)
                self._lock.notify()
        if alone:
            self._commit(group)
        group.committed.wait()
        if group.error is not None:
            raise StorageUnavailable(f"debt query not recorded: {group.error}") from group.error

    def close(self, timeout: float = 10.0) -> None:
        """Commit what was handed in, then stop the thread; later records are written
        by their own threads."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._gathering.records and not self._closing:
                    self._lock.wait()
                group, self._gathering = self._gathering, _Group()
            if not group.records:  # closing, and all handed in is committed
                return
            self._commit(group)

    def _commit(self, group: _Group) -> None:
        try:
            self._write([asdict(record) for record in group.records])
        except Exception as error:  # every waiting request hears of it
            log.error("recording %d debt queries failed: %s", len(group.records), error)
            group.error = error
        finally:
            group.committed.set()

    def _write(self, rows: list[dict]) -> None:
        with self._engine.begin() as connection:
            connection.execute(insert(QueryRow), rows)
