"""Databases for the tests: the PostgreSQL server the suite uses, fresh databases on it."""
from __future__ import annotations

import contextlib
import os
import uuid

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

POSTGRES_URL = os.environ.get("PMC_ADAPTER_TEST_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REQUIRE_POSTGRES = os.environ.get("PMC_ADAPTER_TEST_REQUIRE_POSTGRES") == "1"


@contextlib.contextmanager
def fresh_postgres_database(server_url: str, prefix: str):
    """The URL of a new, empty database on ``server_url``'s server, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()




def migrated(database_url: str) -> str:
    """``database_url`` with the schema up to date, as ``pmc-adapter upgrade-schema`` leaves
    it (the commands that are not serve, worker or upgrade-schema never migrate)."""
    from adapter.storage.db import make_engine, upgrade_schema

    engine = make_engine(database_url)
    try:
        upgrade_schema(engine)
    finally:
        engine.dispose()
    return database_url
