"""Unit of work: one transaction, the repositories on it -- the only code that speaks
SQL. Repositories hand out domain objects (:mod:`adapter.domain.model`), never rows."""
from __future__ import annotations

import hashlib

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError, OperationalError

from adapter.domain.model import PaymentNotice
from adapter import metrics
from adapter.errors import StorageUnavailable
from adapter.storage.db import READ_ONLY
from adapter.storage.statements import OPERATION_LOCK, PRECEDENTS
from adapter.errors import Conflict
from adapter.storage.transaction import Transaction
from adapter.storage.invoices import Invoices
from adapter.storage.payments import twin_parameters, Precedents, Payments
from adapter.storage.reversals import Reversals
from adapter.storage.deliveries import Forwards, PmcDeliveries
from adapter.storage.queries import Queries
from adapter.storage.console import ConsoleJournal
from adapter.storage.fac_files import FacFiles
from adapter.storage.reports import Reports


def _lock_key(biller_id: str, operation_id: str) -> int:
    """A signed 64-bit number for (biller, operation): a PostgreSQL advisory lock key."""
    digest = hashlib.blake2b(f"{biller_id}:{operation_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class UnitOfWork:
    """``with uow: ...; uow.commit()`` — one transaction; rolled back unless committed.

    A ``read_only`` one must not write: on SQLite it takes no write lock (in WAL
    mode it reads a snapshot while a writer commits); on PostgreSQL each of its
    statements runs on its own (autocommit: no BEGIN and ROLLBACK round trips),
    so that it sees the latest commit, not one snapshot for all of them.
    """

    def __init__(self, engine: Engine):
        self._engine = engine
        self._tx: Transaction | None = None

    def __enter__(self) -> UnitOfWork:
        try:
            connection = self._engine.connect()
        except OperationalError as error:  # the database cannot be opened
            metrics.DATABASE_ERRORS.inc()
            raise StorageUnavailable(f"database error: {error.orig}") from error
        self._tx = Transaction(connection)
        self.invoices = Invoices(self._tx)
        self.payments = Payments(self._tx)
        self.reversals = Reversals(self._tx)
        self.forwards = Forwards(self._tx)
        self.pmc_deliveries = PmcDeliveries(self._tx)
        self.reports = Reports(self._tx)
        self.fac_files = FacFiles(self._tx)
        self.console = ConsoleJournal(self._tx)
        self.queries = Queries(self._tx)
        return self

    def lock_operation(self, biller_id: str, operation_id: str) -> None:
        """Hold, until this transaction ends, the lock that a payment and its reversal
        both take before they look for each other: two transactions that store them at
        once run one after the other, and the second sees the first. (On SQLite every
        write transaction holds the database's one write lock already.)"""
        if self._tx.dialect == "postgresql":
            self._tx.execute(OPERATION_LOCK, {"k_lock": _lock_key(biller_id, operation_id)})

    def precedents(self, notice: PaymentNotice) -> Precedents:
        """What a notice must know before it is stored (:class:`Precedents`), in one
        statement: most notices have none, and are stored after four round trips, not
        six."""
        row = self._tx.execute(PRECEDENTS, {"k_operation": notice.operation_id,
                                             **twin_parameters(notice)}).one()
        return Precedents(row.stored is not None, row.twin, row.reversal is not None)

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._tx.close()
        self._tx = None
        if isinstance(exc, IntegrityError):
            raise Conflict(str(exc.orig)) from exc
        if isinstance(exc, OperationalError):
            metrics.DATABASE_ERRORS.inc()
            raise StorageUnavailable(f"database error: {exc.orig}") from exc
        return False

    def commit(self) -> None:
        self._tx.commit()


class Storage:
    """What the service layer needs from the database: units of work."""

    def __init__(self, engine: Engine):
        self.engine = engine
        reading = {READ_ONLY: True}
        if engine.dialect.name == "postgresql":
            reading["isolation_level"] = "AUTOCOMMIT"
        self._reader = engine.execution_options(**reading)

    def unit_of_work(self, *, read_only: bool = False) -> UnitOfWork:
        """A transaction (see :class:`UnitOfWork` for ``read_only``)."""
        return UnitOfWork(self._reader if read_only else self.engine)
