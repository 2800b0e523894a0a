"""Failure breakdown by category and by decline code, with amounts and recommended actions."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from paydash.queries.dates import DateRange
from paydash.queries.failures import failure_breakdown

RANGE = DateRange(date(2024, 3, 4), date(2024, 3, 5))


@pytest.fixture
def rows(charge):
    return [
        charge("ch_f1", "2024-03-04 01:00", "failed", "10.00", failure_code="insufficient_funds"),
        charge("ch_f2", "2024-03-04 02:00", "failed", "20.00", failure_code="insufficient_funds"),
        charge("ch_f3", "2024-03-04 03:00", "failed", "5.00", failure_code="card_velocity_exceeded"),
        charge("ch_f4", "2024-03-04 04:00", "failed", "7.50", failure_code="do_not_honor"),
        charge("ch_f5", "2024-03-05 05:00", "failed", "2.50", failure_code="generic_decline"),
        charge("ch_f6", "2024-03-05 06:00", "failed", "2.50", failure_code="generic_decline"),
        charge("ch_f7", "2024-03-05 23:59:59", "failed", "2.50", failure_code="generic_decline"),
        charge("ch_f8", "2024-03-05 08:00", "failed", "100.00", failure_code="expired_card", funnel_name="mobile_app"),
        # not failures, or outside the range
        charge("ch_s1", "2024-03-04 09:00", "succeeded", "1000.00"),
        charge("ch_p1", "2024-03-04 10:00", "pending", "1000.00"),
        charge("ch_out", "2024-03-06 00:00", "failed", "999.00", failure_code="generic_decline"),
        charge("ch_out2", "2024-03-03 23:59:59", "failed", "999.00", failure_code="fraudulent"),
    ]


def test_breakdown_by_category_and_code(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = failure_breakdown(conn, wh.marts, RANGE)

    assert result["failures"] == 8
    assert result["failed_amount_usd"] == Decimal("150.00")
    assert [(c["failure_category"], c["failures"], c["failed_amount_usd"], c["recovery_action"]) for c in result["by_category"]] == [
        ("card_declined", 4, Decimal("15.00"), "contact_issuer"),  # 7.50 + 3 x 2.50
        ("insufficient_funds", 3, Decimal("35.00"), "retry_eligible"),
        ("expired_card", 1, Decimal("100.00"), "request_new_card"),
    ]
    assert [c["share"] for c in result["by_category"]] == pytest.approx([4 / 8, 3 / 8, 1 / 8])
    # most frequent first, ties by code
    assert [(c["failure_code"], c["failure_category"], c["failures"], c["failed_amount_usd"], c["recovery_action"]) for c in result["by_code"]] == [
        ("generic_decline", "card_declined", 3, Decimal("7.50"), "contact_issuer"),
        ("insufficient_funds", "insufficient_funds", 2, Decimal("30.00"), "retry_eligible"),
        ("card_velocity_exceeded", "insufficient_funds", 1, Decimal("5.00"), "retry_eligible"),
        ("do_not_honor", "card_declined", 1, Decimal("7.50"), "contact_issuer"),
        ("expired_card", "expired_card", 1, Decimal("100.00"), "request_new_card"),
    ]
    assert sum(c["share"] for c in result["by_code"]) == pytest.approx(1.0)


def test_breakdown_for_one_funnel(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = failure_breakdown(conn, wh.marts, RANGE, funnel="mobile_app")
    assert result["failures"] == 1 and result["failed_amount_usd"] == Decimal("100.00")
    assert [c["failure_category"] for c in result["by_category"]] == ["expired_card"]


def test_no_failures(make_warehouse, charge) -> None:
    wh = make_warehouse([charge("ch_1", "2024-03-04 10:00")])
    with wh.read() as conn:
        result = failure_breakdown(conn, wh.marts, RANGE)
    assert result["failures"] == 0 and result["failed_amount_usd"] == Decimal("0.00")
    assert result["by_category"] == [] and result["by_code"] == []


def test_failures_without_category_count_as_other(make_warehouse, charge) -> None:
    # A warehouse mart may leave failure_category and recovery_action empty for unknown codes.
    no_code = charge("ch_2", "2024-03-04 11:00", "failed", "4.00", failure_category=None, recovery_action=None)
    no_code["failure_code"] = None
    wh = make_warehouse([
        charge("ch_1", "2024-03-04 10:00", "failed", "3.00", failure_code="brand_new_code",
               failure_category=None, recovery_action=None),
        no_code,
    ])
    with wh.read() as conn:
        result = failure_breakdown(conn, wh.marts, RANGE)
    assert result["by_category"] == [
        {"failure_category": "other", "recovery_action": "contact_support", "failures": 2,
         "failed_amount_usd": Decimal("7.00"), "share": 1.0},
    ]
    assert {c["failure_code"] for c in result["by_code"]} == {"brand_new_code", None}
    assert {c["recovery_action"] for c in result["by_code"]} == {"contact_support"}


def test_breakdown_in_berlin_days(make_warehouse, charge) -> None:
    tz = "Europe/Berlin"
    wh = make_warehouse([
        charge("ch_1", "2024-03-10 23:30", "failed", "5.00", tz=tz),  # Berlin 2024-03-11 00:30
        charge("ch_2", "2024-03-10 22:30", "failed", "7.00", tz=tz),  # Berlin 2024-03-10 23:30
    ])
    with wh.read() as conn:
        result = failure_breakdown(conn, wh.marts, DateRange(date(2024, 3, 11), date(2024, 3, 11), tz))
    assert (result["failures"], result["failed_amount_usd"]) == (1, Decimal("5.00"))
