"""Shared fixtures: one suite over DuckDB, PostgreSQL and ClickHouse, and warehouses built from hand-written rows.

Every test that takes `engine_kind` (directly or through `make_warehouse`, `new_database`, ...)
runs once per engine, marked `duckdb`, `postgres` or `clickhouse` (`pytest -m duckdb`, ...).

DuckDB: a file under tmp_path per warehouse (never :memory:, see STACK-NOTES).
PostgreSQL: one throwaway database per test session on 127.0.0.1:5432 (PAYDASH_TEST_PG to
point elsewhere), dropped at the end; each warehouse lives in a fresh schema of its own, the
tables named schema-qualified as a dbt project names them (`t3.mart_stripe_payments`).
When the server is unreachable the postgres half is skipped loudly, except under CI=true,
where it fails.
ClickHouse: embedded (chdb, installed by `make setup`, so never skipped), ONE chdb path per
pytest process (`chdb_path`); each warehouse lives in a ClickHouse database of its own
(`t<pid>_<n>.mart_stripe_payments`, like the PostgreSQL schemas), dropped at close.
What ClickHouse does not offer (the Stripe sync, the webhook receiver: PostgreSQL/DuckDB only)
is marked next to the test with `not_on_clickhouse(reason)`: skipped with the reason in the
summary (-ra), never silently.

Rows are written by hand with `charge(...)` from tests/builders.py (also the `charge`
fixture), which fills the derived columns (is_successful, created_date, hour_of_day,
day_of_week, failure category and action) the way the contract defines them.
"""

from __future__ import annotations

import itertools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import pytest
import sqlalchemy as sa

from builders import PAYMENT_ARROW_SCHEMA, as_utc, charge, not_on_clickhouse, pg_execute, rows_to_arrow  # noqa: F401 - re-exported
from paydash.settings import Settings
from paydash.warehouse import load, transforms
from paydash.warehouse.engine import Warehouse

ENGINES = ("duckdb", "postgres", "clickhouse")
PG_ADMIN_URL = os.environ.get("PAYDASH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


# -- engines -----------------------------------------------------------------------------
def _pg_unavailable(reason: str) -> None:
    message = (
        f"PostgreSQL at {PG_ADMIN_URL} is not reachable ({reason}): the postgres half of the suite "
        "did NOT run. Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`."
    )
    if IN_CI:
        pytest.fail("CI=true: " + message, pytrace=False)
    _PG_STATE["skipped"] = message
    pytest.skip(message)


_PG_STATE: dict[str, Any] = {}


def _pg_admin_connect():  # noqa: ANN202
    import psycopg

    return psycopg.connect(sa.make_url(PG_ADMIN_URL).set(drivername="postgresql").render_as_string(False),
                           autocommit=True, connect_timeout=3)


@pytest.fixture(scope="session")
def pg_url() -> Iterable[str]:
    """URL of a throwaway PostgreSQL database for this test session (dropped at the end)."""
    if "error" in _PG_STATE:
        _pg_unavailable(_PG_STATE["error"])
    try:
        admin = _pg_admin_connect()
    except Exception as exc:  # noqa: BLE001 - any failure to connect means "unreachable"
        _PG_STATE["error"] = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        _pg_unavailable(_PG_STATE["error"])
    name = f"paydash_test_{os.getpid()}"
    with admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{name}"')
    url = sa.make_url(PG_ADMIN_URL).set(database=name).render_as_string(False)
    try:
        yield url
    finally:
        with _pg_admin_connect() as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory) -> Path:  # noqa: ANN001
    """The one embedded ClickHouse (chdb) directory of this pytest process: chdb opens one path
    per process, so every ClickHouse warehouse of the session lives here, each in a database
    of its own (like the PostgreSQL schemas)."""
    return tmp_path_factory.mktemp("chdb") / "clickhouse"


@pytest.fixture(scope="session", params=[pytest.param(e, marks=getattr(pytest.mark, e)) for e in ENGINES])
def engine_kind(request) -> str:  # noqa: ANN001
    """'duckdb', 'postgres' or 'clickhouse'; every test using it runs on each engine."""
    if request.param == "postgres":
        request.getfixturevalue("pg_url")  # skip or fail now, before any work
    if request.param == "clickhouse":
        request.getfixturevalue("chdb_path")
    return request.param


def ch_execute(url: str, *statements: str) -> None:
    """Run statements on the session's embedded ClickHouse (the shared chdb engine). A schema is
    a database there: `CREATE SCHEMA x` (as a dbt project runs it) makes database x afresh."""
    wh = Warehouse(url, Settings(), read_only=False)
    try:
        with wh.engine.connect() as conn:
            for statement in statements:
                schema = re.fullmatch(r"\s*CREATE SCHEMA (\w+)\s*", statement, re.I)
                if schema:
                    conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{schema.group(1)}`")
                    statement = f"CREATE DATABASE `{schema.group(1)}`"
                conn.exec_driver_sql(statement)
    finally:
        wh.dispose()


_names = itertools.count(1)


@dataclass
class Database:
    """An empty place for marts: a DuckDB file, or a fresh schema of the session's PostgreSQL database."""

    kind: str
    url: str
    settings: Settings
    schema: str | None = None

    def warehouse(self, read_only: bool = True, **changes: Any) -> Warehouse:
        return Warehouse(self.url, self.settings.replace(**changes) if changes else self.settings, read_only=read_only)

    def execute(self, *statements: str) -> None:
        """Plain SQL against the database (DDL as a dbt project would run it)."""
        if self.kind == "postgres":
            pg_execute(self.url, *statements)
            return
        if self.kind == "clickhouse":
            ch_execute(self.url, *statements)
            return
        import duckdb

        with duckdb.connect(self.url.removeprefix("duckdb:///")) as con:
            for statement in statements:
                con.execute(statement)

    def qualified(self, table: str) -> str:
        return f"{self.schema}.{table}" if self.schema else table


@dataclass
class DatabaseFactory:
    """Makes empty databases for one engine and cleans them up."""

    kind: str
    tmp: Path
    pg: str | None
    ch: str | None = None  # the session's chdb URL
    opened: list[Warehouse] = field(default_factory=list)
    schemas: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def new(self, settings: Settings | None = None, schema: str | None = None) -> Database:
        settings = settings or Settings()
        n = next(_names)
        if self.kind == "duckdb":
            path = self.tmp / f"warehouse{n}.duckdb"
            return Database("duckdb", f"duckdb:///{path}", settings)
        schema = schema or f"t{os.getpid()}_{n}"
        if self.kind == "clickhouse":
            assert self.ch is not None
            ch_execute(self.ch, f"DROP DATABASE IF EXISTS `{schema}`", f"CREATE DATABASE `{schema}`")
            url, kind = self.ch, "clickhouse"
        else:
            assert self.pg is not None
            pg_execute(self.pg, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE', f'CREATE SCHEMA "{schema}"')
            url, kind = self.pg, "postgres"
        self.schemas.append(schema)
        settings = settings.replace(
            payments_table=f"{schema}.{settings.payments_table.split('.')[-1]}",
            daily_table=f"{schema}.{settings.daily_table.split('.')[-1]}",
        )
        return Database(kind, url, settings, schema)

    def isolated(self, settings: Settings | None = None) -> Database:
        """A database of its own, tables under their bare names (PostgreSQL: a new database).

        For what shares state across schemas (the demo's paydash_meta table, the CLI's
        default table names), where a schema of the session database is not isolation enough.
        """
        if self.kind in ("duckdb", "clickhouse"):
            # ClickHouse: one chdb path (and default database) per process, so a database of
            # its own with every table qualified is the isolation there is
            return self.new(settings)
        assert self.pg is not None
        name = f"{sa.make_url(self.pg).database}_{next(_names)}"
        pg_execute(self.pg, f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return Database("postgres", sa.make_url(self.pg).set(database=name).render_as_string(False), settings or Settings())

    def build(self, rows: Iterable[dict[str, Any]], settings: Settings | None = None,
              daily: bool = True) -> Warehouse:
        """A read-only Warehouse over marts loaded with `rows` (the daily mart built by SQL)."""
        db = self.new(settings)
        writer = db.warehouse(read_only=False)
        try:
            load.recreate_marts(writer)
            table = rows_to_arrow(rows)
            if table.num_rows:
                load.load_arrow(writer, writer.marts.payments, table)
            if daily:
                with writer.write() as conn:
                    transforms.rebuild_daily_mart(conn, writer.marts)
        finally:
            writer.dispose()
        return self.track(db.warehouse())

    def track(self, wh: Warehouse) -> Warehouse:
        self.opened.append(wh)
        return wh

    def close(self) -> None:
        for wh in self.opened:
            wh.dispose()
        self.opened.clear()
        if self.ch and self.schemas:
            ch_execute(self.ch, *(f"DROP DATABASE IF EXISTS `{s}`" for s in self.schemas))
            self.schemas.clear()
        if self.pg and self.schemas:
            pg_execute(self.pg, *(f'DROP SCHEMA IF EXISTS "{s}" CASCADE' for s in self.schemas))
            self.schemas.clear()
        if self.pg and self.databases:
            pg_execute(self.pg, *(f'DROP DATABASE IF EXISTS "{d}" WITH (FORCE)' for d in self.databases))
            self.databases.clear()


def _factory(request, engine_kind: str, tmp: Path) -> DatabaseFactory:  # noqa: ANN001
    pg = request.getfixturevalue("pg_url") if engine_kind == "postgres" else None
    ch = f"chdb://{request.getfixturevalue('chdb_path')}" if engine_kind == "clickhouse" else None
    factory = DatabaseFactory(engine_kind, tmp, pg, ch)
    request.addfinalizer(factory.close)
    return factory


@pytest.fixture
def databases(request, engine_kind: str, tmp_path: Path) -> DatabaseFactory:  # noqa: ANN001
    """Factory of empty databases on the engine under test, cleaned up after the test."""
    return _factory(request, engine_kind, tmp_path)


@pytest.fixture(scope="module")
def module_databases(request, engine_kind: str, tmp_path_factory) -> DatabaseFactory:  # noqa: ANN001
    """The same, kept for a whole module (property tests share one loaded database)."""
    return _factory(request, engine_kind, tmp_path_factory.mktemp(f"{engine_kind}-module"))


@pytest.fixture
def new_database(databases: DatabaseFactory) -> Callable[..., Database]:
    """new_database(settings=None) -> an empty Database on the engine under test."""
    return databases.new


@pytest.fixture
def make_warehouse(databases: DatabaseFactory) -> Callable[..., Warehouse]:
    """make_warehouse(rows, settings=None, daily=True) -> read-only Warehouse over those rows."""
    return databases.build


@pytest.fixture(name="charge")
def charge_fixture() -> Callable[..., dict[str, Any]]:
    """charge(charge_id, created_at, status='succeeded', amount='10.00', **columns) -> a row."""
    return charge


# -- hermetic settings -------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _no_paydash_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's own PAYDASH_* variables must not change what the tests see."""
    for name in list(os.environ):
        if name.startswith("PAYDASH_") and name != "PAYDASH_TEST_PG":
            monkeypatch.delenv(name)


# -- loud skip ---------------------------------------------------------------------------
def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    message = _PG_STATE.get("skipped")
    if message:
        terminalreporter.write_sep("!", "POSTGRESQL TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(message, red=True, bold=True)

