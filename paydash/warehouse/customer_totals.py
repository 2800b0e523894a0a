"""The optional customer marts paydash builds from the charge mart in SQL: totals and months.

The Customers page sorts every customer by revenue or last payment and pages through
them. Aggregating the whole charge mart per customer for each page costs a scan of every
charge (10M rows); this mart holds the same numbers, so a page is a top-N (DuckDB) or an
index walk (PostgreSQL) over a table a third the size. `customer_totals_select` is also
what the queries aggregate when the mart is absent (a dbt warehouse), so both agree.

Definitions (docs/metrics.md): payments = payment intents, counted by their first attempt
(attempt_number = 1); attempts = charges; revenue = amount of successful attempts;
first/last payment = the earliest/latest attempt of any status. Charges without a
customer are left out.

The customer-months mart holds one row per customer and month with a successful attempt
(months of `created_date`, the reporting timezone's days) and the customer's first such
month, so the retention cohorts are one GROUP BY over it instead of two over the charges.
"""

from __future__ import annotations

from datetime import date

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.warehouse.expressions import count_if, sum_if
from paydash.warehouse.schema import Marts


def customer_totals_select(marts: Marts, customer_ids: sa.Select | None = None) -> sa.Select:
    """Per-customer totals over the charge mart (only of `customer_ids` when given)."""
    p = marts.payments.c
    stmt = select(
        p.customer_id.label("customer_id"),
        count_if(p.attempt_number == 1).label("payments"),
        func.count().label("attempts"),
        count_if(p.status == "succeeded").label("successful"),
        count_if(p.status == "failed").label("failed"),
        sum_if(p.amount_usd, p.status == "succeeded").label("revenue_usd"),
        func.min(p.created_at).label("first_payment_at"),
        func.max(p.created_at).label("last_payment_at"),
        func.min(sa.case((p.status == "succeeded", p.created_at))).label("first_success_at"),
    ).where(p.customer_id.is_not(None)).group_by(p.customer_id)
    if customer_ids is not None:
        stmt = stmt.where(p.customer_id.in_(customer_ids))
    return stmt


def month_of(day: sa.ColumnElement) -> sa.ColumnElement:
    """The first day of `day`'s month (through a timestamp: PostgreSQL's date_trunc on a
    date would go through timestamptz and the session's zone)."""
    return sa.cast(func.date_trunc(sa.literal_column("'month'"), sa.cast(day, sa.DateTime)), sa.Date)


def customer_months_select(marts: Marts, customer_ids: sa.Select | None = None) -> sa.Select:
    """Per customer and month (of created_date, the reporting timezone's day) with a
    successful attempt: successes, revenue, and the customer's first such month."""
    p = marts.payments.c
    month = month_of(p.created_date)
    active = select(
        p.customer_id.label("customer_id"),
        month.label("month"),
        func.count().label("successful"),
        func.sum(p.amount_usd).label("revenue_usd"),
    ).where(p.status == "succeeded", p.customer_id.is_not(None)).group_by(p.customer_id, month)
    if customer_ids is not None:
        active = active.where(p.customer_id.in_(customer_ids))
    active = active.subquery("active")
    return select(
        active.c.customer_id,
        active.c.month,
        func.min(active.c.month).over(partition_by=active.c.customer_id).label("cohort_month"),
        active.c.successful,
        active.c.revenue_usd,
    )


def _rebuild(conn: Connection, marts: Marts, table: sa.Table, build, since: date | None) -> None:  # noqa: ANN001
    p = marts.payments
    touched = None
    if since is None:
        conn.execute(table.delete())
    else:
        touched = select(p.c.customer_id).where(p.c.created_date >= since, p.c.customer_id.is_not(None)).distinct()
        conn.execute(table.delete().where(table.c.customer_id.in_(touched)))
    stmt = build(marts, touched)
    conn.execute(table.insert().from_select([c.name for c in stmt.selected_columns], stmt))


def rebuild_customer_totals(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """Replace the totals' rows (of the customers with a charge on or after `since`, or all)."""
    _rebuild(conn, marts, marts.customer_totals, customer_totals_select, since)


def rebuild_customer_months(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """Replace the customer months' rows (of the customers touched since `since`, or all);
    a touched customer's months are all recomputed, so a late first success moves its cohort."""
    _rebuild(conn, marts, marts.customer_months, customer_months_select, since)


def create_customer_totals(conn: Connection, marts: Marts) -> None:
    """(Re)create both marts, empty: `rebuild_derived_marts` fills them from then on."""
    for t in (marts.customer_totals, marts.customer_months):
        t.drop(conn, checkfirst=True)
        t.create(conn)


def refresh_if_present(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """For `rebuild_derived_marts`: keep the marts current where paydash built them."""
    for table, rebuild in ((marts.customer_totals, rebuild_customer_totals), (marts.customer_months, rebuild_customer_months)):
        if table is not None and sa.inspect(conn).has_table(table.name, schema=table.schema):
            rebuild(conn, marts, since)
