"""Transforms inside the warehouse: the daily mart, built from the charge mart with SQL.

The demo generator and the Stripe sync both call `rebuild_derived_marts`, so the daily
mart (and the optional first-failures mart) mean the same whatever filled the charge
mart. Dates are created_date, the charge's calendar day in the reporting timezone.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy import Double, cast, func, select
from sqlalchemy.engine import Connection

from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.warehouse import customer_totals, rollup
from paydash.warehouse.expressions import count_if, sum_if
from paydash.warehouse.schema import Marts, category_count_column


def daily_mart_select(marts: Marts, since: date | None = None) -> sa.Select:
    p = marts.payments.c
    succeeded = p.status == "succeeded"
    failed = p.status == "failed"
    stmt = select(
        p.created_date.label("date"),
        p.funnel_name.label("funnel_name"),
        func.count().label("total_attempts"),
        count_if(succeeded).label("successful_payments"),
        count_if(failed).label("failed_payments"),
        sum_if(p.amount_usd, succeeded).label("gross_revenue_usd"),
        sum_if(p.amount_usd, failed).label("failed_revenue_usd"),
        (cast(count_if(succeeded), Double) / func.count()).label("success_rate"),
        *(
            count_if(sa.and_(failed, p.failure_category == category)).label(category_count_column(category))
            for category in FAILURE_CATEGORIES
        ),
    ).group_by(p.created_date, p.funnel_name)
    if since is not None:
        stmt = stmt.where(p.created_date >= since)
    return stmt


def rebuild_daily_mart(conn: Connection, marts: Marts, since: date | None = None) -> int:
    """Replace the daily mart's rows (from `since` on, or all) with a fresh aggregate."""
    d = marts.daily
    delete = d.delete() if since is None else d.delete().where(d.c.date >= since)
    conn.execute(delete)
    stmt = daily_mart_select(marts, since)
    conn.execute(d.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    # count what is there: drivers disagree on INSERT ... SELECT's rowcount (psycopg under
    # SQLAlchemy 2.1 says -1, ClickHouse 0), and the daily mart is small
    written = select(func.count()).select_from(d)
    if since is not None:
        written = written.where(d.c.date >= since)
    return int(conn.execute(written).scalar_one())


def first_failures_select(marts: Marts, since: date | None = None) -> sa.Select:
    """One row per payment intent whose first attempt failed, with the retry that won it.

    A later successful attempt of the same intent counts whenever it happened. Charges
    without a payment intent are their own payment and can never be won back. With
    `since`, only intents with an attempt on or after that day (the ones that can change).
    """
    p = marts.payments
    first = (
        select(p.c.payment_intent_id, p.c.charge_id, p.c.created_at, p.c.amount_usd, p.c.funnel_name)
        .where(p.c.attempt_number == 1, p.c.status == "failed")
    )
    wins = select(
        p.c.payment_intent_id,
        func.min(p.c.created_at).label("won_at"),
        func.sum(p.c.amount_usd).label("won_usd"),
    ).where(p.c.attempt_number > 1, p.c.status == "succeeded")
    if since is not None:
        touched = select(p.c.payment_intent_id).where(p.c.created_date >= since, p.c.payment_intent_id.is_not(None))
        first = first.where(p.c.payment_intent_id.in_(touched))
        wins = wins.where(p.c.payment_intent_id.in_(touched))
    first = first.subquery("first_failed")
    wins = wins.group_by(p.c.payment_intent_id).subquery("retry_wins")
    return select(
        first.c.payment_intent_id,
        first.c.charge_id.label("first_charge_id"),
        first.c.created_at.label("first_attempt_at"),
        first.c.amount_usd.label("first_amount_usd"),
        first.c.funnel_name,
        wins.c.payment_intent_id.is_not(None).label("recovered"),
        wins.c.won_at.label("recovered_at"),
        wins.c.won_usd.label("recovered_usd"),
    ).select_from(first.outerjoin(wins, wins.c.payment_intent_id == first.c.payment_intent_id)
                  # written in time order: a column store's zone maps then skip the months outside a range
                  ).order_by(first.c.created_at)


def rebuild_first_failures(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """Replace the first-failures mart's rows (of intents touched since `since`, or all)."""
    f, p = marts.first_failures, marts.payments
    if since is None:
        conn.execute(f.delete())
    else:
        touched = select(p.c.payment_intent_id).where(p.c.created_date >= since, p.c.payment_intent_id.is_not(None))
        conn.execute(f.delete().where(f.c.payment_intent_id.in_(touched)))
    stmt = first_failures_select(marts, since)
    conn.execute(f.insert().from_select([c.name for c in stmt.selected_columns], stmt))


def amount_counts_select(marts: Marts, since: date | None = None) -> sa.Select:
    """Charges per local day, funnel, status and amount (unknown amounts as one NULL group)."""
    p = marts.payments.c
    keys = (p.created_date, p.funnel_name, p.status, p.amount_usd)
    stmt = select(p.created_date.label("date"), p.funnel_name, p.status, p.amount_usd,
                  func.count().label("payments")).group_by(*keys)
    if since is not None:
        stmt = stmt.where(p.created_date >= since)
    return stmt


def rebuild_amount_counts(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """Replace the amount-counts mart's rows (from `since` on, or all) with a fresh aggregate."""
    a = marts.amount_counts
    conn.execute(a.delete() if since is None else a.delete().where(a.c.date >= since))
    stmt = amount_counts_select(marts, since)
    conn.execute(a.insert().from_select([c.name for c in stmt.selected_columns], stmt))


def create_amount_counts(conn: Connection, marts: Marts) -> None:
    """Create the amount-counts mart when missing, filled from the charge mart; from then on
    rebuild_derived_marts keeps it current."""
    a = marts.amount_counts
    if not sa.inspect(conn).has_table(a.name, schema=a.schema):
        a.create(conn)
        rebuild_amount_counts(conn, marts)


def rebuild_derived_marts(conn: Connection, marts: Marts, since: date | None = None) -> int:
    """Everything built from the charge mart: the daily mart, and the first-failures,
    amount-counts, customer-totals and rollup marts when they exist. Call this after any change to the charge mart.
    Returns daily rows."""
    rows = rebuild_daily_mart(conn, marts, since)
    inspector = sa.inspect(conn)
    f, a = marts.first_failures, marts.amount_counts
    if inspector.has_table(f.name, schema=f.schema):
        rebuild_first_failures(conn, marts, since)
    if inspector.has_table(a.name, schema=a.schema):
        rebuild_amount_counts(conn, marts, since)
    customer_totals.refresh_if_present(conn, marts, since)
    rollup.refresh_if_present(conn, marts, since)
    return rows
