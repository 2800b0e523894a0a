"""The optional marts' indexes and statistics, per engine, as data (the loaders in `sources/`
name a set; which engine gets what is decided here).

DuckDB: rows are written in time order, so zone maps serve the date ranges; ART indexes only
where they pay. PostgreSQL: B-trees for the pages' lookups and orders, then fresh statistics
(VACUUM ANALYZE sets the visibility map index-only scans need). ClickHouse: none here; a
MergeTree's ORDER BY and the skip indexes declared with the table (warehouse/clickhouse.py)
serve the same lookups, and its statistics are kept by the engine.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import sqlalchemy as sa

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Index:
    mart: str  # the schema.Marts field of the table
    suffix: str  # the index is named ix_<table>_<suffix>
    keys: tuple[str, ...]  # column names (quoted) or expressions (as written: "lower(email) text_pattern_ops")
    unique: bool = False


# The Customers and Promotions pages' marts. DuckDB: none (ART indexes on the customer ids cost
# 2 s per million charges to build, and the pages read these marts with scans that stay in the
# tens of milliseconds; docs/performance.md).
CUSTOMER_INDEXES: dict[str, tuple[Index, ...]] = {
    "postgresql": (
        Index("customers", "customer_id", ("customer_id",)),
        Index("customers", "email_prefix", ("lower(email) text_pattern_ops",)),
        Index("customers", "name_prefix", ("lower(name) text_pattern_ops",)),
        Index("promotion_codes", "id", ("promotion_code_id",)),
        Index("promotion_usage", "code_time", ("promotion_code_id", "occurred_at DESC", "usage_id DESC")),
        Index("promotion_usage", "customer", ("customer_id",)),
        Index("customer_totals", "customer_id", ("customer_id",)),
        Index("customer_totals", "revenue", ("revenue_usd DESC", "customer_id DESC")),
        Index("customer_totals", "last_payment", ("last_payment_at DESC", "customer_id DESC")),
    ),
}
CUSTOMER_MARTS = ("customers", "promotion_codes", "promotion_usage", "customer_totals", "customer_months")

# The operations events mart. DuckDB: rows are in time order.
OPERATIONS_INDEXES: dict[str, tuple[Index, ...]] = {
    "postgresql": (
        Index("operations_events", "occurred", ("occurred_at",)),
        Index("operations_events", "name_occurred", ("event_name", "occurred_at")),
        Index("operations_events", "event_id", ("event_id",), unique=True),
    ),
}

# Refunds and disputes: a payment's detail looks them up by payment intent and charge; the
# Overview reads ranges of created_at (in time order on DuckDB, so its zone maps serve them).
REFUND_INDEXES: dict[str, tuple[Index, ...]] = {
    "duckdb": tuple(Index(m, k, (k,)) for m in ("refunds", "disputes") for k in ("payment_intent_id", "charge_id")),
    "postgresql": tuple(Index(m, k, (k,)) for m in ("refunds", "disputes")
                        for k in ("payment_intent_id", "charge_id", "created_at")),
}

# After the indexes: how each engine refreshes a table's statistics ({table} filled in), run
# outside a transaction. Engines not listed keep their own.
STATISTICS_SQL: dict[str, dict[str, str]] = {
    "postgresql": {"vacuum": "VACUUM ANALYZE {table}", "analyze": "ANALYZE {table}"},
}

# Engines with CREATE INDEX (ClickHouse's skip indexes are declared with the table).
CREATE_INDEX_DIALECTS = frozenset({"duckdb", "postgresql"})


def _key(quote, key: str) -> str:  # noqa: ANN001
    return quote.quote(key) if _IDENT.match(key) else key


def create(wh, wanted: dict[str, tuple[Index, ...]]) -> None:  # noqa: ANN001 - a writable Warehouse
    """The indexes `wanted` lists for this warehouse's engine (none for an engine not listed)."""
    specs = wanted.get(wh.dialect, ())
    if not specs:
        return
    with wh.write() as conn:
        quote = conn.dialect.identifier_preparer
        for spec in specs:
            table = getattr(wh.marts, spec.mart)
            unique = "UNIQUE " if spec.unique else ""
            conn.execute(sa.text(
                f"CREATE {unique}INDEX IF NOT EXISTS {quote.quote(f'ix_{table.name}_{spec.suffix}')} "
                f"ON {quote.format_table(table)} ({', '.join(_key(quote, k) for k in spec.keys)})"
            ))


def refresh_statistics(wh, tables: Iterable[sa.Table], vacuum: bool = False) -> None:  # noqa: ANN001
    """Fresh planner statistics for `tables` where the engine wants them (PostgreSQL)."""
    statement = STATISTICS_SQL.get(wh.dialect, {}).get("vacuum" if vacuum else "analyze")
    if statement is None:
        return
    with wh.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        quote = conn.dialect.identifier_preparer
        for table in tables:
            conn.execute(sa.text(statement.format(table=quote.format_table(table))))


def create_unique(conn, table: sa.Table, column: str) -> bool:  # noqa: ANN001 - a Connection
    """A unique index on `column` (what makes ON CONFLICT inserts idempotent), where the engine
    has them; False where it has none (ClickHouse)."""
    if conn.dialect.name not in _SA_CREATE_INDEX_DIALECTS:
        return False
    quote = conn.dialect.identifier_preparer
    conn.execute(sa.text(
        f"CREATE UNIQUE INDEX IF NOT EXISTS {quote.quote(f'ix_{table.name}_{column}')} "
        f"ON {quote.format_table(table)} ({column})"
    ))
    return True


_SA_CREATE_INDEX_DIALECTS = frozenset({"duckdb", "postgresql"})  # SQLAlchemy dialect names
