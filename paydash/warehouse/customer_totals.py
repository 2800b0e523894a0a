"""The optional customer-totals mart: one row per customer, aggregated from the charge mart in SQL.

The Customers page sorts every customer by revenue or last payment and pages through
them. Aggregating the whole charge mart per customer for each page costs a scan of every
charge (10M rows); this mart holds the same numbers, so a page is a top-N (DuckDB) or an
index walk (PostgreSQL) over a table a third the size. `customer_totals_select` is also
what the queries aggregate when the mart is absent (a dbt warehouse), so both agree.

Definitions (docs/metrics.md): payments = payment intents, counted by their first attempt
(attempt_number = 1); attempts = charges; revenue = amount of successful attempts;
first/last payment = the earliest/latest attempt of any status. Charges without a
customer are left out.
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


def rebuild_customer_totals(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """Replace the mart's rows (of the customers with a charge on or after `since`, or all)."""
    t, p = marts.customer_totals, marts.payments
    touched = None
    if since is None:
        conn.execute(t.delete())
    else:
        touched = select(p.c.customer_id).where(p.c.created_date >= since, p.c.customer_id.is_not(None)).distinct()
        conn.execute(t.delete().where(t.c.customer_id.in_(touched)))
    stmt = customer_totals_select(marts, touched)
    conn.execute(t.insert().from_select([c.name for c in stmt.selected_columns], stmt))


def create_customer_totals(conn: Connection, marts: Marts) -> None:
    """(Re)create the mart, empty: `rebuild_derived_marts` fills it from then on."""
    t = marts.customer_totals
    t.drop(conn, checkfirst=True)
    t.create(conn)


def refresh_if_present(conn: Connection, marts: Marts, since: date | None = None) -> None:
    """For `rebuild_derived_marts`: keep the mart current where paydash built it."""
    t = marts.customer_totals
    if t is not None and sa.inspect(conn).has_table(t.name, schema=t.schema):
        rebuild_customer_totals(conn, marts, since)
