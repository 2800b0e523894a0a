"""Engines, connections, timeouts and read-only sessions: all database I/O starts here.

`Warehouse` is the one object the rest of paydash talks to. `read()` hands out a
connection in a read-only session (DuckDB: a read-only file handle; PostgreSQL: a
read-only transaction); `write()` is for the loaders. Driver errors leave it translated
into `PaydashError`s whose message names the thing and the fix.

One embedded DuckDB file, one process: `paydash serve` with the webhook receiver holds the
file writable (the receiver's Warehouse) and reads it for the dashboard (a read-only
Warehouse) in the same process. DuckDB refuses two configurations of one file in one
process, so a read-only Warehouse opens a file that this process already holds writable
with the writer's configuration: it shares the writer's DuckDB instance (no second open of
the file, no lock between them). Its reads stay SELECT-only by construction: `write()`,
`write_connection()` and `session()` refuse on a read-only Warehouse, and the dashboard
only runs the query layer's SELECTs (and the sandbox, which checks its SQL) through `read()`.
"""

from __future__ import annotations

import atexit
import heapq
import io
import re
import threading
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.engine.url import URL, make_url

from paydash.errors import (
    ColumnMissing,
    ConfigError,
    DatabaseUnreachable,
    PaydashError,
    QueryTimeout,
    TableMissing,
)
from paydash.warehouse import dialects, querylog  # noqa: F401 - dialects: ClickHouse's compile hooks
from paydash.warehouse.clickhouse import (
    SESSION_SETTINGS,
    keep_microseconds,
    release_chdb_engine,
    shared_chdb_engine,
    tag_marts,
)
from paydash.warehouse.schema import Marts, display_name, marts_for

# Dialects whose driver raises OperationalError only when the server cannot be reached or refuses us
UNREACHABLE_ON_OPERATIONAL_ERROR = {"postgresql", "clickhouse"}

# The schema unqualified names resolve in, where it is not current_schema()
CURRENT_SCHEMA_SQL = {"clickhouse": "currentDatabase()"}

_PG_DRIVERS = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
# ClickHouse servers over HTTP(S), through clickhouse-connect's SQLAlchemy dialect
_CLICKHOUSE_HTTP = {"clickhouse", "clickhousedb", "clickhouse+http", "clickhousedb+http"}
_CLICKHOUSE_HTTPS = {"clickhouses", "clickhouse+https", "clickhousedb+https"}

# Embedded DuckDB files this process holds writable: path -> [writable engines open on it,
# the connect arguments they use]. A read-only Warehouse on such a file opens it with the same
# arguments (see the module docstring).
_duckdb_writers: dict[Path, list] = {}
_duckdb_writers_lock = threading.Lock()


def _register_duckdb_writer(path: Path, connect_args: dict) -> None:
    with _duckdb_writers_lock:
        entry = _duckdb_writers.setdefault(path, [0, connect_args])
        entry[0] += 1


def _unregister_duckdb_writer(path: Path) -> None:
    with _duckdb_writers_lock:
        entry = _duckdb_writers.get(path)
        if entry is not None:
            entry[0] -= 1
            if entry[0] <= 0:
                del _duckdb_writers[path]


def _duckdb_writer_args(path: Path) -> dict | None:
    """The connect arguments of this process's writable engine on `path`, if it has one."""
    with _duckdb_writers_lock:
        entry = _duckdb_writers.get(path)
        return dict(entry[1]) if entry is not None else None


def normalize_url(url_or_path: str, cwd: Path | None = None) -> str:
    """A SQLAlchemy URL from what a user typed: a URL, or the path of a DuckDB file.

    ClickHouse: `clickhouse://user:pass@host:8123/db` (also clickhousedb://; clickhouse+https://
    for TLS) becomes clickhouse-connect's `clickhousedb://...`; `chdb:///path` (embedded
    ClickHouse; a relative path is resolved like a DuckDB path) stays `chdb:///abs/path`.
    """
    text = str(url_or_path).strip()
    if not text:
        raise ConfigError("the database URL is empty; set PAYDASH_DATABASE_URL or pass --db")
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        return f"duckdb:///{path.resolve()}"
    scheme, rest = text.split("://", 1)
    if scheme in _PG_DRIVERS:
        return "postgresql+psycopg://" + rest
    if scheme in _CLICKHOUSE_HTTP or scheme in _CLICKHOUSE_HTTPS:
        if scheme in _CLICKHOUSE_HTTPS and "secure=" not in rest:
            rest += ("&" if "?" in rest else "?") + "secure=true"
        return "clickhousedb://" + rest
    if scheme == "chdb":
        location = rest.split("?")[0]
        if location in ("", "/", ":memory:", "/:memory:", "memory"):
            raise ConfigError(f"{text!r} names no chdb directory (an in-memory database holds no payments); give "
                              "one, e.g. chdb:///var/lib/paydash/clickhouse or chdb://data/clickhouse")
        if location.startswith("/"):
            path = Path("/" + location.lstrip("/"))  # chdb:///abs/path (and SQLAlchemy's chdb:////abs/path)
        else:
            path = (cwd or Path.cwd()) / location.lstrip("/")  # chdb://relative/path
        return f"chdb://{path.expanduser().resolve()}"
    if scheme == "duckdb":
        if rest.split("?")[0] in ("", "/", "/:memory:"):
            raise ConfigError(f"{text!r} names no DuckDB file (an in-memory database holds no payments); give the "
                              "path of a DuckDB file (e.g. data/paydash.duckdb) or a PostgreSQL URL")
        return text
    raise ConfigError(
        f"unsupported database URL scheme {scheme!r}; use postgresql://user@host:5432/db, "
        "clickhouse://user:pass@host:8123/db, chdb:///path/to/dir (embedded ClickHouse) "
        "or the path of a DuckDB file (e.g. data/paydash.duckdb)"
    )


# Engines paydash writes incrementally: the Stripe sync and the webhook receiver upsert raw
# objects and refresh the marts' rows in place. On ClickHouse that needs an append-and-collapse
# design (ReplacingMergeTree versions) paydash does not have; marts there come from a pipeline.
INCREMENTAL_WRITE_DIALECTS = frozenset({"duckdb", "postgresql"})


def require_incremental_writes(url_or_path: str, what: str) -> None:
    """Refuse, in one line saying what to do instead, to run `what` (the sync, the receiver)
    against an engine paydash does not write incrementally (ClickHouse)."""
    url = normalize_url(url_or_path)
    if Warehouse.dialect_of(url) in INCREMENTAL_WRITE_DIALECTS:
        return
    raise ConfigError(
        f"{what} cannot write to ClickHouse ({safe_url(url)}): paydash writes Stripe data incrementally only into "
        "DuckDB or PostgreSQL. On ClickHouse, build the data contract's marts with dbt or a ClickHouse pipeline and "
        "point paydash at them (docs/scaling.md), or run it against a DuckDB file or PostgreSQL"
    )


def safe_url(url: str) -> str:
    """The URL with any password hidden, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - never let a message fail
        return re.sub(r":[^:@/]+@", ":***@", url)


class Warehouse:
    """One database: its engine(s), the configured marts, and error translation."""

    def __init__(self, url_or_path: str, settings, read_only: bool = True, duckdb_memory_limit: str | None = None,
                 hold_duckdb_file: bool = True):
        self.settings = settings
        # False: every DuckDB connection is closed when returned, so the file's lock is
        # released between transactions, and opening waits while another process holds it
        # (how `paydash webhooks`, `sync` or `alerts` running as separate processes share one
        # file with `paydash serve`, PAYDASH_DUCKDB_SHARED; docs/stripe.md)
        self.hold_duckdb_file = hold_duckdb_file and not getattr(settings, "duckdb_shared", False)
        self.url = normalize_url(url_or_path)
        self.read_only = read_only
        # a streaming job (export) caps DuckDB's buffer pool so its memory stays flat
        self.duckdb_memory_limit = duckdb_memory_limit
        self.marts: Marts = marts_for(settings)
        self._engine: Engine | None = None
        self._registered_writer: Path | None = None  # the DuckDB file this Warehouse holds writable
        self._lock = threading.Lock()
        self._present: dict[str, tuple[bool, float]] = {}
        self._chdb_held: Path | None = None  # the chdb path whose shared engine this Warehouse uses
        tag_marts(self.marts)  # ClickHouse DDL finds each mart's options (warehouse/clickhouse.py)

    # -- identity -----------------------------------------------------------
    @property
    def dialect(self) -> str:
        return self.dialect_of(self.url)

    @staticmethod
    def dialect_of(url: str) -> str:
        """'duckdb', 'postgresql' or 'clickhouse', of a normalized URL."""
        if url.startswith("duckdb"):
            return "duckdb"
        if url.startswith(("chdb:", "clickhousedb:")):
            return "clickhouse"
        return "postgresql"

    @property
    def holds_embedded_file(self) -> bool:
        """Whether this Warehouse may keep a writer's connection open for a whole run: an embedded
        DuckDB file only this process writes (not PAYDASH_DUCKDB_SHARED). Elsewhere a long run lets
        its connection go between batches (a server's other writers; a shared file's other processes)."""
        return self.dialect == "duckdb" and not getattr(self.settings, "duckdb_shared", False)

    @property
    def chdb_path(self) -> Path | None:
        """The directory of an embedded ClickHouse (chdb) database, else None."""
        return Path(self.url[len("chdb://"):]) if self.url.startswith("chdb://") else None

    @property
    def display_url(self) -> str:
        return safe_url(self.url)

    @property
    def duckdb_path(self) -> Path | None:
        if self.dialect != "duckdb":
            return None
        database = make_url(self.url).database
        return None if database in (None, "", ":memory:") else Path(database)

    # -- engine ----------------------------------------------------------------
    @property
    def engine(self) -> Engine:
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = self._create_engine()
        return self._engine

    def _create_engine(self) -> Engine:
        if self.dialect == "clickhouse":
            return self._clickhouse_engine()
        engine = self._new_engine()
        querylog.install(engine)  # the System page's slowest recent queries
        return engine

    def _clickhouse_engine(self) -> Engine:
        """ClickHouse: a server's engine, or the process's shared engine on a chdb path. Naive
        timestamps are UTC (session_timezone); reads run with readonly=2; every statement has
        max_execution_time (per statement, so Warehouses sharing a chdb engine keep their own)."""
        s = self.settings
        path = self.chdb_path
        per_statement = {"max_execution_time": max(1, int(round(s.statement_timeout)))}
        if path is None:
            connect_args = {**SESSION_SETTINGS, "connect_timeout": s.connect_timeout}
            if self.read_only:
                connect_args["readonly"] = 2
            engine = keep_microseconds(sa.create_engine(self.url, connect_args=connect_args, pool_size=s.pool_size,
                                                        max_overflow=s.pool_size, pool_pre_ping=True, pool_recycle=1800))
            querylog.install(engine)
            return engine.execution_options(settings=per_statement)
        if self.read_only and not path.exists():
            raise DatabaseUnreachable(
                f"no ClickHouse (chdb) database at {path}; run `paydash demo --no-serve --db chdb://{path}` to "
                "build the demo, or set PAYDASH_DATABASE_URL / --db to your database"
            )

        def create(where: Path, read_only: bool) -> Engine:
            connect_args = {"interface": "chdb", "path": str(where), **SESSION_SETTINGS}
            if read_only:
                connect_args["readonly"] = 2
            return keep_microseconds(sa.create_engine("clickhousedb://", connect_args=connect_args,
                                                      pool_size=s.pool_size, max_overflow=s.pool_size))

        if not self.read_only:
            path.mkdir(parents=True, exist_ok=True)
        shared, _created = shared_chdb_engine(path, self.read_only, create)
        self._chdb_held = path
        engine = shared.execution_options(settings=per_statement)  # its own events, the shared pool
        querylog.install(engine)
        return engine

    def _new_engine(self) -> Engine:
        s = self.settings
        if self.dialect == "duckdb":
            path = self.duckdb_path
            if self.read_only and path is not None and not path.exists():
                raise DatabaseUnreachable(
                    f"no DuckDB database at {path}; run `paydash demo --no-serve` to build the demo, "
                    "or set PAYDASH_DATABASE_URL / --db to your database"
                )
            if path is not None and not self.read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            pooling = (
                {"pool_size": s.pool_size, "max_overflow": s.pool_size, "pool_pre_ping": True}
                if self.hold_duckdb_file else {"poolclass": sa.pool.NullPool}
            )
            connect_args = {
                "read_only": self.read_only,
                "config": {"memory_limit": self.duckdb_memory_limit} if self.duckdb_memory_limit else {},
            }
            shared = _duckdb_writer_args(path.resolve()) if path is not None and self.read_only else None
            if shared is not None:
                # this process holds the file writable: share that DuckDB instance (module docstring)
                connect_args = shared
            engine = sa.create_engine(self.url, connect_args=connect_args, **pooling)
            _install_duckdb_timeout(engine, s.statement_timeout)
            if path is not None and not self.read_only:
                self._registered_writer = path.resolve()
                _register_duckdb_writer(self._registered_writer, connect_args)
            return engine
        # JIT compilation costs seconds on these analytic queries and saves nothing at this
        # size (measured: 4 s of compile for a 0.3 s recovery query); sorts and hashes of a
        # month of payments fit in 64 MB instead of spilling.
        # psycopg prepares a statement on its 5th run, and PostgreSQL may then switch to a
        # generic plan that ignores the date bounds (measured: recovery 170 -> 430 ms);
        # force_custom_plan keeps planning with the actual values.
        options = (
            f"-c statement_timeout={int(s.statement_timeout * 1000)} -c jit=off -c work_mem=64MB"
            " -c plan_cache_mode=force_custom_plan"
        )
        if self.read_only:
            options += " -c default_transaction_read_only=on"
        return sa.create_engine(
            self.url,
            connect_args={
                "connect_timeout": s.connect_timeout,
                "options": options,
                "application_name": "paydash",
            },
            pool_size=s.pool_size,
            max_overflow=s.pool_size,
            pool_pre_ping=True,
            pool_recycle=1800,
        )

    def dispose(self) -> None:
        if self._chdb_held is not None:
            release_chdb_engine(self._chdb_held)  # the last user disposes of the shared engine
            self._chdb_held = None
            self._engine = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        if self._registered_writer is not None:
            _unregister_duckdb_writer(self._registered_writer)
            self._registered_writer = None

    # -- sessions ---------------------------------------------------------------
    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A connection for reading; errors come out as PaydashError."""
        with self.translate_errors():
            with self._connect() as conn:
                try:
                    yield conn
                finally:
                    conn.rollback()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection in a transaction, committed at the end (loaders only)."""
        if self.read_only:
            raise PaydashError("this warehouse was opened read-only; open it with read_only=False to load data")
        with self.translate_errors():
            with self._connect() as conn, conn.begin():
                yield conn

    def write_connection(self) -> Connection:
        """A connection for several short write transactions (`with conn.begin():` each), closed by
        the caller: the API sync commits a page at a time, and opening an embedded DuckDB file for
        each would cost more than the page."""
        if self.read_only:
            raise PaydashError("this warehouse was opened read-only; open it with read_only=False to load data")
        with self.translate_errors():
            return self._connect()

    @contextmanager
    def session(self) -> Iterator[Connection]:
        """`write_connection` as a context: several transactions (`with conn.begin(): ...` each) on
        one connection, so on a shared DuckDB file one open of the file for all of them."""
        with self.translate_errors():
            with self.write_connection() as conn:
                yield conn

    def _connect(self) -> Connection:
        """A connection; on a shared DuckDB file, waits up to PAYDASH_WRITE_LOCK_WAIT for its lock."""
        if self.dialect != "duckdb" or self.hold_duckdb_file:
            return self.engine.connect()
        deadline = time.monotonic() + self.settings.write_lock_wait
        delay = 0.02
        while True:
            try:
                return self.engine.connect()
            except Exception as exc:  # noqa: BLE001 - only the lock of another process is retried
                if not _is_lock_conflict(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def conversion_rates(self) -> dict[str, float]:
        """USD per unit of each currency amount_usd was converted at (load.conversion_rates)."""
        from paydash.warehouse.load import conversion_rates

        return conversion_rates(self)

    def has_table(self, table: sa.Table, max_age: float = 60.0) -> bool:
        """Whether `table` exists (looked up at most once a minute: optional marts come and go rarely)."""
        now = time.monotonic()
        cached = self._present.get(table.key)
        if cached is None or now - cached[1] > max_age:
            cached = (display_name(table) in self.table_names(), now)
            self._present[table.key] = cached
        return cached[0]

    def has_rollup(self, max_age: float = 60.0) -> bool:
        """Whether paydash's rollup marts are there (all three: warehouse/rollup.py), so the queries
        that can read them do (looked up at most once a minute, like has_table)."""
        tables = self.marts.rollups
        return len(tables) == 3 and all(self.has_table(t, max_age) for t in tables)

    def has_id_sketches(self) -> bool:
        """Whether a search for part of an id should test the charge mart's id sketches first
        (paydash/warehouse/id_sketch.py): the mart has them and this engine gains from them."""
        from paydash.warehouse.id_sketch import SKETCH_COLUMNS, SKETCH_SEARCH_DIALECTS

        return self.dialect in SKETCH_SEARCH_DIALECTS and all(
            self.has_column(self.marts.payments, column) for column in SKETCH_COLUMNS.values()
        )

    def has_column(self, table: sa.Table, column: str, max_age: float = 60.0) -> bool:
        """Whether `table` has `column` (an optional one, e.g. the charge mart's card_last4;
        looked up at most once a minute, like has_table)."""
        now = time.monotonic()
        key = f"{table.key}.{column}"
        cached = self._present.get(key)
        if cached is None or now - cached[1] > max_age:
            cached = (column in self.columns_of(table), now)
            self._present[key] = cached
        return cached[0]

    def ping(self) -> float:
        """Seconds a trivial query takes; raises DatabaseUnreachable when it cannot."""
        started = time.perf_counter()
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1")).scalar_one()
        return time.perf_counter() - started

    def table_names(self) -> set[str]:
        """Tables present: bare names in the current schema, schema.name for the others."""
        stmt = sa.text(
            f"SELECT table_schema, table_name, table_schema = {self._current_schema} AS is_current "
            "FROM information_schema.tables"
        )
        with self.read() as conn:
            found = set()
            for schema, name, is_current in conn.execute(stmt):
                found.add(f"{schema}.{name}")
                if is_current:
                    found.add(name)
        return found

    def columns_of(self, table: sa.Table) -> dict[str, str]:
        """Column name -> type of a table (information_schema: reflection is broken on duckdb-engine)."""
        schema_test = "table_schema = :schema" if table.schema else f"table_schema = {self._current_schema}"
        stmt = sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            f"WHERE table_name = :name AND {schema_test} ORDER BY ordinal_position"
        )
        params = {"name": table.name, **({"schema": table.schema} if table.schema else {})}
        with self.read() as conn:
            return {name: str(kind) for name, kind in conn.execute(stmt, params)}

    @property
    def _current_schema(self) -> str:
        """SQL for the schema (ClickHouse: database) unqualified names resolve in."""
        return CURRENT_SCHEMA_SQL.get(self.dialect, "current_schema()")

    def copy_csv(self, conn: Connection, stmt: sa.Select, write, header: bool = True, chunk_rows: int = 10_000) -> None:  # noqa: ANN001
        """Stream `stmt`'s result as CSV (with a header line unless header=False) to `write(bytes)`.

        The database does the work: DuckDB hands over Arrow record batches for pyarrow's CSV
        writer, PostgreSQL runs COPY ... TO STDOUT. Memory stays flat however many rows.
        """
        # IN lists are "expanding" parameters, filled in at execution; these paths hand the SQL text
        # to the driver themselves, so the lists are rendered into one parameter per value here
        compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
        dbapi = conn.connection.dbapi_connection
        if self.dialect == "clickhouse":
            _copy_csv_clickhouse(dbapi.client, compiled, [c.name for c in stmt.selected_columns], write, header)
            return
        if self.dialect == "duckdb":
            params = [compiled.params[name] for name in (compiled.positiontup or [])]
            # duckdb 2.0 refuses new work while an earlier result on this pooled connection is
            # unread (the pool's pre-ping leaves one); finishing a statement clears the way
            dbapi.execute("SELECT 1").fetchall()
            # a lazy relation streams record batches; a DB-API result would copy every row first
            reader = dbapi.sql(str(compiled), params=params).to_arrow_reader(chunk_rows)
            try:
                if header:
                    write((",".join(reader.schema.names) + "\n").encode())
                options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
                for batch in reader:
                    buffer = io.BytesIO()
                    pacsv.write_csv(batch, buffer, options)
                    write(buffer.getvalue())
            finally:
                reader.close()
            return
        with dbapi.cursor() as cur:
            with cur.copy(f"COPY ({compiled.string}) TO STDOUT WITH (FORMAT csv, HEADER {str(header).lower()})", compiled.params) as copy:
                for data in copy:
                    write(bytes(data))

    # -- errors ----------------------------------------------------------------
    @contextmanager
    def translate_errors(self) -> Iterator[None]:
        try:
            yield
        except PaydashError:
            raise
        except sa.exc.DBAPIError as exc:
            raise self.explain(exc) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise PaydashError(f"database error on {self.display_url}: {_first_line(exc)}") from exc
        except Exception as exc:
            # duckdb raises its own exceptions outside SQLAlchemy in a few paths; so do
            # clickhouse-connect's client (Arrow loads, streamed CSV) and chdb
            module = type(exc).__module__
            if "duckdb" in module or module.startswith(("clickhouse_connect", "chdb")):
                raise self.explain(exc) from exc
            raise

    def explain(self, exc: BaseException) -> PaydashError:
        orig = getattr(exc, "orig", None) or exc
        message = _first_line(orig)
        kind = type(orig).__name__
        lowered = message.lower()
        database = re.search(r"Database `?(\w+)`? does not exist", message)  # ClickHouse: a qualified name's schema
        if database is not None:
            return TableMissing(
                f"database {database.group(1)} not found in {self.display_url}, so neither are the tables "
                "configured in it; check the database of PAYDASH_DATABASE_URL (or --db) and the schema of "
                "PAYDASH_PAYMENTS_TABLE and the other table settings, or run `paydash check`"
            )
        table = _missing_table(message)
        if table is not None:
            return TableMissing(self._table_hint(table))
        column = _missing_column(message)
        if column is not None:
            return ColumnMissing(
                f"column {column!r} is missing from a paydash table in {self.display_url}: "
                f"{message}. Run `paydash check` to see what the data contract expects."
            )
        if (kind in {"QueryCanceled", "InterruptException"} or "statement timeout" in lowered or "interrupted" in lowered
                or "timeout_exceeded" in lowered or "timeout exceeded" in lowered):
            return QueryTimeout(
                f"a query ran longer than {self.settings.statement_timeout} s and was cancelled; "
                "narrow the date range or filters, or raise PAYDASH_STATEMENT_TIMEOUT"
            )
        if "in readonly mode" in lowered:  # ClickHouse, a read session (readonly=2)
            return PaydashError(f"this connection to {self.display_url} is read-only, so the database refused: {message}")
        if "could not set lock" in lowered or "conflicting lock" in lowered:
            return DatabaseUnreachable(
                f"the DuckDB file {self.duckdb_path} is locked by another process that is writing "
                "to it (`paydash demo` building it, `paydash sync`, or `paydash serve` receiving Stripe webhooks "
                "into it, which keeps it open); wait for it to finish, or stop it, and try again (docs/stripe.md)"
            )
        unreachable = ("could not connect", "connection refused", "connection failed", "cannot open", "no such file",
                       "could not translate host", "server closed the connection", "terminating connection",
                       "password authentication failed", "does not exist\n", "timeout expired",
                       "authentication failed", "max retries exceeded", "name or service not known")
        if (kind == "OperationalError" and self.dialect in UNREACHABLE_ON_OPERATIONAL_ERROR) or any(u in lowered for u in unreachable):
            return DatabaseUnreachable(
                f"cannot reach the database at {self.display_url}: {message}. Check "
                "PAYDASH_DATABASE_URL (or --db) and that the server is running."
            )
        return PaydashError(f"database error on {self.display_url}: {message}")

    def _table_hint(self, missing: str) -> str:
        for table, env in ((self.marts.payments, "PAYDASH_PAYMENTS_TABLE"), (self.marts.daily, "PAYDASH_DAILY_TABLE")):
            if missing.split(".")[-1] == table.name:
                return (
                    f"table {display_name(table)} not found in {self.display_url}; set {env} "
                    "to where your mart lives, or run `paydash demo --no-serve` to build demo data"
                )
        return f"table {missing} not found in {self.display_url}; run `paydash check` to see what is missing"


def _copy_csv_clickhouse(client, compiled, names: list[str], write, header: bool) -> None:  # noqa: ANN001
    """ClickHouse's result as CSV, a block at a time: Native blocks stream from the server (or
    chdb) while the next is read, and pyarrow's CSV writer spells them exactly as the DuckDB
    path does (quotes only where needed, NULL empty). Raw CSV output would differ: ClickHouse
    quotes every string and writes NULL as \\N."""
    from clickhouse_connect.driver.binding import DT64Param

    # microseconds survive the binding only as DateTime64 parameters
    params = {k: DT64Param(v) if isinstance(v, datetime) and v.microsecond else v for k, v in compiled.params.items()}
    if header:
        write((",".join(names) + "\n").encode())
    options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
    with client.query_column_block_stream(compiled.string, parameters=params) as blocks:
        for block in blocks:
            buffer = io.BytesIO()
            pacsv.write_csv(pa.table([pa.array(values) for values in block], names=names), buffer, options)
            write(buffer.getvalue())


def _is_lock_conflict(exc: BaseException) -> bool:
    message = _first_line(getattr(exc, "orig", None) or exc).lower()
    return "could not set lock" in message or "conflicting lock" in message


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return re.sub(r"^\([^)]*\)\s*", "", line)


def _missing_table(message: str) -> str | None:
    for pattern in (
        r'relation "([^"]+)" does not exist',
        r"Table with name ([\w.$]+) does not exist",
        r'Table with name "?([\w.$]+)"? does not exist',
        r"Unknown table expression identifier '([^']+)'",  # ClickHouse
        r"Table `?([\w.$]+?)`? does not exist",  # ClickHouse (UNKNOWN_TABLE)
    ):
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    return None


def _missing_column(message: str) -> str | None:
    for pattern in (
        r'column "?([\w.]+)"? does not exist',
        r'Referenced column "([^"]+)" not found',
        r'column "([^"]+)" not found',
        r'does not have a column named "([^"]+)"',  # duckdb 2.0
        r"Unknown expression (?:or function )?identifier `([^`]+)`",  # ClickHouse (UNKNOWN_IDENTIFIER)
        r"Identifier '(?:[\w$]+\.)*([\w$]+)' cannot be resolved",  # ClickHouse 26 (UNKNOWN_IDENTIFIER)
        r"No such column `?([\w.]+?)`? in table",  # ClickHouse (NO_SUCH_COLUMN_IN_TABLE)
        r"Missing columns: '([^']+)'",  # older ClickHouse
    ):
        m = re.search(pattern, message)
        if m:
            return m.group(1)
    return None


class _Watchdog:
    """Interrupts DuckDB statements that outlive their deadline: one thread for the process.

    A `threading.Timer` per statement started a thread per statement, which cost the served
    webhook receiver's writer thread a tenth of its time (profiled with py-spy); arming and
    disarming here is a heap push and a dict pop under a lock.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int]] = []
        self._armed: dict[int, object] = {}
        self._next = 0
        self._thread: threading.Thread | None = None
        self._stopping = False

    def arm(self, seconds: float, raw) -> int:  # noqa: ANN001 - a DuckDB connection
        with self._cond:
            self._next += 1
            ticket = self._next
            self._armed[ticket] = raw
            heapq.heappush(self._heap, (time.monotonic() + seconds, ticket))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="paydash-duckdb-timeouts", daemon=True)
                self._thread.start()
            elif self._heap[0][1] == ticket:
                self._cond.notify()
            return ticket

    def disarm(self, ticket: int) -> None:
        with self._cond:
            self._armed.pop(ticket, None)

    def stop(self) -> None:
        """End the thread (at exit: a thread left waiting keeps DuckDB's objects from being freed)."""
        with self._cond:
            thread, self._thread = self._thread, None
            self._stopping = True
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2)
        with self._cond:
            self._stopping = False

    def _run(self) -> None:
        while not self._stopping:
            with self._cond:
                while self._heap and self._heap[0][1] not in self._armed:
                    heapq.heappop(self._heap)  # finished in time
                if self._stopping:
                    return
                if not self._heap:
                    self._cond.wait()
                    continue
                deadline, ticket = self._heap[0]
                wait = deadline - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                heapq.heappop(self._heap)
                raw = self._armed.pop(ticket, None)
            if raw is not None:
                _interrupt(raw)
            raw = None  # hold no connection while waiting: it must be free to close


_watchdog = _Watchdog()
atexit.register(_watchdog.stop)


def _install_duckdb_timeout(engine: Engine, seconds: float) -> None:
    """DuckDB has no statement_timeout: interrupt the connection from a watchdog thread instead."""

    @event.listens_for(engine, "before_cursor_execute")
    def _start(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info["paydash_timer"] = _watchdog.arm(seconds, conn.connection.dbapi_connection)

    def _stop(conn) -> None:  # noqa: ANN001
        ticket = conn.info.pop("paydash_timer", None)
        if ticket is not None:
            _watchdog.disarm(ticket)

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        _stop(conn)

    @event.listens_for(engine, "handle_error")
    def _error(context):  # noqa: ANN001
        if context.connection is not None:
            _stop(context.connection)


def _interrupt(raw) -> None:  # noqa: ANN001
    try:
        raw.interrupt()
    except Exception:  # noqa: BLE001 - the statement may have just finished
        pass
