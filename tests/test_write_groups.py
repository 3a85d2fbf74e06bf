"""Write groups: on SQLite, the write transactions of concurrent requests share one
commit, each in a savepoint of its own; a member's failure is its own."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from sqlalchemy import event, text

from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome, PaymentNotice)
from adapter.errors import StorageUnavailable
from adapter.storage.db import make_engine, upgrade_schema
from adapter.storage.uow import Conflict, Storage, WriteGroups
from conftest import unique, wait_until

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


def notice(operation_id: str | None = None) -> PaymentNotice:
    return PaymentNotice("1234", operation_id or unique("OP"), unique("C"), "F1",
                         Decimal("5.00"), Currency.ARS, NOW)


def count(engine, sql: str, **params) -> int:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


@pytest.fixture
def storage(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'groups.sqlite3'}")
    upgrade_schema(engine)
    storage = Storage(engine)
    storage.group_writes()
    yield storage
    storage._groups.close()
    engine.dispose()


def held_first_commit(storage: Storage):
    """Hold the first group's commit until released; returns (sizes, release, stop)."""
    groups: WriteGroups = storage._groups
    sizes, may_commit = [], threading.Event()
    commit = groups._commit

    def counting(group):
        sizes.append(len(group))
        if len(sizes) == 1:
            may_commit.wait(10)
        commit(group)
    groups._commit = counting
    return sizes, may_commit


def add_payment(item: PaymentNotice):
    return lambda uow: uow.payments.add(item, Outcome.INVOICE_UNKNOWN, unique("R"), None)


def test_concurrent_writes_share_one_commit_and_each_returns_once_committed(storage):
    sizes, may_commit = held_first_commit(storage)
    items = [notice() for _ in range(21)]

    def write(item):
        storage.write(add_payment(item))
        return count(storage.engine, "SELECT count(*) FROM payments WHERE operation_id = :o",
                     o=item.operation_id)

    with ThreadPoolExecutor(21) as pool:
        first = pool.submit(write, items[0])
        wait_until(lambda: sizes == [1], timeout=10, what="the first group")
        others = pool.map(write, items[1:])
        wait_until(lambda: len(storage._groups._waiting) == 20, timeout=10,
                   what="the others waiting for the next group")
        may_commit.set()
        found = [first.result(), *others]
    assert found == [1] * 21, "a write returned before its commit"
    assert sizes == [1, 20]


def test_a_member_refused_by_a_constraint_fails_alone(storage):
    sizes, may_commit = held_first_commit(storage)
    taken, fine = notice(), notice()
    broken = notice(taken.operation_id)  # same biller and operation: the unique key refuses
    with ThreadPoolExecutor(3) as pool:
        pool.submit(storage.write, add_payment(taken))  # the first group, held
        wait_until(lambda: sizes == [1], timeout=10, what="the first group")
        results = [pool.submit(storage.write, add_payment(item)) for item in (fine, broken)]
        wait_until(lambda: len(storage._groups._waiting) == 2, timeout=10, what="the group")
        may_commit.set()
        assert isinstance(results[0].result(), int)
        with pytest.raises(Conflict):
            results[1].result()
    assert sizes[-1] == 2
    assert count(storage.engine, "SELECT count(*) FROM payments WHERE operation_id = :o",
                 o=fine.operation_id) == 1


def test_a_member_that_breaks_fails_alone_and_its_writes_are_undone(storage):
    doomed, kept = notice(), notice()

    def breaks(uow):
        add_payment(doomed)(uow)
        raise RuntimeError("a bug in the use case")

    sizes, may_commit = held_first_commit(storage)
    with ThreadPoolExecutor(3) as pool:
        pool.submit(storage.write, add_payment(notice()))  # the first group, held
        wait_until(lambda: sizes == [1], timeout=10, what="the first group")
        bad = pool.submit(storage.write, breaks)
        good = pool.submit(storage.write, add_payment(kept))
        wait_until(lambda: len(storage._groups._waiting) == 2, timeout=10, what="the group")
        may_commit.set()
        with pytest.raises(RuntimeError, match="a bug"):
            bad.result()
        good.result()
    assert sizes[-1] == 2
    assert count(storage.engine, "SELECT count(*) FROM payments WHERE operation_id = :o",
                 o=doomed.operation_id) == 0
    assert count(storage.engine, "SELECT count(*) FROM payments WHERE operation_id = :o",
                 o=kept.operation_id) == 1


def test_orm_writes_of_a_member_are_committed_with_its_group(storage):
    """Invoices are written through an ORM session joined to the member's savepoint."""
    invoice = Invoice("1234", unique("C"), "F1", Currency.ARS,
                      (DueDate(date.today() + timedelta(10), Decimal("7.00")),),
                      Origin.CREATED_ONLINE)
    storage.write(lambda uow: uow.invoices.save(invoice))
    with storage.unit_of_work(read_only=True) as uow:
        assert uow.invoices.get("1234", invoice.customer_id, "F1") == invoice


def test_a_failed_commit_fails_the_whole_group_and_keeps_nothing(storage):
    items = [notice() for _ in range(3)]

    @event.listens_for(storage.engine, "commit")
    def refuse(_connection):
        raise RuntimeError("disk full")

    try:
        with ThreadPoolExecutor(3) as pool:
            futures = [pool.submit(storage.write, add_payment(item)) for item in items]
            for future in futures:
                with pytest.raises(StorageUnavailable):
                    future.result()
    finally:
        event.remove(storage.engine, "commit", refuse)
    assert count(storage.engine, "SELECT count(*) FROM payments") == 0
    storage.write(add_payment(notice()))  # the lock was released: the next group commits
    assert count(storage.engine, "SELECT count(*) FROM payments") == 1


@pytest.mark.postgresql
def test_postgresql_runs_each_write_in_its_own_transaction(postgres_server_url):
    engine = make_engine(postgres_server_url)
    storage = Storage(engine)
    storage.group_writes()
    assert storage._groups is None  # row locks of grouped transactions could deadlock
    engine.dispose()
