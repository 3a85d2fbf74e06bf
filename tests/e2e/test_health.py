"""/health tells the truth, fast: 200 only when the database is there, answers at once,
and carries the schema this code's migrations build; 503 otherwise.

Each test breaks a database of its own, behind a server of its own.
"""
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from adapter.storage.db import schema_heads
from support.servers import start_server, stop_server

sqlite_only = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def own_server(own_database, tmp_path):
    running = start_server(own_database, tmp_path)
    yield running
    stop_server(running)


def health(server, timeout=10) -> tuple[int, float]:
    """Status of GET /health, and how long it took."""
    started = time.monotonic()
    response = requests.get(server.base_url + "/health", timeout=timeout)
    return response.status_code, time.monotonic() - started


def statuses(server, times=6) -> set[int]:
    # several requests, so that every worker of the server is likely asked
    return {health(server)[0] for _ in range(times)}


def execute(server, sql: str) -> None:
    with server.database.engine.begin() as connection:
        connection.execute(text(sql))


def test_health_answers_200_only_at_the_schema_revision_of_this_code(own_server):
    (head,) = schema_heads()
    assert statuses(own_server) == {200}
    execute(own_server, "UPDATE alembic_version SET version_num = '0001'")
    assert statuses(own_server) == {503}
    execute(own_server, "UPDATE alembic_version SET version_num = 'f00dcafe'")  # a newer one
    assert statuses(own_server) == {503}
    execute(own_server, f"UPDATE alembic_version SET version_num = '{head}'")
    assert statuses(own_server) == {200}
    execute(own_server, "DROP TABLE alembic_version")
    assert statuses(own_server) == {503}
    assert "health check failed" in own_server.log()


@sqlite_only
def test_a_deleted_sqlite_file_answers_503_and_is_not_recreated(own_server):
    path = Path(make_url(own_server.database.url).database)
    assert statuses(own_server) == {200}
    path.unlink()
    assert statuses(own_server) == {503}
    assert not path.exists()


HOLD_THE_WRITE_LOCK = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
connection.execute("ROLLBACK")
"""


@sqlite_only
def test_health_answers_at_once_while_another_process_holds_the_write_lock(own_server):
    path = make_url(own_server.database.url).database
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_WRITE_LOCK, path],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(sqlite3.OperationalError, match="locked"):  # it really is held
            sqlite3.connect(path, timeout=0, isolation_level=None).execute("BEGIN IMMEDIATE")
        for _ in range(6):
            status, took = health(own_server)
            # reading is allowed in WAL mode while another process writes: ready
            assert (status, took < 2.5) == (200, True), took
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
    assert holder.returncode == 0
