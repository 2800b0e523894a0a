"""What the admin pages (System, Data explorer) need from below the query layer, in one place:
the tables paydash reads, the recently timed statements, and saved queries run in the
read-only sandbox. The app reaches them through `app/admin_data.py`, never the warehouse
modules themselves (only the engine)."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from paydash.warehouse import querylog, sandbox
from paydash.warehouse.raw import raw_tables
from paydash.warehouse.schema import Marts

SavedQuery = sandbox.SavedQuery
QueryResult = sandbox.QueryResult
TimedQuery = querylog.TimedQuery
EXAMPLE_QUERIES = sandbox.EXAMPLE_QUERIES  # the shipped example saved queries (the demo serves them)


def paydash_tables(marts: Marts) -> list[tuple[sa.Table, str]]:
    """Every table paydash reads, with its role: the marts, the optional marts, the raw Stripe tables."""
    tables = [(marts.payments, "charge mart"), (marts.daily, "daily mart"),
              (marts.first_failures, "first-failures mart (optional)")]
    tables += [(t, "optional mart") for t in marts.optional]
    tables += [(t, "raw Stripe objects") for t in raw_tables(marts.payments.schema).all]
    return tables


def slowest_recent_queries(n: int = 20) -> list[querylog.TimedQuery]:
    """The slowest of the last statements this server process ran (timed by the query layer)."""
    return querylog.RECENT.slowest(n)


def saved_queries(path: str | Path) -> list[sandbox.SavedQuery]:
    """The saved queries of the team's TOML file (none when it is missing)."""
    return sandbox.load_saved_queries(Path(path))


def run_saved_query(url: str, sql: str, max_rows: int, timeout: float, connect_timeout: float) -> sandbox.QueryResult:
    """Run one saved query read-only with the database's own limits (QueryRefused / QueryTimeout say why not)."""
    return sandbox.run_read_only(url, sql, max_rows, timeout, connect_timeout)
