"""The WS-Security nonces seen: a PasswordDigest token is accepted once.

A nonce is remembered, per caller, until its token could no longer pass the
freshness check anyway (its ``Created`` plus the window); then the row is only
dead weight, and rows past that are deleted now and then. The unique key on
(caller, nonce) decides between two workers, or two instances on the same
database, that receive the same token at once: one insert wins, the other is a
replay.
"""
from __future__ import annotations

import threading
import time
from datetime import datetime

from sqlalchemy import Engine, delete, insert
from sqlalchemy.exc import IntegrityError, OperationalError

from adapter.domain.model import utcnow
from adapter.errors import StorageUnavailable
from adapter.storage.orm import NonceRow

PURGE_EVERY_S = 60.0


class NonceRegistry:
    def __init__(self, engine: Engine):
        self._engine = engine
        self._purged_at = float("-inf")
        self._purging = threading.Lock()

    def first_use(self, caller: str, nonce: str, expires_at: datetime) -> bool:
        """Remember ``nonce`` of ``caller`` until ``expires_at``; False if it was
        already seen (a replay)."""
        self._purge_now_and_then()
        try:
            with self._engine.begin() as connection:
                connection.execute(insert(NonceRow), {
                    "caller": caller, "nonce": nonce, "expires_at": expires_at})
        except IntegrityError:
            return False
        except OperationalError as error:
            raise StorageUnavailable(f"database error: {error.orig}") from error
        return True

    def purge(self) -> int:
        """Forget the nonces whose tokens have expired; returns how many."""
        with self._engine.begin() as connection:
            return connection.execute(
                delete(NonceRow).where(NonceRow.expires_at < utcnow())).rowcount

    def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._purged_at < PURGE_EVERY_S or not self._purging.acquire(blocking=False):
            return
        try:
            self._purged_at = now
            self.purge()
        finally:
            self._purging.release()
