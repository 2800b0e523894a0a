"""Transforms inside the warehouse: the daily mart, built from the charge mart with SQL.

The demo generator and the Stripe sync both call `rebuild_daily_mart`, so the daily mart
means the same whatever filled the charge mart. Dates are created_date, the charge's
calendar day in the reporting timezone.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy import Double, cast, func, select
from sqlalchemy.engine import Connection

from paydash.decline_codes import FAILURE_CATEGORIES
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
    result = conn.execute(d.insert().from_select([c.name for c in stmt.selected_columns], stmt))
    if result.rowcount >= 0:
        return result.rowcount
    # psycopg under SQLAlchemy 2.1 reports -1 for INSERT ... SELECT: count what is there
    written = select(func.count()).select_from(d)
    if since is not None:
        written = written.where(d.c.date >= since)
    return int(conn.execute(written).scalar_one())
