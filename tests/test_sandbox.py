"""The Data explorer's sandbox: saved queries run read-only, and the database refuses everything else.

Each refusal is checked on DuckDB and PostgreSQL: a clear message, and the database
unchanged afterwards. On PostgreSQL the queries run as a plain login role with SELECT
rights only (what docs/admin.md asks for); the superuser the tests otherwise use is
refused up front, since a read-only transaction does not stop its file functions.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from paydash.errors import ConfigError, QueryTimeout
from paydash.warehouse.sandbox import EXAMPLE_QUERIES, QueryRefused, load_saved_queries, run_read_only

from builders import not_on_clickhouse, pg_execute

@pytest.fixture(autouse=True)
def _sandbox_is_not_on_clickhouse(request) -> None:  # noqa: ANN001
    """Known gap on the clickhouse half, with its reason (-ra prints it)."""
    if "engine_kind" in request.fixturenames:
        not_on_clickhouse(request.getfixturevalue("engine_kind"),
                          "the Data explorer's SQL sandbox (saved queries under the database's own read-only enforcement) does not run on ClickHouse yet; the page says so (chcore)")


TIMEOUT = 2  # seconds a saved query may run in these tests
ROLE = f"paydash_explorer_{os.getpid()}"


@pytest.fixture(scope="module")
def explorer_role(request) -> str:  # noqa: ANN001
    """A PostgreSQL login role without superuser or file rights, dropped at the end."""
    pg = request.getfixturevalue("pg_url")
    pg_execute(pg, f'DROP ROLE IF EXISTS "{ROLE}"', f'CREATE ROLE "{ROLE}" LOGIN')
    yield ROLE
    pg_execute(pg, f'DROP OWNED BY "{ROLE}"', f'DROP ROLE IF EXISTS "{ROLE}"')


@pytest.fixture
def target(engine_kind, make_warehouse, charge, request, tmp_path):  # noqa: ANN001, ANN201
    """(explorer URL, qualified table name, warehouse) over three payments; the warehouse stays open,
    as the dashboard's does while an admin runs a query."""
    wh = make_warehouse([charge("ch_1", "2026-03-01 10:00"), charge("ch_2", "2026-03-01 11:00", "failed"),
                         charge("ch_3", "2026-03-02 09:00")])
    table = f"{wh.marts.payments.schema}.{wh.marts.payments.name}" if wh.marts.payments.schema else wh.marts.payments.name
    with wh.read() as conn:  # hold a pooled connection, as the dashboard does
        conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    if engine_kind == "duckdb":
        return wh.url, table, wh
    role = request.getfixturevalue("explorer_role")
    schema = wh.marts.payments.schema
    pg_execute(wh.url, f'GRANT USAGE ON SCHEMA "{schema}" TO "{role}"',
               f'GRANT SELECT ON ALL TABLES IN SCHEMA "{schema}" TO "{role}"')
    return sa.make_url(wh.url).set(username=role).render_as_string(False), table, wh


def count(wh, table: str) -> int:  # noqa: ANN001
    with wh.read() as conn:
        return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()


def test_a_select_runs_and_returns_its_rows(target) -> None:  # noqa: ANN001
    url, table, _ = target
    result = run_read_only(url, f"SELECT charge_id, status FROM {table} ORDER BY charge_id", 10, TIMEOUT)
    assert result.columns == ["charge_id", "status"]
    assert result.rows == [("ch_1", "succeeded"), ("ch_2", "failed"), ("ch_3", "succeeded")]
    assert not result.truncated


def test_the_row_limit_fetches_one_more_and_says_it_truncated(target) -> None:  # noqa: ANN001
    url, table, _ = target
    result = run_read_only(url, f"SELECT charge_id FROM {table} ORDER BY charge_id", 2, TIMEOUT)
    assert result.rows == [("ch_1",), ("ch_2",)]
    assert result.truncated and result.max_rows == 2
    exact = run_read_only(url, f"SELECT charge_id FROM {table}", 3, TIMEOUT)
    assert len(exact.rows) == 3 and not exact.truncated


def test_a_percent_sign_in_the_sql_is_just_sql(target) -> None:  # noqa: ANN001
    url, table, _ = target
    result = run_read_only(url, f"SELECT count(*) AS n FROM {table} WHERE charge_id LIKE 'ch%'", 5, TIMEOUT)
    assert result.rows == [(3,)]


# what a saved query may not do, as each engine spells it: (DuckDB, PostgreSQL)
ATTACKS = {
    # writes
    "delete": ("DELETE FROM {t}",) * 2,
    "delete inside WITH": ("WITH x AS (DELETE FROM {t} RETURNING *) SELECT * FROM x",) * 2,
    "commit, then drop": ("COMMIT; DROP TABLE {t}",) * 2,
    "select, then drop": ("SELECT 1; DROP TABLE {t}",) * 2,
    "create table": ("CREATE TABLE stolen AS SELECT * FROM {t}",) * 2,
    "update": ("UPDATE {t} SET amount_usd = 0",) * 2,
    "copy to a file": ("COPY {t} TO '/tmp/paydash-sandbox-{pid}.csv'",) * 2,
    "export / copy to a program": ("EXPORT DATABASE '/tmp/paydash-sandbox-{pid}'",
                                   "COPY (SELECT 1) TO PROGRAM 'touch /tmp/paydash-sandbox-{pid}.program'"),
    # files and network
    "read a server file": ("SELECT * FROM read_csv('/etc/passwd')", "SELECT pg_read_file('/etc/passwd')"),
    "read a file another way": ("SELECT * FROM read_text('/etc/passwd')", "SELECT lo_import('/etc/passwd')"),
    "list a directory": ("SELECT * FROM glob('/etc/*')", "SELECT * FROM pg_ls_dir('/')"),
    "attach another database": ("ATTACH '/tmp/paydash-sandbox-{pid}.duckdb' AS other",
                                "SELECT * FROM dblink('dbname=postgres', 'SELECT 1') AS t(i int)"),
    "install an extension": ("INSTALL httpfs", "CREATE EXTENSION IF NOT EXISTS dblink"),
    "read over the network": ("SELECT * FROM read_parquet('https://example.com/x.parquet')",
                              "COPY (SELECT 1) TO PROGRAM 'curl -s https://example.com'"),
    "read the server's environment or settings": ("SELECT getenv('HOME')", "SELECT current_setting('data_directory')"),
    # configuration
    "turn the protection off": ("SET enable_external_access = true", "SET default_transaction_read_only = off"),
    "unlock / reset everything": ("SET lock_configuration = false", "RESET ALL"),
    "make the transaction writable": ("RESET enable_external_access", "SET TRANSACTION READ WRITE"),
    "change a setting, then use it": ("SET enable_external_access = true; SELECT * FROM read_csv('/etc/passwd')",
                                      "SELECT set_config('transaction_read_only', 'off', false)"),
    "lift the time limit": ("SET threads = 64", "SET statement_timeout = 0"),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_database_refuses_and_stays_unchanged(engine_kind, target, attack) -> None:  # noqa: ANN001
    url, table, wh = target
    sql = ATTACKS[attack][0 if engine_kind == "duckdb" else 1]
    with pytest.raises(QueryRefused) as refused:
        run_read_only(url, sql.format(t=table, pid=os.getpid()), 10, TIMEOUT)
    message = str(refused.value)
    assert message.startswith("the database refused this query: ") and "read-only" in message
    assert "Traceback" not in message
    assert count(wh, table) == 3
    leftovers = list(Path("/tmp").glob(f"paydash-sandbox-{os.getpid()}*"))
    assert not leftovers, f"the query wrote {leftovers}"
    # the sandbox still works, and still refuses writes
    assert run_read_only(url, f"SELECT count(*) FROM {table}", 10, TIMEOUT).rows == [(3,)]
    with pytest.raises(QueryRefused):
        run_read_only(url, f"DELETE FROM {table}", 10, TIMEOUT)


ONLY_POSTGRES = pytest.mark.parametrize("engine_kind", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)


@ONLY_POSTGRES
def test_postgres_a_setting_changed_inside_one_run_does_not_reach_the_next(target) -> None:  # noqa: ANN001
    url, table, wh = target
    changed = run_read_only(url, "SELECT set_config('default_transaction_read_only', 'off', false) AS v", 10, TIMEOUT)
    assert changed.rows == [("off",)]  # allowed inside its own (read-only) transaction ...
    run_read_only(url, "SELECT set_config('statement_timeout', '0', false)", 10, TIMEOUT)
    # ... but each run has a connection of its own: the next is read-only and timed again
    with pytest.raises(QueryRefused):
        run_read_only(url, f"WITH x AS (DELETE FROM {table} RETURNING *) SELECT * FROM x", 10, TIMEOUT)
    with pytest.raises(QueryTimeout):
        run_read_only(url, "SELECT pg_sleep(30)", 10, TIMEOUT)
    assert count(wh, table) == 3


@ONLY_POSTGRES
def test_postgres_refuses_to_run_as_a_superuser(target) -> None:  # noqa: ANN001
    _, table, wh = target
    with pytest.raises(QueryRefused) as refused:
        run_read_only(wh.url, f"SELECT count(*) FROM {table}", 10, TIMEOUT)
    assert "superuser" in str(refused.value) and "PAYDASH_EXPLORER_DATABASE_URL" in str(refused.value)


def test_a_query_that_runs_too_long_is_cancelled(engine_kind, target) -> None:  # noqa: ANN001
    url, table, wh = target
    slow = ("SELECT count(*) FROM range(1000000000000) a" if engine_kind == "duckdb"
            else "SELECT count(*) FROM generate_series(1, 1000000000000)")
    with pytest.raises(QueryTimeout) as cancelled:
        run_read_only(url, slow, 10, TIMEOUT)
    assert f"longer than {TIMEOUT} s" in str(cancelled.value) and "PAYDASH_EXPLORER_TIMEOUT" in str(cancelled.value)
    assert run_read_only(url, f"SELECT count(*) FROM {table}", 10, TIMEOUT).rows == [(3,)]


def test_a_missing_table_is_a_clear_refusal(target) -> None:  # noqa: ANN001
    url, _, _ = target
    with pytest.raises(QueryRefused) as refused:
        run_read_only(url, "SELECT * FROM no_such_table", 10, TIMEOUT)
    assert "no_such_table" in str(refused.value)


# -- saved queries file ---------------------------------------------------------------------
def test_saved_queries_are_read_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "queries.toml"
    path.write_text(
        '[[query]]\nname = "Failed today"\ndescription = "What failed"\nsql = """\nSELECT 1\n"""\n\n'
        '[[query]]\nname = "Two"\nsql = "SELECT 2"\n'
    )
    queries = load_saved_queries(path)
    assert [(q.name, q.description, q.sql) for q in queries] == [("Failed today", "What failed", "SELECT 1"), ("Two", "", "SELECT 2")]
    assert load_saved_queries(tmp_path / "missing.toml") == []


@pytest.mark.parametrize(
    "text, message",
    [
        ("[[query]\nname=", "not valid TOML"),
        ('[[query]]\nsql = "SELECT 1"\n', "has no name"),
        ('[[query]]\nname = "a"\n', "has no sql"),
        ('[[query]]\nname = "a"\nsql = "SELECT 1"\n[[query]]\nname = "a"\nsql = "SELECT 2"\n', "two queries named 'a'"),
        ('query = "SELECT 1"\n', "must hold [[query]] tables"),
    ],
)
def test_a_broken_saved_queries_file_says_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "queries.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as error:
        load_saved_queries(path)
    assert message in str(error.value) and str(path) in str(error.value)


def test_the_example_saved_queries_run_on_both_engines(target) -> None:  # noqa: ANN001
    url, table, _ = target
    queries = load_saved_queries(EXAMPLE_QUERIES)
    assert len(queries) >= 4
    schema = table.rsplit(".", 1)[0] + "." if "." in table else ""
    for query in queries:
        sql = query.sql.replace("mart_stripe_payments", f"{schema}mart_stripe_payments")
        result = run_read_only(url, sql, 100, 10)
        assert result.columns, query.name
    by_status = run_read_only(url, queries[0].sql.replace("mart_stripe_payments", f"{schema}mart_stripe_payments"), 10, 10)
    assert sorted((s, n, Decimal(a)) for s, n, a in by_status.rows) == [
        ("failed", 1, Decimal("10.00")), ("succeeded", 2, Decimal("20.00"))]


def test_duckdb_a_file_this_process_writes_gets_a_message_not_a_driver_error(tmp_path: Path) -> None:
    """`paydash serve` with the receiver holds its DuckDB file writable in-process: a saved query
    cannot attach its read-only copy, and says why and what to do."""
    import duckdb

    from paydash.errors import DatabaseUnreachable

    path = tmp_path / "held.duckdb"
    writer = duckdb.connect(str(path))
    try:
        writer.execute("CREATE TABLE t AS SELECT 1 AS a")
        with pytest.raises(DatabaseUnreachable) as refused:
            run_read_only(str(path), "SELECT * FROM t", max_rows=10, timeout=5)
        assert "receives Stripe webhooks" in str(refused.value) and "PostgreSQL" in str(refused.value)
    finally:
        writer.close()
