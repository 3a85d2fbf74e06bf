"""The back office's sessions and journal in the database (every worker and instance
sharing it sees the same sessions, and the same failed logins)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, insert, or_, select, update

from adapter.storage.orm import ConsoleEventRow, ConsoleSessionRow
from adapter.storage.transaction import Transaction

_SESSIONS = ConsoleSessionRow.__table__
_EVENTS = ConsoleEventRow.__table__


@dataclass(frozen=True)
class ConsoleSession:
    operator: str
    csrf: str
    seen_at: datetime


class ConsoleJournal:
    def __init__(self, transaction: Transaction):
        self._tx = transaction

    def open_session(self, token_sha256: str, operator: str, csrf: str, address: str,
                     now: datetime) -> None:
        self._tx.execute(insert(_SESSIONS).values(
            token_sha256=token_sha256, operator=operator, csrf=csrf, address=address[:64],
            created_at=now, seen_at=now))

    def session(self, token_sha256: str, idle_since: datetime,
                now: datetime) -> ConsoleSession | None:
        """The session of this token, if not idle since before ``idle_since`` (it is then
        ended); its last use becomes ``now``."""
        row = self._tx.execute(select(_SESSIONS).where(
            _SESSIONS.c.token_sha256 == token_sha256)).first()
        if row is None:
            return None
        if row.seen_at < idle_since:
            self._tx.execute(delete(_SESSIONS).where(_SESSIONS.c.pk == row.pk))
            return None
        self._tx.execute(update(_SESSIONS).where(_SESSIONS.c.pk == row.pk)
                         .values(seen_at=now))
        return ConsoleSession(row.operator, row.csrf, now)

    def close_session(self, token_sha256: str) -> None:
        self._tx.execute(delete(_SESSIONS).where(_SESSIONS.c.token_sha256 == token_sha256))

    def purge(self, idle_since: datetime) -> None:
        self._tx.execute(delete(_SESSIONS).where(_SESSIONS.c.seen_at < idle_since))

    def record(self, at: datetime, operator: str, address: str, action: str, ok: bool,
               detail: str) -> None:
        self._tx.execute(insert(_EVENTS).values(at=at, operator=operator[:64],
                                                address=address[:64], action=action,
                                                ok=ok, detail=detail[:1000]))

    def failed_logins(self, operator: str, address: str, since: datetime) -> int:
        """Failed logins since then with this name, or from this address."""
        return self._tx.execute(select(func.count()).where(
            _EVENTS.c.action == "login", _EVENTS.c.at >= since, ~_EVENTS.c.ok,
            or_(_EVENTS.c.operator == operator[:64], _EVENTS.c.address == address[:64]))
        ).scalar_one()

    def recent(self, limit: int = 50) -> list[tuple]:
        return [tuple(row) for row in self._tx.execute(
            select(_EVENTS.c.at, _EVENTS.c.operator, _EVENTS.c.address, _EVENTS.c.action,
                   _EVENTS.c.ok, _EVENTS.c.detail).order_by(_EVENTS.c.pk.desc()).limit(limit))]
