"""The System page's numbers: row counts, growth and data-quality checks (pure: connection in, data out).

Every check is bounded so it stays fast on 10M payments: the quality checks look at the
charge attempts of the last `days` days (created_at >= a UTC bound, which PostgreSQL's
created_at indexes and DuckDB's zone maps serve), and the daily-mart comparison at the
dates of that window. The page says which window it checked.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection

from paydash.queries.dates import DateRange, local_midnight_utc
from paydash.queries.sql import count_if, money
from paydash.warehouse import catalog as server_catalog
from paydash.warehouse.schema import Marts, display_name

table_name = display_name  # how a table is named in messages: schema.name, or the bare name

QUALITY_DAYS = 7  # the default window of the data-quality checks
QUALITY_WINDOWS = (1, 7, 30, 90)
GROWTH_PERIODS = (("Today", 1), ("Last 7 days", 7), ("Last 30 days", 30))


# -- row counts --------------------------------------------------------------------------
def row_counts(conn: Connection, tables: list[sa.Table]) -> dict[str, int]:
    """Exact row count of each table (all present), by display name."""
    if not tables:
        return {}
    counts = [sa.select(func.count()).select_from(t).scalar_subquery().label(f"c{i}") for i, t in enumerate(tables)]
    row = conn.execute(sa.select(*counts)).one()
    return {display_name(t): int(row[i]) for i, t in enumerate(tables)}


def estimated_row_counts(conn: Connection, tables: list[sa.Table]) -> dict[str, int | None]:
    """The planner's estimate of each table's rows where the database keeps one (PostgreSQL:
    pg_class.reltuples, set by ANALYZE; reads no table), by display name; None where the table
    was never analyzed; empty where there is no estimate (DuckDB)."""
    return server_catalog.planner_row_estimates(conn, tables)


@dataclass(frozen=True)
class TableCount:
    table: str
    role: str
    present: bool
    rows: int | None
    exact: bool  # False: the planner's estimate (a table too large to count on every visit)


def table_counts(conn: Connection, tables: list[tuple[sa.Table, str]], present: set[str],
                 exact_limit: int) -> list[TableCount]:
    """Rows of each (table, role) whose display name is in `present`: exact, except tables the
    planner estimates above `exact_limit` rows, shown with that estimate (an exact count(*)
    reads the whole table: about 1 s at 10M rows on PostgreSQL)."""
    there = [t for t, _ in tables if display_name(t) in present]
    estimates = estimated_row_counts(conn, there)
    exact_tables = [t for t in there if (estimates.get(display_name(t)) or 0) <= exact_limit]
    counts = row_counts(conn, exact_tables)
    out = []
    for t, role in tables:
        name = display_name(t)
        if name in counts:
            out.append(TableCount(name, role, True, counts[name], True))
        elif name in estimates:
            out.append(TableCount(name, role, True, estimates[name], False))
        else:
            out.append(TableCount(name, role, False, None, True))
    return out


# -- growth ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Growth:
    period: str
    days: int
    since: date  # first local day of the period
    new_payments: int  # charge attempts created in the period
    new_customers: int  # customers whose first charge attempt is in the period


def growth(conn: Connection, marts: Marts, today: date, tz: str, first_payments: sa.Table | None = None) -> list[Growth]:
    """New payments and new customers today, in the last 7 and the last 30 days (local days, today included).

    A new customer is one whose first charge attempt falls in the period. `first_payments`,
    a table of (customer_id, first_payment_at) such as the customer-totals mart, answers
    that without grouping the charge mart; without it the customers of the widest period
    are checked against every earlier attempt (the slow part on PostgreSQL at 10M).
    """
    p = marts.payments
    bounds = {label: local_midnight_utc(today - timedelta(days=days - 1), tz) for label, days in GROWTH_PERIODS}
    widest = min(bounds.values())
    stop = local_midnight_utc(today + timedelta(days=1), tz)
    in_window = sa.and_(p.c.created_at >= widest, p.c.created_at < stop)
    payments_row = conn.execute(
        sa.select(*(count_if(p.c.created_at >= since).label(f"p{i}") for i, since in enumerate(bounds.values())))
        .where(in_window)
    ).one()

    if first_payments is not None:
        first = first_payments.c.first_payment_at
        customers_row = conn.execute(
            sa.select(*(count_if(first >= since).label(f"c{i}") for i, since in enumerate(bounds.values())))
            .where(first >= widest, first < stop, first_payments.c.customer_id.is_not(None), first_payments.c.customer_id != "")
        ).one()
    else:
        # customers seen in the widest window, minus those with any earlier attempt
        seen = (
            sa.select(p.c.customer_id, func.min(p.c.created_at).label("first_at"))
            .where(in_window, p.c.customer_id.is_not(None), p.c.customer_id != "")
            .group_by(p.c.customer_id)
            .subquery("seen")
        )
        before = p.alias("before")
        earlier = sa.exists().where(before.c.customer_id == seen.c.customer_id, before.c.created_at < widest)
        customers_row = conn.execute(
            sa.select(*(count_if(seen.c.first_at >= since).label(f"c{i}") for i, since in enumerate(bounds.values())))
            .where(~earlier)
        ).one()

    return [
        Growth(label, days, today - timedelta(days=days - 1), int(payments_row[i]), int(customers_row[i]))
        for i, (label, days) in enumerate(GROWTH_PERIODS)
    ]


# -- data quality ------------------------------------------------------------------------
@dataclass(frozen=True)
class DailyMismatch:
    date: date
    mart_attempts: int | None  # None: the daily mart has no row for the date
    charge_attempts: int | None  # None: the charge mart has no attempt on the date
    mart_revenue: Decimal | None
    charge_revenue: Decimal | None


@dataclass(frozen=True)
class Quality:
    since: date  # first local day checked
    days: int
    payments_without_customer: int
    retries_without_first_attempt: int  # payment intents with a retry in the window and no attempt 1 at all
    duplicate_charge_ids: int  # charge ids with more than one row in the window
    duplicate_customer_ids: int | None  # in the customers table; None without one
    daily_mismatches: list[DailyMismatch] = field(default_factory=list)

    @property
    def problems(self) -> int:
        return (
            self.payments_without_customer
            + self.retries_without_first_attempt
            + self.duplicate_charge_ids
            + (self.duplicate_customer_ids or 0)
            + len(self.daily_mismatches)
        )


def quality(conn: Connection, marts: Marts, today: date, tz: str, days: int = QUALITY_DAYS,
            daily_table: bool = True, customers_table: bool = False) -> Quality:
    """The data-quality checks over the last `days` local days (today included)."""
    p = marts.payments
    rng = DateRange(today - timedelta(days=days - 1), today, tz)
    start, stop = rng.utc_bounds()
    window = sa.and_(p.c.created_at >= start, p.c.created_at < stop)

    without_customer = conn.execute(
        sa.select(func.count()).where(window, sa.or_(p.c.customer_id.is_(None), p.c.customer_id == ""))
    ).scalar_one()

    first = p.alias("first_attempt")
    retry = p.alias("retry")  # aliased too: ClickHouse would resolve a bare name to the subquery's copy
    orphans = conn.execute(
        sa.select(func.count(sa.distinct(retry.c.payment_intent_id))).where(
            retry.c.created_at >= start, retry.c.created_at < stop,
            retry.c.attempt_number > 1,
            ~sa.exists().where(first.c.payment_intent_id == retry.c.payment_intent_id, first.c.attempt_number == 1),
        )
    ).scalar_one()

    dup_charges = sa.select(p.c.charge_id).where(window).group_by(p.c.charge_id).having(func.count() > 1).subquery()
    duplicate_charges = conn.execute(sa.select(func.count()).select_from(dup_charges)).scalar_one()

    duplicate_customers = None
    if customers_table:
        c = marts.customers
        dup = sa.select(c.c.customer_id).group_by(c.c.customer_id).having(func.count() > 1).subquery()
        duplicate_customers = int(conn.execute(sa.select(func.count()).select_from(dup)).scalar_one())

    mismatches = daily_mismatches(conn, marts, rng) if daily_table else []
    return Quality(rng.start, days, int(without_customer), int(orphans), int(duplicate_charges), duplicate_customers,
                   mismatches)


def daily_mismatches(conn: Connection, marts: Marts, rng: DateRange) -> list[DailyMismatch]:
    """Dates of `rng` where the daily mart's attempts or revenue (all funnels) differ from the charge mart's.

    The charge mart is grouped by its created_date (the reporting-timezone day, as the
    daily mart's date); created_at is bounded a day either side so the scan stays in the range.
    """
    p, d = marts.payments, marts.daily
    start, stop = rng.utc_bounds()
    charges = (
        sa.select(
            p.c.created_date.label("day"),
            func.count().label("attempts"),
            func.coalesce(func.sum(sa.case((p.c.status == "succeeded", p.c.amount_usd))), 0).label("revenue"),
        )
        .where(p.c.created_at >= start - timedelta(days=1), p.c.created_at < stop + timedelta(days=1),
               p.c.created_date >= rng.start, p.c.created_date <= rng.end)
        .group_by(p.c.created_date)
        .subquery("charges")
    )
    daily = (
        sa.select(
            d.c.date.label("day"),
            func.sum(d.c.total_attempts).label("attempts"),
            func.coalesce(func.sum(d.c.gross_revenue_usd), 0).label("revenue"),
        )
        .where(d.c.date >= rng.start, d.c.date <= rng.end)
        .group_by(d.c.date)
        .subquery("daily")
    )
    day = func.coalesce(daily.c.day, charges.c.day)
    stmt = (
        sa.select(day.label("day"), daily.c.attempts.label("mart_attempts"), charges.c.attempts.label("charge_attempts"),
                  daily.c.revenue.label("mart_revenue"), charges.c.revenue.label("charge_revenue"))
        .select_from(daily.join(charges, daily.c.day == charges.c.day, full=True))
        .where(sa.or_(
            daily.c.day.is_(None), charges.c.day.is_(None),
            daily.c.attempts != charges.c.attempts, daily.c.revenue != charges.c.revenue,
        ))
        .order_by(day.desc())
        .limit(1000)
    )
    out = []
    for r in conn.execute(stmt).mappings():
        out.append(DailyMismatch(
            _as_date(r["day"]),
            None if r["mart_attempts"] is None else int(r["mart_attempts"]),
            None if r["charge_attempts"] is None else int(r["charge_attempts"]),
            None if r["mart_revenue"] is None else money(r["mart_revenue"]),
            None if r["charge_revenue"] is None else money(r["charge_revenue"]),
        ))
    return out


def _as_date(value: Any) -> date:
    return value.date() if isinstance(value, datetime) else value


# -- versions ----------------------------------------------------------------------------
def server_version(conn: Connection) -> str:
    """The database server's own version string (DuckDB: the library's)."""
    return server_catalog.server_version(conn)


# -- the catalog (Data explorer) ------------------------------------------------------------
def catalog(conn: Connection, limit: int = 20_000) -> list[dict[str, Any]]:
    """Every column of every table or view the connection can see: schema, table, column, type, position."""
    stmt = sa.text(
        "SELECT table_schema, table_name, column_name, data_type, ordinal_position "
        "FROM information_schema.columns "
        "WHERE table_schema NOT IN ('information_schema', 'pg_catalog', 'pg_toast') "
        "ORDER BY table_schema, table_name, ordinal_position LIMIT :limit"
    )
    return [
        {"schema": r[0], "table": r[1], "column": r[2], "type": str(r[3]), "position": int(r[4])}
        for r in conn.execute(stmt, {"limit": limit})
    ]
