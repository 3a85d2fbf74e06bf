"""Debt queries are recorded in group commits: each before its answer, several per commit.

Against real databases (SQLite and PostgreSQL) and a real server killed with -9.
"""
from __future__ import annotations

import subprocess
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest
from sqlalchemy import event, text

from adapter.errors import StorageUnavailable
from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.query_log import QueryLog, QueryRecord
from support.data import unique
from support.servers import start_server, wait_until
from support.soap import RawSoap


def record(customer: str) -> QueryRecord:
    return QueryRecord(uuid.uuid4().hex, "1234", customer, None, 1, 0,
                       datetime.now(timezone.utc))


def stored(engine, query_id: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM debt_queries WHERE query_id = :q"),
                                  {"q": query_id}).scalar_one()


def test_concurrent_queries_share_commits_and_each_is_stored_before_it_returns(engine):
    query_log = QueryLog(engine).start()
    commits, first_commit_may_go = [], threading.Event()
    group_sizes, write = [], query_log._write
    query_log._write = lambda rows: (group_sizes.append(len(rows)), write(rows))

    @event.listens_for(engine, "commit")
    def count_commits(_connection):
        commits.append(1)
        first_commit_may_go.wait(10)  # the first group commits once the others wait

    customer = unique("Q")

    def ask(_):
        query = record(customer)
        query_log.record(query)
        return stored(engine, query.query_id)  # read at once after record() returned

    try:
        with ThreadPoolExecutor(40) as pool:
            first = pool.submit(ask, 0)
            wait_until(lambda: group_sizes == [1], timeout=10, what="the first commit")
            others = pool.map(ask, range(39))
            wait_until(lambda: len(query_log._gathering.records) == 39, timeout=10,
                       what="the other queries gathering while the first commits")
            first_commit_may_go.set()
            found = [first.result(), *others]
    finally:
        event.remove(engine, "commit", count_commits)
        query_log.close()
    assert found == [1] * 40, "a record() returned before its query was committed"
    assert group_sizes == [1, 39] and len(commits) == 2, (
        f"40 queries in groups {group_sizes}, {len(commits)} commits: the second group "
        f"should hold every query handed in while the first committed")


def test_a_failed_commit_fails_every_query_of_its_group_and_the_next_one_is_tried_afresh(
        tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'own.sqlite3'}")  # a table of its own to break
    upgrade_schema(engine)
    query_log = QueryLog(engine).start()
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE debt_queries RENAME TO debt_queries_away"))
    try:
        with ThreadPoolExecutor(5) as pool:
            outcomes = list(pool.map(lambda _: _outcome(query_log, record("F")), range(5)))
        assert outcomes == ["StorageUnavailable"] * 5
        with engine.begin() as connection:
            connection.execute(text("ALTER TABLE debt_queries_away RENAME TO debt_queries"))
        again = record("F")
        query_log.record(again)
        assert stored(engine, again.query_id) == 1
        with engine.connect() as connection:
            assert connection.execute(text("SELECT count(*) FROM debt_queries")).scalar_one() == 1
    finally:
        query_log.close()
        engine.dispose()


def _outcome(query_log: QueryLog, query: QueryRecord) -> str:
    try:
        query_log.record(query)
    except StorageUnavailable:
        return "StorageUnavailable"
    return "recorded"


def test_after_close_each_query_is_committed_by_its_own_thread(engine):
    query_log = QueryLog(engine).start()
    query_log.close()
    late = record("L")
    query_log.record(late)
    assert stored(engine, late.query_id) == 1


def test_no_answered_query_is_lost_to_a_kill_9(database_url, tmp_path, schema):
    """Answers are sent only after their commit: kill -9 of the master and every
    worker right after a burst loses none of the idConsulta PMC received."""
    server = start_server(database_url, tmp_path)
    soap = RawSoap(server.soap_url, schema)
    customer = unique("K")
    try:
        with ThreadPoolExecutor(16) as pool:
            replies = list(pool.map(lambda _: soap.call(
                "ConsultarDeuda", [("idEmpresa", "1234"), ("idCliente", customer)]), range(64)))
    finally:
        subprocess.run(["pkill", "-KILL", "-P", str(server.process.pid)], check=False)
        server.process.kill()
        server.process.wait(30)
    answered = {reply.field("idConsulta") for reply in replies}
    assert len(answered) == 64 and None not in answered
    rows = server.database.rows("SELECT query_id FROM debt_queries WHERE customer_id = :c",
                                c=customer)
    assert {row[0] for row in rows} == answered
    server.database.engine.dispose()
