"""Which debt queries the network may charge for (those ended in a payment): the rule on
its own (:func:`adapter.domain.charges.associate`); tests/e2e/test_charges.py runs
`pmc-adapter charges` over a real server's queries and notices."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from adapter.domain.charges import BY_CLIENT, BY_QUERY_ID, Paid, Query, associate

BA = timezone(timedelta(hours=-3))
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=BA)  # a Tuesday


def q(query_id, customer="C1", invoice=None, at=T0):
    return Query(query_id, customer, invoice, at, 0)


def p(operation, customer="C1", invoice="F1", at=T0 + timedelta(minutes=5), query_id=None):
    return Paid(operation, customer, invoice, at, query_id)


def summary(charges):
    return [(c.query.query_id, c.payment.operation_id if c.payment else None, c.rule)
            for c in charges]


def test_a_payment_naming_its_query_makes_that_query_billable():
    charges = associate([q("Q1"), q("Q2", at=T0 + timedelta(minutes=1))],
                        [p("OP1", query_id="Q1")])
    assert summary(charges) == [("Q1", "OP1", BY_QUERY_ID), ("Q2", None, "")]


def test_otherwise_the_latest_query_of_the_client_and_invoice_that_day():
    queries = [q("Q1"), q("Q2", at=T0 + timedelta(minutes=1)),
               q("Q3", invoice="F9", at=T0 + timedelta(minutes=2))]  # another invoice
    assert summary(associate(queries, [p("OP1")])) == [
        ("Q1", None, ""), ("Q2", "OP1", BY_CLIENT), ("Q3", None, "")]
    # one payment ends one query; a second payment takes the next one
    assert summary(associate(queries, [p("OP1"), p("OP2", at=T0 + timedelta(minutes=9))])) == [
        ("Q1", "OP2", BY_CLIENT), ("Q2", "OP1", BY_CLIENT), ("Q3", None, "")]


def test_a_query_after_the_payment_or_outside_the_window_is_not_ended_by_it():
    assert summary(associate([q("Q1", at=T0 + timedelta(hours=1))], [p("OP1")])) == \
        [("Q1", None, "")]
    next_day = p("OP1", at=T0 + timedelta(days=1))
    assert summary(associate([q("Q1")], [next_day])) == [("Q1", None, "")]
    assert summary(associate([q("Q1")], [next_day], window=1)) == [("Q1", "OP1", BY_CLIENT)]
    # over a weekend and Argentina's holidays, business days count: Friday 2026-11-20 to
    # Tuesday the 24th (Monday the 23rd a holiday) is one business day
    friday = q("Q1", at=datetime(2026, 11, 20, 18, 0, tzinfo=BA))
    assert summary(associate([friday], [p("OP1")], window=1)) == [("Q1", "OP1", BY_CLIENT)]


def test_a_named_query_of_another_client_is_still_the_named_one_and_used_once():
    charges = associate([q("Q1", customer="C2")],
                        [p("OP1", query_id="Q1"), p("OP2", query_id="Q1")])
    assert summary(charges) == [("Q1", "OP1", BY_QUERY_ID)]
