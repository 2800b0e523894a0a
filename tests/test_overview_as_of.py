"""Today so far: a range that ends today is compared with the same hours of its previous period.

The cut is the same local wall-clock time on the matching day, so a DST change between the
two periods does not move it (America/New_York: 2026-03-08 springs forward, 2026-11-01
falls back). "now" is a parameter: these tests never read the clock.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from decimal import Decimal

import pytest

from paydash.queries.dates import DateRange, wall_clock_utc
from paydash.queries.overview import overview, utc_iso

NY = "America/New_York"
# mart_tz equal to the range's timezone reads whole days from the daily mart and the two
# partial days from the charge mart; a different one reads everything from the charge mart.
PATHS = pytest.mark.parametrize("mart_tz", [NY, "UTC"], ids=["daily-mart", "charge-mart"])


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text)


# -- the cut itself (pure) ---------------------------------------------------------------
def test_so_far_cuts_only_a_range_that_holds_now() -> None:
    week = DateRange(date(2026, 3, 4), date(2026, 3, 10), NY)
    now = utc("2026-03-10 16:00")  # 12:00 EDT
    assert week.so_far(now).until == now
    assert week.so_far(now.replace(tzinfo=timezone.utc)).until == now  # aware works the same
    assert week.so_far(utc("2026-03-11 16:00")) == week  # the range is over: whole days
    assert week.so_far(utc("2026-03-04 04:59")) == week  # 23:59 EST on the 3rd: before the range
    assert week.so_far(utc("2026-03-04 05:00")).until == utc("2026-03-04 05:00")


def test_previous_period_is_cut_at_the_same_wall_clock_time_across_spring_forward() -> None:
    now = utc("2026-03-10 16:00")  # 12:00 EDT (UTC-4)
    cut = DateRange(date(2026, 3, 4), date(2026, 3, 10), NY).so_far(now)
    previous = cut.previous()
    assert (previous.start, previous.end) == (date(2026, 2, 25), date(2026, 3, 3))
    assert previous.until == utc("2026-03-03 17:00")  # 12:00 EST (UTC-5), not 7 x 24 hours earlier
    assert previous.partial_day == date(2026, 3, 3)
    assert previous.utc_bounds() == (utc("2026-02-25 05:00"), utc("2026-03-03 17:00"))


def test_previous_period_is_cut_at_the_same_wall_clock_time_across_fall_back() -> None:
    now = utc("2026-11-03 17:00")  # 12:00 EST (UTC-5)
    previous = DateRange(date(2026, 10, 28), date(2026, 11, 3), NY).so_far(now).previous()
    assert previous.until == utc("2026-10-27 16:00")  # 12:00 EDT (UTC-4)


def test_a_time_the_clock_skips_is_cut_where_the_clock_jumps() -> None:
    # 02:30 does not exist on 2026-03-08 in New York: 01:59:59 EST is followed by 03:00 EDT
    assert wall_clock_utc(date(2026, 3, 8), time(2, 30), NY) == utc("2026-03-08 07:00")
    assert wall_clock_utc(date(2026, 3, 8), time(1, 59), NY) == utc("2026-03-08 06:59")
    assert wall_clock_utc(date(2026, 3, 8), time(3, 0), NY) == utc("2026-03-08 07:00")
    now = utc("2026-03-15 06:30")  # 02:30 EDT a week later
    assert DateRange(date(2026, 3, 9), date(2026, 3, 15), NY).so_far(now).previous().until == utc("2026-03-08 07:00")


def test_a_time_that_happens_twice_is_cut_at_its_first_occurrence() -> None:
    assert wall_clock_utc(date(2026, 11, 1), time(1, 30), NY) == utc("2026-11-01 05:30")  # 01:30 EDT


def test_utc_iso() -> None:
    assert utc_iso(utc("2026-03-10 16:00:05.123456")) == "2026-03-10T16:00:05Z"
    assert utc_iso(None) is None


# -- on both engines ---------------------------------------------------------------------
@pytest.fixture
def spring_rows(charge):
    """A week ending 2026-03-10 (EDT) and its previous period ending 2026-03-03 (EST)."""
    return [
        # previous period, whole days
        charge("ch_p0", "2026-02-25 05:00", amount="1.00", tz=NY),  # 00:00 EST on Feb 25: first moment
        charge("ch_p1", "2026-03-02 20:00", "failed", "2.00", tz=NY),
        # previous period's last day, 2026-03-03 (EST): up to 12:00 counts
        charge("ch_p2", "2026-03-03 05:00", amount="4.00", tz=NY),  # 00:00 EST
        charge("ch_p3", "2026-03-03 16:30", amount="8.00", tz=NY),  # 11:30 EST: counts (7 x 24 h back would drop it)
        charge("ch_p4", "2026-03-03 17:00", amount="16.00", tz=NY),  # 12:00 EST: the cut, not counted
        charge("ch_p5", "2026-03-03 23:00", "failed", "32.00", tz=NY),  # 18:00 EST: later that day
        # current period, whole days (the DST change of 2026-03-08 in between)
        charge("ch_c0", "2026-03-04 05:00", amount="64.00", tz=NY),  # 00:00 EST on Mar 4
        charge("ch_c1", "2026-03-08 06:59", amount="128.00", tz=NY),  # 01:59 EST on Mar 8
        charge("ch_c2", "2026-03-09 12:00", "failed", "256.00", tz=NY),
        # today, 2026-03-10 (EDT), so far
        charge("ch_t1", "2026-03-10 04:00", amount="512.00", tz=NY),  # 00:00 EDT
        charge("ch_t2", "2026-03-10 15:59", "pending", "1024.00", tz=NY),  # 11:59 EDT
        charge("ch_t3", "2026-03-10 16:00", amount="2048.00", tz=NY),  # 12:00 EDT: now, not counted
    ]


@PATHS
def test_today_so_far_against_the_same_hours_across_a_dst_change(make_warehouse, spring_rows, mart_tz) -> None:
    wh = make_warehouse(spring_rows)
    rng = DateRange(date(2026, 3, 4), date(2026, 3, 10), NY)
    with wh.read() as conn:
        result = overview(conn, wh.marts, rng, mart_tz=mart_tz, now=utc("2026-03-10 16:00"))
    assert result["as_of"] == "2026-03-10T16:00:00Z"
    current, previous = result["current"], result["previous"]
    assert (current["from"], current["to"]) == ("2026-03-04", "2026-03-10")
    assert (current["attempts"], current["successful"], current["failed"]) == (5, 3, 1)
    assert current["revenue_usd"] == Decimal("704.00")  # 64 + 128 + 512
    assert (previous["from"], previous["to"]) == ("2026-02-25", "2026-03-03")
    assert (previous["attempts"], previous["successful"], previous["failed"]) == (4, 3, 1)
    assert previous["revenue_usd"] == Decimal("13.00")  # 1 + 4 + 8
    assert previous["failed_amount_usd"] == Decimal("2.00")


@PATHS
def test_a_range_in_the_past_compares_whole_days(make_warehouse, spring_rows, mart_tz) -> None:
    wh = make_warehouse(spring_rows)
    rng = DateRange(date(2026, 3, 4), date(2026, 3, 10), NY)
    with wh.read() as conn:
        later = overview(conn, wh.marts, rng, mart_tz=mart_tz, now=utc("2026-03-11 16:00"))
        without_now = overview(conn, wh.marts, rng, mart_tz=mart_tz)
    assert later == without_now
    assert later["as_of"] is None
    assert later["current"]["attempts"] == 6 and later["previous"]["attempts"] == 6


@PATHS
def test_today_alone_against_yesterday_so_far_across_fall_back(make_warehouse, charge, mart_tz) -> None:
    rows = [
        charge("ch_y1", "2026-11-01 04:30", amount="1.00", tz=NY),  # 00:30 EDT on Nov 1
        charge("ch_y2", "2026-11-01 06:30", amount="2.00", tz=NY),  # 01:30 EST, the second 01:30: after the cut
        charge("ch_y3", "2026-11-01 05:29", amount="4.00", tz=NY),  # 01:29 EDT: before the cut
        charge("ch_y4", "2026-11-01 05:59", amount="32.00", tz=NY),  # 01:59 EDT: after it
        charge("ch_t1", "2026-11-02 05:00", amount="8.00", tz=NY),  # 00:00 EST on Nov 2
        charge("ch_t2", "2026-11-02 06:29", amount="16.00", tz=NY),  # 01:29 EST
    ]
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = overview(conn, wh.marts, DateRange(date(2026, 11, 2), date(2026, 11, 2), NY), mart_tz=mart_tz,
                          now=utc("2026-11-02 06:30"))  # 01:30 EST
    assert result["as_of"] == "2026-11-02T06:30:00Z"
    assert result["current"]["revenue_usd"] == Decimal("24.00")
    # yesterday up to its first 01:30 (EDT, 05:30 UTC)
    assert result["previous"]["revenue_usd"] == Decimal("5.00")


@PATHS
def test_the_cut_keeps_the_funnel(make_warehouse, charge, mart_tz) -> None:
    rows = [
        charge("ch_a", "2026-03-10 14:00", amount="1.00", tz=NY, funnel_name="mobile_app"),
        charge("ch_b", "2026-03-10 14:00", amount="2.00", tz=NY),
        charge("ch_c", "2026-03-09 14:00", amount="4.00", tz=NY, funnel_name="mobile_app"),
        charge("ch_d", "2026-03-09 17:00", amount="8.00", tz=NY, funnel_name="mobile_app"),  # after 12:00 EDT
    ]
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = overview(conn, wh.marts, DateRange(date(2026, 3, 10), date(2026, 3, 10), NY), "mobile_app",
                          mart_tz=mart_tz, now=utc("2026-03-10 16:00"))
    assert result["current"]["revenue_usd"] == Decimal("1.00")
    assert result["previous"]["revenue_usd"] == Decimal("4.00")
