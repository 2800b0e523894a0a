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
  first_attempts, first_succeeded (recovery's payments started per day), and from the
  first-failures mart (where paydash built it) by the hour of the first attempt: first_failed,
  recovered, recovered_usd, unrecovered_usd. Refunds
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


HOURLY_SUMS = ("attempts", "successful", "failed", "revenue_usd", "failed_amount_usd", "refunds", "refunded_usd",
               "disputes", "disputed_usd", "first_attempts", "first_succeeded", "first_failed", "recovered",
               "recovered_usd", "unrecovered_usd")
_MONEY = {"revenue_usd", "failed_amount_usd", "refunded_usd", "disputed_usd", "recovered_usd", "unrecovered_usd"}


def hourly_select(marts: Marts, since: datetime | None = None, with_refunds: bool = False,
                  with_disputes: bool = False, with_first_failures: bool = False,
                  hours: sa.Select | None = None) -> sa.Select:
    """The hourly totals from the (fresh) rollup, with the refunds and disputes and the first
    failures (by the hour of the first attempt) when those marts exist. `since` and `hours` (a
    select of UTC hours) limit it to the hours from `since` on and those listed."""

    def within(hour: sa.ColumnElement, stamp: sa.ColumnElement) -> list:
        if since is None and hours is None:
            return []
        arms = ([stamp >= since] if since is not None else []) + ([hour.in_(hours)] if hours is not None else [])
        return [sa.or_(*arms)]

    def part(hour, funnel, table_from, where, **sums) -> sa.Select:  # noqa: ANN001
        columns = [sums.get(name, literal(0, sa.Numeric(18, 2) if name in _MONEY else sa.BigInteger)).label(name)
                   for name in HOURLY_SUMS]
        stmt = select(hour.label("hour"), funnel.label("funnel_name"), *columns).where(*where).group_by(hour, funnel)
        return stmt.select_from(table_from) if table_from is not None else stmt

    r = marts.rollup.c
    succeeded, failed, first = r.status == "succeeded", r.status == "failed", r.attempt_number == 1
    parts = [part(r.hour, r.funnel_name, None, within(r.hour, r.hour),
                  attempts=func.sum(r.payments), successful=sum_if(r.payments, succeeded),
                  failed=sum_if(r.payments, failed), revenue_usd=sum_if(r.amount_usd, succeeded),
                  failed_amount_usd=sum_if(r.amount_usd, failed), first_attempts=sum_if(r.payments, first),
                  first_succeeded=sum_if(r.payments, sa.and_(first, succeeded)))]
    p = marts.payments
    for table, wanted, is_refund in ((marts.refunds, with_refunds, True), (marts.disputes, with_disputes, False)):
        if not wanted:
            continue
        t = table.c
        hour = hour_start(t.created_at)
        counted = [t.status.in_(REFUND_COUNTED_STATUSES)] if is_refund else []
        n, usd = func.count(), func.coalesce(func.sum(t.amount_usd), 0)
        sums = {"refunds": n, "refunded_usd": usd} if is_refund else {"disputes": n, "disputed_usd": usd}
        parts.append(part(hour, p.c.funnel_name, table.outerjoin(p, p.c.charge_id == t.charge_id),
                          [*counted, *within(hour, t.created_at)], **sums))
    if with_first_failures:
        f = marts.first_failures.c
        hour = hour_start(f.first_attempt_at)
        parts.append(part(hour, f.funnel_name, None, within(hour, f.first_attempt_at),
                          first_failed=func.count(), recovered=count_if(f.recovered),
                          recovered_usd=sum_if(f.recovered_usd, f.recovered),
                          unrecovered_usd=sum_if(f.first_amount_usd, sa.not_(f.recovered))))
    rows = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("parts")
    sums = [func.sum(rows.c[name]).label(name) for name in HOURLY_SUMS]
    return select(rows.c.hour, rows.c.funnel_name, *sums).group_by(rows.c.hour, rows.c.funnel_name)


def _present(conn: Connection, table: sa.Table | None) -> bool:
    return table is not None and sa.inspect(conn).has_table(table.name, schema=table.schema)


def rebuild_rollup(conn: Connection, marts: Marts, since: datetime | None = None, since_day: date | None = None) -> None:
    """Replace the rollups' rows from the UTC hour `since` on (or all) with fresh aggregates;
    with `since_day` (the reporting day the charge mart changed from) also the hourly totals of
    the earlier hours holding an attempt of a payment intent touched since then: a retry today
    can win back a first attempt of last month (recovery counts by the first attempt's hour)."""
    r = marts.rollup
    conn.execute(r.delete() if since is None else r.delete().where(r.c.hour >= since))
    stmt = rollup_select(marts, since)
    conn.execute(r.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    f = marts.rollup_failures
    conn.execute(f.delete() if since is None else f.delete().where(f.c.hour >= since))
    stmt = failures_select(marts, since)
    conn.execute(f.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    hours = None
    if since is not None and since_day is not None and _present(conn, marts.first_failures):
        p = marts.payments.c
        touched = select(p.payment_intent_id).where(p.created_date >= since_day, p.payment_intent_id.is_not(None))
        hours = (select(hour_start(p.created_at)).where(p.payment_intent_id.in_(touched), p.created_at < since)
                 .distinct())
    rebuild_hourly(conn, marts, since, hours)


def rebuild_hourly(conn: Connection, marts: Marts, since: datetime | None = None, hours: sa.Select | None = None) -> None:
    """Replace the hourly totals from the UTC hour `since` on and of the `hours` listed (or all),
    from the rollup, the refunds and disputes marts and the first-failures mart (after a change
    to any of them)."""
    h = marts.hourly
    if since is None and hours is None:
        conn.execute(h.delete())
    else:
        conn.execute(h.delete().where(sa.or_(*([h.c.hour >= since] if since is not None else []),
                                             *([h.c.hour.in_(hours)] if hours is not None else []))))
    stmt = hourly_select(marts, since, _present(conn, marts.refunds), _present(conn, marts.disputes),
                         _present(conn, marts.first_failures), hours)
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
        rebuild_rollup(conn, marts, since_hour(since), since)


def refresh_adjustments(conn: Connection, marts: Marts, since: datetime | None) -> None:
    """After refunds or disputes changed (created at or after `since`, UTC; None: any): their hours."""
    if all(_present(conn, t) for t in marts.rollups):
        bound = None if since is None else since.replace(minute=0, second=0, microsecond=0)
        rebuild_hourly(conn, marts, bound)

