"""Overview numbers on small hand-built datasets, worked out by hand, on both engines."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from paydash.queries.dates import DateRange
from paydash.queries.overview import changes, daily_series, funnels, overview, period_totals, uses_daily_mart

# The range under test is 2024-03-04 .. 2024-03-06 (UTC); its previous period is
# 2024-03-01 .. 2024-03-03. 2024-03-05 has no payments at all.
RANGE = DateRange(date(2024, 3, 4), date(2024, 3, 6))


@pytest.fixture
def rows(charge):
    return [
        # before the previous period: never counted
        charge("ch_old", "2024-02-29 23:00", amount="500.00"),
        # previous period: 2 succeeded (50 + 7), 1 failed (20)
        charge("ch_p1", "2024-03-01 00:00:00", amount="50.00"),
        charge("ch_p2", "2024-03-02 12:00", "failed", "20.00", failure_code="insufficient_funds"),
        charge("ch_p3", "2024-03-03 23:59:59", amount="7.00"),
        # current period, 2024-03-04
        charge("ch_c1", "2024-03-04 10:00", amount="100.00"),
        charge("ch_c2", "2024-03-04 11:00", "failed", "40.00", failure_code="insufficient_funds"),
        charge("ch_c3", "2024-03-04 12:00", amount="25.50", funnel_name="mobile_app"),
        # 2024-03-06, both ends of the day; a pending attempt counts only as an attempt
        charge("ch_c4", "2024-03-06 00:00:00", amount="10.00"),
        charge("ch_c5", "2024-03-06 09:00", "pending", "30.00"),
        charge("ch_c6", "2024-03-06 23:59:59", "failed", "60.00", failure_code="expired_card", funnel_name="mobile_app"),
        # the day after the range
        charge("ch_next", "2024-03-07 00:00:00", amount="999.00"),
    ]


NO_ADJUSTMENTS = dict.fromkeys(("refunds", "refunded_usd", "net_revenue_usd", "disputes", "disputed_usd", "dispute_rate"))

# mart_tz equal to the range's timezone reads the daily mart; a different one the charge mart.
PATHS = pytest.mark.parametrize("mart_tz", ["UTC", "Europe/Berlin"], ids=["daily-mart", "charge-mart"])


def test_uses_daily_mart_only_when_the_timezones_match() -> None:
    assert uses_daily_mart(DateRange(date(2024, 1, 1), date(2024, 1, 2), "UTC"), "UTC")
    assert not uses_daily_mart(DateRange(date(2024, 1, 1), date(2024, 1, 2), "UTC"), "Europe/Berlin")
    assert not uses_daily_mart(DateRange(date(2024, 1, 1), date(2024, 1, 2), "Europe/Berlin"), "UTC")


@PATHS
def test_overview_current_and_previous_period(make_warehouse, rows, mart_tz) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, mart_tz=mart_tz)

    assert result["from"] == "2024-03-04" and result["to"] == "2024-03-06"
    current = result["current"]
    assert current == {
        "from": "2024-03-04",
        "to": "2024-03-06",
        "attempts": 6,  # 100, 40 (failed), 25.50, 10, 30 (pending), 60 (failed)
        "successful": 3,
        "failed": 2,
        "revenue_usd": Decimal("135.50"),  # 100 + 25.50 + 10
        "failed_amount_usd": Decimal("100.00"),  # 40 + 60
        "success_rate": 0.5,
        **NO_ADJUSTMENTS,  # without the refunds and disputes marts
    }
    previous = result["previous"]
    assert previous == {
        "from": "2024-03-01",
        "to": "2024-03-03",
        "attempts": 3,
        "successful": 2,
        "failed": 1,
        "revenue_usd": Decimal("57.00"),
        "failed_amount_usd": Decimal("20.00"),
        "success_rate": pytest.approx(2 / 3),
        **NO_ADJUSTMENTS,
    }
    change = result["change"]
    assert change["attempts"] == pytest.approx(1.0)  # 6 vs 3
    assert change["failed"] == pytest.approx(1.0)  # 2 vs 1
    assert change["successful"] == pytest.approx(0.5)  # 3 vs 2
    assert change["revenue_usd"] == pytest.approx((135.50 - 57.00) / 57.00)
    assert change["failed_amount_usd"] == pytest.approx(4.0)  # 100 vs 20
    assert change["success_rate"] == pytest.approx(0.5 - 2 / 3)  # points of a fraction, not relative


@PATHS
def test_overview_for_one_funnel(make_warehouse, rows, mart_tz) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, funnel="mobile_app", mart_tz=mart_tz)
    current = result["current"]
    assert (current["attempts"], current["successful"], current["failed"]) == (2, 1, 1)
    assert current["revenue_usd"] == Decimal("25.50")
    assert current["failed_amount_usd"] == Decimal("60.00")
    assert result["previous"]["attempts"] == 0
    assert result["previous"]["success_rate"] is None
    assert result["change"]["attempts"] is None  # no change against nothing

    with wh.read() as conn:
        assert overview(conn, wh.marts, RANGE, funnel="no_such_funnel", mart_tz=mart_tz)["current"]["attempts"] == 0


@PATHS
def test_daily_series_has_every_day_including_empty_ones(make_warehouse, rows, mart_tz) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        series = daily_series(conn, wh.marts, RANGE, mart_tz=mart_tz)
    assert [d["date"] for d in series] == ["2024-03-04", "2024-03-05", "2024-03-06"]
    assert series[0] == {
        "date": "2024-03-04", "attempts": 3, "successful": 2, "failed": 1,
        "revenue_usd": Decimal("125.50"), "failed_amount_usd": Decimal("40.00"), "success_rate": pytest.approx(2 / 3),
    }
    assert series[1] == {
        "date": "2024-03-05", "attempts": 0, "successful": 0, "failed": 0,
        "revenue_usd": Decimal("0.00"), "failed_amount_usd": Decimal("0.00"), "success_rate": None,
    }
    assert series[2] == {
        "date": "2024-03-06", "attempts": 3, "successful": 1, "failed": 1,
        "revenue_usd": Decimal("10.00"), "failed_amount_usd": Decimal("60.00"), "success_rate": pytest.approx(1 / 3),
    }


def test_previous_period_of_a_single_day(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = overview(conn, wh.marts, DateRange(date(2024, 3, 4), date(2024, 3, 4)))
    assert result["previous"]["from"] == result["previous"]["to"] == "2024-03-03"
    assert result["previous"]["attempts"] == 1 and result["previous"]["revenue_usd"] == Decimal("7.00")
    assert result["current"]["attempts"] == 3


def test_empty_database_gives_zeros(make_warehouse) -> None:
    wh = make_warehouse([])
    with wh.read() as conn:
        totals = period_totals(conn, wh.marts, RANGE)
        series = daily_series(conn, wh.marts, RANGE)
    assert (totals.attempts, totals.revenue_usd, totals.success_rate) == (0, Decimal("0.00"), None)
    assert [d["attempts"] for d in series] == [0, 0, 0]


def test_funnels_come_from_the_daily_mart(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        assert funnels(conn, wh.marts) == ["main_funnel", "mobile_app"]


# -- timezones ---------------------------------------------------------------------------
@pytest.fixture
def berlin_rows(charge):
    """Charges around the edges of 2024-03-11 in Europe/Berlin (UTC+1 then)."""
    tz = "Europe/Berlin"
    return [
        charge("ch_b0", "2024-03-10 22:59:59", amount="1.00", tz=tz),  # 23:59:59 on the 10th in Berlin
        charge("ch_b1", "2024-03-10 23:00:00", amount="2.00", tz=tz),  # 00:00 on the 11th: included
        charge("ch_b2", "2024-03-10 23:30:00", amount="4.00", tz=tz),  # 00:30 on the 11th
        charge("ch_b3", "2024-03-11 22:59:59", "failed", "8.00", tz=tz),  # 23:59:59 on the 11th: included
        charge("ch_b4", "2024-03-11 23:00:00", amount="16.00", tz=tz),  # 00:00 on the 12th
        # Berlin moves to summer time on 2024-03-31: that local day is 23 hours long
        charge("ch_d1", "2024-03-30 22:59:59", amount="32.00", tz=tz),  # 23:59:59 on the 30th
        charge("ch_d2", "2024-03-30 23:00:00", amount="64.00", tz=tz),  # 00:00 on the 31st
        charge("ch_d3", "2024-03-31 21:59:59", amount="128.00", tz=tz),  # 23:59:59 CEST on the 31st
        charge("ch_d4", "2024-03-31 22:00:00", amount="256.00", tz=tz),  # 00:00 CEST on 1 April
    ]


def test_charge_at_2330_utc_lands_on_the_next_berlin_day(charge) -> None:
    row = charge("ch_x", "2024-03-10 23:30", tz="Europe/Berlin")
    assert row["created_date"] == date(2024, 3, 11) and row["hour_of_day"] == 0 and row["day_of_week"] == "Monday"


@pytest.mark.parametrize("mart_tz", ["Europe/Berlin", "UTC"], ids=["daily-mart", "charge-mart"])
def test_berlin_day_bounds_are_whole_local_days(make_warehouse, berlin_rows, mart_tz) -> None:
    wh = make_warehouse(berlin_rows)
    with wh.read() as conn:
        day = period_totals(conn, wh.marts, DateRange(date(2024, 3, 11), date(2024, 3, 11), "Europe/Berlin"), mart_tz=mart_tz)
        dst = period_totals(conn, wh.marts, DateRange(date(2024, 3, 31), date(2024, 3, 31), "Europe/Berlin"), mart_tz=mart_tz)
        series = daily_series(conn, wh.marts, DateRange(date(2024, 3, 10), date(2024, 3, 12), "Europe/Berlin"), mart_tz=mart_tz)
    assert (day.attempts, day.successful, day.failed) == (3, 2, 1)
    assert day.revenue_usd == Decimal("6.00") and day.failed_amount_usd == Decimal("8.00")
    assert (dst.attempts, dst.revenue_usd) == (2, Decimal("192.00"))  # 64 + 128
    assert [(d["date"], d["attempts"], d["revenue_usd"]) for d in series] == [
        ("2024-03-10", 1, Decimal("1.00")),
        ("2024-03-11", 3, Decimal("6.00")),
        ("2024-03-12", 1, Decimal("16.00")),
    ]


def test_the_same_charges_in_utc_days(make_warehouse, berlin_rows) -> None:
    # The daily mart holds Berlin days; asking for UTC days must go to the charge mart.
    wh = make_warehouse(berlin_rows)
    with wh.read() as conn:
        day = period_totals(conn, wh.marts, DateRange(date(2024, 3, 11), date(2024, 3, 11), "UTC"), mart_tz="Europe/Berlin")
    # UTC 2024-03-11: ch_b3 (22:59:59, failed) and ch_b4 (23:00)
    assert (day.attempts, day.successful, day.failed, day.revenue_usd) == (2, 1, 1, Decimal("16.00"))


def test_daily_mart_and_charge_mart_agree_on_mixed_data(make_warehouse, charge) -> None:
    # Many days, funnels and statuses in New York time: the two paths must match day by day.
    tz = "America/New_York"
    statuses = ("succeeded", "failed", "succeeded", "pending", "succeeded")
    funnels_ = ("main_funnel", "mobile_app", "paid_social")
    rows = [
        charge(
            f"ch_{i:04d}",
            f"2024-03-{1 + i % 20:02d} {i * 7 % 24:02d}:{i * 13 % 60:02d}",
            statuses[i % len(statuses)],
            f"{(i * 37) % 200 + 0.99:.2f}",
            funnel_name=funnels_[i % 3],
            tz=tz,
        )
        for i in range(240)
    ]
    wh = make_warehouse(rows)
    rng = DateRange(date(2024, 3, 5), date(2024, 3, 18), tz)  # spans the DST change of 2024-03-10
    with wh.read() as conn:
        for funnel in (None, "mobile_app"):
            via_daily = daily_series(conn, wh.marts, rng, funnel, mart_tz=tz)
            via_charges = daily_series(conn, wh.marts, rng, funnel, mart_tz="UTC")
            assert via_daily == via_charges
            assert sum(d["attempts"] for d in via_daily) > 50
            assert overview(conn, wh.marts, rng, funnel, mart_tz=tz) == overview(conn, wh.marts, rng, funnel, mart_tz="UTC")


def test_changes_are_relative_for_counts_and_absolute_for_rates() -> None:
    from paydash.queries.overview import PeriodTotals

    cur = PeriodTotals(date(2024, 1, 8), date(2024, 1, 14), 200, 150, 50, Decimal("300.00"), Decimal("10.00"))
    prev = PeriodTotals(date(2024, 1, 1), date(2024, 1, 7), 100, 90, 10, Decimal("0.00"), Decimal("5.00"))
    result = changes(cur, prev)
    assert result["attempts"] == pytest.approx(1.0)
    assert result["failed"] == pytest.approx(4.0)
    assert result["revenue_usd"] is None  # nothing to compare against
    assert result["failed_amount_usd"] == pytest.approx(1.0)
    assert result["success_rate"] == pytest.approx(0.75 - 0.9)
