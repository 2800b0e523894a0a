"""ClickHouse, the third engine: how paydash's tables become MergeTree tables, and the one
embedded (chdb) engine a process may hold.

Everything ClickHouse-specific about the *tables* is data here, read by a DDL compile hook
over the `sa.Table` declarations of schema.py (no hand-written DDL per table):

- `TABLE_OPTIONS`: per mart (the `Marts` field it fills), its ORDER BY (the primary key the
  queries' ranges prune with), its PARTITION BY (monthly for the big time tables) and the
  columns that may hold NULL (`Nullable` costs a null map per column, so only where the data
  contract allows NULL). A table not listed (a new mart, paydash's meta table) gets a generic
  choice: its primary key, else its first timestamp or date and its first `*_id` column;
  every column outside the key Nullable.
- `LOW_CARDINALITY`: small text columns (statuses, currencies, card brands, failure codes,
  funnels ...), stored as `LowCardinality(String)` (a dictionary per part) wherever they appear.

Timestamps are `DateTime64(6, 'UTC')` (the contract's naive UTC timestamps, microseconds kept);
money is `Decimal(p, s)` as declared, so a cent stays a cent.

The embedded engine (chdb) is one per process, on one path ("EmbeddedServer already
initialized with path ..."): `shared_chdb_engine` keeps a process-level registry, so every
Warehouse on the same path shares one SQLAlchemy engine (reads add `readonly=2` per
statement), and a second path in the same process is refused with a PaydashError.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateSchema, CreateTable, DropSchema

from paydash.errors import ConfigError

DIALECT = "clickhousedb"  # clickhouse-connect's SQLAlchemy dialect name

# clickhouse-connect logs a warning ("Unexpected Http Driver Exception") before it raises the
# error paydash translates into its one line (engine.Warehouse.explain): not a second line
logging.getLogger("clickhouse_connect.driver._backend.http_sync").setLevel(logging.ERROR)


@dataclass(frozen=True)
class TableOptions:
    order_by: tuple[str, ...]  # column names or expressions; () -> tuple()
    partition_by: str | None = None
    nullable: frozenset[str] = field(default_factory=frozenset)
    engine: str = "MergeTree"
    # data-skipping indexes, written with each part: (column, index type)
    skip_indexes: tuple[tuple[str, str], ...] = ()


# A lookup by id in a table ordered by time: a bloom filter per granule skips the parts and
# granules that cannot hold it (a payment's detail, the explorer's exact id search).
_BLOOM = "bloom_filter(0.01)"


def _blooms(*columns: str) -> tuple[tuple[str, str], ...]:
    return tuple((c, _BLOOM) for c in columns)


_SKETCHES = frozenset(f"{c}_sketch" for c in ("charge_id", "payment_intent_id", "customer_id", "profile_id"))

# Per mart (the field of schema.Marts that holds it; schema tables are tagged with it by
# `tag_marts`). Nullable columns: the contract's "null" ones, and what paydash's own builders
# leave empty (optional card_last4 and id sketches on rows written by something else).
TABLE_OPTIONS: dict[str, TableOptions] = {
    "payments": TableOptions(
        ("created_at", "charge_id"), "toYYYYMM(created_at)",
        # a charge without a customer, or paid by something other than a card, leaves these NULL (and
        # an amount not known yet: NULL, not 0.00, so it sorts last and counts as unknown)
        frozenset({"failure_code", "failure_category", "recovery_action", "card_last4", "customer_id", "profile_id",
                   "card_brand", "card_country", "amount_usd"}) | _SKETCHES,
        skip_indexes=_blooms("charge_id", "payment_intent_id", "customer_id", "profile_id"),
    ),
    "daily": TableOptions(("date", "funnel_name")),
    "first_failures": TableOptions(
        ("first_attempt_at", "payment_intent_id"), "toYYYYMM(first_attempt_at)",
        frozenset({"recovered_at", "recovered_usd"}), skip_indexes=_blooms("payment_intent_id"),
    ),
    # amount_usd outside the key: a NULL amount has its own group (a key column cannot be NULL)
    "amount_counts": TableOptions(("date", "funnel_name", "status"), None, frozenset({"amount_usd"})),
    "operations_events": TableOptions(
        ("occurred_at", "event_id"), "toYYYYMM(occurred_at)",
        frozenset({"checkout_session_id", "payment_intent_id", "receipt_id", "customer_id", "attempt_number",
                   "outcome", "duration_ms", "error"}),
    ),
    "customers": TableOptions(("customer_id",), None, frozenset({"email", "name"})),
    "promotion_codes": TableOptions(
        ("promotion_code_id",), None,
        frozenset({"coupon_id", "percent_off", "amount_off_usd", "max_redemptions", "expires_at"}),
    ),
    "promotion_usage": TableOptions(
        ("occurred_at", "usage_id"), None,
        frozenset({"promotion_code_id", "customer_id", "checkout_session_id", "invoice_id", "discount_usd",
                   "failure_reason"}),
    ),
    "customer_totals": TableOptions(("customer_id",), None, frozenset({"first_success_at"})),
    "customer_months": TableOptions(("month", "customer_id")),
    "refunds": TableOptions(("created_at", "refund_id"), None, frozenset({"payment_intent_id", "reason"}),
                            skip_indexes=_blooms("payment_intent_id", "charge_id")),
    "disputes": TableOptions(("created_at", "dispute_id"), None,
                             frozenset({"payment_intent_id", "reason", "evidence_due_by"}),
                             skip_indexes=_blooms("payment_intent_id", "charge_id")),
    # the hour-grain rollups (warehouse/rollup.py): hours first, so a range prunes by the key
    "rollup": TableOptions(
        ("hour", "funnel_name", "status", "card_brand"), "toYYYYMM(hour)",
        frozenset({"failure_category", "failure_code", "recovery_action"}),
    ),
    "hourly": TableOptions(("hour", "funnel_name"), "toYYYYMM(hour)",
                           frozenset({"refunds", "refunded_usd", "disputes", "disputed_usd"})),
}

# Small text columns, wherever they appear: LowCardinality(String).
LOW_CARDINALITY = frozenset({
    "status", "currency", "failure_code", "failure_category", "recovery_action", "day_of_week", "funnel_name",
    "card_brand", "card_country", "event_name", "source", "outcome", "action", "reason", "failure_reason",
})

# Every ClickHouse session (server or chdb) runs with these, so the one query layer keeps its
# SQL meaning: naive timestamps are UTC; an outer join's missing side is NULL, not the type's
# default (without it, `wins.payment_intent_id IS NOT NULL` held for every first failure);
# a bare UNION is UNION DISTINCT; an aggregate over no rows is NULL, as in SQL (ClickHouse
# would answer max() of nothing with 1970-01-01 and sum() with 0); a JOIN ON may compare with
# < and >= (the Operations page's rolling windows join evaluation times to minute counts).
SESSION_SETTINGS: dict[str, object] = {
    "session_timezone": "UTC",
    "join_use_nulls": 1,
    "union_default_mode": "DISTINCT",
    "aggregate_functions_null_for_empty": 1,
    "allow_experimental_join_condition": 1,
}

MART_INFO_KEY = "paydash_mart"


def tag_marts(marts) -> None:  # noqa: ANN001 - schema.Marts
    """Mark each mart's table with the Marts field it fills, so the DDL finds its options
    whatever name it was configured under."""
    from dataclasses import fields

    for f in fields(marts):
        table = getattr(marts, f.name)
        if isinstance(table, sa.Table):
            table.info.setdefault(MART_INFO_KEY, f.name)


def options_for(table: sa.Table) -> TableOptions:
    """The ClickHouse options of `table`: declared in TABLE_OPTIONS, else a generic choice."""
    known = TABLE_OPTIONS.get(table.info.get(MART_INFO_KEY) or table.name)
    if known is not None:
        return known
    key = tuple(c.name for c in table.primary_key.columns)
    if not key:
        time_col = next((c.name for c in table.columns if isinstance(c.type, (sa.DateTime, sa.Date))), None)
        id_col = next((c.name for c in table.columns if c.name.endswith("_id") and isinstance(c.type, sa.String)), None)
        key = tuple(n for n in (time_col, id_col) if n)
    return TableOptions(key, None, frozenset(c.name for c in table.columns if c.name not in key))


# Declared type -> ClickHouse type, the first that matches (subclasses before their bases:
# a Float is a Numeric, a BigInteger an Integer); Numeric keeps its precision and scale.
COLUMN_TYPES: tuple[tuple[type, str], ...] = (
    (sa.Boolean, "Bool"),
    (sa.DateTime, "DateTime64(6, 'UTC')"),
    (sa.Date, "Date32"),
    (sa.Float, "Float64"),
    (sa.Numeric, "Decimal({precision}, {scale})"),
    (sa.BigInteger, "Int64"),
    (sa.SmallInteger, "Int16"),
    (sa.Integer, "Int32"),
    (sa.String, "String"),
)


def column_type(column: sa.Column, nullable: bool) -> str:
    """The ClickHouse type of a declared column."""
    t = column.type
    spelled = next((name for kind, name in COLUMN_TYPES if isinstance(t, kind)), None)
    if spelled is None:
        raise ConfigError(f"no ClickHouse type for column {column.name} ({t!r}); add one in warehouse/clickhouse.py")
    base = spelled.format(precision=getattr(t, "precision", None) or 38, scale=getattr(t, "scale", None) or 0)
    if nullable:
        base = f"Nullable({base})"
    if column.name in LOW_CARDINALITY and isinstance(t, sa.String):
        base = f"LowCardinality({base})"
    return base


@compiles(CreateTable, DIALECT)
def _create_table(element, compiler, **kw):  # noqa: ANN001, ANN202
    table: sa.Table = element.element
    opts = options_for(table)
    quote = compiler.preparer
    columns = ", ".join(
        f"{quote.quote(c.name)} {column_type(c, c.name in opts.nullable and c.name not in opts.order_by)}"
        for c in table.columns
    )
    columns += "".join(
        f", INDEX {quote.quote(f'ix_{column}')} {quote.quote(column)} TYPE {kind} GRANULARITY 1"
        for column, kind in opts.skip_indexes
    )
    order = ", ".join(quote.quote(k) if k in table.c else k for k in opts.order_by)
    if_not_exists = " IF NOT EXISTS" if getattr(element, "if_not_exists", False) else ""
    text = f"CREATE TABLE{if_not_exists} {quote.format_table(table)} ({columns}) ENGINE = {opts.engine}"
    if opts.partition_by:
        text += f" PARTITION BY {opts.partition_by}"
    return text + f" ORDER BY {order if len(opts.order_by) == 1 else f'({order})' if order else 'tuple()'}"


@compiles(sa.Delete, DIALECT)
def _delete(element, compiler, **kw):  # noqa: ANN001, ANN202
    """A DELETE of every row (a rebuild from scratch) is a TRUNCATE: ClickHouse refuses DELETE
    without WHERE, and a truncate drops the parts instead of masking each row."""
    if element.whereclause is None:
        return f"TRUNCATE TABLE {compiler.preparer.format_table(element.table)}"
    return compiler.visit_delete(element, **kw)


@compiles(CreateSchema, DIALECT)
def _create_database(element, compiler, **kw):  # noqa: ANN001, ANN202
    if_not_exists = " IF NOT EXISTS" if getattr(element, "if_not_exists", False) else ""
    return f"CREATE DATABASE{if_not_exists} {compiler.preparer.quote(element.element)}"


@compiles(DropSchema, DIALECT)
def _drop_database(element, compiler, **kw):  # noqa: ANN001, ANN202
    if_exists = " IF EXISTS" if getattr(element, "if_exists", False) else ""
    return f"DROP DATABASE{if_exists} {compiler.preparer.quote(element.element)}"


# -- parameters ---------------------------------------------------------------------------------
def keep_microseconds(engine: Engine) -> Engine:
    """Bind datetimes with their microseconds: clickhouse-connect renders a plain datetime
    parameter to the second, so a keyset seek or a time bound inside a second would compare
    with the wrong instant. Such values go as DateTime64 parameters (all the same elsewhere)."""
    from datetime import datetime

    from clickhouse_connect.driver.binding import DT64Param

    def fix(params):  # noqa: ANN001, ANN202
        if isinstance(params, dict):
            return {k: DT64Param(v) if isinstance(v, datetime) and v.microsecond else v for k, v in params.items()}
        return params

    @sa.event.listens_for(engine, "before_cursor_execute", retval=True)
    def _bind(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001, ANN202
        if executemany and isinstance(parameters, (list, tuple)):
            return statement, [fix(p) for p in parameters]
        return statement, fix(parameters)

    return engine


# -- the process's embedded engine ---------------------------------------------------------

# path -> [{read_only: engine}, users]. Two engines (pools) per path: a read session's
# `readonly=2` cannot be lifted again on a chdb handle, so read and write handles never mix.
_chdb: dict[str, list] = {}
_chdb_lock = threading.Lock()


def shared_chdb_engine(path: Path, read_only: bool, create) -> tuple[Engine, bool]:  # noqa: ANN001
    """The process's engine on the chdb `path` for reads or writes (made by `create(path,
    read_only)` on first use), and whether it was made now. Refuses a second path while the
    first is in use."""
    key = str(path)
    with _chdb_lock:
        entry = _chdb.get(key)
        if entry is None:
            other = next(iter(_chdb), None)
            if other is not None:
                raise ConfigError(
                    f"this process already holds the embedded ClickHouse (chdb) database at {other}; chdb opens "
                    f"one path per process, so {key} cannot be opened beside it. Use one chdb path per process "
                    "(or a ClickHouse server: clickhouse://user:pass@host:8123/db)"
                )
            entry = _chdb[key] = [{}, 0]
        engines = entry[0]
        created = read_only not in engines
        if created:
            engines[read_only] = create(path, read_only)
        entry[1] += 1
        return engines[read_only], created


def release_chdb_engine(path: Path) -> None:
    """One user of the shared engines is done; the last one disposes of them."""
    key = str(path)
    with _chdb_lock:
        entry = _chdb.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _chdb[key]
            for engine in entry[0].values():
                engine.dispose()


def chdb_paths_in_use() -> list[str]:
    with _chdb_lock:
        return list(_chdb)
