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

import fcntl
import functools
import logging
import os
import math
import sqlite3
import threading
import time
from pathlib import Path
from urllib.parse import quote

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError

from adapter.errors import StorageUnavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30
# An execution option: this connection's transactions only read.
READ_ONLY = "pmc_read_only"


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
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
        connection.info["holds_writer_lock"] = True

    @event.listens_for(engine, "commit")
    @event.listens_for(engine, "rollback")
    def _on_end(connection):
        if connection.info.pop("holds_writer_lock", False):
            writer.release()


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
    with engine.connect() as connection:
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
    try:
        if url.get_backend_name() == "sqlite":
            found = _sqlite_revisions(cargs[0], bool(cparams.get("uri")), timeout)
        else:
            found = _server_revisions(engine, cargs, cparams, timeout)
    except StorageUnavailable:
        raise
    except Exception as error:  # a driver's error, whichever driver
        raise StorageUnavailable(f"database not readable: {error.__class__.__name__}: "
                                 f"{error}") from error
    expected = schema_heads()
    if found != expected:
        raise StorageUnavailable(f"database schema is at {sorted(found) or 'no revision'}, "
                                 f"this code needs {sorted(expected)}")


def _sqlite_revisions(filename: str, is_uri: bool, timeout: float) -> frozenset[str]:
    if filename in ("", ":memory:") or (is_uri and "mode=memory" in filename):
        raise StorageUnavailable("an in-memory SQLite database cannot be checked from outside")
    if is_uri:  # the URL named a file: URI itself; only make sure it is not created
        uri = filename if "mode=" in filename else \
            filename + ("&" if "?" in filename else "?") + "mode=rw"
    else:
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
