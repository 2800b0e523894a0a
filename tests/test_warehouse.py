"""The warehouse layer: URLs, read-only sessions, timeouts, clear errors, reconnects, loading."""

from __future__ import annotations

import re
from datetime import date

import pytest
import sqlalchemy as sa

from builders import charge
from paydash.errors import ColumnMissing, ConfigError, DatabaseUnreachable, PaydashError, QueryTimeout, TableMissing
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters
from paydash.queries.overview import overview
from paydash.queries.payments import payments_page
from paydash.settings import Settings
from paydash.sources.demo import DemoSpec, build_demo_database
from paydash.warehouse import transforms
from paydash.warehouse.engine import Warehouse, normalize_url, safe_url
from paydash.warehouse.schema import display_name, split_table_name

ROWS = [
    charge("ch_1", "2024-03-04 10:00", amount="10.00"),
    charge("ch_2", "2024-03-04 11:00", "failed", "20.00"),
    charge("ch_3", "2024-03-05 12:00", amount="30.00", funnel_name="mobile_app"),
]


# -- pure ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "given, expected",
    [
        ("/data/x.duckdb", "duckdb:////data/x.duckdb"),
        ("postgresql://u@h:5432/db", "postgresql+psycopg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg2://u@h/db", "postgresql+psycopg://u@h/db"),
        ("duckdb:////abs/file.duckdb", "duckdb:////abs/file.duckdb"),
    ],
)
def test_normalize_url(given, expected) -> None:
    assert normalize_url(given) == expected


def test_relative_duckdb_paths_are_relative_to_the_working_directory(tmp_path) -> None:
    assert normalize_url("data/x.duckdb", cwd=tmp_path) == f"duckdb:///{tmp_path / 'data' / 'x.duckdb'}"


@pytest.mark.parametrize("given, message", [("", "empty"), ("  ", "empty"), ("mysql://u@h/db", "mysql"),
                                            ("duckdb:///:memory:", "names no DuckDB file"), ("duckdb://", "no DuckDB file")])
def test_bad_urls(given, message) -> None:
    with pytest.raises(ConfigError, match=message):
        normalize_url(given)


def test_safe_url_hides_the_password() -> None:
    shown = safe_url("postgresql+psycopg://reader:s3cret@db.example:5432/analytics")
    assert "s3cret" not in shown and "reader" in shown and "db.example" in shown


@pytest.mark.parametrize("name, parts", [("mart", (None, "mart")), ("analytics.mart_x", ("analytics", "mart_x"))])
def test_split_table_name(name, parts) -> None:
    assert split_table_name(name) == parts


@pytest.mark.parametrize("name", ["a.b.c", "mart; drop", "1abc", "", "a-b", 'x"y'])
def test_split_table_name_refuses_non_identifiers(name) -> None:
    with pytest.raises(ConfigError):
        split_table_name(name)


# -- read-only -----------------------------------------------------------------------------
def test_reads_cannot_write(make_warehouse) -> None:
    wh = make_warehouse(ROWS)
    table = display_name(wh.marts.payments)
    for statement in (f"INSERT INTO {table} (charge_id) VALUES ('ch_evil')", f"DELETE FROM {table} WHERE charge_id IS NOT NULL",
                      f"DROP TABLE {table}", "CREATE TABLE evil (x integer)"):
        with pytest.raises(PaydashError, match=re.compile("read.only", re.I)):
            with wh.read() as conn:
                conn.execute(sa.text(statement))
    with wh.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(wh.marts.payments)).scalar_one() == 3
    with pytest.raises(PaydashError, match="read-only"):
        with wh.write():
            pass


def test_duckdb_statement_timeout(tmp_path) -> None:
    import duckdb

    duckdb.connect(str(tmp_path / "slow.duckdb")).close()
    wh = Warehouse(str(tmp_path / "slow.duckdb"), Settings().replace(statement_timeout=1))
    try:
        with pytest.raises(QueryTimeout, match="PAYDASH_STATEMENT_TIMEOUT"):
            with wh.read() as conn:
                # 10^13 products: hours of work, so only the timeout can end it
                conn.execute(sa.text("SELECT sum(a.range * b.range) FROM range(100000000) a, range(100000) b")).scalar()
        with wh.read() as conn:  # the connection is usable afterwards
            assert conn.execute(sa.text("SELECT 42")).scalar_one() == 42
    finally:
        wh.dispose()


@pytest.mark.postgres
def test_postgres_statement_timeout(pg_url) -> None:
    wh = Warehouse(pg_url, Settings().replace(statement_timeout=1))
    try:
        with pytest.raises(QueryTimeout):
            with wh.read() as conn:
                conn.execute(sa.text("SELECT pg_sleep(30)"))
        with wh.read() as conn:
            assert conn.execute(sa.text("SELECT 42")).scalar_one() == 42
    finally:
        wh.dispose()


@pytest.mark.postgres
def test_postgres_connection_killed_is_replaced(pg_url) -> None:
    wh = Warehouse(pg_url, Settings())
    other = sa.create_engine(sa.make_url(pg_url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool)
    try:
        with wh.read() as conn:
            pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
        # the pooled connection is idle now; kill it behind the pool's back
        with other.connect() as admin:
            assert admin.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
            admin.commit()
        with wh.read() as conn:
            new_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        assert new_pid != pid
    finally:
        other.dispose()
        wh.dispose()


# -- clear errors ------------------------------------------------------------------------
def test_missing_duckdb_file(tmp_path) -> None:
    wh = Warehouse(str(tmp_path / "missing.duckdb"), Settings())
    with pytest.raises(DatabaseUnreachable, match="paydash demo"):
        with wh.read():
            pass
    assert not (tmp_path / "missing.duckdb").exists()


def test_unreachable_postgres_hides_the_password() -> None:
    wh = Warehouse("postgresql://postgres:hunter2@127.0.0.1:1/nowhere", Settings().replace(connect_timeout=2))
    with pytest.raises(DatabaseUnreachable) as info:
        wh.ping()
    message = str(info.value)
    assert "hunter2" not in message and "127.0.0.1:1" in message and "PAYDASH_DATABASE_URL" in message
    wh.dispose()


def test_missing_tables_name_the_setting(new_database, databases) -> None:
    db = new_database()
    db.execute(f"CREATE TABLE {db.qualified('unrelated')} (x integer)")
    wh = databases.track(db.warehouse())
    with pytest.raises(TableMissing, match="PAYDASH_DAILY_TABLE") as daily:
        with wh.read() as conn:
            overview(conn, wh.marts, DateRange(date(2024, 3, 4), date(2024, 3, 4)))
    assert "mart_stripe_payments_daily" in str(daily.value)
    with pytest.raises(TableMissing, match="PAYDASH_PAYMENTS_TABLE"):
        with wh.read() as conn:
            payments_page(conn, wh.marts, PaymentFilters())


def test_missing_column_is_named(new_database, databases) -> None:
    from test_contract import DAILY_DDL, PAYMENTS_DDL

    db = new_database()
    payments = db.qualified("mart_stripe_payments")
    db.execute(PAYMENTS_DDL.replace(" card_brand text,", "").format(table=payments),
               DAILY_DDL.format(table=db.qualified("mart_stripe_payments_daily")),
               f"INSERT INTO {payments} (charge_id, status, created_at) VALUES ('ch_1', 'succeeded', TIMESTAMP '2024-03-04 10:00:00')")
    wh = databases.track(db.warehouse())
    with pytest.raises(ColumnMissing, match="card_brand") as info:
        with wh.read() as conn:
            payments_page(conn, wh.marts, PaymentFilters())
    assert "paydash check" in str(info.value)


# -- introspection and loading -----------------------------------------------------------
def test_table_names_and_columns(make_warehouse) -> None:
    wh = make_warehouse(ROWS)
    names = wh.table_names()
    assert display_name(wh.marts.payments) in names and display_name(wh.marts.daily) in names
    columns = wh.columns_of(wh.marts.payments)
    assert list(columns)[:3] == ["charge_id", "payment_intent_id", "customer_id"]
    # the contract's columns, the optional card_last4, then paydash's four id sketches
    assert len(columns) == 19 + 1 + 4
    assert list(columns)[-5:] == ["card_last4", "charge_id_sketch", "payment_intent_id_sketch", "customer_id_sketch",
                                  "profile_id_sketch"]
    assert wh.ping() >= 0


def test_rebuild_daily_mart_from_a_day_on(databases) -> None:  # noqa: ANN001
    from builders import rows_to_arrow
    from paydash.warehouse import load

    db = databases.new()
    writer = databases.track(db.warehouse(read_only=False))
    load.recreate_marts(writer)
    load.load_arrow(writer, writer.marts.payments, rows_to_arrow(ROWS))
    with writer.write() as conn:
        assert transforms.rebuild_daily_mart(conn, writer.marts) == 2  # (03-04, main), (03-05, mobile_app)
    load.load_arrow(writer, writer.marts.payments, rows_to_arrow([
        charge("ch_4", "2024-03-05 13:00", amount="1.00", funnel_name="mobile_app"),
        charge("ch_5", "2024-03-06 13:00", amount="2.00"),
    ]))
    with writer.write() as conn:
        assert transforms.rebuild_daily_mart(conn, writer.marts, since=date(2024, 3, 5)) == 2
        d = writer.marts.daily.c
        got = conn.execute(sa.select(d.date, d.funnel_name, d.total_attempts, d.gross_revenue_usd, d.failed_payments,
                                     d.card_declined_count).order_by(d.date)).all()
    assert [tuple(r) for r in got] == [
        (date(2024, 3, 4), "main_funnel", 2, 10, 1, 1),
        (date(2024, 3, 5), "mobile_app", 2, 31, 0, 0),
        (date(2024, 3, 6), "main_funnel", 1, 2, 0, 0),
    ]


# -- the demo never overwrites somebody's marts ---------------------------------------------
def test_demo_refuses_to_overwrite_marts_it_did_not_build(databases) -> None:
    db = databases.isolated()
    writer = databases.track(db.warehouse(read_only=False))
    from builders import rows_to_arrow
    from paydash.warehouse import load

    load.recreate_marts(writer)  # "someone's real warehouse": marts without paydash's mark
    load.load_arrow(writer, writer.marts.payments, rows_to_arrow(ROWS))
    with pytest.raises(PaydashError, match="refusing to overwrite"):
        build_demo_database(writer, DemoSpec(payments=200, days=5, seed=1, end=date(2024, 3, 31)), show_progress=False)
    with writer.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(writer.marts.payments)).scalar_one() == 3


def test_demo_rebuilds_its_own_marts(databases) -> None:
    db = databases.isolated()
    spec = DemoSpec(payments=300, days=5, seed=1, end=date(2024, 3, 31))
    writer = databases.track(db.warehouse(read_only=False))
    build_demo_database(writer, spec, show_progress=False)
    writer.dispose()
    writer = databases.track(db.warehouse(read_only=False))
    assert build_demo_database(writer, DemoSpec(payments=500, days=5, seed=2, end=date(2024, 3, 31)),
                               show_progress=False)["payments"] == 500
    with writer.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(writer.marts.payments)).scalar_one() == 500


def test_two_demo_builds_in_one_process(databases) -> None:
    # create_indexes once attached its Index objects to the process-wide cached Tables, so the
    # next build created them twice and failed with "already exists"
    spec = DemoSpec(payments=300, days=5, seed=1, end=date(2024, 3, 31))
    for _ in range(2):
        writer = databases.track(databases.isolated().warehouse(read_only=False))
        build_demo_database(writer, spec, show_progress=False)
        writer.dispose()


def test_demo_ownership_mark_belongs_to_its_own_marts(databases) -> None:
    from builders import rows_to_arrow
    from paydash.warehouse import load

    db = databases.isolated()
    db.execute("CREATE SCHEMA demo", "CREATE SCHEMA analytics")
    demo = db.settings.replace(payments_table="demo.mart_stripe_payments", daily_table="demo.mart_stripe_payments_daily")
    theirs = db.settings.replace(payments_table="analytics.mart_stripe_payments",
                                 daily_table="analytics.mart_stripe_payments_daily")
    writer = databases.track(Warehouse(db.url, demo, read_only=False))
    build_demo_database(writer, DemoSpec(payments=200, days=5, seed=1, end=date(2024, 3, 31)), show_progress=False)
    writer.dispose()
    foreign = databases.track(Warehouse(db.url, theirs, read_only=False))
    load.recreate_marts(foreign)
    load.load_arrow(foreign, foreign.marts.payments, rows_to_arrow(ROWS))
    with pytest.raises(PaydashError, match="refusing to overwrite"):
        build_demo_database(foreign, DemoSpec(payments=200, days=5, seed=1, end=date(2024, 3, 31)), show_progress=False)
