"""Saved queries of the Data explorer, run read-only with row and time limits the database enforces.

Nothing here parses or inspects the SQL: the database itself refuses what a saved query
may not do.

DuckDB: a fresh in-memory DuckDB instance per run ATTACHes the warehouse file READ_ONLY
and makes it the default database, then sets `enable_external_access=false` (no files,
no network, no extensions, no ATTACH) and `lock_configuration=true` (no SET can undo it).
A separate instance, not a second `duckdb.connect(file)`: DuckDB refuses to open a file a
second time in one process with another configuration than the dashboard's own
connections (STACK-NOTES). The time limit is the interrupt of engine.py (a timer calls
`interrupt()`); the instance is thrown away after the run, with whatever it held.

PostgreSQL: a connection of its own (closed after the run, so no session setting
survives it) opened with `default_transaction_read_only=on` and `statement_timeout`,
a transaction made `READ ONLY` before anything runs, and the query run through a
server-side cursor: `DECLARE ... CURSOR FOR <sql>` sent with the extended protocol, so
the server takes exactly one statement, and only a SELECT / VALUES / TABLE without
data-modifying WITH. A login role that is superuser or may read or write server files
or run programs is refused up front, since a read-only transaction does not stop those
(`pg_read_file`, `lo_import`); give the explorer a plain read-only role
(PAYDASH_EXPLORER_DATABASE_URL, docs/admin.md).

The row limit: at most max_rows + 1 rows are fetched (PostgreSQL: FETCH FORWARD; DuckDB
streams), and the result says whether there were more.
"""

from __future__ import annotations

import threading
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine.url import make_url

from paydash.errors import ConfigError, DatabaseUnreachable, PaydashError, QueryTimeout
from paydash.warehouse.engine import normalize_url, safe_url

DUCKDB_MEMORY_LIMIT = "1GB"
DUCKDB_THREADS = 2


class QueryRefused(PaydashError):
    """The database refused a saved query (a write, file access, a setting, not a single SELECT ...)."""


# -- saved queries -------------------------------------------------------------------------
# A few saved queries that run on both engines (tested); `paydash demo` serves them when no
# queries file of the team's exists, and teams copy them to start their own.
EXAMPLE_QUERIES = Path(__file__).with_name("example_queries.toml")


@dataclass(frozen=True)
class SavedQuery:
    name: str
    description: str
    sql: str


def load_saved_queries(path: Path) -> list[SavedQuery]:
    """The saved queries of a TOML file ([[query]] tables: name, description, sql); none if it is missing."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigError(f"cannot read the saved queries file {path}: {exc.strerror}; check PAYDASH_SAVED_QUERIES_FILE")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"the saved queries file {path} is not valid TOML ({exc}); fix it (docs/admin.md shows an example)")
    entries = data.get("query", [])
    if not isinstance(entries, list):
        raise ConfigError(f"the saved queries file {path} must hold [[query]] tables (docs/admin.md shows an example)")
    queries: list[SavedQuery] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"query {i} of {path} is not a table; write it as [[query]] with name, description and sql")
        name, sql = entry.get("name"), entry.get("sql")
        description = entry.get("description", "")
        if not isinstance(name, str) or not name.strip():
            raise ConfigError(f"query {i} of {path} has no name; give each [[query]] a name = \"...\"")
        if not isinstance(sql, str) or not sql.strip():
            raise ConfigError(f"query {name!r} of {path} has no sql; give it sql = \"\"\"SELECT ...\"\"\"")
        if not isinstance(description, str):
            raise ConfigError(f"the description of query {name!r} of {path} must be text")
        if name.strip() in seen:
            raise ConfigError(f"{path} has two queries named {name.strip()!r}; names must be unique")
        seen.add(name.strip())
        queries.append(SavedQuery(name.strip(), description.strip(), sql.strip()))
    return queries


# -- running one -----------------------------------------------------------------------------
@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    truncated: bool  # the query had more than max_rows rows; only the first max_rows are here
    max_rows: int
    elapsed_ms: float


def run_read_only(url_or_path: str, sql: str, max_rows: int, timeout: float, connect_timeout: float = 5) -> QueryResult:
    """Run `sql` read-only on the database at `url_or_path`; QueryRefused / QueryTimeout say why not."""
    url = normalize_url(url_or_path)
    started = time.perf_counter()
    if url.startswith("duckdb"):
        columns, rows = _run_duckdb(url, sql, max_rows, timeout)
    elif url.startswith(("chdb:", "clickhousedb:")):
        # not yet: its guarantees (no file or network table functions, rows and time capped by the
        # server) need ClickHouse's own settings profile, which is not built
        raise QueryRefused(
            f"the Data explorer's saved queries run on DuckDB and PostgreSQL, not yet on ClickHouse ({safe_url(url)}); "
            "run them with clickhouse-client as a read-only user, or point PAYDASH_EXPLORER_DATABASE_URL at a "
            "DuckDB or PostgreSQL copy (docs/scaling.md)"
        )
    else:
        columns, rows = _run_postgres(url, sql, max_rows, timeout, connect_timeout)
    truncated = len(rows) > max_rows
    return QueryResult(columns, rows[:max_rows], truncated, max_rows, (time.perf_counter() - started) * 1000)


def _refused(message: str) -> QueryRefused:
    return QueryRefused(
        f"the database refused this query: {message.rstrip('.! ')}. Saved queries run read-only: one SELECT, "
        "no writes, no file or network access, no setting changes (docs/admin.md)."
    )


def _timed_out(timeout: float) -> QueryTimeout:
    return QueryTimeout(
        f"the query ran longer than {timeout:g} s and the database cancelled it; narrow it "
        "(a date range, a LIMIT) or raise PAYDASH_EXPLORER_TIMEOUT"
    )


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


# -- DuckDB ------------------------------------------------------------------------------------
def _run_duckdb(url: str, sql: str, max_rows: int, timeout: float) -> tuple[list[str], list[tuple]]:
    import duckdb

    database = make_url(url).database
    if not database or database == ":memory:":
        raise ConfigError("the Data explorer needs a DuckDB file (or PostgreSQL); an in-memory database cannot be shared")
    path = Path(database)
    if not path.exists():
        raise DatabaseUnreachable(f"no DuckDB database at {path}; check PAYDASH_DATABASE_URL")
    con = duckdb.connect(":memory:", config={
        "threads": DUCKDB_THREADS,
        "memory_limit": DUCKDB_MEMORY_LIMIT,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    })
    try:
        literal = "'" + str(path).replace("'", "''") + "'"
        try:
            con.execute(f"ATTACH {literal} AS warehouse (READ_ONLY)")
        except duckdb.Error as exc:
            message = _first_line(exc)
            if "already attached" in message.lower():
                # this very process holds the file writable: `paydash serve` receiving webhooks into it
                raise DatabaseUnreachable(
                    f"saved queries cannot run on {path} while this paydash serve receives Stripe webhooks into it "
                    "(the file is open for writing in this process, and a saved query gets a read-only copy of its "
                    "own); run them where the warehouse is PostgreSQL (PAYDASH_EXPLORER_DATABASE_URL can name a "
                    "read-only replica), or on a dashboard without the receiver"
                ) from None
            if "lock" in message.lower():
                raise DatabaseUnreachable(
                    f"the DuckDB file {path} is locked by another process that is writing to it; try again when it is done"
                ) from None
            raise DatabaseUnreachable(f"cannot open the DuckDB file {path}: {message}") from None
        con.execute("USE warehouse")
        # after the ATTACH (which needs file access), and locked so no statement can undo it
        con.execute("SET enable_external_access = false")
        con.execute("SET python_enable_replacements = false")
        con.execute("SET lock_configuration = true")
        timer = threading.Timer(timeout, _interrupt, args=(con,))
        timer.daemon = True
        timer.start()
        try:
            cursor = con.execute(sql)
            if cursor.description is None:
                return [], []
            columns = [d[0] for d in cursor.description]
            rows = cursor.fetchmany(max_rows + 1)
        except duckdb.InterruptException:
            raise _timed_out(timeout) from None
        except duckdb.Error as exc:
            raise _refused(_first_line(exc)) from None
        finally:
            timer.cancel()
        return columns, [tuple(r) for r in rows]
    finally:
        con.close()


def _interrupt(con) -> None:  # noqa: ANN001
    try:
        con.interrupt()
    except Exception:  # noqa: BLE001 - the query may have just finished
        pass


# -- PostgreSQL -------------------------------------------------------------------------------
# A login role that can read server files, write them, run programs, or become a superuser
# gets around a read-only transaction; the explorer refuses to run as one.
_PRIVILEGED = """
SELECT r.rolsuper
    OR pg_has_role(session_user, 'pg_read_server_files', 'MEMBER')
    OR pg_has_role(session_user, 'pg_write_server_files', 'MEMBER')
    OR pg_has_role(session_user, 'pg_execute_server_program', 'MEMBER')
    OR EXISTS (SELECT 1 FROM pg_roles s WHERE s.rolsuper AND pg_has_role(session_user, s.oid, 'MEMBER'))
FROM pg_roles r WHERE r.rolname = session_user
"""


def _run_postgres(url: str, sql: str, max_rows: int, timeout: float, connect_timeout: float) -> tuple[list[str], list[tuple]]:
    import psycopg

    conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    options = (f"-c default_transaction_read_only=on -c statement_timeout={int(timeout * 1000)} "
               f"-c idle_in_transaction_session_timeout={int(timeout * 1000) + 5000} -c jit=off")
    try:
        conn = psycopg.connect(conninfo, options=options, connect_timeout=int(connect_timeout),
                               application_name="paydash-explorer", autocommit=False)
    except psycopg.Error as exc:
        raise DatabaseUnreachable(
            f"cannot reach the database at {safe_url(url)}: {_first_line(exc)}. Check PAYDASH_EXPLORER_DATABASE_URL "
            "(or PAYDASH_DATABASE_URL) and that the server is running."
        ) from None
    try:
        conn.execute("SET TRANSACTION READ ONLY")  # the first statement of the transaction
        user, privileged = conn.execute(f"SELECT session_user, ({_PRIVILEGED})").fetchone()
        if privileged:
            raise QueryRefused(
                f"the Data explorer does not run queries as the PostgreSQL role {user!r}: it is a superuser or may "
                "read or write server files or run programs, which a read-only transaction does not stop. Set "
                "PAYDASH_EXPLORER_DATABASE_URL to a role with SELECT rights only (docs/admin.md shows how)."
            )
        try:
            with conn.cursor(name="paydash_explorer") as cursor:
                cursor.execute(sql)  # DECLARE ... CURSOR FOR <sql>: one statement, a query only
                rows = cursor.fetchmany(max_rows + 1)
                columns = [d.name for d in cursor.description or []]
        except psycopg.errors.QueryCanceled:
            raise _timed_out(timeout) from None
        except psycopg.Error as exc:
            raise _refused(_first_line(exc)) from None
        return columns, [tuple(r) for r in rows]
    finally:
        try:
            conn.rollback()
        finally:
            conn.close()
