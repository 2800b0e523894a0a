"""What the admin pages (System, Data explorer) read and do; data.py's companion for them.

Same rules as data.py: the engine comes from `data.warehouse` (one per configuration),
reads go through data.py's reading helper (so an unreachable database is said once, in the
page's banner), are cached with a lifetime and keyed by every parameter, and errors reach
the page as PaydashError messages through `data.section`. Below the app it reads only the
query layer (`paydash.queries.system`, `paydash.queries.admin`) and the engine. Health
checks and actions are not cached: they are the point of the page. Every admin action is written to the audit log.
"""

from __future__ import annotations

import logging
import platform
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

import streamlit as st

from paydash import health
from paydash.app import admin_tables, data
from paydash.errors import DatabaseUnreachable, PaydashError
from paydash.queries import admin as admin_queries
from paydash.queries import sync_health as sync_queries
from paydash.queries import system
from paydash.queries.dates import today_in
from paydash.settings import Settings
from paydash.state import audit, open_state
from paydash.warehouse.engine import Warehouse

log = logging.getLogger("paydash.app")
TTL = 300
# tables the planner estimates above this many rows (PostgreSQL) are shown with that
# estimate instead of an exact count(*) (which reads the whole table: ~1 s at 10M rows)
PG_EXACT_COUNT_LIMIT = 1_000_000


def audit_log(settings: Settings) -> audit.AuditLog:
    return open_state(settings).audit


def record(settings: Settings, username: str, action: str, detail: str = "") -> None:
    audit_log(settings).record(username, action, detail)


def export_recorder(settings: Settings, username: str, what: str) -> Callable[[], None]:
    """An `on_done` for a CSV download: writes the export to the audit log when the file is built."""
    return lambda: record(settings, username, audit.EXPORT, what)


# -- System: health --------------------------------------------------------------------------
@dataclass(frozen=True)
class DatabaseHealth:
    ok: bool
    ms: float | None
    dialect: str
    where: str
    version: str | None
    message: str
    unreachable: bool = False  # the page's banner says it (data.outage_banner)


def database_health(source: data.Source) -> DatabaseHealth:
    """Ping the warehouse through its pool (not cached: this is the health check)."""
    wh = data.warehouse(source)
    try:
        wh.ping()  # the first may open the pool's connection; the second is the response time
        ms = wh.ping() * 1000
        with data._read(source) as (_, conn):
            version = system.server_version(conn)
        return DatabaseHealth(True, ms, wh.dialect, wh.display_url, version, "")
    except DatabaseUnreachable as exc:
        data.unreachable(exc)
        return DatabaseHealth(False, None, wh.dialect, wh.display_url, None, str(exc), unreachable=True)
    except PaydashError as exc:
        return DatabaseHealth(False, None, wh.dialect, wh.display_url, None, str(exc))


def test_connection(source: data.Source) -> DatabaseHealth:
    """A brand-new connection (outside the pool): what a restarted server would see."""
    s = source.settings
    wh = Warehouse(s.database_url, s, read_only=True)
    try:
        started = time.perf_counter()
        wh.ping()
        ms = (time.perf_counter() - started) * 1000
        return DatabaseHealth(True, ms, wh.dialect, wh.display_url, None, "")
    except PaydashError as exc:
        return DatabaseHealth(False, None, wh.dialect, wh.display_url, None, str(exc),
                              unreachable=isinstance(exc, DatabaseUnreachable))
    finally:
        wh.dispose()


def redis_health(settings: Settings) -> health.RedisHealth | None:
    return health.redis_health(settings.redis_url) if settings.redis_url else None


# -- System: tables, growth, quality ------------------------------------------------------------
TableCount = system.TableCount


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=20)
def table_counts(source: data.Source) -> data.Loaded:
    wh = data._open(source)
    present = wh.table_names()
    with data._read(source) as (wh, conn):
        return data._loaded(system.table_counts(conn, admin_queries.paydash_tables(wh.marts), present,
                                                PG_EXACT_COUNT_LIMIT))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=20)
def growth(source: data.Source, today: date) -> data.Loaded:
    wh = data._open(source)
    # the customer-totals mart (customer_id, first_payment_at), where paydash built one
    totals = getattr(wh.marts, "customer_totals", None)
    first_payments = totals if totals is not None and wh.has_table(totals) else None
    with data._read(source) as (wh, conn):
        rows = system.growth(conn, wh.marts, today, source.timezone, first_payments=first_payments)
        return data._loaded((rows, first_payments is not None))


@st.cache_data(ttl=TTL, show_spinner=False, max_entries=40)
def quality(source: data.Source, today: date, days: int) -> data.Loaded:
    wh = data._open(source)
    daily = wh.has_table(wh.marts.daily)
    customers = wh.has_table(wh.marts.customers)
    with data._read(source) as (wh, conn):
        return data._loaded(system.quality(conn, wh.marts, today, source.timezone, days, daily_table=daily,
                                           customers_table=customers))


SYNC_TTL = 60  # the sync health is about minutes: read it again after one


@st.cache_data(ttl=SYNC_TTL, show_spinner=False, max_entries=20)
def sync_health(source: data.Source) -> data.Loaded:
    """The Stripe sync's health (queries/sync_health.py): problems, runs, cursors and counts, webhooks."""
    wh = data._open(source)
    tables = sync_queries.SyncTables.of(wh)
    scope = sync_queries.scope_of(wh, tables)
    with data._read(source) as (wh, conn):
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        return data._loaded(sync_queries.sync_health(conn, tables, scope, now))


def today(source: data.Source) -> date:
    return today_in(source.timezone)


def versions(db: DatabaseHealth) -> dict[str, str]:
    out = health.package_versions()
    out[f"database server ({db.dialect})"] = db.version or "unknown (not reachable)"
    return out


def slowest_queries(n: int = 20) -> list[admin_queries.TimedQuery]:
    return admin_queries.slowest_recent_queries(n)


def clear_caches() -> None:
    """Every cached read, and the engines (they reconnect on the next read)."""
    st.cache_data.clear()
    data.warehouse.clear()


# -- the system report ------------------------------------------------------------------------
def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def system_report(settings: Settings, source: data.Source, username: str) -> dict[str, Any]:
    """Everything the System page shows, as one document (for JSON / Markdown download)."""
    db = database_health(source)
    redis = redis_health(settings)
    report: dict[str, Any] = {
        "generated_at": datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0),
        "generated_by": username,
        "database": {"ok": db.ok, "response_ms": _ms(db.ms), "engine": db.dialect, "where": db.where,
                     "version": db.version, "problem": db.message},
        "redis": "not configured (PAYDASH_REDIS_URL)" if redis is None else
        {"ok": redis.ok, "response_ms": _ms(redis.ms), "where": redis.where, "version": redis.version, "problem": redis.message},
    }
    today_ = today(source)
    for key, read in (
        ("tables", lambda: [vars(c) for c in table_counts(source).value]),
        ("growth", lambda: growth(source, today_).value[0]),
        ("data_quality", lambda: quality(source, today_, system.QUALITY_DAYS).value),
        ("stripe_sync", lambda: sync_health(source).value),
    ):
        try:
            report[key] = read()
        except PaydashError as exc:
            report[key] = f"could not be read: {exc}"
    report["versions"] = versions(db)
    report["environment"] = health.environment(settings)
    report["slowest_recent_queries"] = [
        {"query": q.label, "ms": round(q.ms, 1), "at_utc": q.at, "statement": q.statement} for q in slowest_queries()
    ]
    report["host"] = {"python": platform.python_implementation(), "node": platform.node()}
    return report


# -- Data explorer ------------------------------------------------------------------------------
@st.cache_data(ttl=TTL, show_spinner=False, max_entries=20)
def catalog(source: data.Source) -> data.Loaded:
    with data._read(source) as (_, conn):
        return data._loaded(system.catalog(conn))


def saved_queries(settings: Settings) -> list[admin_queries.SavedQuery]:
    return admin_queries.saved_queries(settings.saved_queries_file)


def run_saved_query(settings: Settings, query: admin_queries.SavedQuery, username: str) -> admin_queries.QueryResult:
    """Run one saved query in the sandbox (never cached: an admin asked for it now); audited."""
    url = settings.explorer_database_url or settings.database_url
    try:
        result = admin_queries.run_saved_query(url, query.sql, settings.explorer_max_rows, settings.explorer_timeout,
                                               settings.connect_timeout)
    except PaydashError as exc:
        record(settings, username, audit.RUN_QUERY, f"{query.name}: refused: {exc}")
        raise
    record(settings, username, audit.RUN_QUERY,
           f"{query.name}: {len(result.rows)} rows{' (truncated)' if result.truncated else ''}, {result.elapsed_ms:.0f} ms")
    return result


def deferred_csv(build: Callable[[], bytes], what: str) -> Callable[[], bytes]:
    """A download callable whose unexpected errors become a user-facing message (runs off the page)."""

    def run() -> bytes:
        try:
            return build()
        except PaydashError:
            raise
        except Exception:
            log.exception("%s export failed", what)
            raise PaydashError("the export failed unexpectedly; the details are in the server log") from None

    return run


def csv_download(settings: Settings, username: str, df, name: str, key: str) -> None:  # noqa: ANN001
    """A CSV button for a shown table: the file is built when clicked, formula-safe, and the export audited."""

    def build() -> bytes:
        body = admin_tables.to_csv(df)
        record(settings, username, audit.EXPORT, f"{name} CSV, {len(df)} rows")
        return body

    st.download_button("CSV", data=deferred_csv(build, name), file_name=f"{name}-{date.today():%Y%m%d}.csv",
                       mime="text/csv", key=key, on_click="ignore", icon=":material/download:",
                       help=f"Download this table ({len(df)} rows)")
