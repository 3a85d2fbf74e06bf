"""A day at a glance, per biller, for the back office: the notices by hour and by
outcome, the debt queries and how many ended in a payment (the charges rule of
:mod:`adapter.domain.charges`), the outboxes. Read only."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from adapter.domain.calendar import BUSINESS_TZ
from adapter.domain.model import Outcome
from adapter.service.charges import Charges, midnight
from adapter.storage.unit_of_work import Storage


@dataclass
class BillerDay:
    biller_id: str
    by_hour: list[int] = field(default_factory=lambda: [0] * 24)  # notices received
    outcomes: Counter = field(default_factory=Counter)  # applied, observed (3)..., reversed
    queries: int = 0
    queries_paid: int = 0  # ended in a payment: what the network charges


@dataclass(frozen=True)
class Outbox:
    destination: str  # erp, pmc
    states: dict[str, int]
    oldest_waiting: datetime | None
    failing: list  # the failing items, with their last error


@dataclass(frozen=True)
class Day:
    day: date
    billers: list[BillerDay]
    outboxes: list[Outbox]


def outcome_name(status: str, code: int) -> str:
    if status == "observed":
        return f"observed ({code} {Outcome(code).name.lower().replace('_', ' ')})"
    return status


class Overview:
    def __init__(self, storage: Storage, charge_window_days: int = 0):
        self._storage = storage
        self._charges = Charges(storage, charge_window_days)

    def day(self, day: date) -> Day:
        start, end = midnight(day), midnight(day + timedelta(days=1))
        billers: dict[str, BillerDay] = {}
        with self._storage.unit_of_work(read_only=True) as uow:
            for biller_id, received_at, status, code in uow.payments.received_between(start,
                                                                                      end):
                biller = billers.setdefault(biller_id, BillerDay(biller_id))
                biller.by_hour[received_at.astimezone(BUSINESS_TZ).hour] += 1
                biller.outcomes[outcome_name(status, code)] += 1
            asked = set(uow.queries.billers())
            outboxes = []
            for destination, queue in (("erp", uow.forwards), ("pmc", uow.pmc_deliveries)):
                found = queue.states()
                states = {state: count for state, count, _ in found}
                oldest = [since for state, _, since in found
                          if state in ("pending", "failing") and since is not None]
                outboxes.append(Outbox(destination, states, min(oldest, default=None),
                                       queue.listing("failing", limit=100)))
        for biller_id in sorted(asked | set(billers)):
            charges = self._charges.between(biller_id, start, end)
            if not charges:
                continue
            biller = billers.setdefault(biller_id, BillerDay(biller_id))
            biller.queries = len(charges)
            biller.queries_paid = sum(charge.billable for charge in charges)
        return Day(day, [billers[key] for key in sorted(billers)], outboxes)
