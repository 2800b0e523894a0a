"""Operations: is checkout healthy right now (the Operations page and `GET /metrics`).

Everything is read from the operations events mart (`marts.operations_events`) with the
definitions of docs/operations.md: windows are half-open [t - W, t) on `occurred_at`
(UTC, naive); rolling windows and percentiles are computed in SQL, the same statement on
DuckDB and PostgreSQL; Python only turns the few rows into dicts.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any, Iterable

import sqlalchemy as sa
from sqlalchemy import Integer, cast, func, select
from sqlalchemy.engine import Connection

from paydash.queries.sql import ratio
from paydash.warehouse.expressions import count_if
from paydash.warehouse.schema import Marts

SUCCESS_TARGET = 0.97  # checkout success rate target (PRODUCT.md)
SUCCESS_WINDOW = timedelta(minutes=15)
RECEIPT_P95_THRESHOLD_MS = 2_000
EXPIRED_WITHOUT_RETRY_GOAL = 0.05
SESSION_WINDOW = timedelta(minutes=30)  # an open session older than this is "pending"
OPEN_SESSION_LOOKBACK = timedelta(hours=24)
LAG_WINDOW = timedelta(minutes=5)
STALE_AFTER = timedelta(minutes=15)  # data older than this: the page's "now" is its latest event
FAILURE_EVENTS = ("checkout_completed", "checkout_expired", "retry_completed")
FINISHED_SESSION_EVENTS = ("checkout_completed", "checkout_expired")


def percentile(column: sa.ColumnElement, fraction: float) -> sa.ColumnElement:
    """The continuous percentile of a column (NULLs ignored), in SQL on both databases."""
    return func.percentile_cont(fraction).within_group(column)


def _seconds(value: Any) -> float | None:
    """An interval from the database (timedelta) as seconds."""
    return None if value is None else round(value.total_seconds(), 3)


def _in(c, start: datetime, end: datetime) -> sa.ColumnElement[bool]:  # noqa: ANN001
    return sa.and_(c.occurred_at >= start, c.occurred_at < end)


# -- "now" -----------------------------------------------------------------------------------
def latest_event_time(conn: Connection, marts: Marts) -> datetime | None:
    """The newest occurred_at in the mart (None when it is empty)."""
    return conn.execute(select(func.max(marts.operations_events.c.occurred_at))).scalar_one()


def as_of(latest: datetime | None, real_now: datetime, stale_after: timedelta = STALE_AFTER) -> tuple[datetime, bool]:
    """The page's "now": the real time, or the latest event's when the data is older (demo data).

    Returns (now, from_data): from_data is True when "now" is the latest event time, rounded
    up to the next minute so that event itself falls inside the windows ending at "now".
    """
    if latest is None or real_now - latest <= stale_after:
        return real_now, False
    minute = latest.replace(second=0, microsecond=0)
    return minute + timedelta(minutes=1), True


# -- current values (tiles and GET /metrics) ----------------------------------------------------
def snapshot(conn: Connection, marts: Marts, now: datetime) -> dict[str, Any]:
    """Every current value at `now`, each over its own window (docs/operations.md)."""
    o = marts.operations_events.c
    name = o.event_name
    since = {w: now - timedelta(minutes=w) for w in (5, 15, 60)}

    def within(minutes: int) -> sa.ColumnElement[bool]:
        return o.occurred_at >= since[minutes]

    receipt_ms = sa.case((name == "receipt_generated", o.duration_ms), else_=None)
    stmt = select(
        count_if((name == "checkout_completed") & within(15)).label("completed_15m"),
        count_if((name == "checkout_completed") & (o.outcome == "succeeded") & within(15)).label("succeeded_15m"),
        count_if(name == "checkout_expired").label("expired_1h"),
        count_if(name == "retry_initiated").label("retries_initiated_1h"),
        count_if(name == "retry_completed").label("retries_completed_1h"),
        count_if((name == "retry_completed") & (o.outcome == "succeeded")).label("retries_succeeded_1h"),
        count_if((name == "retry_completed") & (o.outcome == "failed") & within(15)).label("retry_failures_15m"),
        count_if((name == "receipt_generated") & (o.outcome == "failed") & within(5)).label("receipt_failures_5m"),
        count_if(name == "receipt_generated").label("receipts_1h"),
        percentile(receipt_ms, 0.95).label("receipt_p95_ms_1h"),
        percentile(sa.case((within(15), receipt_ms), else_=None), 0.95).label("receipt_p95_ms_15m"),
    ).where(o.occurred_at >= since[60], o.occurred_at < now)
    row = conn.execute(stmt).one()
    sessions = open_sessions(conn, marts, now)
    return {
        "now": now,
        "checkout_success_rate_15m": ratio(row.succeeded_15m, row.completed_15m),
        "checkouts_completed_15m": int(row.completed_15m),
        "expired_sessions_1h": int(row.expired_1h),
        "retry_attempts_1h": int(row.retries_initiated_1h),
        "retries_completed_1h": int(row.retries_completed_1h),
        "retry_successes_1h": int(row.retries_succeeded_1h),
        "retry_success_rate_1h": ratio(row.retries_succeeded_1h, row.retries_completed_1h),
        "retry_failures_15m": int(row.retry_failures_15m),
        "receipt_failures_5m": int(row.receipt_failures_5m),
        "receipts_1h": int(row.receipts_1h),
        "receipt_p95_ms_1h": None if row.receipt_p95_ms_1h is None else float(row.receipt_p95_ms_1h),
        "receipt_p95_ms_15m": None if row.receipt_p95_ms_15m is None else float(row.receipt_p95_ms_15m),
        "webhook_lag_seconds": webhook_lag(conn, marts, now),
        "active_sessions": sessions["active"],
        "pending_sessions": sessions["pending"],
        "retry_backlog": retry_backlog(conn, marts, now)["backlog"],
    }


def webhook_lag(conn: Connection, marts: Marts, now: datetime, window: timedelta = LAG_WINDOW) -> float | None:
    """Largest received_at - occurred_at (s) of Stripe events received in [now - window, now); None when none."""
    o = marts.operations_events.c
    stmt = select(func.max(o.received_at - o.occurred_at)).where(
        o.source == "stripe", o.received_at >= now - window, o.received_at < now
    )
    return _seconds(conn.execute(stmt).scalar_one())


def open_sessions(conn: Connection, marts: Marts, now: datetime, window: timedelta = SESSION_WINDOW,
                  lookback: timedelta = OPEN_SESSION_LOOKBACK) -> dict[str, int]:
    """Sessions started in the last `lookback` with neither completion nor expiry before `now`.

    active: started within the session window (`window`, 30 minutes); pending: older, still
    open (extended windows, asynchronous payments, or an expiry not yet received).
    """
    # the outer table aliased too: ClickHouse resolves a bare table name inside the
    # subquery to the subquery's own (aliased) copy of it
    t = marts.operations_events.alias("events")
    o = t.c
    done = marts.operations_events.alias("finished")
    finished = select(done.c.checkout_session_id).where(
        done.c.checkout_session_id == o.checkout_session_id,
        done.c.event_name.in_(FINISHED_SESSION_EVENTS),
        done.c.occurred_at < now,
    ).exists()
    stmt = select(
        count_if(o.occurred_at >= now - window).label("active"),
        count_if(o.occurred_at < now - window).label("pending"),
    ).where(o.event_name == "checkout_started", o.occurred_at >= now - lookback, o.occurred_at < now,
            o.checkout_session_id.is_not(None), ~finished)
    row = conn.execute(stmt).one()
    return {"active": int(row.active), "pending": int(row.pending)}


def retry_backlog(conn: Connection, marts: Marts, now: datetime, lookback: timedelta = timedelta(hours=24)) -> dict[str, Any]:
    """Retries initiated in the last `lookback` with no retry_completed (same intent and attempt) before now."""
    # the outer table aliased too: ClickHouse resolves a bare table name inside the
    # subquery to the subquery's own (aliased) copy of it
    t = marts.operations_events.alias("events")
    o = t.c
    done = marts.operations_events.alias("completed")
    completed = select(done.c.event_id).where(
        done.c.event_name == "retry_completed",
        done.c.payment_intent_id == o.payment_intent_id,
        done.c.attempt_number == o.attempt_number,
        done.c.occurred_at < now,
    ).exists()
    stmt = select(func.count().label("backlog"), func.min(o.occurred_at).label("oldest")).where(
        o.event_name == "retry_initiated", o.occurred_at >= now - lookback, o.occurred_at < now, ~completed
    )
    row = conn.execute(stmt).one()
    return {"backlog": int(row.backlog), "oldest": row.oldest,
            "oldest_age_seconds": None if row.oldest is None else _seconds(now - row.oldest)}


# -- series ------------------------------------------------------------------------------------
def success_rate_series(conn: Connection, marts: Marts, start: datetime, end: datetime, step: timedelta,
                        window: timedelta = SUCCESS_WINDOW) -> list[dict[str, Any]]:
    """Checkout success rate over rolling windows [t - window, t), at t = start, start + step, ... <= end.

    Computed in SQL: completions counted per minute, then summed over each window by joining
    the evaluation times (generate_series) with the minutes they cover.
    """
    o = marts.operations_events.c
    step_min = max(1, int(step.total_seconds() // 60))
    window_min = max(1, int(window.total_seconds() // 60))
    first = start - timedelta(minutes=window_min)
    minute = cast(func.floor(sa.extract("epoch", o.occurred_at - sa.bindparam("origin", start)) / 60), Integer)
    per_minute = (
        select(minute.label("m"), func.count().label("completed"),
               count_if(o.outcome == "succeeded").label("succeeded"))
        .where(o.event_name == "checkout_completed", o.occurred_at >= first, o.occurred_at < end)
        .group_by(minute)
        .subquery("per_minute")
    )
    points = int((end - start).total_seconds() // 60) // step_min
    g = func.generate_series(0, points).table_valued("n").render_derived("g")
    at = g.c.n * step_min
    stmt = (
        select(g.c.n, func.coalesce(func.sum(per_minute.c.completed), 0).label("completed"),
               func.coalesce(func.sum(per_minute.c.succeeded), 0).label("succeeded"))
        .select_from(g.outerjoin(per_minute, sa.and_(per_minute.c.m >= at - window_min, per_minute.c.m < at)))
        .group_by(g.c.n)
        .order_by(g.c.n)
    )
    return [
        {"at": start + timedelta(minutes=int(r.n) * step_min), "completed": int(r.completed),
         "succeeded": int(r.succeeded), "success_rate": ratio(r.succeeded, r.completed)}
        for r in conn.execute(stmt)
    ]


def hourly(conn: Connection, marts: Marts, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Per UTC hour in [start, end): sessions, expirations, extensions, overrides, retries, receipts."""
    o = marts.operations_events.c
    name = o.event_name
    hour = func.date_trunc(sa.literal_column("'hour'"), o.occurred_at)
    receipt_ms = sa.case((name == "receipt_generated", o.duration_ms), else_=None)
    stmt = (
        select(
            hour.label("hour"),
            count_if(name == "checkout_started").label("started"),
            count_if(name == "checkout_completed").label("completed"),
            count_if((name == "checkout_completed") & (o.outcome == "succeeded")).label("completed_succeeded"),
            count_if(name == "checkout_expired").label("expired"),
            count_if(name == "checkout_window_extended").label("extended"),
            count_if(name == "checkout_manual_override").label("overrides"),
            count_if(name == "retry_initiated").label("retries_initiated"),
            count_if(name == "retry_completed").label("retries_completed"),
            count_if((name == "retry_completed") & (o.outcome == "succeeded")).label("retries_succeeded"),
            count_if(name == "receipt_generated").label("receipts"),
            count_if((name == "receipt_generated") & (o.outcome == "failed")).label("receipt_failures"),
            percentile(receipt_ms, 0.95).label("receipt_p95_ms"),
        )
        .where(_in(o, start, end))
        .group_by(hour)
        .order_by(hour)
    )
    out = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        row["checkout_success_rate"] = ratio(r.completed_succeeded, r.completed)
        row["retry_success_rate"] = ratio(r.retries_succeeded, r.retries_completed)
        row["receipt_p95_ms"] = None if r.receipt_p95_ms is None else float(r.receipt_p95_ms)
        out.append(row)
    return out


def webhook_lag_series(conn: Connection, marts: Marts, start: datetime, end: datetime,
                       step: timedelta) -> list[dict[str, Any]]:
    """Largest lag (s) of Stripe events per `step` bucket of received_at in [start, end)."""
    o = marts.operations_events.c
    step_s = max(60, int(step.total_seconds()))
    bucket = cast(func.floor(sa.extract("epoch", o.received_at - sa.bindparam("origin", start)) / step_s), Integer)
    stmt = (
        select(bucket.label("b"), func.max(o.received_at - o.occurred_at).label("lag"), func.count().label("events"))
        .where(o.source == "stripe", o.received_at >= start, o.received_at < end)
        .group_by(bucket)
        .order_by(bucket)
    )
    return [{"at": start + timedelta(seconds=int(r.b) * step_s), "lag_seconds": _seconds(r.lag), "events": int(r.events)}
            for r in conn.execute(stmt)]


# -- tables ------------------------------------------------------------------------------------
def failure_reasons(conn: Connection, marts: Marts, start: datetime, end: datetime, limit: int = 10,
                    events: Iterable[str] = FAILURE_EVENTS) -> list[dict[str, Any]]:
    """Most frequent errors of failed checkouts, expired sessions and failed retries in [start, end)."""
    o = marts.operations_events.c
    failed = sa.or_(o.outcome.in_(("failed", "expired")), o.event_name == "checkout_expired")
    reason = func.coalesce(o.error, "(no reason given)")
    stmt = (
        select(reason.label("reason"), func.count().label("events"),
               count_if(o.event_name == "checkout_completed").label("failed_checkouts"),
               count_if(o.event_name == "checkout_expired").label("expired_sessions"),
               count_if(o.event_name == "retry_completed").label("failed_retries"),
               count_if(o.event_name == "receipt_generated").label("failed_receipts"),
               func.max(o.occurred_at).label("last_seen"))
        .where(_in(o, start, end), o.event_name.in_(tuple(events)), failed)
        .group_by(reason)
        .order_by(func.count().desc(), reason)
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def manual_overrides(conn: Connection, marts: Marts, start: datetime, end: datetime, limit: int = 200) -> list[dict[str, Any]]:
    """Manual overrides in [start, end), newest first (annotations of the expired-sessions chart)."""
    o = marts.operations_events.c
    stmt = (
        select(o.occurred_at, o.checkout_session_id, o.payment_intent_id, o.outcome, o.error, o.properties)
        .where(o.event_name == "checkout_manual_override", _in(o, start, end))
        .order_by(o.occurred_at.desc())
        .limit(limit)
    )
    rows = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        row["reason"] = _property(row.pop("properties"), "reason")
        rows.append(row)
    return rows


def expired_without_retry(conn: Connection, marts: Marts, start: datetime, end: datetime) -> dict[str, Any]:
    """SLO: sessions that expired in [start, end) with no retry of their payment, over sessions started then."""
    # the outer table aliased too: ClickHouse resolves a bare table name inside the
    # subquery to the subquery's own (aliased) copy of it
    t = marts.operations_events.alias("events")
    o = t.c
    r = marts.operations_events.alias("retries")
    # the intents retried, uncorrelated (ClickHouse runs no correlated subquery inside an
    # aggregate); an expiry without an intent counts as not retried, as NOT EXISTS had it
    retried_intents = select(r.c.payment_intent_id).where(
        r.c.payment_intent_id.is_not(None),
        r.c.event_name.in_(("retry_initiated", "retry_completed")),
    )
    retried = sa.and_(o.payment_intent_id.is_not(None), o.payment_intent_id.in_(retried_intents))
    stmt = select(
        count_if(o.event_name == "checkout_started").label("started"),
        count_if(o.event_name == "checkout_expired").label("expired"),
        count_if((o.event_name == "checkout_expired") & ~retried).label("expired_without_retry"),
    ).where(_in(o, start, end), o.event_name.in_(("checkout_started", "checkout_expired")))
    row = conn.execute(stmt).one()
    return {"started": int(row.started), "expired": int(row.expired),
            "expired_without_retry": int(row.expired_without_retry),
            "share": ratio(row.expired_without_retry, row.started), "goal": EXPIRED_WITHOUT_RETRY_GOAL}


def retry_outcomes(conn: Connection, marts: Marts, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """Completed retries in [start, end) by retry number (1, 2, 3; 3 holds the later ones too) and outcome."""
    o = marts.operations_events.c
    number = func.least(func.coalesce(o.attempt_number, 1), 3)
    outcome = func.coalesce(o.outcome, "unknown")
    stmt = (
        select(number.label("attempt"), outcome.label("outcome"), func.count().label("retries"))
        .where(o.event_name == "retry_completed", _in(o, start, end))
        .group_by(number, outcome)
        .order_by(number, outcome)
    )
    return [{"attempt": int(r.attempt), "outcome": r.outcome, "retries": int(r.retries)} for r in conn.execute(stmt)]


def recent_receipts(conn: Connection, marts: Marts, now: datetime, limit: int = 20) -> list[dict[str, Any]]:
    """The newest receipts before `now`, with download status and edge location from their properties."""
    o = marts.operations_events.c
    stmt = (
        select(o.occurred_at, o.receipt_id, o.payment_intent_id, o.outcome, o.duration_ms, o.error, o.properties)
        .where(o.event_name == "receipt_generated", o.occurred_at < now)
        .order_by(o.occurred_at.desc())
        .limit(limit)
    )
    rows = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        properties = row.pop("properties")
        row["download_status"] = _property(properties, "download_status")
        row["edge_location"] = _property(properties, "edge_location")
        rows.append(row)
    return rows


def _property(properties: str | None, key: str) -> str | None:
    """One value of an event's properties JSON (None when absent or not JSON)."""
    try:
        value = json.loads(properties or "{}").get(key)
    except (ValueError, AttributeError):
        return None
    return None if value is None else str(value)
