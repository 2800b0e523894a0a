"""Recovery through retries and payment-level acceptance (definitions in paydash/queries/recovery.py)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import pytest

from paydash.queries.dates import DateRange
from paydash.queries.recovery import recovery

RANGE = DateRange(date(2024, 3, 4), date(2024, 3, 5))


@pytest.fixture
def rows(charge):
    def attempt(pi, n, when, status, amount, **kw):
        return charge(f"ch_{pi}{n}", when, status, amount, payment_intent_id=f"pi_{pi}", attempt_number=n, **kw)

    return [
        # A: first attempt succeeded
        attempt("A", 1, "2024-03-04 10:00", "succeeded", "50.00"),
        # B: failed, won back by a quick retry
        attempt("B", 1, "2024-03-04 11:00", "failed", "30.00", failure_code="insufficient_funds"),
        attempt("B", 2, "2024-03-04 11:20", "succeeded", "30.00"),
        # C: failed twice, won by the third attempt after the range ended (still counts)
        attempt("C", 1, "2024-03-04 12:00", "failed", "80.00", failure_code="insufficient_funds", funnel_name="mobile_app"),
        attempt("C", 2, "2024-03-06 12:00", "failed", "80.00", failure_code="insufficient_funds", funnel_name="mobile_app"),
        attempt("C", 3, "2024-03-08 12:00", "succeeded", "80.00", funnel_name="mobile_app"),
        # D: failed, retried, failed again: unrecovered
        attempt("D", 1, "2024-03-05 09:00", "failed", "20.00", failure_code="do_not_honor"),
        attempt("D", 2, "2024-03-05 10:00", "failed", "20.00", failure_code="do_not_honor"),
        # E: failed, never retried: unrecovered
        attempt("E", 1, "2024-03-05 13:00", "failed", "15.00", failure_code="expired_card", funnel_name="mobile_app"),
        # F: first attempt before the range; its win inside the range belongs to no cohort here
        attempt("F", 1, "2024-03-03 23:00", "failed", "70.00"),
        attempt("F", 2, "2024-03-04 09:00", "succeeded", "70.00"),
        # G: first attempt still pending: attempted, neither accepted nor failed
        attempt("G", 1, "2024-03-05 20:00", "pending", "12.00"),
        # H: first attempt after the range
        attempt("H", 1, "2024-03-06 00:00", "failed", "40.00"),
    ]


def test_recovery_totals(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = recovery(conn, wh.marts, RANGE)
    assert result["from"] == "2024-03-04" and result["to"] == "2024-03-05"
    assert result["payments"] == 6  # A B C D E G
    assert result["first_succeeded"] == 1  # A
    assert result["first_failed"] == 4  # B C D E
    assert result["recovered"] == 2  # B C
    assert result["recovery_rate"] == pytest.approx(0.5)
    assert result["recovered_usd"] == Decimal("110.00")  # B's 30 + C's 80
    assert result["unrecovered_usd"] == Decimal("35.00")  # D's 20 + E's 15
    assert result["payment_acceptance"] == pytest.approx(3 / 6)  # A, B, C ended succeeded


def test_recovery_by_day_of_first_failure(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        by_day = recovery(conn, wh.marts, RANGE)["by_day"]
    assert by_day == [
        {"date": "2024-03-04", "payments": 3, "first_succeeded": 1, "first_failed": 2, "recovered": 2,
         "recovered_usd": Decimal("110.00"), "unrecovered_usd": Decimal("0.00"), "recovery_rate": 1.0},
        {"date": "2024-03-05", "payments": 3, "first_succeeded": 0, "first_failed": 2, "recovered": 0,
         "recovered_usd": Decimal("0.00"), "unrecovered_usd": Decimal("35.00"), "recovery_rate": 0.0},
    ]


def test_recovery_for_one_funnel(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = recovery(conn, wh.marts, RANGE, funnel="mobile_app")
    # C (recovered) and E (unrecovered)
    assert (result["payments"], result["first_failed"], result["recovered"]) == (2, 2, 1)
    assert result["recovered_usd"] == Decimal("80.00") and result["unrecovered_usd"] == Decimal("15.00")
    assert result["payment_acceptance"] == pytest.approx(0.5)


def test_empty_range_has_no_rates(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    with wh.read() as conn:
        result = recovery(conn, wh.marts, DateRange(date(2024, 2, 1), date(2024, 2, 3)))
    assert result["payments"] == 0
    assert result["recovery_rate"] is None and result["payment_acceptance"] is None
    assert [d["date"] for d in result["by_day"]] == ["2024-02-01", "2024-02-02", "2024-02-03"]
    assert all(d["recovery_rate"] is None for d in result["by_day"])


def test_cohort_day_is_the_local_day_of_the_first_attempt(make_warehouse, charge) -> None:
    tz = "Europe/Berlin"
    wh = make_warehouse([
        # 23:30 UTC on the 4th is 00:30 on the 5th in Berlin
        charge("ch_x1", "2024-03-04 23:30", "failed", "9.00", payment_intent_id="pi_x", tz=tz),
        charge("ch_x2", "2024-03-05 08:00", "succeeded", "9.00", payment_intent_id="pi_x", attempt_number=2, tz=tz),
        # 22:59 UTC on the 3rd is 23:59 on the 3rd in Berlin: before the range
        charge("ch_y1", "2024-03-03 22:59", "failed", "5.00", payment_intent_id="pi_y", tz=tz),
    ])
    with wh.read() as conn:
        result = recovery(conn, wh.marts, DateRange(date(2024, 3, 4), date(2024, 3, 5), tz))
    assert result["payments"] == 1
    assert [(d["date"], d["first_failed"], d["recovered"]) for d in result["by_day"]] == [
        ("2024-03-04", 0, 0),
        ("2024-03-05", 1, 1),
    ]
    assert result["recovered_usd"] == Decimal("9.00")


def _with_first_failures(make_warehouse, rows):
    """The warehouse over `rows`, plus the first-failures mart paydash builds for itself."""
    from paydash.warehouse import transforms

    wh = make_warehouse(rows)
    writer = type(wh)(wh.url, wh.settings, read_only=False)
    try:
        with writer.write() as conn:
            wh.marts.first_failures.create(conn, checkfirst=True)
            transforms.rebuild_first_failures(conn, writer.marts)
    finally:
        writer.dispose()
    return wh


@pytest.mark.parametrize("rng, funnel", [
    (RANGE, None),
    (RANGE, "mobile_app"),
    (DateRange(date(2024, 3, 1), date(2024, 3, 9)), None),
    (DateRange(date(2024, 3, 4), date(2024, 3, 5), "America/New_York"), None),
])
def test_the_first_failures_mart_gives_the_same_numbers(make_warehouse, rows, rng, funnel) -> None:
    wh = _with_first_failures(make_warehouse, rows)
    assert wh.has_table(wh.marts.first_failures)
    with wh.read() as conn:
        joined = recovery(conn, wh.marts, rng, funnel)
        precomputed = recovery(conn, wh.marts, rng, funnel, precomputed=True)
        from_daily_mart = recovery(conn, wh.marts, rng, funnel, mart_tz=wh.settings.timezone)
        both = recovery(conn, wh.marts, rng, funnel, precomputed=True, mart_tz=wh.settings.timezone)
    assert precomputed == joined
    assert from_daily_mart == joined
    assert both == joined
    if rng == RANGE and funnel is None:
        assert precomputed["recovered"] == 2 and precomputed["unrecovered_usd"] == Decimal("35.00")


def test_first_failures_rebuilt_since_a_day_picks_up_a_late_win(make_warehouse, charge) -> None:
    """A retry that wins days later changes an old cohort: an incremental rebuild must see it."""
    from paydash.warehouse import load, transforms
    from builders import rows_to_arrow

    first = charge("ch_x1", "2024-03-04 10:00", "failed", "25.00", payment_intent_id="pi_x", attempt_number=1,
                   failure_code="insufficient_funds")
    other = charge("ch_y1", "2024-03-04 11:00", "failed", "5.00", payment_intent_id="pi_y", attempt_number=1,
                   failure_code="expired_card")
    wh = _with_first_failures(make_warehouse, [first, other])
    writer = type(wh)(wh.url, wh.settings, read_only=False)
    try:
        load.load_arrow(writer, writer.marts.payments, rows_to_arrow([
            charge("ch_x2", "2024-03-07 09:00", "succeeded", "25.00", payment_intent_id="pi_x", attempt_number=2)
        ]))
        with writer.write() as conn:
            transforms.rebuild_first_failures(conn, writer.marts, since=date(2024, 3, 7))
    finally:
        writer.dispose()
    with wh.read() as conn:
        result = recovery(conn, wh.marts, DateRange(date(2024, 3, 4), date(2024, 3, 4)), precomputed=True)
        assert result == recovery(conn, wh.marts, DateRange(date(2024, 3, 4), date(2024, 3, 4)))
    assert (result["first_failed"], result["recovered"], result["recovered_usd"]) == (2, 1, Decimal("25.00"))
