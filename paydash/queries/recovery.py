"""Recovery through retries, and payment-level acceptance.

A payment is a payment intent; its first attempt is the charge with attempt_number 1.
Cohorts are payment intents whose first attempt falls in the range (grouped by the local
day of that first attempt); later attempts count whenever they happened.

- payment acceptance = intents that ended succeeded / intents attempted
- recovery rate = of intents whose first attempt failed, the share a later attempt won
- recovered revenue = amount_usd of those winning attempts
- unrecovered amount = first-attempt amount of intents whose first attempt failed and that
  no later attempt has won (yet: a retry still pending counts as not won)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.queries.dates import DateRange
from paydash.queries.sql import count_if, hour_split, in_range, local_date, money, ratio, sum_if
from paydash.warehouse.schema import Marts


def _failed_days_joined(marts: Marts, rng: DateRange, funnel: str | None) -> sa.CTE:
    """Per day of first failure: failed, recovered, recovered_usd, unrecovered_usd (charge mart only)."""
    p = marts.payments
    start, _ = rng.utc_bounds()
    firsts_where = [p.c.attempt_number == 1, in_range(p.c.created_at, rng)]
    if funnel:
        firsts_where.append(p.c.funnel_name == funnel)
    day = local_date(p.c.created_at, rng.tz, rng)

    # Only intents whose first attempt failed need their later attempts looked up.
    first_failed = (
        select(p.c.payment_intent_id, p.c.amount_usd, day.label("day"))
        .where(*firsts_where, p.c.status == "failed")
        .cte("first_failed")
    )
    # Retries happen after the first attempt, so none of a cohort's wins predate its range.
    wins = (
        select(p.c.payment_intent_id, func.sum(p.c.amount_usd).label("won_usd"))
        .where(p.c.attempt_number > 1, p.c.status == "succeeded", p.c.created_at >= start)
        .group_by(p.c.payment_intent_id)
        .cte("retry_wins")
    )
    recovered = wins.c.payment_intent_id.is_not(None)
    failed_days = (
        select(
            first_failed.c.day,
            func.count().label("first_failed"),
            count_if(recovered).label("recovered"),
            sum_if(wins.c.won_usd, recovered).label("recovered_usd"),
            sum_if(first_failed.c.amount_usd, wins.c.payment_intent_id.is_(None)).label("unrecovered_usd"),
        )
        .select_from(first_failed.outerjoin(wins, wins.c.payment_intent_id == first_failed.c.payment_intent_id))
        .group_by(first_failed.c.day)
        .cte("failed_days")
    )
    return failed_days


def _failed_days_precomputed(marts: Marts, rng: DateRange, funnel: str | None) -> sa.CTE:
    """The same from the first-failures mart (paydash's own; see warehouse/transforms.py)."""
    f = marts.first_failures
    where = [in_range(f.c.first_attempt_at, rng)] + ([f.c.funnel_name == funnel] if funnel else [])
    rows = select(
        local_date(f.c.first_attempt_at, rng.tz, rng).label("day"),
        f.c.recovered,
        f.c.recovered_usd,
        f.c.first_amount_usd,
    ).where(*where).subquery("first_failures")
    return (
        select(
            rows.c.day,
            func.count().label("first_failed"),
            count_if(rows.c.recovered).label("recovered"),
            sum_if(rows.c.recovered_usd, rows.c.recovered).label("recovered_usd"),
            sum_if(rows.c.first_amount_usd, sa.not_(rows.c.recovered)).label("unrecovered_usd"),
        )
        .group_by(rows.c.day)
        .cte("failed_days")
    )


def _first_days_charges(marts: Marts, rng: DateRange, funnel: str | None) -> sa.CTE:
    """Per day: payments attempted (first attempts) and those whose first attempt succeeded."""
    p = marts.payments
    where = [p.c.attempt_number == 1, in_range(p.c.created_at, rng)] + ([p.c.funnel_name == funnel] if funnel else [])
    firsts = select(local_date(p.c.created_at, rng.tz, rng).label("day"), p.c.status).where(*where).subquery("first_attempts")
    return (
        select(
            firsts.c.day,
            func.count().label("payments"),
            count_if(firsts.c.status == "succeeded").label("first_succeeded"),
        )
        .group_by(firsts.c.day)
        .cte("first_days")
    )


def _first_days_daily_mart(marts: Marts, rng: DateRange, funnel: str | None) -> sa.CTE:
    """The same as the daily mart's attempts minus the retries (a small share of the rows)."""
    d, p = marts.daily.c, marts.payments
    daily_where = [d.date >= rng.start, d.date <= rng.end] + ([d.funnel_name == funnel] if funnel else [])
    daily = (
        select(
            d.date.label("day"),
            func.sum(d.total_attempts).label("attempts"),
            func.sum(d.successful_payments).label("succeeded"),
        )
        .where(*daily_where)
        .group_by(d.date)
        .cte("daily_days")
    )
    where = [p.c.attempt_number > 1, in_range(p.c.created_at, rng)] + ([p.c.funnel_name == funnel] if funnel else [])
    retries = select(local_date(p.c.created_at, rng.tz, rng).label("day"), p.c.status).where(*where).subquery("retries")
    retry_days = (
        select(
            retries.c.day,
            func.count().label("retries"),
            count_if(retries.c.status == "succeeded").label("retries_succeeded"),
        )
        .group_by(retries.c.day)
        .cte("retry_days")
    )
    return (
        select(
            daily.c.day,
            (daily.c.attempts - func.coalesce(retry_days.c.retries, 0)).label("payments"),
            (daily.c.succeeded - func.coalesce(retry_days.c.retries_succeeded, 0)).label("first_succeeded"),
        )
        .select_from(daily.outerjoin(retry_days, retry_days.c.day == daily.c.day))
        .cte("first_days")
    )


def _failed_days_hourly(marts: Marts, rng: DateRange, funnel: str | None, start, stop) -> sa.CTE:  # noqa: ANN001
    """The first-failures mart's days, summed from the hourly totals (the rollups: whole-hour zones)."""
    h = marts.hourly.c
    where = [h.hour >= start, h.hour < stop] + ([h.funnel_name == funnel] if funnel else [])
    names = ("first_failed", "recovered", "recovered_usd", "unrecovered_usd")
    hours = select(local_date(h.hour, rng.tz, rng).label("day"), *(h[n] for n in names)).where(*where).subquery("failed_hours")
    return (
        select(hours.c.day, *(func.sum(hours.c[n]).label(n) for n in names))
        .group_by(hours.c.day)
        .having(func.sum(hours.c.first_failed) > 0)
        .cte("failed_days")
    )


def _first_days_hourly(marts: Marts, rng: DateRange, funnel: str | None, start, stop) -> sa.CTE:  # noqa: ANN001
    """The same from the hourly totals' first attempts (the rollups: whole-hour zones)."""
    h = marts.hourly.c
    where = [h.hour >= start, h.hour < stop] + ([h.funnel_name == funnel] if funnel else [])
    hours = select(local_date(h.hour, rng.tz, rng).label("day"), h.first_attempts, h.first_succeeded
                   ).where(*where).subquery("first_hours")
    return (
        select(
            hours.c.day,
            func.sum(hours.c.first_attempts).label("payments"),
            func.sum(hours.c.first_succeeded).label("first_succeeded"),
        )
        .group_by(hours.c.day)
        .cte("first_days")
    )


def recovery(
    conn: Connection,
    marts: Marts,
    rng: DateRange,
    funnel: str | None = None,
    precomputed: bool = False,
    mart_tz: str | None = None,
    rollup: bool = False,
) -> dict[str, Any]:
    """Recovery and acceptance of the range's cohorts, per local day of the first attempt.

    Same numbers whichever way they are read:
    - `precomputed`: failures and their wins from the first-failures mart (present when
      paydash built the marts) instead of joining the charge mart with itself;
    - `rollup` (the rollup marts are there) and a range of whole UTC hours (any whole-hour
      zone): payments attempted per day from the hourly totals' first attempts, and with
      `precomputed` the failures and their wins too (the hourly totals sum the first-failures
      mart by the hour of the first attempt);
    - else `mart_tz` equal to the range's timezone: payments attempted per day as the daily
      mart's attempts minus the retries, instead of counting first attempts.
    """
    split = hour_split(rng) if rollup else None
    hourly = split is not None and split[1] == split[2]
    if hourly and precomputed:
        failed_days = _failed_days_hourly(marts, rng, funnel, split[0], split[2])
    else:
        failed_days = (_failed_days_precomputed if precomputed else _failed_days_joined)(marts, rng, funnel)
    if hourly:
        first_days = _first_days_hourly(marts, rng, funnel, split[0], split[2])
    else:
        first_days = (_first_days_daily_mart if rng.tz == mart_tz else _first_days_charges)(marts, rng, funnel)
    stmt = (
        select(
            first_days.c.day,
            first_days.c.payments,
            first_days.c.first_succeeded,
            func.coalesce(failed_days.c.first_failed, 0).label("first_failed"),
            func.coalesce(failed_days.c.recovered, 0).label("recovered"),
            func.coalesce(failed_days.c.recovered_usd, 0).label("recovered_usd"),
            func.coalesce(failed_days.c.unrecovered_usd, 0).label("unrecovered_usd"),
        )
        .select_from(first_days.outerjoin(failed_days, failed_days.c.day == first_days.c.day))
        .order_by(first_days.c.day)
    )
    rows = {r.day: r for r in conn.execute(stmt).all()}

    by_day = []
    totals = {"payments": 0, "first_succeeded": 0, "first_failed": 0, "recovered": 0, "recovered_usd": money(0), "unrecovered_usd": money(0)}
    for day in rng.dates():
        r = rows.get(day)
        entry = {
            "date": day.isoformat(),
            "payments": int(r.payments) if r else 0,
            "first_succeeded": int(r.first_succeeded) if r else 0,
            "first_failed": int(r.first_failed) if r else 0,
            "recovered": int(r.recovered) if r else 0,
            "recovered_usd": money(r.recovered_usd if r else 0),
            "unrecovered_usd": money(r.unrecovered_usd if r else 0),
        }
        entry["recovery_rate"] = ratio(entry["recovered"], entry["first_failed"])
        by_day.append(entry)
        for key in totals:
            totals[key] += entry[key]
    return {
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        **totals,
        "recovery_rate": ratio(totals["recovered"], totals["first_failed"]),
        "payment_acceptance": ratio(totals["first_succeeded"] + totals["recovered"], totals["payments"]),
        "by_day": by_day,
    }
