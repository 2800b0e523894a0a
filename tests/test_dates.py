"""Date ranges: whole local days, both ends included, and their previous period (pure)."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest

from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange, last_n_days, local_midnight_utc, parse_date, resolve_range, today_in


@pytest.mark.parametrize(
    "start, end, prev_start, prev_end, n",
    [
        (date(2024, 3, 4), date(2024, 3, 6), date(2024, 3, 1), date(2024, 3, 3), 3),
        (date(2024, 3, 4), date(2024, 3, 4), date(2024, 3, 3), date(2024, 3, 3), 1),
        (date(2024, 3, 1), date(2024, 3, 30), date(2024, 1, 31), date(2024, 2, 29), 30),  # across a leap day
        (date(2024, 1, 1), date(2024, 12, 31), date(2022, 12, 31), date(2023, 12, 31), 366),
    ],
)
def test_previous_period_has_the_same_days_and_ends_the_day_before(start, end, prev_start, prev_end, n) -> None:
    rng = DateRange(start, end, "Europe/Berlin")
    prev = rng.previous()
    assert (prev.start, prev.end, prev.tz) == (prev_start, prev_end, "Europe/Berlin")
    assert rng.days == prev.days == n
    assert rng.dates()[0] == start and rng.dates()[-1] == end and len(rng.dates()) == n


@pytest.mark.parametrize(
    "day, tz, start, stop",
    [
        (date(2024, 3, 11), "UTC", datetime(2024, 3, 11), datetime(2024, 3, 12)),
        (date(2024, 3, 11), "Europe/Berlin", datetime(2024, 3, 10, 23), datetime(2024, 3, 11, 23)),
        # Berlin springs forward on 2024-03-31 (23 h) and falls back on 2024-10-27 (25 h)
        (date(2024, 3, 31), "Europe/Berlin", datetime(2024, 3, 30, 23), datetime(2024, 3, 31, 22)),
        (date(2024, 10, 27), "Europe/Berlin", datetime(2024, 10, 26, 22), datetime(2024, 10, 27, 23)),
        (date(2024, 3, 10), "America/New_York", datetime(2024, 3, 10, 5), datetime(2024, 3, 11, 4)),
        (date(2024, 6, 1), "Asia/Kolkata", datetime(2024, 5, 31, 18, 30), datetime(2024, 6, 1, 18, 30)),
    ],
)
def test_utc_bounds_are_local_midnights(day, tz, start, stop) -> None:
    assert DateRange(day, day, tz).utc_bounds() == (start, stop)
    assert local_midnight_utc(day, tz) == start


def test_invalid_ranges() -> None:
    with pytest.raises(InvalidInput, match="before it starts"):
        DateRange(date(2024, 3, 5), date(2024, 3, 4))
    with pytest.raises(InvalidInput, match="Mars/Olympus"):
        DateRange(date(2024, 3, 4), date(2024, 3, 5), "Mars/Olympus")


@pytest.mark.parametrize("text", ["2024-13-01", "2024-02-30", "yesterday", "", "03/04/2024"])
def test_parse_date_refuses_non_dates(text) -> None:
    with pytest.raises(InvalidInput, match="YYYY-MM-DD"):
        parse_date(text, "--from")


def test_parse_date() -> None:
    assert parse_date(" 2024-02-29 ") == date(2024, 2, 29)


def test_last_n_days_includes_today() -> None:
    rng = last_n_days(7, "UTC", today=date(2024, 3, 10))
    assert (rng.start, rng.end, rng.days) == (date(2024, 3, 4), date(2024, 3, 10), 7)


def test_resolve_range_defaults() -> None:
    today = today_in("UTC")
    rng = resolve_range(None, None, "UTC")
    assert (rng.end, rng.days) == (today, 30)
    assert resolve_range("2024-03-01", "2024-03-05", "UTC") == DateRange(date(2024, 3, 1), date(2024, 3, 5))
    assert resolve_range(None, "2024-03-05", "UTC", default_days=7).start == date(2024, 2, 28)
    assert resolve_range("2024-03-01", None, "UTC").end == max(date(2024, 3, 1), today)
    future = (today + timedelta(days=5)).isoformat()
    assert resolve_range(future, None, "UTC").end == today + timedelta(days=5)
    with pytest.raises(InvalidInput, match="--to"):
        resolve_range(None, "2024-99-01", "UTC")
