"""Which debt queries the network may charge for: only those that ended in a payment
("Este servicio se cobra únicamente si la consulta tiene un pago asociado").

A payment is associated with at most one query, and a query with at most one
payment:

1. the query a notice names (its ``idConsulta``), when that query is this
   biller's and not taken;
2. otherwise, the latest query not yet taken, before the payment, of the same
   client -- and of the same invoice, when the query named one --, asked no more
   than ``window`` business days before the payment's day (0: the same day).

Plain Python: the storage hands in the month's queries and the payments around it.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from adapter.domain.calendar import business_days_between, local_day

BY_QUERY_ID = "the same query ID"  # the payment named the query (idConsulta)
BY_CLIENT = "same client and invoice"


@dataclass(frozen=True)
class Query:
    query_id: str
    customer_id: str
    invoice_id: str | None
    asked_at: datetime
    outcome: int


@dataclass(frozen=True)
class Paid:
    operation_id: str
    customer_id: str
    invoice_id: str
    paid_at: datetime
    query_id: str | None


@dataclass(frozen=True)
class Charge:
    query: Query
    payment: Paid | None = None
    rule: str = ""

    @property
    def billable(self) -> bool:
        return self.payment is not None


def associate(queries: list[Query], payments: list[Paid], window: int = 0) -> list[Charge]:
    """Every query, with the payment associated with it, if any."""
    if window < 0:
        raise ValueError("the window cannot be negative")
    by_id = {query.query_id: query for query in queries}
    taken: dict[str, tuple[Paid, str]] = {}
    unnamed = []
    for payment in sorted(payments, key=lambda p: (p.paid_at, p.operation_id)):
        query = by_id.get(payment.query_id) if payment.query_id else None
        if query is not None and query.query_id not in taken and query.asked_at <= payment.paid_at:
            taken[query.query_id] = (payment, BY_QUERY_ID)
        else:
            unnamed.append(payment)
    by_client: dict[str, list[Query]] = {}
    for query in sorted(queries, key=lambda q: (q.asked_at, q.query_id)):
        by_client.setdefault(query.customer_id, []).append(query)
    for payment in unnamed:
        paid_day = local_day(payment.paid_at)
        for query in reversed(by_client.get(payment.customer_id, [])):
            if query.query_id in taken or query.asked_at > payment.paid_at:
                continue
            if query.invoice_id is not None and query.invoice_id != payment.invoice_id:
                continue
            if business_days_between(local_day(query.asked_at), paid_day) > window:
                break  # older queries are further away still
            taken[query.query_id] = (payment, BY_CLIENT)
            break
    return [Charge(query, *taken[query.query_id]) if query.query_id in taken else Charge(query)
            for query in sorted(queries, key=lambda q: (q.asked_at, q.query_id))]
