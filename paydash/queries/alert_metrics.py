"""The numbers the alert rules watch, evaluated "as of" a time t (definitions: docs/alerts.md).

Every window is half-open, [t - W, t), on naive UTC timestamps:

- checkout_success_rate: checkout_completed events with outcome 'succeeded' / checkout_completed
  events (None when there are none);
- expired_sessions: checkout_expired events;
- retry_failures: retry_completed events with outcome 'failed'; retry_success_rate: retry_completed
  succeeded / retry_completed;
- receipt_render_failures: receipt_generated events with outcome 'failed';
  receipt_render_p95_ms: 95th percentile of their duration_ms (in SQL);
- webhook_lag_seconds: the largest received_at - occurred_at among events with source 'stripe'
  received in the window (the definition's window is 5 minutes);
- stripe_data_age_minutes: minutes from the moment Stripe data was last known complete to t:
  the newest of the last complete `paydash sync` run's finished_at and the newest delivered
  webhook event's delivered_at, both before t (a sync that never completed: its first start;
  no sync tables, or nothing at all: None). The window plays no part;
- payment_failure_rate: failed attempts / attempts in the charge mart;
  payment_failure_rate_spike: that rate minus the rate of the trailing baseline
  [t - W - B, t - W) (None when the baseline had no attempts).

Two forms: `metric_at` answers one time with a query or two; `metric_series` answers many
evaluation times at once: one query per family of metrics counts events per minute (or per
second when the times are not whole minutes), and the windows are rolled in Python over
those few aggregated buckets with prefix sums. Percentiles cannot be rolled, so
receipt_render_p95_ms costs one query per time in the series form.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field
from functools import lru_cache
from datetime import datetime, timedelta
from typing import Any, Iterable, Sequence

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.queries.sql import count_if, ratio
from paydash.warehouse.schema import Marts

WEBHOOK_LAG_WINDOW = timedelta(minutes=5)
DEFAULT_BASELINE = timedelta(hours=24)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str  # rate | count | max | percentile | spike | age
    unit: str  # ratio | events | seconds | ms | points | minutes
    source: str  # operations_events | payments | stripe_sync
    description: str
    default_window: timedelta


METRICS: dict[str, MetricSpec] = {
    m.name: m
    for m in (
        MetricSpec("checkout_success_rate", "rate", "ratio", "operations_events",
                   "share of completed checkouts that succeeded", timedelta(minutes=15)),
        MetricSpec("expired_sessions", "count", "events", "operations_events",
                   "checkout sessions that expired", timedelta(hours=1)),
        MetricSpec("retry_failures", "count", "events", "operations_events",
                   "payment retries that failed", timedelta(minutes=15)),
        MetricSpec("retry_success_rate", "rate", "ratio", "operations_events",
                   "share of completed payment retries that succeeded", timedelta(minutes=15)),
        MetricSpec("receipt_render_failures", "count", "events", "operations_events",
                   "receipts that failed to render", timedelta(minutes=5)),
        MetricSpec("receipt_render_p95_ms", "percentile", "ms", "operations_events",
                   "95th percentile of receipt render time", timedelta(minutes=15)),
        MetricSpec("webhook_lag_seconds", "max", "seconds", "operations_events",
                   "largest delay between a Stripe event and its arrival", WEBHOOK_LAG_WINDOW),
        MetricSpec("payment_failure_rate", "rate", "ratio", "payments",
                   "share of charge attempts that failed", timedelta(minutes=15)),
        MetricSpec("payment_failure_rate_spike", "spike", "points", "payments",
                   "rise of the payment failure rate over its trailing baseline", timedelta(minutes=15)),
        MetricSpec("stripe_data_age_minutes", "age", "minutes", "stripe_sync",
                   "minutes since Stripe data was last known complete (a complete sync or a delivered webhook)",
                   timedelta(minutes=1)),
    )
}

# Event counters of the operations mart, as data: name -> (event_name, outcome or None).
COUNTERS: dict[str, tuple[str, str | None]] = {
    "checkout_completed": ("checkout_completed", None),
    "checkout_succeeded": ("checkout_completed", "succeeded"),
    "checkout_expired": ("checkout_expired", None),
    "retry_completed": ("retry_completed", None),
    "retry_succeeded": ("retry_completed", "succeeded"),
    "retry_failed": ("retry_completed", "failed"),
    "receipt_generated": ("receipt_generated", None),
    "receipt_failed": ("receipt_generated", "failed"),
}

# metric -> (numerator counter, denominator counter or None for a plain count)
COUNTER_METRICS: dict[str, tuple[str, str | None]] = {
    "checkout_success_rate": ("checkout_succeeded", "checkout_completed"),
    "expired_sessions": ("checkout_expired", None),
    "retry_failures": ("retry_failed", None),
    "retry_success_rate": ("retry_succeeded", "retry_completed"),
    "receipt_render_failures": ("receipt_failed", None),
}


@dataclass(frozen=True)
class MetricValue:
    """A metric's value at one time, the events behind it (volume) and what a message may show."""

    value: float | None
    volume: int
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MetricQuery:
    """What to compute: a metric over a window (and, for the spike, a baseline before it)."""

    metric: str
    window: timedelta
    baseline: timedelta = DEFAULT_BASELINE

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; known: {', '.join(METRICS)}")

    @property
    def span(self) -> timedelta:
        """How far back from t the metric reads."""
        return self.window + (self.baseline if METRICS[self.metric].kind == "spike" else timedelta(0))


# -- building blocks (one definition each, shared by both forms) ----------------------------
def _counter_condition(marts: Marts, counter: str) -> sa.ColumnElement[bool]:
    e = marts.operations_events.c
    event_name, outcome = COUNTERS[counter]
    condition = e.event_name == event_name
    return condition if outcome is None else sa.and_(condition, e.outcome == outcome)


def _counter_columns(marts: Marts) -> list[sa.ColumnElement]:
    return [count_if(_counter_condition(marts, name)).label(name) for name in COUNTERS]


def _lag_seconds(marts: Marts) -> sa.ColumnElement:
    e = marts.operations_events.c
    return func.extract("epoch", e.received_at - e.occurred_at)


def _stripe_events(marts: Marts) -> sa.ColumnElement[bool]:
    return marts.operations_events.c.source == "stripe"


def _payment_columns(marts: Marts) -> list[sa.ColumnElement]:
    p = marts.payments.c
    return [func.count().label("attempts"), count_if(p.status == "failed").label("failed")]


def _from_counters(metric: str, counts: dict[str, int]) -> MetricValue:
    numerator, denominator = COUNTER_METRICS[metric]
    if denominator is None:
        n = int(counts.get(numerator, 0))
        return MetricValue(float(n), n, {"count": n})
    num, den = int(counts.get(numerator, 0)), int(counts.get(denominator, 0))
    return MetricValue(ratio(num, den), den, {numerator: num, denominator: den})


def _from_payments(query: MetricQuery, attempts: int, failed: int, base_attempts: int = 0,
                   base_failed: int = 0) -> MetricValue:
    current = ratio(failed, attempts)
    if query.metric == "payment_failure_rate":
        return MetricValue(current, attempts, {"attempts": attempts, "failed": failed})
    baseline = ratio(base_failed, base_attempts)
    value = None if current is None or baseline is None else current - baseline
    return MetricValue(value, attempts, {
        "failure_rate": current, "baseline_failure_rate": baseline, "attempts": attempts, "failed": failed,
        "baseline_attempts": base_attempts, "baseline_failed": base_failed,
    })


def _as_float(value: Any) -> float | None:
    return None if value is None else float(value)


@dataclass(frozen=True)
class StripeSync:
    """The Stripe sync's tables as the database has them (None: not there); `delivered` names
    stripe_events' delivery time (received_at on a database not migrated to delivered_at yet)."""

    runs: sa.Table | None = None
    events: sa.Table | None = None
    delivered: str = "delivered_at"

    @property
    def present(self) -> bool:
        return self.runs is not None or self.events is not None


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(timespec="seconds") + "Z"


def _age(t: datetime, complete: datetime | None, delivered: datetime | None, first_start: datetime | None) -> MetricValue:
    known = [v for v in (complete, delivered) if v is not None]
    since = max(known) if known else first_start
    details = {"last_complete_sync": _iso(complete), "newest_webhook_event": _iso(delivered), "complete_as_of": _iso(since)}
    if since is None:
        return MetricValue(None, 0, details)
    return MetricValue(round((t - since).total_seconds() / 60, 1), 1, details)


def stripe_data_age(conn: Connection, stripe: StripeSync, t: datetime) -> MetricValue:
    """stripe_data_age_minutes as of t (signals strictly before t)."""
    if not stripe.present:
        return MetricValue(None, 0, {})
    columns = []
    if stripe.runs is not None:
        r = stripe.runs.c
        columns += [
            select(func.max(r.finished_at)).where(r.status == "complete", r.finished_at < t).scalar_subquery().label("complete"),
            select(func.min(r.started_at)).where(r.started_at < t).scalar_subquery().label("first_start"),
        ]
    if stripe.events is not None:
        d = stripe.events.c[stripe.delivered]
        columns.append(select(func.max(d)).where(d < t).scalar_subquery().label("delivered"))
    row = conn.execute(select(*columns)).mappings().one()
    return _age(t, row.get("complete"), row.get("delivered"), row.get("first_start"))


def stripe_data_age_series(conn: Connection, stripe: StripeSync, times: Sequence[datetime], unit: str) -> list[MetricValue]:
    """stripe_data_age at each of `times` (sorted) with three queries: the complete runs' ends, the
    newest delivery per bucket over the span, and the newest before it."""
    if not stripe.present:
        return [MetricValue(None, 0, {}) for _ in times]
    first, last = times[0], times[-1]
    ends: list[datetime] = []
    first_start = None
    if stripe.runs is not None:
        r = stripe.runs.c
        ends = [v for (v,) in conn.execute(select(r.finished_at).where(
            r.status == "complete", r.finished_at < last).order_by(r.finished_at))]
        first_start = conn.execute(select(func.min(r.started_at))).scalar()
    starts: list[datetime] = []
    newest: list[datetime] = []
    before = None
    if stripe.events is not None:
        d = stripe.events.c[stripe.delivered]
        before = conn.execute(select(func.max(d)).where(d < first)).scalar()
        bucket = func.date_trunc(unit, d).label("bucket")
        for start, value in conn.execute(select(bucket, func.max(d)).where(d >= first, d < last)
                                         .group_by(bucket).order_by(bucket)):
            starts.append(start)
            newest.append(max(value, newest[-1]) if newest else value)
    out = []
    for t in times:
        i = bisect_left(ends, t)
        j = bisect_left(starts, t)  # buckets that start before t end by t: times are whole buckets
        delivered = newest[j - 1] if j else before
        out.append(_age(t, ends[i - 1] if i else None, delivered,
                        first_start if first_start is not None and first_start < t else None))
    return out


# -- as of one time -----------------------------------------------------------------------------
@lru_cache(maxsize=32)
def _event_counts_stmt(marts: Marts) -> sa.Select:
    # built once: the eight CASE expressions cost more to build than DuckDB takes to run them
    e = marts.operations_events.c
    return select(*_counter_columns(marts)).where(
        e.occurred_at >= sa.bindparam("start", type_=sa.DateTime), e.occurred_at < sa.bindparam("stop", type_=sa.DateTime))


def event_counts(conn: Connection, marts: Marts, start: datetime, stop: datetime) -> dict[str, int]:
    """Every operations counter over [start, stop), in one query."""
    row = conn.execute(_event_counts_stmt(marts), {"start": start, "stop": stop}).one()
    return {name: int(row._mapping[name]) for name in COUNTERS}


def webhook_lag(conn: Connection, marts: Marts, t: datetime, window: timedelta = WEBHOOK_LAG_WINDOW) -> tuple[float | None, int]:
    """(largest lag in seconds, Stripe events received) over [t - window, t); lag None when none arrived."""
    e = marts.operations_events.c
    row = conn.execute(
        select(func.max(_lag_seconds(marts)), func.count())
        .where(_stripe_events(marts), e.received_at >= t - window, e.received_at < t)
    ).one()
    return _as_float(row[0]), int(row[1])


def receipt_render_p95(conn: Connection, marts: Marts, start: datetime, stop: datetime) -> tuple[float | None, int]:
    """(p95 of receipt render time in ms, receipts with a render time) over [start, stop)."""
    e = marts.operations_events.c
    row = conn.execute(
        select(func.percentile_cont(0.95).within_group(e.duration_ms), func.count(e.duration_ms))
        .where(e.event_name == "receipt_generated", e.occurred_at >= start, e.occurred_at < stop)
    ).one()
    return _as_float(row[0]), int(row[1])


def payment_attempts(conn: Connection, marts: Marts, start: datetime, stop: datetime) -> tuple[int, int]:
    """(attempts, failed attempts) in the charge mart over [start, stop)."""
    p = marts.payments.c
    row = conn.execute(select(*_payment_columns(marts)).where(p.created_at >= start, p.created_at < stop)).one()
    return int(row[0]), int(row[1])


def metric_at(conn: Connection, marts: Marts, query: MetricQuery, t: datetime,
              stripe: StripeSync = StripeSync()) -> MetricValue:
    """One metric as of t (windows end at t, excluded)."""
    start = t - query.window
    if query.metric == "stripe_data_age_minutes":
        return stripe_data_age(conn, stripe, t)
    if query.metric in COUNTER_METRICS:
        return _from_counters(query.metric, event_counts(conn, marts, start, t))
    if query.metric == "webhook_lag_seconds":
        lag, received = webhook_lag(conn, marts, t, query.window)
        return MetricValue(lag, received, {"stripe_events": received})
    if query.metric == "receipt_render_p95_ms":
        p95, receipts = receipt_render_p95(conn, marts, start, t)
        return MetricValue(p95, receipts, {"receipts": receipts})
    attempts, failed = payment_attempts(conn, marts, start, t)
    if query.metric == "payment_failure_rate":
        return _from_payments(query, attempts, failed)
    base_attempts, base_failed = payment_attempts(conn, marts, start - query.baseline, start)
    return _from_payments(query, attempts, failed, base_attempts, base_failed)


def metrics_at(conn: Connection, marts: Marts, queries: Sequence[MetricQuery], t: datetime,
               stripe: StripeSync = StripeSync()) -> dict[MetricQuery, MetricValue]:
    """Several metrics as of t: every counter metric, whatever its window, from one scan of the
    operations mart (a live evaluation holds a shared DuckDB file for less time)."""
    out: dict[MetricQuery, MetricValue] = {}
    counters = [q for q in queries if q.metric in COUNTER_METRICS]
    if counters:
        e = marts.operations_events.c
        windows = sorted({q.window for q in counters})
        columns = [
            count_if(sa.and_(_counter_condition(marts, name), e.occurred_at >= t - window)).label(f"{name}_{i}")
            for i, window in enumerate(windows) for name in COUNTERS
        ]
        row = conn.execute(select(*columns).where(e.occurred_at >= t - windows[-1], e.occurred_at < t)).one()._mapping
        for q in counters:
            i = windows.index(q.window)
            out[q] = _from_counters(q.metric, {name: int(row[f"{name}_{i}"]) for name in COUNTERS})
    for q in queries:
        if q not in out:
            out[q] = metric_at(conn, marts, q, t, stripe)
    return out


# -- many times at once ------------------------------------------------------------------------
def bucket_unit(times: Sequence[datetime], durations: Iterable[timedelta]) -> str:
    """'minute' when every time and duration is whole minutes (then minute buckets add up exactly), else 'second'."""
    whole_minutes = all(t.second == 0 and t.microsecond == 0 for t in times) and all(
        d.total_seconds() % 60 == 0 for d in durations
    )
    return "minute" if whole_minutes else "second"


class _Buckets:
    """Per-bucket aggregates (sorted by bucket start) with prefix sums for windows made of whole buckets."""

    def __init__(self, rows: list[tuple[datetime, tuple]], width: int) -> None:
        self.starts = [start for start, _ in rows]
        self.values = [values for _, values in rows]
        self.prefix = [tuple(0 for _ in range(width))]
        for values in self.values:
            last = self.prefix[-1]
            self.prefix.append(tuple(a + (b or 0) for a, b in zip(last, values)))

    def _span(self, start: datetime, stop: datetime) -> tuple[int, int]:
        return bisect_left(self.starts, start), bisect_left(self.starts, stop)

    def sums(self, start: datetime, stop: datetime) -> tuple:
        lo, hi = self._span(start, stop)
        return tuple(b - a for a, b in zip(self.prefix[lo], self.prefix[hi]))

    def maximum(self, start: datetime, stop: datetime, index: int) -> float | None:
        lo, hi = self._span(start, stop)
        present = [v[index] for v in self.values[lo:hi] if v[index] is not None]
        return max(present) if present else None


def _bucketed(conn: Connection, column: sa.ColumnElement, unit: str, aggregates: list[sa.ColumnElement],
              where: list[sa.ColumnElement[bool]], start: datetime, stop: datetime) -> _Buckets:
    bucket = func.date_trunc(unit, column).label("bucket")
    stmt = (
        select(bucket, *aggregates)
        .where(*where, column >= start, column < stop)
        .group_by(bucket)
        .order_by(bucket)
    )
    rows = [(row[0], tuple(row[1:])) for row in conn.execute(stmt)]
    return _Buckets(rows, len(aggregates))


def metric_series(conn: Connection, marts: Marts, queries: Sequence[MetricQuery],
                  times: Sequence[datetime], stripe: StripeSync = StripeSync()) -> dict[MetricQuery, list[MetricValue]]:
    """Each query's value at each time, with one bucketed query per family of metrics.

    Gives exactly what `metric_at` gives at each time (a test holds them equal).
    """
    times = sorted(times)
    result: dict[MetricQuery, list[MetricValue]] = {}
    if not times:
        return {q: [] for q in queries}
    unit = bucket_unit(times, [d for q in queries for d in (q.window, q.baseline)])
    last = times[-1]

    def earliest(family: list[MetricQuery]) -> datetime:
        return times[0] - max(q.span for q in family)

    counters = [q for q in queries if q.metric in COUNTER_METRICS]
    if counters:
        e = marts.operations_events.c
        buckets = _bucketed(conn, e.occurred_at, unit, _counter_columns(marts), [], earliest(counters), last)
        for q in counters:
            result[q] = [
                _from_counters(q.metric, dict(zip(COUNTERS, map(int, buckets.sums(t - q.window, t))))) for t in times
            ]

    lags = [q for q in queries if q.metric == "webhook_lag_seconds"]
    if lags:
        e = marts.operations_events.c
        buckets = _bucketed(conn, e.received_at, unit, [func.max(_lag_seconds(marts)), func.count()],
                            [_stripe_events(marts)], earliest(lags), last)
        for q in lags:
            values = []
            for t in times:
                received = int(buckets.sums(t - q.window, t)[1])
                values.append(MetricValue(_as_float(buckets.maximum(t - q.window, t, 0)), received,
                                          {"stripe_events": received}))
            result[q] = values

    payments = [q for q in queries if METRICS[q.metric].source == "payments"]
    if payments:
        p = marts.payments.c
        buckets = _bucketed(conn, p.created_at, unit, _payment_columns(marts), [], earliest(payments), last)
        for q in payments:
            values = []
            for t in times:
                attempts, failed = map(int, buckets.sums(t - q.window, t))
                start = t - q.window
                base_attempts, base_failed = map(int, buckets.sums(start - q.baseline, start))
                values.append(_from_payments(q, attempts, failed, base_attempts, base_failed))
            result[q] = values

    ages = [q for q in queries if METRICS[q.metric].kind == "age"]
    if ages:
        values = stripe_data_age_series(conn, stripe, times, unit)
        for q in ages:
            result[q] = values

    for q in queries:
        if q not in result:  # percentiles cannot be rolled from buckets
            result[q] = [metric_at(conn, marts, q, t) for t in times]
    return result
