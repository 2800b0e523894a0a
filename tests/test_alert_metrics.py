"""The alert metrics (docs/alerts.md) on hand-built events, on both engines: as of one time,
and the series form giving exactly the same values at every step."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

import pytest

from alert_helpers import build_ops_warehouse, ops_event
from builders import charge
from paydash.queries.alert_metrics import (
    METRICS,
    MetricQuery,
    bucket_unit,
    event_counts,
    metric_at,
    metric_series,
    metrics_at,
    payment_attempts,
    receipt_render_p95,
    webhook_lag,
)

T = datetime(2026, 11, 20, 10, 0)
RENDER_MS = [100, 200, 300, 400, 500, 600, 700, 800, 900, 5000]


def at(minutes: float) -> datetime:
    return T + timedelta(minutes=minutes)


def percentile_cont(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


EVENTS = [
    # checkouts: one before the window, three inside, one exactly at its end (excluded)
    ops_event("checkout_completed", at(-0.5), "succeeded"),
    ops_event("checkout_completed", at(0.5), "succeeded"),
    ops_event("checkout_completed", at(5), "failed"),
    ops_event("checkout_completed", T + timedelta(minutes=9, seconds=59, microseconds=500_000), "succeeded"),
    ops_event("checkout_completed", at(10), "failed"),
    ops_event("checkout_started", at(1)),
    ops_event("checkout_expired", at(1), "expired"),
    ops_event("checkout_expired", at(2), "expired"),
    ops_event("checkout_expired", at(12), "expired"),
    ops_event("retry_completed", at(3), "failed", attempt_number=1),
    ops_event("retry_completed", at(4), "failed", attempt_number=2),
    ops_event("retry_completed", at(4.5), "succeeded", attempt_number=3),
    ops_event("retry_initiated", at(4.5), attempt_number=3),
    *[ops_event("receipt_generated", at(1 + i * 0.5), "failed" if ms == 5000 else "succeeded", duration_ms=ms)
      for i, ms in enumerate(RENDER_MS)],
    # Stripe events: lag 5 s and 150 s, received inside [10:00, 10:10); an API event's lag is not webhook lag
    ops_event("checkout_completed", at(1), "succeeded", received_at=at(1) + timedelta(seconds=5), source="stripe"),
    ops_event("retry_initiated", at(2), received_at=at(4.5), source="stripe"),
    ops_event("retry_initiated", at(3), received_at=at(3) + timedelta(seconds=1000), source="api"),
]
# (the Stripe checkout at 10:01 also counts as a checkout: 3 succeeded of 4 in [10:00, 10:10))

PAYMENTS = (
    # baseline day before: 10 attempts, 1 failed (10%)
    [charge(f"ch_b{i}", at(-600 + i), "failed" if i == 0 else "succeeded") for i in range(10)]
    # current window [10:00, 10:15): 4 attempts, 2 failed (50%)
    + [charge(f"ch_c{i}", at(1 + i), "failed" if i < 2 else "succeeded") for i in range(4)]
    + [charge("ch_late", at(15), "failed")]
)


@pytest.fixture
def wh(databases):  # noqa: ANN001, ANN201
    return build_ops_warehouse(databases, EVENTS, PAYMENTS)


def test_counters_over_a_half_open_window(wh) -> None:  # noqa: ANN001
    with wh.read() as conn:
        counts = event_counts(conn, wh.marts, T, at(10))
    assert counts == {
        "checkout_completed": 4, "checkout_succeeded": 3, "checkout_expired": 2, "retry_completed": 3,
        "retry_succeeded": 1, "retry_failed": 2, "receipt_generated": 10, "receipt_failed": 1,
    }


def test_metrics_as_of_a_time(wh) -> None:  # noqa: ANN001
    with wh.read() as conn:
        def value(metric: str, window: float = 10, t: datetime = at(10)):  # noqa: ANN202
            return metric_at(conn, wh.marts, MetricQuery(metric, timedelta(minutes=window)), t)

        assert value("checkout_success_rate").value == pytest.approx(3 / 4)
        assert value("checkout_success_rate").volume == 4
        assert value("expired_sessions").value == 2
        assert value("expired_sessions", 60, at(13)).value == 3
        assert value("retry_failures").value == 2
        assert value("retry_success_rate").value == pytest.approx(1 / 3)
        assert value("receipt_render_failures").value == 1
        assert value("receipt_render_p95_ms").value == pytest.approx(percentile_cont(RENDER_MS, 0.95))
        assert value("webhook_lag_seconds", 5, at(5)).value == pytest.approx(150)
        assert value("webhook_lag_seconds", 5, at(4)).value == pytest.approx(5)  # the 150 s one arrives at 10:04:30
        assert value("payment_failure_rate", 15, at(15)).value == pytest.approx(2 / 4)
        spike = value("payment_failure_rate_spike", 15, at(15))
        assert spike.value == pytest.approx(0.5 - 0.1)
        assert spike.volume == 4
        assert spike.details["baseline_attempts"] == 10


def test_no_events_means_no_value(wh) -> None:  # noqa: ANN001
    quiet = at(-120)
    with wh.read() as conn:
        for metric in ("checkout_success_rate", "retry_success_rate", "receipt_render_p95_ms", "webhook_lag_seconds",
                       "payment_failure_rate", "payment_failure_rate_spike"):
            measured = metric_at(conn, wh.marts, MetricQuery(metric, timedelta(minutes=10)), quiet)
            assert measured.value is None, metric
            assert measured.volume == 0
        assert metric_at(conn, wh.marts, MetricQuery("expired_sessions", timedelta(minutes=10)), quiet).value == 0
        assert webhook_lag(conn, wh.marts, quiet) == (None, 0)
        assert receipt_render_p95(conn, wh.marts, quiet, at(-110)) == (None, 0)
        assert payment_attempts(conn, wh.marts, quiet, at(-110)) == (0, 0)


def test_spike_without_baseline_is_no_value(databases) -> None:  # noqa: ANN001
    wh = build_ops_warehouse(databases, [], [charge("ch_1", at(1), "failed")])
    with wh.read() as conn:
        spike = metric_at(conn, wh.marts, MetricQuery("payment_failure_rate_spike", timedelta(minutes=15)), at(15))
    assert spike.value is None and spike.details["failure_rate"] == 1.0


@pytest.mark.parametrize("start, step, count", [
    (at(-20), timedelta(minutes=1), 50),  # minute buckets
    (at(-3) + timedelta(seconds=7), timedelta(seconds=20), 60),  # second buckets
])
def test_series_equals_one_query_per_step(wh, start, step, count) -> None:  # noqa: ANN001
    queries = [MetricQuery(m, timedelta(minutes=w)) for m in METRICS for w in (5, 10)]
    queries.append(MetricQuery("payment_failure_rate_spike", timedelta(minutes=15), timedelta(hours=2)))
    times = [start + step * i for i in range(count)]
    with wh.read() as conn:
        series = metric_series(conn, wh.marts, queries, times)
        for q in queries:
            expected = [metric_at(conn, wh.marts, q, t) for t in times]
            got = series[q]
            assert [g.volume for g in got] == [e.volume for e in expected], q
            for g, e in zip(got, expected):
                assert (g.value is None) == (e.value is None), q
                if e.value is not None:
                    assert g.value == pytest.approx(e.value), q


def test_one_scan_for_all_counters_equals_one_query_each(wh) -> None:  # noqa: ANN001
    queries = [MetricQuery(m, timedelta(minutes=w)) for m in METRICS for w in (5, 10, 60)]
    with wh.read() as conn:
        for t in (at(0), at(5), at(10), at(13)):
            together = metrics_at(conn, wh.marts, queries, t)
            assert together == {q: metric_at(conn, wh.marts, q, t) for q in queries}


@pytest.mark.parametrize("times, durations, unit", [
    ([datetime(2026, 1, 1, 10, 0), datetime(2026, 1, 1, 10, 1)], [timedelta(minutes=15)], "minute"),
    ([datetime(2026, 1, 1, 10, 0, 30)], [timedelta(minutes=15)], "second"),
    ([datetime(2026, 1, 1, 10, 0)], [timedelta(seconds=90)], "second"),
])
def test_bucket_unit(times, durations, unit) -> None:  # noqa: ANN001
    assert bucket_unit(times, durations) == unit
