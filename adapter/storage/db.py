"""Engines and the schema.

SQLite is configured for several gunicorn workers sharing one file: WAL
journal, a busy timeout, ``synchronous=FULL`` (a stored notice survives a power
cut) and ``BEGIN IMMEDIATE`` transactions, so that two writers serialize at
the start of a transaction instead of failing half-way through it.

:func:`check_ready` is what ``/health`` asks: is the database there, answering
quickly, with the schema this code was written for?
"""
from __future__ import annotations

import functools
import logging
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

from adapter.errors import StorageUnavailable

log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        _configure_sqlite(engine)
        return engine
    return create_engine(url, pool_pre_ping=True)


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

    # Threads of one process queue for the write lock here, waking as soon as it is
    # free; SQLite's own busy handler (between processes) sleeps in steps of up to 100 ms.
    writer = threading.Lock()

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
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
