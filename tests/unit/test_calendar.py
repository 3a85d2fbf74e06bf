"""The one calendar: the Buenos Aires day of an instant, and the network's business days."""
from datetime import date, datetime, timezone

import pytest

from adapter.domain.calendar import (business_days_back, business_days_between, local_day,
                                     next_business_day, previous_business_day)

# Friday 4 December 2026; the 5th and 6th a weekend, the 7th and 8th national holidays
FRIDAY = date(2026, 12, 4)


def test_a_days_count_skips_weekends_and_national_holidays():
    assert business_days_between(FRIDAY, FRIDAY) == 0
    assert business_days_between(FRIDAY, date(2026, 12, 8)) == 0  # closed since Friday
    assert business_days_between(FRIDAY, date(2026, 12, 9)) == 1
    assert business_days_between(FRIDAY, date(2026, 12, 10)) == 2
    assert next_business_day(FRIDAY) == date(2026, 12, 9)
    assert previous_business_day(date(2026, 12, 9)) == FRIDAY
    assert business_days_back(date(2026, 12, 9), 2) == [date(2026, 12, 3), FRIDAY]


def test_the_local_day_is_any_day_and_needs_an_aware_instant():
    saturday_night = datetime(2026, 12, 6, 2, 30, tzinfo=timezone.utc)  # 23:30 on the 5th
    assert local_day(saturday_night) == date(2026, 12, 5)  # a calendar day, not a business one
    with pytest.raises(ValueError):
        local_day(datetime(2026, 12, 6, 2, 30))
