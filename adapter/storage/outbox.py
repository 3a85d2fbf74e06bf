"""What every outbox repository does the same way: claims with a lease, the outcome of a
delivery, retries, the state per status. The ERP's outbox (payments, reversals,
resolutions: :class:`adapter.storage.deliveries.Forwards`) and PMC's (invoices:
:class:`adapter.storage.deliveries.PmcDeliveries`) differ only in what makes an item
deliverable before another and in what a claimed item carries.

A row is claimed by one worker only (a conditional UPDATE on its lease), until its
lease runs out; only that worker may record its outcome.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import and_, case, func, or_, select, update

from adapter.domain.model import utcnow


class OutboxQueue:
    """One outbox table. Subclasses say which table (``row``), which column keeps what
    the receiver answered (``reference``), what may not go yet (:meth:`_held_back`),
    whose items are a biller's (:meth:`_of_biller`), which a person's IDs name
    (:meth:`_named`) and what a claimed item carries (:meth:`_tasks`)."""

    row: ClassVar[Any]
    reference: ClassVar[str]

    def __init__(self, transaction):
        self._tx = transaction

    # -- what subclasses say -----------------------------------------------------------

    def _held_back(self):
        """A condition on ``row``: the item must wait for another one of its outbox."""
        raise NotImplementedError

    def _of_biller(self, biller_id: str):
        raise NotImplementedError

    def _tasks(self, pks: list[int]) -> list:
        raise NotImplementedError

    def _named(self, ids: list[str]):
        """A condition on ``row``: the items a person names by these IDs."""
        raise NotImplementedError

    # -- claiming ------------------------------------------------------------------------

    def claim_due(self, worker: str, now: datetime, lease_until: datetime,
                  limit: int) -> list:
        """Claim up to ``limit`` due items for ``worker``, each until ``lease_until``."""
        row = self.row
        return self._claim(worker, now, lease_until, limit, row.next_attempt_at <= now,
                           (row.next_attempt_at, row.pk))

    def claim_oldest_failing(self, worker: str, now: datetime, lease_until: datetime) -> list:
        """Claim the oldest item that failed before, whatever its backoff: a probe of
        whether its receiver is back."""
        row = self.row
        return self._claim(worker, now, lease_until, 1, row.attempts > 0,
                           (row.created_at, row.pk))

    def _claim(self, worker: str, now: datetime, lease_until: datetime, limit: int,
               eligible, order) -> list:
        row = self.row
        free = or_(row.claimed_until.is_(None), row.claimed_until < now)
        candidates = self._tx.session.scalars(
            select(row.pk).where(row.status == "pending", eligible, free, ~self._held_back())
            .order_by(*order).limit(limit)).all()
        claimed = []
        for pk in candidates:
            result = self._tx.session.execute(
                update(row).where(row.pk == pk, row.status == "pending", free)
                .values(claimed_by=worker, claimed_until=lease_until))
            if result.rowcount == 1:
                claimed.append(pk)
        return self._tasks(claimed) if claimed else []

    def release_backlog(self, biller_id: str, now: datetime) -> int:
        """Make the biller's failing items due now (its receiver answers again); how many."""
        row = self.row
        return self._tx.session.execute(
            update(row).where(self._failing(), row.next_attempt_at > now,
                              self._of_biller(biller_id))
            .values(next_attempt_at=now)).rowcount

    def retry_now(self, now: datetime, ids: list[str] | None = None) -> int:
        """Make pending items due now, whatever their backoff: all, or those ``ids`` name
        (:meth:`_named`); how many."""
        row = self.row
        stmt = update(row).where(row.status == "pending", row.next_attempt_at > now)
        if ids:
            stmt = stmt.where(self._named(ids))
        return self._tx.session.execute(stmt.values(next_attempt_at=now)).rowcount

    def release_claims(self, worker: str) -> int:
        """Give up ``worker``'s claims on what is still pending (it stops); how many."""
        row = self.row
        return self._tx.session.execute(
            update(row).where(row.claimed_by == worker, row.status == "pending")
            .values(claimed_by=None, claimed_until=None)).rowcount

    # -- outcomes ------------------------------------------------------------------------

    def _finish(self, task, worker: str, **values) -> bool:
        row = self.row
        result = self._tx.session.execute(
            update(row).where(row.pk == task.pk, row.claimed_by == worker)
            .values(claimed_by=None, claimed_until=None, attempts=row.attempts + 1, **values))
        return result.rowcount == 1

    def delivered(self, task, worker: str, reference: str | None) -> bool:
        return self._finish(task, worker, status="delivered", delivered_at=utcnow(),
                            last_error=None,
                            **{self.reference: None if reference is None else reference[:64]})

    def rejected(self, task, worker: str, error: str) -> bool:
        return self._finish(task, worker, status="rejected", last_error=error[:500])

    def retry_later(self, task, worker: str, error: str, at: datetime) -> bool:
        return self._finish(task, worker, next_attempt_at=at, last_error=error[:500])

    # -- looking -------------------------------------------------------------------------

    def _failing(self):
        """Failing: pending, tried at least once (waiting for a retry)."""
        return and_(self.row.status == "pending", self.row.attempts > 0)

    def _in_state(self, state: str):
        """A listing's condition: a stored status (pending, delivered, rejected), or
        failing."""
        return self._failing() if state == "failing" else self.row.status == state

    def states(self) -> list[tuple[str, int, datetime | None]]:
        """(state, items, oldest item's creation) per state: pending (never tried),
        failing (tried, waiting for a retry), delivered, rejected."""
        row = self.row
        state = case((self._failing(), "failing"), else_=row.status)
        return [(found[0], found[1], found[2]) for found in self._tx.session.execute(
            select(state, func.count(), func.min(row.created_at)).group_by(state))]
