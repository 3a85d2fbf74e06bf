"""Engines and the schema.

SQLite is configured for several gunicorn workers sharing one file: WAL
journal, a busy timeout, ``synchronous=FULL`` (a stored notice survives a power
cut) and ``BEGIN IMMEDIATE`` transactions, so that two writers serialize at
the start of a transaction instead of failing half-way through it.

Writers queue for the database's one write lock in the kernel, not in SQLite's
busy handler (which polls, sleeping up to 100 ms a time, so that a writer of
another process could wait ten times longer than the commit it waits for): a
write transaction first takes an exclusive ``flock`` on ``<database>-writer``,
which wakes the next writer the moment the last one commits, then ``BEGIN
IMMEDIATE``. Processes that do not take it (the ``sqlite3`` shell) still meet
the busy timeout. Transactions of units of work opened ``read_only`` begin
deferred and take neither lock: in WAL mode they read a snapshot while a writer
commits.

:func:`check_ready` is what ``/health`` asks: is the database there, answering
quickly, with the schema this code was written for?
"""
from __future__ import annotations

import atexit
import fcntl
import functools
import logging
import os
import math
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError, OperationalError

from adapter.errors import SchemaOutOfDate, StorageUnavailable
from adapter.text import ascii_digits

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30
# An execution option: this connection's transactions only read.
READ_ONLY = "pmc_read_only"


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S,
                                                  "factory": _GuardedConnection})
        _configure_sqlite(engine)
        return engine
    engine = create_engine(url)
    _ping_idle_connections(engine)
    return engine


IDLE_BEFORE_PING_S = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Make sure a pooled connection that sat idle is still alive before it is used
    (the server may have restarted, or a proxy dropped it): a connection that fails
    the ping is replaced, transparently. SQLAlchemy's ``pool_pre_ping`` does this on
    every checkout, one round trip per unit of work; a connection used in the last
    second is alive enough, and a busy service uses its connections all the time."""

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy):
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < IDLE_BEFORE_PING_S:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the driver's way of saying it is gone
            alive = not engine.dialect.is_disconnect(error, dbapi_connection, None)
            if alive:
                raise
        if not alive:
            raise DisconnectionError("pooled connection did not answer a ping")


def _configure_sqlite(engine: Engine) -> None:
    database = _database_file(engine.url)
    if database is not None:
        _FILES[engine] = database

        @event.listens_for(engine, "do_connect")
        def _open(_dialect, _record, _cargs, cparams):
            return database.open(cparams)

        @event.listens_for(engine, "checkout")
        def _still_ours(dbapi_connection, _record, _proxy):
            try:
                database.check(dbapi_connection)
            except sqlite3.OperationalError as error:  # the pool closes it, opens anew
                raise DisconnectionError(str(error)) from error

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record):
        # Let SQLAlchemy, not pysqlite, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    writer = _WriterLock(engine.url.database)

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        if connection.get_execution_options().get(READ_ONLY):
            connection.exec_driver_sql("BEGIN")
            return
        writer.acquire()
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            writer.release()
            raise
        # released by the connection once its COMMIT or ROLLBACK has run
        connection.connection.driver_connection.pmc_writer = writer


class _GuardedConnection(sqlite3.Connection):
    """A SQLite connection that commits only into the file the settings name.

    ``pmc_database`` (None for an in-memory database) checks, before and after every
    COMMIT, that the file at the configured path is still the one this connection
    has open: before, so that nothing is written into a deleted or replaced file;
    after, so that a transaction committed while the file was being replaced is not
    acknowledged. ``pmc_writer`` is the writer lock a write transaction holds, let go
    once its COMMIT or ROLLBACK has run (not before, when SQLAlchemy's events fire).
    """

    pmc_database: _DatabaseFile | None = None
    pmc_identity: _Identity | None = None
    pmc_wal: _Identity | None = None
    pmc_writer: _WriterLock | None = None

    def commit(self) -> None:
        if self.pmc_database is not None:
            self.pmc_database.check(self)
        super().commit()
        self._release_writer()
        if self.pmc_database is not None:
            self.pmc_database.check(self)

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release_writer()

    def close(self) -> None:
        if self.pmc_database is not None and self.pmc_database.lost:
            self.rollback()
            self.pmc_database.keep(self)  # closing it could destroy the only copy
            return
        try:
            super().close()
        finally:
            self._release_writer()

    def _release_writer(self) -> None:
        writer, self.pmc_writer = self.pmc_writer, None
        if writer is not None:
            writer.release()


_Identity = tuple  # (st_dev, st_ino): which file a path names


def _identity(path: str) -> _Identity | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


# The file each database path named when this process first opened it. Inherited by
# forked workers: one started after the file was replaced does not take the new one
# for the service's database.
_FIRST_OPENED: dict[str, _Identity] = {}
_FILES: weakref.WeakKeyDictionary[Engine, _DatabaseFile] = weakref.WeakKeyDictionary()
# every file a connection was opened to, held until exit (as the exit hook held each
# before): the connections _DatabaseFile keeps open to a replaced file stay open till then
_OPEN_FILES: set[_DatabaseFile] = set()


@atexit.register
def _close_files() -> None:
    """At exit, close every SQLite file's connections. Registered when this module is
    imported, before anything built on the storage registers its own exit (atexit runs
    last-in first-out): an outbox worker's release of its claims and the query log's
    last commit run first, on open connections (registered at a file's first
    connection, this ran before them, and a claim in flight at SIGTERM stayed held)."""
    for database in list(_OPEN_FILES):
        database.close_all()


RESTART_ADVICE = "the write is not acknowledged; restore the file, then stop and start the service"


class _DatabaseFile:
    """The SQLite file of an engine: opened without ever creating it, and checked to
    be the file at the configured path (device and inode, two ``stat`` calls) at every
    checkout and commit. Its ``-wal`` too: a connection holds one from its first write.

    Once a connection finds its file deleted or replaced, this process opens no other
    file at that path until it restarts: the old file's ``-wal`` and ``-shm`` stay at
    the path while any process still has the old file open, and a connection to the
    new file would take them for its own (SQLite's mispaired journal: corruption). Its
    connections to the old file stay open, refusing every statement, so that the old
    file can still be copied back. A connection to the same file is reopened freely
    (after a ``chmod`` is undone, say).
    """

    def __init__(self, path: str):
        self.path = path
        self.wal_path = path + "-wal"
        self.uri = "file:" + quote(Path(path).as_posix()) + "?mode=rw"
        self.lost: str | None = None  # why this process writes here no more
        self._kept: list[sqlite3.Connection] = []
        self._connections: weakref.WeakSet[sqlite3.Connection] = weakref.WeakSet()

    def open(self, cparams: dict) -> sqlite3.Connection:
        if self.lost:
            raise sqlite3.OperationalError(self.lost)
        before = _identity(self.path)
        if before is None:
            raise sqlite3.OperationalError(
                f"the database file {self.path} does not exist (deleted?); not creating an "
                f"empty one: restore it, or start the service to create a new database")
        first = _FIRST_OPENED.get(self.path)
        if first is None:
            self._claim_wal(before)
            first = _FIRST_OPENED.setdefault(self.path, before)
        if before != first:
            self._lose("was replaced since this process first opened it")
        connection = sqlite3.connect(self.uri, uri=True, **cparams)
        if _identity(self.path) != before:  # replaced while it opened
            sqlite3.Connection.close(connection)
            self._lose("was replaced while a connection opened it")
        self._connections.add(connection)
        _OPEN_FILES.add(self)
        connection.pmc_database = self
        connection.pmc_identity = before
        connection.pmc_wal = _identity(self.wal_path)
        return connection

    def check(self, connection: _GuardedConnection) -> None:
        """Raise ``sqlite3.OperationalError`` unless ``connection`` still has open the
        files the path names."""
        if self.lost:
            raise sqlite3.OperationalError(self.lost)
        if _identity(self.path) != connection.pmc_identity:
            self._lose("was deleted or replaced while the service had it open")
        wal = _identity(self.wal_path)
        if connection.pmc_wal is None:
            connection.pmc_wal = wal  # created by this connection's or another's write
        elif wal != connection.pmc_wal:
            self._lose(f"has lost its write-ahead log {self.wal_path} (deleted or replaced) "
                       f"while the service had it open")

    def _lose(self, what: str) -> None:
        self.lost = f"the database file {self.path} {what}; {RESTART_ADVICE}"
        log.error("%s", self.lost)
        raise sqlite3.OperationalError(self.lost)

    def _claim_wal(self, database: _Identity) -> None:
        """Refuse a ``-wal`` left at the path by another file: the file was replaced
        or deleted while a process had it open, and that process could not fold the
        log into it (a file no longer at its path, or ``kill -9``). SQLite would apply
        the old file's log to the new one.

        The ``-writer`` file beside the database records which file (device and
        inode) the processes that open it last found at the path."""
        owner_path = self.path + "-writer"
        try:
            recorded = Path(owner_path).read_text().split()
        except FileNotFoundError:
            recorded = []
        owner = tuple(int(part) for part in recorded) if \
            len(recorded) == 2 and all(map(ascii_digits, recorded)) \
            else None
        if owner not in (None, database) and _identity(self.wal_path) is not None:
            raise sqlite3.OperationalError(
                f"the write-ahead log {self.wal_path} belongs to another file than "
                f"{self.path} (the file at the path was replaced or deleted while a "
                f"process had it open): move {self.wal_path} and {self.path}-shm aside, or "
                f"put back the file they belong to (see the manual, docs/operations.rst: The "
                f"SQLite file)")
        if owner != database:
            descriptor = os.open(owner_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(descriptor, 0)
                os.write(descriptor, f"{database[0]} {database[1]}\n".encode())
            finally:
                os.close(descriptor)

    def keep(self, connection: sqlite3.Connection) -> None:
        """Keep open, until this process ends, a connection to the deleted or replaced
        file. Closing the last one would checkpoint the file's ``-wal`` into it and
        delete the ``-wal``: a deleted file would be gone, with every notice it holds;
        open, it can be copied back from ``/proc/<pid>/fd`` (the manual's docs/operations.rst,
        The SQLite file). Closed
        when the process exits: the old ``-wal`` goes into the old file, and no longer
        lies at the path beside the new one."""
        self._kept.append(connection)

    def close_all(self) -> None:
        """At exit, close every connection to the file, the pool's idle ones too: the
        last to close checkpoints the ``-wal`` into its file and deletes it, and a
        ``-wal`` left at the path is refused by the next start if the file changed."""
        for connection in [*self._connections, *self._kept]:
            sqlite3.Connection.close(connection)
        self._kept.clear()

    def check_path(self) -> None:
        """Raise :class:`StorageUnavailable` if this process writes here no more, or the
        path names another file than the one it first opened."""
        if self.lost:
            raise StorageUnavailable(self.lost)
        first = _FIRST_OPENED.get(self.path)
        if first is not None and _identity(self.path) not in (first, None):
            raise StorageUnavailable(f"the database file {self.path} is not the one this "
                                     f"process opened (replaced?); {RESTART_ADVICE}")


def _database_file(url) -> _DatabaseFile | None:
    """The file a SQLite URL names; None for an in-memory database or a ``file:`` URI
    (which says itself how to open it)."""
    database = url.database
    if database in (None, "", ":memory:") or database.startswith("file:") or \
            url.query.get("uri"):
        return None
    return _DatabaseFile(os.path.abspath(database))


def create_database_file(engine: Engine) -> None:
    """Create the SQLite file the engine names, empty, if there is none (the engines
    never create one: a deleted database is an error, not a new empty file)."""
    database = _FILES.get(engine)
    if database is not None and _identity(database.path) is None:
        if database.path not in _FIRST_OPENED:
            sqlite3.connect(database.uri.replace("mode=rw", "mode=rwc"), uri=True).close()


class _WriterLock:
    """The write lock of one SQLite file, for the threads of this process (a mutex) and
    for other processes (``flock`` on a file beside it, released when the holder
    unlocks or dies)."""

    def __init__(self, database: str | None):
        self._threads = threading.Lock()
        self._path = None if database in (None, "", ":memory:") or \
            database.startswith("file:") else f"{database}-writer"
        self._fd: int | None = None
        self._pid: int | None = None

    def _file(self) -> int | None:
        if self._path is None:
            return None
        if self._pid != os.getpid():  # opened anew in a forked worker: its own lock
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        self._threads.acquire()
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            self._threads.release()
            raise

    def release(self) -> None:
        try:
            fd = self._file()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def _alembic_config() -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def upgrade_schema(engine: Engine) -> list[str]:
    """Apply the migrations the database has not seen; returns their revision IDs.

    On SQLite, a migration that rebuilds a table (batch mode: copy, drop, rename)
    would trip the foreign keys that point at it when it drops the old one. Foreign
    keys are therefore off while migrating (SQLite ignores that pragma inside a
    transaction, so it is set before), and every one of them is checked before the
    migration commits.
    """
    config = _alembic_config()
    create_database_file(engine)
    try:
        connection = engine.connect()
    except OperationalError as error:
        raise StorageUnavailable(f"database not opened: {error.orig}") from error
    with connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        try:
            with connection.begin():
                before = MigrationContext.configure(connection).get_current_revision()
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                after = MigrationContext.configure(connection).get_current_revision()
                if sqlite:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"migration would break foreign keys: {broken[:5]}")
        finally:
            if sqlite:
                connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")
    applied = []
    script = ScriptDirectory.from_config(config)
    for revision in script.iterate_revisions(after, before):
        applied.insert(0, revision.revision)
    if applied:
        log.info("database schema upgraded: %s", ", ".join(applied))
    return applied


READINESS_TIMEOUT_S = 2.0
REVISION_QUERY = "SELECT version_num FROM alembic_version"


@functools.lru_cache(maxsize=1)
def schema_heads() -> frozenset[str]:
    """The revisions a database this code can use is at: the migrations' heads."""
    return frozenset(ScriptDirectory.from_config(_alembic_config()).get_heads())


def check_ready(engine: Engine, timeout: float = READINESS_TIMEOUT_S) -> None:
    """Raise :class:`StorageUnavailable` unless the database answers within about
    ``timeout`` seconds and its schema revision (read from ``alembic_version``) is
    the migrations' head.

    It reads on a connection of its own, outside the engine's pool and events: it
    never waits for a pooled connection or for the SQLite writer lock (``BEGIN
    IMMEDIATE``; in WAL mode a reader does not wait for writers), and it never
    creates a database: a missing SQLite file is an error, not a new empty file.
    """
    url = engine.url
    cargs, cparams = engine.dialect.create_connect_args(url)
    database = _FILES.get(engine)
    if database is not None:
        database.check_path()
    try:
        if url.get_backend_name() == "sqlite":
            found = _sqlite_revisions(cargs[0], bool(cparams.get("uri")), timeout)
        else:
            found = _server_revisions(engine, cargs, cparams, timeout)
    except StorageUnavailable:
        raise
    except Exception as error:  # a driver's error, whichever driver
        if "alembic_version" in str(error):  # no such table: a database never migrated
            raise SchemaOutOfDate("database schema has no revision (never migrated)") from error
        raise StorageUnavailable(f"database not readable: {error.__class__.__name__}: "
                                 f"{error}") from error
    expected = schema_heads()
    if found != expected:
        raise SchemaOutOfDate(f"database schema is at {sorted(found) or 'no revision'}, "
                              f"this code needs {sorted(expected)}")


def _sqlite_revisions(filename: str, is_uri: bool, timeout: float) -> frozenset[str]:
    if filename in ("", ":memory:") or (is_uri and "mode=memory" in filename):
        raise StorageUnavailable("an in-memory SQLite database cannot be checked from outside")
    if is_uri:  # the URL named a file: URI itself; only make sure it is not created
        uri = filename if "mode=" in filename else \
            filename + ("&" if "?" in filename else "?") + "mode=rw"
    else:
        if not Path(filename).exists():
            raise SchemaOutOfDate(f"no database file {filename}")
        uri = "file:" + quote(Path(filename).resolve().as_posix()) + "?mode=rw"
    # autocommit: the SELECT runs in a read transaction of its own, and ends with it
    connection = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None)
    try:
        return frozenset(row[0] for row in connection.execute(REVISION_QUERY))
    finally:
        connection.close()


def _server_revisions(engine: Engine, cargs, cparams, timeout: float) -> frozenset[str]:
    deadline = time.monotonic() + timeout
    postgresql = engine.url.get_backend_name() == "postgresql"
    if postgresql:  # libpq's connect timeout is whole seconds, at least 2
        cparams = {**cparams, "connect_timeout": max(2, math.ceil(timeout))}
    connection = engine.dialect.loaded_dbapi.connect(*cargs, **cparams)
    try:
        cursor = connection.cursor()
        if postgresql:
            left_ms = max(100, int((deadline - time.monotonic()) * 1000))
            cursor.execute(f"SET statement_timeout = {left_ms}")
        cursor.execute(REVISION_QUERY)
        return frozenset(row[0] for row in cursor.fetchall())
    finally:
        connection.close()
