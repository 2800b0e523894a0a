"""The rollup marts: charges per UTC hour by every dimension the pages filter on, and the
Overview's totals per UTC hour and funnel (with the refunds and disputes created in the hour).

Built in SQL from the charge mart (and the refunds and disputes marts) wherever paydash builds
the marts: `paydash demo`, the Stripe transform and the webhook receiver's refresh all go
through `transforms.rebuild_derived_marts`, which rebuilds the touched hours. Optional: a
warehouse without them (dbt marts) is read the way it always was; the queries decide per
question which one answers (docs/metrics.md), and tests hold both answers equal.

- `mart_stripe_payment_rollup`: (hour, funnel_name, status, is_successful, card_brand,
  card_country, currency, failure_category, failure_code, recovery_action, attempt_number)
  -> payments, amount_usd (the sum of the known amounts).
- `mart_stripe_payment_rollup_hourly`: (hour, funnel_name) -> attempts, successful, failed,
  revenue_usd, failed_amount_usd, refunds, refunded_usd, disputes, disputed_usd,
  first_attempts, first_succeeded (recovery's payments started per day). Refunds
  count unless failed or canceled, by their own created_at, in their charge's funnel (NULL
  when the charge is not in the charge mart), like the Overview's reading of the marts.
- `mart_stripe_payment_rollup_failures`: (hour, funnel_name, failure_category, failure_code,
  recovery_action) -> failures, failed_amount_usd: the failure breakdown's rows.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import sqlalchemy as sa
from sqlalchemy import func, literal, select
from sqlalchemy.engine import Connection

from paydash.warehouse.expressions import count_if, hour_start, sum_if
from paydash.warehouse.schema import ROLLUP_DIMENSIONS, Marts

# refunds that moved or are moving money back; failed and canceled ones did not
REFUND_COUNTED_STATUSES = ("succeeded", "pending", "requires_action")
# the largest UTC offset of any zone: local midnight of a day is never earlier than this before
# UTC midnight, so the hours from (day - MAX_OFFSET) hold every charge whose created_date >= day
MAX_OFFSET = timedelta(hours=14)


def since_hour(since: date | None) -> datetime | None:
    """The first UTC hour a rebuild from the reporting day `since` must redo (None: all)."""
    return None if since is None else datetime.combine(since, time(0)) - MAX_OFFSET


def rollup_select(marts: Marts, since: datetime | None = None) -> sa.Select:
    p = marts.payments.c
    hour = hour_start(p.created_at)
    dims = [p[name] for name in ROLLUP_DIMENSIONS]
    # written in hour order, so a column store's zone maps skip the hours outside a range
    stmt = select(hour.label("hour"), *dims, func.count().label("payments"),
                  func.sum(p.amount_usd).label("amount_usd")).group_by(hour, *dims).order_by(hour)
    return stmt if since is None else stmt.where(p.created_at >= since)


def failures_select(marts: Marts, since: datetime | None = None) -> sa.Select:
    """Failed attempts per hour, funnel and reason, from the (fresh) rollup."""
    r = marts.rollup.c
    keys = (r.hour, r.funnel_name, r.failure_category, r.failure_code, r.recovery_action)
    stmt = (select(*keys, func.sum(r.payments).label("failures"), func.sum(r.amount_usd).label("failed_amount_usd"))
            .where(r.status == "failed", *([r.hour >= since] if since is not None else []))
            .group_by(*keys).order_by(r.hour))
    return stmt


def hourly_select(marts: Marts, since: datetime | None = None, with_refunds: bool = False,
                  with_disputes: bool = False) -> sa.Select:
    """The hourly totals from the (fresh) rollup, and refunds and disputes when their marts exist."""
    r = marts.rollup.c
    zero = literal(0, sa.BigInteger)
    money_zero = literal(0, sa.Numeric(18, 2))
    succeeded, failed = r.status == "succeeded", r.status == "failed"
    parts = [select(
        r.hour, r.funnel_name, func.sum(r.payments).label("attempts"),
        sum_if(r.payments, succeeded).label("successful"), sum_if(r.payments, failed).label("failed"),
        sum_if(r.amount_usd, succeeded).label("revenue_usd"), sum_if(r.amount_usd, failed).label("failed_amount_usd"),
        zero.label("refunds"), money_zero.label("refunded_usd"), zero.label("disputes"), money_zero.label("disputed_usd"),
        sum_if(r.payments, r.attempt_number == 1).label("first_attempts"),
        sum_if(r.payments, sa.and_(r.attempt_number == 1, succeeded)).label("first_succeeded"),
    ).where(*([r.hour >= since] if since is not None else [])).group_by(r.hour, r.funnel_name)]
    p = marts.payments
    for table, wanted, is_refund in ((marts.refunds, with_refunds, True), (marts.disputes, with_disputes, False)):
        if not wanted:
            continue
        t = table.c
        hour = hour_start(t.created_at)
        where = [t.status.in_(REFUND_COUNTED_STATUSES)] if is_refund else []
        if since is not None:
            where.append(t.created_at >= since)
        n, usd = func.count(), func.coalesce(func.sum(t.amount_usd), 0)
        values = (n, usd, zero, money_zero) if is_refund else (zero, money_zero, n, usd)
        parts.append(select(
            hour.label("hour"), p.c.funnel_name, zero, zero, zero, money_zero, money_zero,
            *(v.label(name) for v, name in zip(values, ("refunds", "refunded_usd", "disputes", "disputed_usd"))),
            zero, zero,
        ).select_from(table.outerjoin(p, p.c.charge_id == t.charge_id)).where(*where).group_by(hour, p.c.funnel_name))
    rows = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("parts")
    sums = [func.sum(rows.c[name]).label(name) for name in
            ("attempts", "successful", "failed", "revenue_usd", "failed_amount_usd", "refunds", "refunded_usd",
             "disputes", "disputed_usd", "first_attempts", "first_succeeded")]
    return select(rows.c.hour, rows.c.funnel_name, *sums).group_by(rows.c.hour, rows.c.funnel_name)


def _present(conn: Connection, table: sa.Table | None) -> bool:
    return table is not None and sa.inspect(conn).has_table(table.name, schema=table.schema)


def rebuild_rollup(conn: Connection, marts: Marts, since: datetime | None = None) -> None:
    """Replace both rollups' rows from the UTC hour `since` on (or all) with fresh aggregates."""
    r = marts.rollup
    conn.execute(r.delete() if since is None else r.delete().where(r.c.hour >= since))
    stmt = rollup_select(marts, since)
    conn.execute(r.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    f = marts.rollup_failures
    conn.execute(f.delete() if since is None else f.delete().where(f.c.hour >= since))
    stmt = failures_select(marts, since)
    conn.execute(f.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    rebuild_hourly(conn, marts, since)


def rebuild_hourly(conn: Connection, marts: Marts, since: datetime | None = None) -> None:
    """Replace the hourly totals from the UTC hour `since` on (or all), from the rollup and the
    refunds and disputes marts (after a change to either)."""
    h = marts.hourly
    conn.execute(h.delete() if since is None else h.delete().where(h.c.hour >= since))
    stmt = hourly_select(marts, since, _present(conn, marts.refunds), _present(conn, marts.disputes))
    conn.execute(h.insert().from_select([c.name for c in stmt.selected_columns], stmt))


def create_rollup(conn: Connection, marts: Marts) -> None:
    """Create the rollups when missing, filled from the marts; `rebuild_derived_marts` keeps them current."""
    if not all(_present(conn, t) for t in marts.rollups):
        for table in marts.rollups:
            table.drop(conn, checkfirst=True)
            table.create(conn)
        rebuild_rollup(conn, marts)


def refresh_if_present(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """For `rebuild_derived_marts`: the hours of charges on or after the reporting day `since`."""
    if all(_present(conn, t) for t in marts.rollups):
        rebuild_rollup(conn, marts, since_hour(since))


def refresh_adjustments(conn: Connection, marts: Marts, since: datetime | None) -> None:
    """After refunds or disputes changed (created at or after `since`, UTC; None: any): their hours."""
    if all(_present(conn, t) for t in marts.rollups):
        bound = None if since is None else since.replace(minute=0, second=0, microsecond=0)
        rebuild_hourly(conn, marts, bound)

