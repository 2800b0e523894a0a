"""ClickHouse as the warehouse: URLs, the MergeTree DDL from schema.py, Arrow loads that keep
every cent and microsecond, the catalog questions and the errors, on real ClickHouse (chdb).

One chdb path per process: every warehouse here lives in the session's `chdb_path`, each in a
ClickHouse database of its own (like the PostgreSQL schemas of the shared suite).
"""

from __future__ import annotations

import itertools
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
import sqlalchemy as sa
from sqlalchemy.schema import CreateTable

from paydash.errors import ColumnMissing, ConfigError, DatabaseUnreachable, PaydashError, QueryTimeout, TableMissing
from paydash.settings import Settings
from paydash.sources import demo
from paydash.warehouse import clickhouse, load, transforms
from paydash.warehouse.engine import Warehouse, normalize_url, safe_url

pytestmark = pytest.mark.clickhouse

_databases = itertools.count(1)


def _settings(database: str, **changes) -> Settings:  # noqa: ANN003
    return Settings().replace(
        payments_table=f"{database}.mart_stripe_payments",
        daily_table=f"{database}.mart_stripe_payments_daily",
        refunds_table=f"{database}.mart_stripe_refunds",
        **changes,
    )


@pytest.fixture
def ch(chdb_path: Path):  # noqa: ANN201
    """ch(read_only=False, **settings) -> a Warehouse on the session's chdb path, in a fresh database."""
    opened: list[Warehouse] = []
    database = f"chcore_{next(_databases)}"

    def make(read_only: bool = False, **changes) -> Warehouse:  # noqa: ANN003
        wh = Warehouse(f"chdb://{chdb_path}", _settings(database, **changes), read_only=read_only)
        opened.append(wh)
        return wh

    make.database = database
    yield make
    for wh in opened:
        wh.dispose()


# -- URLs -------------------------------------------------------------------------------------
def test_clickhouse_urls_become_clickhouse_connect_urls(tmp_path: Path) -> None:
    assert normalize_url("clickhouse://u:secret@ch.internal:8123/analytics") == \
        "clickhousedb://u:secret@ch.internal:8123/analytics"
    assert normalize_url("clickhousedb://u@h:8123/db") == "clickhousedb://u@h:8123/db"
    assert normalize_url("clickhouse+https://u:p@h:8443/db") == "clickhousedb://u:p@h:8443/db?secure=true"
    assert normalize_url(f"chdb://{tmp_path}/ch") == f"chdb://{tmp_path}/ch"
    # SQLAlchemy's four-slash spelling of an absolute path (duckdb:////abs) means the same
    assert normalize_url(f"chdb:///{tmp_path}/ch") == f"chdb://{tmp_path}/ch"
    # relative paths resolve like DuckDB paths, against the working directory
    assert normalize_url("chdb://data/ch", cwd=tmp_path) == f"chdb://{tmp_path}/data/ch"
    assert safe_url(normalize_url("clickhouse://u:secret@h:8123/db")) == "clickhousedb://u:***@h:8123/db"
    wh = Warehouse("clickhouse://u:p@h:8123/db", Settings())
    assert wh.dialect == "clickhouse" and wh.chdb_path is None
    assert Warehouse(f"chdb://{tmp_path}/x", Settings()).dialect == "clickhouse"


@pytest.mark.parametrize("url", ["chdb://", "chdb:///", "chdb://:memory:"])
def test_a_chdb_url_without_a_directory_is_refused(url: str) -> None:
    with pytest.raises(ConfigError, match="names no chdb directory"):
        normalize_url(url)


def test_an_unknown_scheme_names_the_clickhouse_forms() -> None:
    with pytest.raises(ConfigError, match=r"clickhouse://user:pass@host:8123/db, chdb:///"):
        normalize_url("mysql://h/db")


# -- one chdb path per process ------------------------------------------------------------------
def test_warehouses_on_one_chdb_path_share_its_engine_and_a_second_path_is_refused(ch, tmp_path: Path) -> None:
    writer, reader = ch(), ch(read_only=True)
    load.recreate_marts(writer)
    assert reader.ping() >= 0
    assert clickhouse.chdb_paths_in_use() == [str(writer.chdb_path)]
    other = Warehouse(f"chdb://{tmp_path}/other", Settings(), read_only=False)
    with pytest.raises(ConfigError, match="one path per process"):
        other.ping()


def test_a_read_only_warehouse_cannot_write(ch) -> None:
    writer = ch()
    load.recreate_marts(writer)
    reader = ch(read_only=True)
    with pytest.raises(PaydashError, match="readonly"):
        with reader.read() as conn:
            conn.execute(sa.text(f"INSERT INTO {ch.database}.mart_stripe_payments (charge_id) VALUES ('x')"))
    with writer.read() as conn:  # the writer's handles did not inherit readonly
        assert conn.execute(sa.text("SELECT getSetting('readonly')")).scalar_one() == 0
    with reader.read() as conn:
        assert conn.execute(sa.text("SELECT timezone()")).scalar_one() == "UTC"


def test_a_missing_chdb_directory_is_unreachable_for_a_reader(tmp_path: Path) -> None:
    wh = Warehouse(f"chdb://{tmp_path}/nothing-here", Settings(), read_only=True)
    with pytest.raises(DatabaseUnreachable, match="paydash demo --no-serve --db chdb://"):
        wh.ping()


# -- DDL --------------------------------------------------------------------------------------
def _table_facts(wh: Warehouse, name: str) -> tuple[str, str, str, dict[str, str]]:
    with wh.read() as conn:
        engine, sorting, partition = conn.execute(sa.text(
            "SELECT engine, sorting_key, partition_key FROM system.tables WHERE database = :d AND name = :n"
        ), {"d": ch_database(wh), "n": name}).one()
    columns = wh.columns_of(next(t for t in wh.marts.built + wh.marts.optional if t.name == name))
    return engine, sorting, partition, columns


def ch_database(wh: Warehouse) -> str:
    return wh.marts.payments.schema


def test_the_marts_are_merge_trees_ordered_for_the_queries(ch) -> None:
    wh = ch()
    load.recreate_marts(wh)
    with wh.write() as conn:
        load.recreate_tables(conn, [wh.marts.refunds])
    engine, sorting, partition, columns = _table_facts(wh, "mart_stripe_payments")
    assert (engine, sorting, partition) == ("MergeTree", "created_at, charge_id", "toYYYYMM(created_at)")
    assert columns["status"] == "LowCardinality(String)"
    # NULL where real charges leave it empty (no customer, not a card, amount not known yet)
    assert columns["card_brand"] == "LowCardinality(Nullable(String))"
    assert columns["failure_code"] == "LowCardinality(Nullable(String))"  # the contract allows NULL
    assert columns["amount_usd"] == "Nullable(Decimal(12, 2))"
    assert columns["created_at"] == "DateTime64(6, 'UTC')"
    assert columns["charge_id"] == "String"  # not Nullable: the contract has no NULL charge ids
    assert columns["attempt_number"] == "Int32"
    assert columns["is_successful"] == "Bool"
    nullable = {name for name, kind in columns.items() if "Nullable" in kind}
    assert nullable == {"failure_code", "failure_category", "recovery_action", "card_last4", "charge_id_sketch",
                        "payment_intent_id_sketch", "customer_id_sketch", "profile_id_sketch", "customer_id",
                        "profile_id", "card_brand", "card_country", "amount_usd"}
    engine, sorting, partition, columns = _table_facts(wh, "mart_stripe_payments_daily")
    assert (engine, sorting, partition) == ("MergeTree", "date, funnel_name", "")
    assert not any("Nullable" in kind for kind in columns.values())
    engine, sorting, partition, columns = _table_facts(wh, "mart_stripe_refunds")
    assert sorting == "created_at, refund_id"
    assert {n for n, k in columns.items() if "Nullable" in k} == {"payment_intent_id", "reason"}
    # recreating drops and creates again; the database already exists
    load.recreate_marts(wh)
    assert "mart_stripe_payments" in {n.split(".")[-1] for n in wh.table_names() if n.startswith(ch.database + ".")}


def test_a_table_not_in_the_options_gets_a_generic_merge_tree(ch) -> None:
    """A mart declared later (a rollup, say) without an entry still gets a sensible key."""
    wh = ch()
    metadata = sa.MetaData()
    rollup = sa.Table("mart_new_rollup", metadata, sa.Column("hour", sa.DateTime), sa.Column("funnel_name", sa.Text),
                      sa.Column("status", sa.Text), sa.Column("payments", sa.Integer),
                      sa.Column("amount_usd", sa.Numeric(14, 2)), schema=ch.database)
    keyed = sa.Table("mart_keyed", metadata, sa.Column("key", sa.Text, primary_key=True), sa.Column("value", sa.Text),
                     schema=ch.database)
    with wh.write() as conn:
        sql = str(CreateTable(rollup).compile(dialect=conn.dialect))
        load.recreate_tables(conn, [rollup, keyed])
    assert "ENGINE = MergeTree" in sql and "ORDER BY `hour`" in sql
    assert "`status` LowCardinality(Nullable(String))" in sql
    with wh.read() as conn:
        keys = dict(conn.execute(sa.text(
            "SELECT name, sorting_key FROM system.tables WHERE database = :d"), {"d": ch.database}).all())
    assert keys == {"mart_new_rollup": "hour", "mart_keyed": "key"}


def test_a_column_type_clickhouse_has_no_mapping_for_says_where_to_add_it() -> None:
    column = sa.Column("blob", sa.LargeBinary)
    with pytest.raises(ConfigError, match="warehouse/clickhouse.py"):
        clickhouse.column_type(column, nullable=False)


# -- Arrow loads ----------------------------------------------------------------------------------
def test_an_arrow_load_round_trips_money_and_time_exactly(ch) -> None:
    wh = ch()
    load.recreate_marts(wh)
    amounts = [Decimal("0.01"), Decimal("0.10"), Decimal("9999999999.99"), Decimal("1234.56"), Decimal("0.00")]
    times = [datetime(2024, 1, 1, 0, 0, 0), datetime(2024, 3, 31, 23, 59, 59, 999999),
             datetime(2024, 3, 10, 2, 30, 0, 1), datetime(1999, 12, 31, 23, 59, 59), datetime(2038, 1, 19, 3, 14, 8)]
    n = len(amounts)
    data = pa.table({
        "charge_id": [f"ch_{i}" for i in range(n)],
        "payment_intent_id": [f"pi_{i}" for i in range(n)],
        "customer_id": ["cus_1"] * n,
        "profile_id": ["p"] * n,
        "status": pa.array(["succeeded", "failed", "succeeded", "pending", "failed"]).dictionary_encode(),
        "is_successful": [True, False, True, False, False],
        "amount_usd": pa.array(amounts, pa.decimal128(12, 2)),
        "currency": ["usd"] * n,
        "failure_code": [None, "card_declined", None, None, "expired_card"],
        "failure_category": [None, "card_declined", None, None, "expired_card"],
        "recovery_action": [None, "retry", None, None, "update"],
        "attempt_number": pa.array([1, 2, 1, 1, 3], pa.int32()),
        "created_at": pa.array(times, pa.timestamp("us")),
        "created_date": pa.array([t.date() for t in times], pa.date32()),
        "hour_of_day": pa.array([t.hour for t in times], pa.int32()),
        "day_of_week": [t.strftime("%A") for t in times],
        "funnel_name": ["main_funnel"] * n,
        "card_brand": ["visa"] * n,
        "card_country": ["US"] * n,
    })
    load.load_arrow(wh, wh.marts.payments, data)
    p = wh.marts.payments
    with wh.read() as conn:
        rows = conn.execute(sa.select(p.c.charge_id, p.c.amount_usd, p.c.created_at, p.c.created_date, p.c.failure_code,
                                      p.c.status, p.c.is_successful).order_by(p.c.charge_id)).all()
        total = conn.execute(sa.select(sa.func.sum(p.c.amount_usd))).scalar_one()
    assert [r.amount_usd for r in rows] == amounts
    assert all(isinstance(r.amount_usd, Decimal) for r in rows)
    assert [r.created_at for r in rows] == times  # naive UTC, microseconds kept
    assert [r.created_date for r in rows] == [t.date() for t in times]
    assert [r.failure_code for r in rows] == [None, "card_declined", None, None, "expired_card"]
    assert [r.status for r in rows] == ["succeeded", "failed", "succeeded", "pending", "failed"]
    assert total == sum(amounts)


def test_the_demo_charge_mart_loads_exactly_and_the_daily_mart_builds(ch) -> None:
    wh = ch()
    load.recreate_marts(wh)
    table = demo.generate_payments(demo.DemoSpec(payments=3000, seed=7, end=date(2026, 3, 1)))
    load.load_arrow(wh, wh.marts.payments, table, chunk_rows=1000)
    p = wh.marts.payments
    names = [c for c in table.column_names if c in p.c]
    with wh.read() as conn:
        back = conn.execute(sa.select(*(p.c[c] for c in names)).order_by(p.c.created_at, p.c.charge_id)).all()
    expected = demo.to_plain_strings(table.select(names)).sort_by([("created_at", "ascending"),
                                                                   ("charge_id", "ascending")]).to_pylist()
    assert [dict(zip(names, row)) for row in back] == expected


# -- catalog and errors --------------------------------------------------------------------
def test_the_catalog_questions_on_schema_qualified_marts(ch) -> None:
    wh = ch()
    load.recreate_marts(wh)
    reader = ch(read_only=True)
    names = reader.table_names()
    assert f"{ch.database}.mart_stripe_payments" in names
    assert reader.has_table(reader.marts.payments)
    assert not reader.has_table(reader.marts.refunds)
    assert reader.has_column(reader.marts.payments, "card_last4")
    assert not reader.has_column(reader.marts.payments, "no_such_column")
    assert list(reader.columns_of(reader.marts.payments))[:3] == ["charge_id", "payment_intent_id", "customer_id"]


def test_missing_tables_columns_and_databases_are_said_plainly(ch) -> None:
    wh = ch()
    load.recreate_marts(wh)
    reader = ch(read_only=True)
    with pytest.raises(TableMissing, match=f"{ch.database}.mart_stripe_refunds not found"):
        with reader.read() as conn:
            conn.execute(sa.select(sa.func.count()).select_from(reader.marts.refunds))
    with pytest.raises(TableMissing, match=r"database nowhere_db not found .* PAYDASH_PAYMENTS_TABLE"):
        with reader.read() as conn:
            conn.execute(sa.text("SELECT count() FROM nowhere_db.mart_stripe_payments"))
    with pytest.raises(ColumnMissing, match="'no_such_column' is missing"):
        with reader.read() as conn:
            conn.execute(sa.text(f"SELECT no_such_column FROM {ch.database}.mart_stripe_payments"))


def test_a_statement_over_the_timeout_is_cancelled(ch) -> None:
    reader = ch(read_only=True, statement_timeout=1)
    load.recreate_marts(ch())
    with pytest.raises(QueryTimeout, match="PAYDASH_STATEMENT_TIMEOUT"):
        with reader.read() as conn:
            conn.execute(sa.text("SELECT count() FROM numbers(100000000000) WHERE sipHash64(number) = 0"))


def test_an_unreachable_clickhouse_server_is_said_once_with_the_fix() -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wh = Warehouse(f"clickhouse://default:secret@127.0.0.1:{port}/default", Settings().replace(connect_timeout=2))
    with pytest.raises(DatabaseUnreachable) as caught:
        wh.ping()
    message = str(caught.value)
    assert "cannot reach the database at clickhousedb://default:***@127.0.0.1" in message
    assert "secret" not in message and "\n" not in message


def test_the_daily_mart_builds_from_the_charge_mart_on_clickhouse(ch) -> None:
    """The loaders' transform runs on ClickHouse (query-level SQL beyond this is chsuite's)."""
    wh = ch()
    load.recreate_marts(wh)
    table = demo.generate_payments(demo.DemoSpec(payments=2000, seed=3, end=date(2026, 3, 1)))
    load.load_arrow(wh, wh.marts.payments, table)
    with wh.write() as conn:
        transforms.rebuild_daily_mart(conn, wh.marts)
    p, d = wh.marts.payments, wh.marts.daily
    with wh.read() as conn:
        attempts = conn.execute(sa.select(sa.func.sum(d.c.total_attempts))).scalar_one()
        revenue = conn.execute(sa.select(sa.func.sum(d.c.gross_revenue_usd))).scalar_one()
        direct = conn.execute(sa.select(sa.func.sum(p.c.amount_usd)).where(p.c.status == "succeeded")).scalar_one()
    assert attempts == 2000
    assert revenue == direct


def test_sources_do_not_branch_on_the_dialect() -> None:
    """Engine differences are data in paydash/warehouse/ (indexes.py, locks.py, clickhouse.py)."""
    import re

    sources = Path(__file__).resolve().parents[1] / "paydash" / "sources"
    branch = re.compile(r"dialect(\.name)?\s*(==|!=|\bin\b|\bnot in\b)")
    for path in sorted(sources.glob("*.py")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            assert not branch.search(line), f"{path.name}:{number} branches on the dialect: {line.strip()}"
