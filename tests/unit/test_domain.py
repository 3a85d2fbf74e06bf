"""The business rules, without a server or a database."""
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from adapter.domain.calendar import local_day
from adapter.domain.model import (Currency, DueDate, Invoice, Origin, Outcome, PaymentNotice,
                                  ReversalNotice, judge_debt, judge_payment, judge_reversal,
                                  money, reversal_deadline)
from adapter.errors import InvalidInvoice

D1, D2, D3 = date(2026, 3, 10), date(2026, 3, 20), date(2026, 3, 31)
LATER = datetime(2026, 6, 1, tzinfo=timezone.utc)  # "now", after every payment judged here


def invoice(*due, paid=False, invoice_id="F1", currency=Currency.ARS):
    return Invoice("1234", "C1", invoice_id, currency,
                   tuple(DueDate(on, Decimal(amount)) for on, amount in due),
                   Origin.BILLING_BASE, paid=paid)


def notice(amount, paid_at, currency=Currency.ARS, operation_id="OP1"):
    return PaymentNotice("1234", operation_id, "C1", "F1", Decimal(amount), currency, paid_at)


def ba(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=timezone(timedelta(hours=-3)))


def test_amount_due_is_that_of_the_first_due_date_not_yet_passed():
    three = invoice((D1, "100"), (D2, "110"), (D3, "125.50"))
    assert three.amount_due_on(D1 - timedelta(days=30)) == Decimal("100.00")
    assert three.amount_due_on(D1) == Decimal("100.00")  # the due date itself still counts
    assert three.amount_due_on(D1 + timedelta(days=1)) == Decimal("110.00")
    assert three.amount_due_on(D3) == Decimal("125.50")
    assert three.amount_due_on(D3 + timedelta(days=1)) is None
    assert three.is_expired_on(D3 + timedelta(days=1)) and not three.is_expired_on(D3)


@pytest.mark.parametrize("due", [(), ((D1, "1"), (D2, "2"), (D3, "3"), (D3 + timedelta(1), "4")),
                                 ((D2, "1"), (D1, "2")), ((D1, "1"), (D1, "2")),
                                 ((D1, "-1"),)])
def test_invoices_need_one_to_three_ascending_non_negative_due_dates(due):
    with pytest.raises(InvalidInvoice):
        invoice(*due)


def test_money_keeps_cents_and_refuses_fractions_of_a_cent():
    assert money("10.5") == Decimal("10.50") and str(money(7)) == "7.00"
    with pytest.raises(ValueError):
        money("0.001")


def test_local_day_is_the_buenos_aires_civil_day():
    late_evening_in_ba = datetime(2026, 3, 11, 1, 30, tzinfo=timezone.utc)
    assert local_day(late_evening_in_ba) == date(2026, 3, 10)
    with pytest.raises(ValueError):
        local_day(datetime(2026, 3, 11))


def test_a_payment_matching_the_amount_due_that_day_pays_the_invoice():
    two = invoice((D1, "100"), (D2, "110"))
    assert judge_payment(notice("100", ba(D1)), two, now=LATER) is Outcome.OK
    assert judge_payment(notice("110", ba(D1 + timedelta(1))), two, now=LATER) is Outcome.OK
    # 22:30 in Buenos Aires on the due date is 01:30 UTC the day after: still on time
    assert judge_payment(notice("100", datetime(2026, 3, 11, 1, 30, tzinfo=timezone.utc)),
                         two, now=LATER) is Outcome.OK


def test_payments_that_do_not_match_are_judged_not_dropped():
    two = invoice((D1, "100"), (D2, "110"))
    assert judge_payment(notice("100", ba(D1)), None, now=LATER) is Outcome.INVOICE_UNKNOWN
    assert judge_payment(notice("100", ba(D1)), invoice((D1, "100"), paid=True),
                         now=LATER) is Outcome.ALREADY_PAID
    assert judge_payment(notice("110", ba(D2 + timedelta(1))), two, now=LATER) \
        is Outcome.EXPIRED
    assert judge_payment(notice("110", ba(D1)), two, now=LATER) is Outcome.AMOUNT_MISMATCH
    assert judge_payment(notice("100", ba(D1), Currency.USD), two, now=LATER) \
        is Outcome.AMOUNT_MISMATCH


SKEW = timedelta(minutes=5)


def test_a_payment_dated_after_now_plus_the_skew_is_a_future_payment():
    two = invoice((D1, "100"), (D2, "110"))
    now = ba(D1, hour=10)
    for ahead in (SKEW + timedelta(seconds=1), timedelta(hours=1), timedelta(days=2)):
        paid_at = now + ahead
        due = two.amount_due_on(local_day(paid_at))  # what would otherwise pay it
        assert judge_payment(notice(str(due), paid_at), two, now=now, skew=SKEW) \
            is Outcome.FUTURE_PAYMENT, ahead


def test_a_payment_dated_within_the_skew_is_judged_as_usual():
    two = invoice((D1, "100"), (D2, "110"))
    now = ba(D1, hour=10)
    for ahead in (timedelta(0), timedelta(minutes=1), SKEW):  # the bound itself is allowed
        assert judge_payment(notice("100", now + ahead), two, now=now, skew=SKEW) \
            is Outcome.OK, ahead
    # the same instant in another offset is not "ahead"
    utc_now = now.astimezone(timezone.utc)
    assert judge_payment(notice("100", utc_now), two, now=now) is Outcome.OK
    # without skew, one second ahead is already the future
    assert judge_payment(notice("100", now + timedelta(seconds=1)), two, now=now) \
        is Outcome.FUTURE_PAYMENT


def test_a_future_payment_is_judged_before_its_invoice():
    # its date cannot be trusted: no amount, expiry or payment state is judged by it
    now = ba(D1, hour=10)
    future = notice("1", now + timedelta(hours=1))
    for target in (None, invoice((D1, "100"), paid=True), invoice((D1, "100"))):
        assert judge_payment(future, target, now=now, skew=SKEW) is Outcome.FUTURE_PAYMENT


def test_judging_a_payment_needs_an_aware_now():
    with pytest.raises(ValueError):
        judge_payment(notice("100", ba(D1)), invoice((D1, "100")), now=datetime(2026, 3, 10))


def test_debt_distinguishes_unknown_client_nothing_owed_and_open_invoices():
    paid = invoice((D1, "50"), paid=True, invoice_id="PAID")
    expired = invoice((D1 - timedelta(1), "60"), invoice_id="OLD")
    open_one = invoice((D2, "70"), invoice_id="OPEN")
    assert judge_debt([], D1) == (Outcome.CUSTOMER_UNKNOWN, ())
    assert judge_debt([paid, expired], D1) == (Outcome.NOTHING_OWED, ())
    outcome, items = judge_debt([paid, expired, open_one], D1)
    assert outcome is Outcome.OK and [i.invoice.invoice_id for i in items] == ["OPEN"]
    assert items[0].amount_due == Decimal("70.00")
    assert judge_debt([open_one], D1, "NOPE") == (Outcome.INVOICE_UNKNOWN, ())
    assert judge_debt([paid, open_one], D1, "PAID") == (Outcome.NOTHING_OWED, ())


def test_a_replay_is_the_same_notice_at_the_same_instant():
    first = notice("100", ba(D1))
    utc_spelling = notice("100.00", ba(D1).astimezone(timezone.utc))
    assert first.same_as(utc_spelling)
    assert not first.same_as(notice("100.01", ba(D1)))
    assert not first.same_as(notice("100", ba(D1, hour=13)))


# -- reversals --------------------------------------------------------------------------

def _payment(paid_at: datetime, **changes) -> PaymentNotice:
    fields = dict(biller_id="1234", operation_id="OP-1", customer_id="C1", invoice_id="F1",
                  amount=Decimal("100.00"), currency=Currency.ARS, paid_at=paid_at)
    return PaymentNotice(**{**fields, **changes})


def _reversal(**changes) -> ReversalNotice:
    fields = dict(biller_id="1234", operation_id="OP-1", customer_id="C1", invoice_id="F1",
                  amount=Decimal("100.00"), currency=Currency.ARS,
                  reversed_at=datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc))
    return ReversalNotice(**{**fields, **changes})


BA = timezone(timedelta(hours=-3))  # Buenos Aires' offset, for writing instants


def test_the_reversal_window_closes_at_the_cutoff_hour_of_the_payments_business_day():
    # 23:30 in Buenos Aires is already the next day in UTC: the day is Buenos Aires'
    paid = datetime(2026, 11, 26, 23, 30, tzinfo=BA)
    assert reversal_deadline(paid, 24) == datetime(2026, 11, 27, 0, 0, tzinfo=BA)
    assert reversal_deadline(paid, 21) == datetime(2026, 11, 26, 21, 0, tzinfo=BA)
    assert reversal_deadline(paid, 0) == datetime(2026, 11, 26, 0, 0, tzinfo=BA)
    # the same instant, written in UTC, has the same day and deadline
    assert reversal_deadline(paid.astimezone(timezone.utc), 24) == \
        datetime(2026, 11, 27, 3, 0, tzinfo=timezone.utc)
    for hour in (-1, 25):
        with pytest.raises(ValueError):
            reversal_deadline(paid, hour)


@pytest.mark.parametrize("received, cutoff, outcome", [
    (datetime(2026, 11, 26, 18, 0, tzinfo=BA), 24, Outcome.OK),
    (datetime(2026, 11, 26, 23, 59, 59, tzinfo=BA), 24, Outcome.OK),
    (datetime(2026, 11, 27, 0, 0, tzinfo=BA), 24, Outcome.OK),  # the deadline itself
    (datetime(2026, 11, 27, 0, 0, 1, tzinfo=BA), 24, Outcome.REVERSAL_NOT_ALLOWED),
    (datetime(2026, 11, 26, 21, 0, 1, tzinfo=BA), 21, Outcome.REVERSAL_NOT_ALLOWED),
    (datetime(2026, 11, 26, 20, 59, tzinfo=BA), 21, Outcome.OK),
    # a reversal that came before its payment's time is inside the window
    (datetime(2026, 11, 26, 9, 0, tzinfo=BA), 24, Outcome.OK),
])
def test_a_reversal_is_judged_by_when_it_reached_us(received, cutoff, outcome):
    payment = _payment(datetime(2026, 11, 26, 10, 0, tzinfo=BA))
    assert judge_reversal(_reversal(), payment, received_at=received,
                          cutoff_hour=cutoff) is outcome


@pytest.mark.parametrize("change", [
    dict(customer_id="C2"), dict(invoice_id="F2"), dict(amount=Decimal("100.01")),
    dict(currency=Currency.USD)])
def test_a_reversal_with_other_data_than_its_payment_is_a_mismatch_even_in_time(change):
    payment = _payment(datetime(2026, 11, 26, 10, 0, tzinfo=BA))
    late = datetime(2026, 11, 28, 10, 0, tzinfo=BA)
    assert judge_reversal(_reversal(**change), payment, received_at=late,
                          cutoff_hour=24) is Outcome.REVERSAL_MISMATCH


def test_a_reversal_without_its_payment_is_payment_unknown():
    assert judge_reversal(_reversal(), None, received_at=datetime.now(timezone.utc),
                          cutoff_hour=24) is Outcome.PAYMENT_UNKNOWN


def test_a_reversal_needs_aware_times_and_its_reason_is_part_of_a_replay():
    with pytest.raises(ValueError):
        _reversal(reversed_at=datetime(2026, 11, 26, 15, 0))
    with pytest.raises(ValueError):
        judge_reversal(_reversal(), None, received_at=datetime(2026, 11, 26), cutoff_hour=24)
    assert _reversal().same_as(_reversal(
        reversed_at=datetime(2026, 11, 26, 12, 0, tzinfo=BA)))  # the same instant
    assert not _reversal().same_as(_reversal(reason="duplicado"))
    assert _reversal(amount=Decimal("100")).amount == Decimal("100.00")
