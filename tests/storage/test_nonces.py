"""The nonce registry: a nonce is taken once per caller, and forgotten once its token
could no longer be fresh."""
from datetime import datetime, timedelta, timezone

from sqlalchemy import text

from adapter.storage.nonces import NonceRegistry
from support.data import unique


def rows(engine, nonce: str) -> int:
    with engine.connect() as connection:
        return connection.execute(text("SELECT count(*) FROM ws_nonces WHERE nonce = :n"),
                                  {"n": nonce}).scalar_one()


def test_a_nonce_is_taken_once_per_caller(engine):
    registry, nonce = NonceRegistry(engine), unique("N")
    until = datetime.now(timezone.utc) + timedelta(minutes=5)
    assert registry.first_use("pmc", nonce, until)
    assert not registry.first_use("pmc", nonce, until)
    assert registry.first_use("web", nonce, until)  # another caller's token


def test_expired_nonces_are_purged_and_live_ones_kept(engine):
    registry = NonceRegistry(engine)
    old, live = unique("OLD"), unique("LIVE")
    now = datetime.now(timezone.utc)
    assert registry.first_use("pmc", old, now - timedelta(seconds=1))
    assert registry.first_use("pmc", live, now + timedelta(minutes=5))
    assert registry.purge() >= 1
    assert (rows(engine, old), rows(engine, live)) == (0, 1)
