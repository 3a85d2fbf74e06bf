"""Engines and the schema.

SQLite is configured for several gunicorn workers sharing one file: WAL
journal, a busy timeout, ``synchronous=FULL`` (a stored notice survives a power
cut) and ``BEGIN IMMEDIATE`` transactions, so that two writers serialize at
the start of a transaction instead of failing half-way through it.
"""
from __future__ import annotations

import logging

from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.engine import make_url

from adapter.storage.orm import Base

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

    @event.listens_for(engine, "begin")
    def _on_begin(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def upgrade_schema(engine: Engine) -> list[str]:
    """Create the tables that are missing; returns their names."""
    existing = set(inspect(engine).get_table_names())
    missing = [t.name for t in Base.metadata.sorted_tables if t.name not in existing]
    Base.metadata.create_all(engine)
    if missing:
        log.info("created tables: %s", ", ".join(missing))
    return missing


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))
