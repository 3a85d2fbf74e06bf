"""SQLite writers of different processes queue in the kernel (flock), not in SQLite's
busy handler, and a writer that dies with the lock releases it."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from adapter.storage.db import make_engine, upgrade_schema

# Another worker: takes the writer lock the way the adapter does, opens a write
# transaction, says so, and holds both until it reads a line (or is killed).
HOLDER = r"""
import sys
from sqlalchemy import text
from adapter.storage.db import make_engine
engine = make_engine(sys.argv[1])
with engine.begin() as connection:
    connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
    print("holding", flush=True)
    sys.stdin.readline()
print("released", flush=True)
"""


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'locked.sqlite3'}"
    engine = make_engine(url)
    upgrade_schema(engine)
    yield url, engine, Path(tmp_path / "locked.sqlite3-writer")
    engine.dispose()


def start_holder(url: str) -> subprocess.Popen:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, url], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "holding"
    return holder


def write_in_thread(engine) -> tuple[threading.Thread, list]:
    done = []

    def write():
        started = time.monotonic()
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = version_num"))
        done.append(time.monotonic() - started)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread, done


def test_a_writer_waits_for_another_process_in_the_kernel_and_goes_on_its_release(database):
    url, engine, lock_file = database
    holder = start_holder(url)
    try:
        assert lock_file.exists()
        thread, done = write_in_thread(engine)
        thread.join(1.0)
        assert not done, "wrote while another process held the write lock"
        holder.stdin.write("go\n")
        holder.stdin.flush()
        assert holder.stdout.readline().strip() == "released"
        thread.join(10)
        assert done, "the writer did not go on once the lock was released"
    finally:
        holder.kill()
        holder.wait()


def test_a_writer_killed_while_holding_the_lock_releases_it(database):
    url, engine, _lock_file = database
    holder = start_holder(url)
    thread, done = write_in_thread(engine)
    thread.join(0.5)
    assert not done
    holder.kill()  # kill -9 in the middle of its transaction
    holder.wait()
    thread.join(10)
    assert done, "the lock of a killed writer was never released"


def test_readers_do_not_wait_for_a_writer(database):
    url, engine, _lock_file = database
    from adapter.storage.unit_of_work import Storage
    holder = start_holder(url)
    try:
        with Storage(engine).unit_of_work(read_only=True) as uow:
            assert uow.invoices.of_customer("1234", "nobody") == []
    finally:
        holder.kill()
        holder.wait()
