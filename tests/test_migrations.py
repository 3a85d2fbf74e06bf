"""The migrations build exactly the schema the models declare, on SQLite and PostgreSQL."""
import uuid

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.orm import Base


def fresh_database(database_url: str, tmp_path) -> str:
    if database_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    name = f"pmc_adapter_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


def drop(database_url: str, url: str) -> None:
    if not url.startswith("sqlite"):
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{make_url(url).database}" WITH (FORCE)'))
        admin.dispose()


def test_migrations_build_the_models_schema_and_run_once(database_url, tmp_path):
    url = fresh_database(database_url, tmp_path)
    engine = make_engine(url)
    try:
        assert upgrade_schema(engine) == ["0001"]
        assert upgrade_schema(engine) == []  # up to date: nothing to do
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(
                connection, opts={"compare_type": True}), Base.metadata)
        assert differences == []
    finally:
        engine.dispose()
        drop(database_url, url)
