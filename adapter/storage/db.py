"""Engines and the schema.

SQLite is configured for several gunicorn workers sharing one file: WAL
journal, a busy timeout, ``synchronous=FULL`` (a stored notice survives a power
cut) and ``BEGIN IMMEDIATE`` transactions, so that two writers serialize at
the start of a transaction instead of failing half-way through it.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url

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


def upgrade_schema(engine: Engine) -> list[str]:
    """Apply the migrations the database has not seen; returns their revision IDs."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        after = MigrationContext.configure(connection).get_current_revision()
    applied = []
    script = ScriptDirectory.from_config(config)
    for revision in script.iterate_revisions(after, before):
        applied.insert(0, revision.revision)
    if applied:
        log.info("database schema upgraded: %s", ", ".join(applied))
    return applied


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
