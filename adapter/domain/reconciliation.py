"""Reconciliation: the network's payment report against the notices received.

Plain Python, like :mod:`adapter.domain.model`: the storage hands in what the
report says and what the notices said, and :func:`pair` says which goes with
which. Every report line and every notice ends in exactly one state:

* ``MATCHED``: a notice and a line agree (client, invoice, amount, payment day);
* ``DIFFERS``: the same client and invoice, but the amount, or the payment day
  (by one day: a payment near midnight), differ -- both values are kept;
* ``REPORTED_ONLY``: the network collected it and no notice came; the adapter
  records the payment from the line (see :mod:`adapter.service.reconciling`);
* ``NOTIFIED_ONLY``: a notice the report of its day does not contain (a
  candidate reversal, or a network error); judged only once that day's report
  is in, ``AWAITING_REPORT`` until then;
* ``REVERSED``: a notice reversed by the network (AnularPago) and, rightly, not
  in the report. A reversed notice that *is* in the report is ``DIFFERS``.

The report carries no operation ID and no currency (the network's reports are
in pesos): a line pairs with a notice by client and invoice, the notice's
currency must be pesos to match. Pairing is the same whichever day is asked:
candidates are taken from the day before and after too, best pairs first
(same day and amount, then same day, then a neighbouring day).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal


from adapter.domain.model import Currency

# how far apart a notice's and a line's payment days may be and still pair
DAY_SLACK = timedelta(days=1)


class State(str, enum.Enum):
    MATCHED = "matched"
    DIFFERS = "differs"
    REPORTED_ONLY = "reported, never notified"
    NOTIFIED_ONLY = "notified, not reported"
    AWAITING_REPORT = "notified, report not in yet"
    REVERSED = "reversed, not reported"

    @property
    def needs_attention(self) -> bool:
        return self in (State.DIFFERS, State.NOTIFIED_ONLY)


@dataclass(frozen=True)
class ReportedPayment:
    """A report line, as reconciliation needs it."""

    key: int  # the line's row
    customer_id: str
    invoice_id: str
    amount: Decimal
    paid_on: date
    channel: str
    control: str
    recorded_as: str | None = None  # the payment recorded from it (an operation ID)


@dataclass(frozen=True)
class NotifiedPayment:
    """A stored notice, as reconciliation needs it."""

    operation_id: str
    customer_id: str
    invoice_id: str
    amount: Decimal
    currency: Currency
    paid_on: date  # its business day
    reversed: bool = False
    channel: str | None = None


@dataclass(frozen=True)
class Item:
    state: State
    day: date  # the line's payment day, else the notice's
    line: ReportedPayment | None = None
    notice: NotifiedPayment | None = None
    why: str = ""


def pair(lines: list[ReportedPayment], notices: list[NotifiedPayment],
         reported_days: set[date]) -> list[Item]:
    """Every line and every notice, in exactly one item. ``reported_days``: the days
    whose report is in (a notice of another day is awaiting it, not missing from it).
    Give lines and notices of the day before and after the days of interest too, so
    that pairs across midnight are found whichever day is asked."""
    free_notices = sorted(notices, key=lambda n: (n.paid_on, n.operation_id))
    items: list[Item] = []
    unpaired = sorted(lines, key=lambda line: (line.paid_on, line.key))

    def take(line: ReportedPayment, accept) -> NotifiedPayment | None:
        for notice in free_notices:
            if (notice.customer_id, notice.invoice_id) == (line.customer_id, line.invoice_id) \
                    and abs(notice.paid_on - line.paid_on) <= DAY_SLACK and accept(notice):
                free_notices.remove(notice)
                return notice
        return None

    passes = [  # best pairs first
        lambda line: lambda n: n.paid_on == line.paid_on and _same_money(line, n),
        lambda line: lambda n: n.paid_on == line.paid_on,
        lambda line: lambda n: _same_money(line, n),
        lambda line: lambda n: True,
    ]
    for make_rule in passes:
        still = []
        for line in unpaired:
            notice = take(line, make_rule(line))
            if notice is None:
                still.append(line)
            else:
                items.append(_judge(line, notice))
        unpaired = still
    items += [Item(State.REPORTED_ONLY, line.paid_on, line=line) for line in unpaired]
    for notice in free_notices:
        if notice.reversed:
            items.append(Item(State.REVERSED, notice.paid_on, notice=notice))
        elif notice.paid_on in reported_days:
            items.append(Item(State.NOTIFIED_ONLY, notice.paid_on, notice=notice,
                              why="not in the report of its day: a reversal, or the "
                                  "network's error"))
        else:
            items.append(Item(State.AWAITING_REPORT, notice.paid_on, notice=notice))
    return items


def _same_money(line: ReportedPayment, notice: NotifiedPayment) -> bool:
    return notice.currency is Currency.ARS and notice.amount == line.amount


def _judge(line: ReportedPayment, notice: NotifiedPayment) -> Item:
    differences = []
    if not _same_money(line, notice):
        differences.append(f"amount: report {line.amount} ARS, notice {notice.amount} "
                           f"{notice.currency.value}")
    if notice.paid_on != line.paid_on:
        differences.append(f"payment day: report {line.paid_on}, notice {notice.paid_on}")
    if notice.reversed:
        differences.append("the notice was reversed, yet the network reports it collected")
    if differences:
        return Item(State.DIFFERS, line.paid_on, line, notice, "; ".join(differences))
    return Item(State.MATCHED, line.paid_on, line, notice)
