"""Operations queries on hand-built events, on DuckDB and PostgreSQL: rolling windows, p95, lag, sessions, retries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import numpy as np
import pytest

from paydash.queries import operations as ops
from paydash.sources.operations_events import ensure_table, insert_events
from paydash.warehouse.schema import OPERATIONS_EVENT_COLUMNS

T0 = datetime(2026, 3, 2, 10, 0)
_ids = iter(range(1, 10**6))


def event(name: str, at: datetime | str, **fields) -> dict:  # noqa: ANN003
    """One operations event row; received_at defaults to occurred_at, source to 'api'."""
    at = datetime.fromisoformat(at) if isinstance(at, str) else at
    row = {c: None for c, _ in OPERATIONS_EVENT_COLUMNS}
    row.update(event_id=f"ev_{next(_ids)}", event_name=name, occurred_at=at, received_at=at, source="api",
               properties="{}")
    row.update(fields)
    return row


@pytest.fixture
def events_warehouse(databases):  # noqa: ANN001, ANN201
    """events_warehouse(rows) -> a read-only Warehouse whose operations mart holds `rows`."""

    def make(rows: list[dict]):  # noqa: ANN202
        db = databases.new()
        writer = db.warehouse(read_only=False)
        try:
            table = ensure_table(writer)
            with writer.write() as conn:
                insert_events(conn, table, rows)
        finally:
            writer.dispose()
        return databases.track(db.warehouse())

    return make


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_success_rate_over_rolling_half_open_windows(events_warehouse) -> None:
    rows = [
        event("checkout_completed", at(-10), outcome="succeeded"),
        event("checkout_completed", at(-2), outcome="failed"),
        event("checkout_completed", at(0), outcome="succeeded"),  # on a bound: in the windows ending after 10:00
        event("checkout_completed", at(14 + 59 / 60), outcome="failed"),
        event("checkout_started", at(1)),  # other events do not count
        event("checkout_expired", at(3), outcome="expired"),
        event("checkout_completed", at(-30), outcome="failed"),  # before every window
    ]
    wh = events_warehouse(rows)
    with wh.read() as conn:
        series = ops.success_rate_series(conn, wh.marts, T0, at(30), timedelta(minutes=5))
    got = [(p["at"], p["completed"], p["succeeded"], p["success_rate"]) for p in series]
    assert got == [
        (at(0), 2, 1, 0.5),       # [09:45, 10:00): 09:50 ok, 09:58 failed
        (at(5), 3, 2, 2 / 3),     # [09:50, 10:05)
        (at(10), 2, 1, 0.5),      # [09:55, 10:10)
        (at(15), 2, 1, 0.5),      # [10:00, 10:15): 10:00 ok, 10:14:59 failed
        (at(20), 1, 0, 0.0),
        (at(25), 1, 0, 0.0),
        (at(30), 0, 0, None),     # no completed checkout: no rate
    ]


def test_snapshot_windows_p95_and_lag(events_warehouse) -> None:
    now = at(60)
    durations = list(range(100, 2001, 100))  # 20 receipts in the last 15 minutes
    rows = [event("receipt_generated", at(50) + timedelta(seconds=i), outcome="succeeded", duration_ms=d)
            for i, d in enumerate(durations)]
    rows += [
        event("receipt_generated", at(56), outcome="failed", duration_ms=None, error="timeout"),
        event("receipt_generated", at(54), outcome="failed", error="timeout"),  # 6 minutes ago: outside 5 min
        event("receipt_generated", at(60), outcome="failed", duration_ms=99_999),  # at now: outside every window
        event("checkout_expired", at(0), outcome="expired"),  # exactly an hour ago: inside [now - 1 h, now)
        event("checkout_expired", at(-1), outcome="expired"),
        event("checkout_completed", at(50), outcome="succeeded"),
        event("checkout_completed", at(44), outcome="failed"),  # 16 minutes ago: outside 15 min
        event("retry_initiated", at(20), payment_intent_id="pi_1", attempt_number=1),
        event("retry_completed", at(21), payment_intent_id="pi_1", attempt_number=1, outcome="failed"),
        event("retry_completed", at(50), payment_intent_id="pi_2", attempt_number=1, outcome="failed"),
        event("retry_completed", at(51), payment_intent_id="pi_3", attempt_number=2, outcome="succeeded"),
        # lag: Stripe events received in [now - 5 min, now)
        event("checkout_started", at(50), received_at=at(55) + timedelta(seconds=3), source="stripe"),
        event("checkout_started", at(53), received_at=at(55) + timedelta(seconds=130), source="stripe"),
        event("checkout_started", at(40), received_at=at(50), source="stripe"),  # received 10 minutes ago
        event("checkout_started", at(49), received_at=at(59), source="api"),  # not Stripe
        event("checkout_started", at(50), received_at=at(60), source="stripe"),  # received at now
    ]
    wh = events_warehouse(rows)
    with wh.read() as conn:
        snap = ops.snapshot(conn, wh.marts, now)
    assert snap["receipt_p95_ms_15m"] == pytest.approx(float(np.percentile(durations, 95)))  # 1905
    assert snap["receipt_p95_ms_1h"] == pytest.approx(float(np.percentile(durations, 95)))
    assert snap["receipt_failures_5m"] == 1
    assert snap["receipts_1h"] == 22
    assert snap["expired_sessions_1h"] == 1
    assert (snap["checkouts_completed_15m"], snap["checkout_success_rate_15m"]) == (1, 1.0)
    assert (snap["retries_completed_1h"], snap["retry_successes_1h"], snap["retry_success_rate_1h"]) == (3, 1, 1 / 3)
    assert snap["retry_failures_15m"] == 1
    assert snap["retry_attempts_1h"] == 1
    assert snap["webhook_lag_seconds"] == pytest.approx(5 * 60 + 3)  # the larger of 303 s and 250 s
    with wh.read() as conn:
        assert ops.webhook_lag(conn, wh.marts, at(200)) is None  # nothing received then


def test_open_sessions_and_retry_backlog(events_warehouse) -> None:
    now = at(60)
    rows = [
        event("checkout_started", at(50), checkout_session_id="cs_active"),
        event("checkout_started", at(20), checkout_session_id="cs_pending"),
        event("checkout_started", at(40), checkout_session_id="cs_done"),
        event("checkout_completed", at(55), checkout_session_id="cs_done", outcome="succeeded"),
        event("checkout_started", at(10), checkout_session_id="cs_expired"),
        event("checkout_expired", at(40), checkout_session_id="cs_expired", outcome="expired"),
        event("checkout_started", at(55), checkout_session_id="cs_later"),
        event("checkout_completed", at(61), checkout_session_id="cs_later", outcome="succeeded"),  # after now
        event("checkout_started", at(-2000), checkout_session_id="cs_old"),  # beyond 24 hours
        event("retry_initiated", at(30), payment_intent_id="pi_waiting", attempt_number=1),
        event("retry_initiated", at(40), payment_intent_id="pi_done", attempt_number=1),
        event("retry_completed", at(41), payment_intent_id="pi_done", attempt_number=1, outcome="succeeded"),
        event("retry_initiated", at(45), payment_intent_id="pi_done", attempt_number=2),  # its second retry waits
    ]
    wh = events_warehouse(rows)
    with wh.read() as conn:
        assert ops.open_sessions(conn, wh.marts, now) == {"active": 2, "pending": 1}
        backlog = ops.retry_backlog(conn, wh.marts, now)
    assert (backlog["backlog"], backlog["oldest"], backlog["oldest_age_seconds"]) == (2, at(30), 1800.0)


def test_expired_without_retry_heatmap_reasons_and_hourly(events_warehouse) -> None:
    rows = [
        event("checkout_started", at(1), checkout_session_id="cs_1", payment_intent_id="pi_1"),
        event("checkout_started", at(2), checkout_session_id="cs_2", payment_intent_id="pi_2"),
        event("checkout_started", at(3), checkout_session_id="cs_3", payment_intent_id="pi_3"),
        event("checkout_started", at(4), checkout_session_id="cs_4"),
        event("checkout_expired", at(31), checkout_session_id="cs_1", payment_intent_id="pi_1", outcome="expired",
              error="do_not_honor"),
        event("checkout_expired", at(34), checkout_session_id="cs_4", outcome="expired", error="do_not_honor"),
        event("retry_completed", at(80), payment_intent_id="pi_1", attempt_number=1, outcome="failed", error="expired_card"),
        event("retry_completed", at(81), payment_intent_id="pi_2", attempt_number=2, outcome="succeeded"),
        event("retry_completed", at(82), payment_intent_id="pi_3", attempt_number=4, outcome="failed", error="do_not_honor"),
        event("checkout_completed", at(5), outcome="failed", error=None),
        event("checkout_window_extended", at(6)),
        event("checkout_manual_override", at(7), outcome="succeeded", properties=json.dumps({"reason": "phone"})),
        event("receipt_generated", at(70), duration_ms=300, outcome="succeeded"),
        event("receipt_generated", at(71), duration_ms=500, outcome="failed", error="timeout",
              properties='{"download_status": "download_failed", "edge_location": "fra1"}'),
        event("receipt_generated", at(72), duration_ms=400, outcome="succeeded", properties="not json"),
    ]
    wh = events_warehouse(rows)
    with wh.read() as conn:
        m = wh.marts
        slo = ops.expired_without_retry(conn, m, T0, at(60))
        heat = ops.retry_outcomes(conn, m, T0, at(120))
        reasons = ops.failure_reasons(conn, m, T0, at(120))
        receipt_errors = ops.failure_reasons(conn, m, T0, at(120), events=("receipt_generated",))
        hours = ops.hourly(conn, m, T0, at(120))
        overrides = ops.manual_overrides(conn, m, T0, at(120))
        receipts = ops.recent_receipts(conn, m, at(120), limit=2)
    assert (slo["started"], slo["expired"], slo["expired_without_retry"], slo["share"]) == (4, 2, 1, 0.25)
    assert heat == [{"attempt": 1, "outcome": "failed", "retries": 1}, {"attempt": 2, "outcome": "succeeded", "retries": 1},
                    {"attempt": 3, "outcome": "failed", "retries": 1}]
    assert [(r["reason"], r["events"], r["expired_sessions"], r["failed_retries"], r["failed_checkouts"]) for r in reasons] == [
        ("do_not_honor", 3, 2, 1, 0), ("(no reason given)", 1, 0, 0, 1), ("expired_card", 1, 0, 1, 0)]
    assert [(r["reason"], r["events"]) for r in receipt_errors] == [("timeout", 1)]
    assert [(h["hour"], h["started"], h["expired"], h["extended"], h["overrides"], h["receipts"], h["receipt_failures"])
            for h in hours] == [(at(0), 4, 2, 1, 1, 0, 0), (at(60), 0, 0, 0, 0, 3, 1)]
    assert hours[1]["receipt_p95_ms"] == pytest.approx(float(np.percentile([300, 500, 400], 95)))
    assert hours[1]["retry_success_rate"] == pytest.approx(1 / 3)
    assert [(o["occurred_at"], o["reason"]) for o in overrides] == [(at(7), "phone")]
    assert [(r["receipt_id"], r["download_status"], r["edge_location"]) for r in receipts] == [
        (None, None, None), (None, "download_failed", "fra1")]


def test_an_empty_mart(events_warehouse) -> None:
    wh = events_warehouse([])
    with wh.read() as conn:
        assert ops.latest_event_time(conn, wh.marts) is None
        snap = ops.snapshot(conn, wh.marts, T0)
        assert ops.success_rate_series(conn, wh.marts, T0, at(10), timedelta(minutes=5))[0]["success_rate"] is None
    assert snap["checkout_success_rate_15m"] is None and snap["receipt_p95_ms_1h"] is None
    assert snap["webhook_lag_seconds"] is None and snap["active_sessions"] == 0


def test_inserting_the_same_event_twice_stores_it_once(databases) -> None:
    db = databases.new()
    writer = db.warehouse(read_only=False)
    try:
        table = ensure_table(writer)
        row = event("checkout_started", T0, event_id="ev_same")
        with writer.write() as conn:
            assert insert_events(conn, table, [row, dict(row)]) == {"ev_same"}
        with writer.write() as conn:
            assert insert_events(conn, table, [row, event("checkout_started", T0, event_id="ev_other")]) == {"ev_other"}
        ensure_table(writer)  # again: nothing happens
        with writer.read() as conn:
            assert ops.latest_event_time(conn, writer.marts) == T0
    finally:
        writer.dispose()


@pytest.mark.parametrize(
    "latest, real_now, expected",
    [
        (None, T0, (T0, False)),
        (T0 - timedelta(minutes=3), T0, (T0, False)),  # fresh: the clock
        (T0 - timedelta(minutes=15), T0, (T0, False)),
        (datetime(2026, 1, 5, 14, 59, 30), T0, (datetime(2026, 1, 5, 15, 0), True)),  # stale: the next minute
        (datetime(2026, 1, 5, 15, 0), T0, (datetime(2026, 1, 5, 15, 1), True)),
    ],
)
def test_as_of(latest, real_now, expected) -> None:
    assert ops.as_of(latest, real_now) == expected
