"""Fixtures: real servers (``pmc-adapter serve`` = gunicorn) on loopback, real databases.

Every end-to-end test runs once per database: SQLite (always) and PostgreSQL
(``PMC_ADAPTER_TEST_POSTGRES_URL``, default the local ``test`` database; each
session works in a database of its own, created and dropped here). Where
PostgreSQL does not answer, its tests are skipped with the reason -- unless
``PMC_ADAPTER_TEST_REQUIRE_POSTGRES=1`` (as in CI), where they fail.
"""
from __future__ import annotations

import os

import pytest
import xmlschema
from sqlalchemy import create_engine, text

from adapter.soap import contract
from adapter.storage.db import make_engine, upgrade_schema
from support.databases import POSTGRES_URL, REQUIRE_POSTGRES, fresh_postgres_database
from support.servers import Database, start_server, stop_server
from support.soap import RawSoap, contract_client


# -- the order of the files ----------------------------------------------------------

# The files that take a minute or more (wall time on 2 cores), longest first, run first:
# scripts/test gives each process a whole file at a time, and a long file started last
# keeps the suite running while the other processes have nothing left to do.
LONGEST_FIRST = ("test_outbox.py", "test_install.py", "test_observed.py", "test_erp.py",
                 "test_reversal.py", "test_reconciliation.py", "test_security.py",
                 "test_contract.py", "test_api.py", "test_pmc_api.py")


def pytest_collection_modifyitems(items):
    rank = {name: position for position, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep
    # their order


# -- databases ------------------------------------------------------------------

@pytest.fixture(scope="session")
def postgres_server_url():
    try:
        engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        reason = f"PostgreSQL not reachable at {POSTGRES_URL}: {error.__class__.__name__}"
        if REQUIRE_POSTGRES:
            pytest.fail(reason + " (PMC_ADAPTER_TEST_REQUIRE_POSTGRES=1)")
        pytest.skip(reason)
    engine.dispose()
    with fresh_postgres_database(POSTGRES_URL, f"pmc_adapter_test_{os.getpid()}") as url:
        yield url
        stop_kept_server(url)  # before its database is dropped


# pytest tears a parametrized session fixture down whenever the parameter changes, and
# a test process running one file after another (scripts/test) changes it in every file:
# the session's database and server of each kind are kept here instead, made once, and
# stopped at the end of the session.
_KEPT: dict[tuple[str, str], object] = {}


def stop_kept_server(database_url: str) -> None:
    running = _KEPT.pop(("server", database_url), None)
    if running is not None:
        stop_server(running)


@pytest.fixture(scope="session")
def kept_until_the_end():
    yield _KEPT
    for key in [key for key in _KEPT if key[0] == "server"]:
        stop_kept_server(key[1])


@pytest.fixture(scope="session", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def database_url(request, tmp_path_factory, kept_until_the_end):
    key = ("database", request.param)
    if key not in _KEPT:
        _KEPT[key] = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'adapter.sqlite3'}" \
            if request.param == "sqlite" else request.getfixturevalue("postgres_server_url")
    return _KEPT[key]


@pytest.fixture
def engine(database_url):
    """The adapter's own engine on the test database, its schema up to date."""
    engine = make_engine(database_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()


# -- servers --------------------------------------------------------------------

@pytest.fixture(scope="session")
def server(database_url, tmp_path_factory):
    """The session's server on ``database_url`` (one per database, kept: see _KEPT)."""
    key = ("server", database_url)
    if key not in _KEPT:
        _KEPT[key] = start_server(database_url, tmp_path_factory.mktemp("server"))
    return _KEPT[key]


@pytest.fixture
def db(server) -> Database:
    return server.database


# -- SOAP clients -----------------------------------------------------------------

@pytest.fixture(scope="session")
def schema() -> xmlschema.XMLSchema:
    """The bundled XSD, compiled by the tests themselves."""
    return xmlschema.XMLSchema(str(contract.xsd_path()))


@pytest.fixture(scope="session")
def client(server, schema):
    """A zeep client built only from the server's /soap?wsdl, as any consumer would.

    Every message it sends and receives is checked against the bundled XSD.
    """
    key = ("client", server.base_url)
    if key not in _KEPT:
        _KEPT[key] = contract_client(server, schema)
    return _KEPT[key]


@pytest.fixture
def soap(server, schema) -> RawSoap:
    return RawSoap(server.soap_url, schema)


@pytest.fixture
def billing_base(server):
    """Puts invoices in the billing base (origin BASE), as a FAC upload would."""
    from adapter.storage.db import make_engine
    from adapter.storage.unit_of_work import Storage

    storage = Storage(make_engine(server.database.url))

    def add(invoice):
        with storage.unit_of_work() as uow:
            uow.invoices.save(invoice)
            uow.commit()
        return invoice

    yield add
    storage.engine.dispose()


# -- a database of its own ------------------------------------------------------------

@pytest.fixture
def own_database(database_url, tmp_path):
    """A fresh, empty database of the same kind as ``database_url``, for a test that
    breaks or inspects its database alone."""
    if database_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'own.sqlite3'}"
        return
    with fresh_postgres_database(database_url, "pmc_adapter_own") as url:
        yield url
