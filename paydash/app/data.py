"""Everything the pages read, and the only module of the app that calls the query layer.

- the settings are the WHOLE settings: what `paydash serve` configured (`app.served`), else
  loaded from the environment; never rebuilt from a hand-picked subset;
- one `Warehouse` per configuration, built from those settings and shared by every session
  (`st.cache_resource`);
- every read cached with a lifetime (`st.cache_data`, PAYDASH_CACHE_TTL_OVERVIEW /
  PAYDASH_CACHE_TTL_EXPLORER) and keyed by all of its parameters, the configuration included;
- `section()` turns a failure into a clear message in the part of the page it affects,
  so the rest of the page still renders and no stack trace reaches the user;
- an unreachable database is said once, in one banner at the top of the page
  (`outage_banner`), not in every section.

Errors are not cached, so a page works again as soon as the database is back.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from paydash.app import served
from paydash.app import format as fmt
from paydash.app.format import md_escape
from paydash.errors import ConfigError, DatabaseUnreachable, PaydashError
from paydash.queries import customers, failures, operations, overview, payments, promotions, recovery
from paydash.queries.dates import DateRange, today_in
from paydash.queries.filters import PaymentFilters, PaymentSort
from paydash.queries.system import table_name
from paydash.settings import BY_NAME, SETTINGS, Settings, load_settings
from paydash.warehouse.engine import Warehouse

log = logging.getLogger("paydash.app")


def settings() -> Settings:
    """The current settings, whole: what `paydash serve` configured, else the environment's.

    A broken configuration stops the page with its message."""
    configured = served.current()
    if configured is not None:
        return configured
    try:
        return load_settings()
    except ConfigError as exc:
        st.error(f"paydash is not configured correctly: {md_escape(exc)}")
        st.stop()
        raise  # unreachable: st.stop() raises


def _ttl(name: str) -> int:
    # TTLs are fixed when the module is imported, i.e. at server start.
    try:
        return int(getattr(served.current() or load_settings(), name))
    except ConfigError:
        return int(BY_NAME[name].default)


TTL_OVERVIEW = _ttl("cache_ttl_overview")
TTL_EXPLORER = _ttl("cache_ttl_explorer")


# -- the configuration a page reads ---------------------------------------------------------
_CONFIGURATIONS: dict[str, Settings] = {}
_CONFIGURATIONS_LOCK = threading.Lock()


def fingerprint(s: Settings) -> str:
    """A digest of every setting's value (defaults included): equal settings, equal fingerprint."""
    items = repr([(setting.name, getattr(s, setting.name)) for setting in SETTINGS])
    return hashlib.sha256(items.encode()).hexdigest()


@dataclass(frozen=True)
class Source:
    """The configuration a page reads: a fingerprint of the WHOLE settings (hashable, part of
    every cache key, no secret in clear), standing for the real `Settings` object it came from,
    which builds the `Warehouse`."""

    key: str

    @classmethod
    def from_settings(cls, s: Settings) -> "Source":
        key = fingerprint(s)
        with _CONFIGURATIONS_LOCK:
            _CONFIGURATIONS.setdefault(key, s)
        return cls(key)

    @property
    def settings(self) -> Settings:
        return _CONFIGURATIONS[self.key]

    @property
    def timezone(self) -> str:
        return self.settings.timezone


@dataclass(frozen=True)
class Loaded:
    """A query result and when it was read from the database."""

    value: Any
    loaded_at: datetime


def _loaded(value: Any) -> Loaded:
    return Loaded(value, datetime.now(timezone.utc))


def _release(wh: Warehouse) -> None:
    wh.dispose()


# on_release closes the pool when the cache lets the engine go (st.cache_resource.clear())
@st.cache_resource(show_spinner=False, on_release=_release)
def warehouse(source: Source) -> Warehouse:
    s = source.settings
    return Warehouse(s.database_url, s, read_only=True)


def _open(source: Source) -> Warehouse:
    """The warehouse of `source`; when this page run already found its database unreachable,
    the same error at once (the next section does not wait for another connection timeout)."""
    wh = warehouse(source)
    banner = _banner()
    if banner is not None and banner.reason and banner.where == wh.display_url:
        raise DatabaseUnreachable(banner.reason)
    return wh


@contextmanager
def _read(source: Source) -> Iterator[tuple[Warehouse, Any]]:
    """(warehouse, connection) for one read; keeps the database's outage record up to date."""
    wh = _open(source)
    try:
        with wh.read() as conn:
            yield wh, conn
    except DatabaseUnreachable:
        _went_down(wh.display_url)
        raise
    _came_back(wh.display_url)


# -- Overview ---------------------------------------------------------------------------
@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def overview_totals(source: Source, start: date, end: date, funnel: str | None, until: datetime | None = None) -> Loaded:
    """The range and its previous period; `until` (naive UTC, in the range) cuts both: today so far."""
    with _read(source) as (wh, conn):
        rng = DateRange(start, end, source.timezone)
        present = optional_marts(source)
        return _loaded(overview.overview(conn, wh.marts, rng, funnel, mart_tz=source.timezone, now=until,
                                         with_refunds=present["refunds"], with_disputes=present["disputes"],
                                         rollup=present["rollup"]))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def daily_series(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    rolled = _open(source).has_rollup()
    with _read(source) as (wh, conn):
        rng = DateRange(start, end, source.timezone)
        return _loaded(overview.daily_series(conn, wh.marts, rng, funnel, mart_tz=source.timezone, rollup=rolled))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def failure_breakdown(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    rolled = _open(source).has_rollup()
    with _read(source) as (wh, conn):
        return _loaded(failures.failure_breakdown(conn, wh.marts, DateRange(start, end, source.timezone), funnel,
                                                  rollup=rolled))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def recovery_trend(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    wh = _open(source)
    precomputed = wh.has_table(wh.marts.first_failures)
    with _read(source) as (wh, conn):
        return _loaded(recovery.recovery(conn, wh.marts, DateRange(start, end, source.timezone), funnel, precomputed,
                                         mart_tz=source.timezone, rollup=wh.has_rollup()))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=100)
def funnel_names(source: Source) -> Loaded:
    with _read(source) as (wh, conn):
        return _loaded(overview.funnels(conn, wh.marts))


OVERVIEW_READS = (overview_totals, daily_series, failure_breakdown, recovery_trend, funnel_names)


def refresh_overview() -> None:
    for read in OVERVIEW_READS:
        read.clear()


# -- Payments explorer --------------------------------------------------------------------
@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=100)
def filter_options(source: Source) -> Loaded:
    rolled = _open(source).has_rollup()
    with _read(source) as (wh, conn):
        return _loaded(payments.filter_options(conn, wh.marts, rollup=rolled))


def search_scope(wh: Warehouse) -> payments.SearchScope:
    """What this warehouse has that a search can use (looked up at most once a minute)."""
    return payments.SearchScope(customers=wh.has_table(wh.marts.customers),
                                card_last4=wh.has_column(wh.marts.payments, "card_last4"),
                                id_sketches=wh.has_id_sketches(),
                                amount_counts=wh.has_table(wh.marts.amount_counts),
                                rollup=wh.has_rollup())


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def payments_page(source: Source, filters: PaymentFilters, page: int, sort: PaymentSort = PaymentSort()) -> Loaded:
    scope = search_scope(_open(source))
    with _read(source) as (wh, conn):
        return _loaded(payments.payments_page(conn, wh.marts, filters, page, mart_tz=source.timezone, sort=sort, scope=scope))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def payment_detail(source: Source, charge_id: str) -> Loaded:
    """One payment (payments.payment_detail) with what the optional marts add: refunds,
    disputes, the customer's name and email; its amount in its own currency at the rates the
    marts were converted at."""
    present = optional_marts(source)
    rates = _conversion_rates(source)
    card_last4 = search_scope(_open(source)).card_last4
    with _read(source) as (wh, conn):
        return _loaded(payments.payment_detail(conn, wh.marts, charge_id, with_refunds=present["refunds"],
                                               with_disputes=present["disputes"], with_customer=present["customers"],
                                               fx_rates=rates, card_last4=card_last4))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=10)
def _conversion_rates(source: Source) -> dict[str, float]:
    return _open(source).conversion_rates()


EXPLORER_READS = (filter_options, payments_page, payment_detail)


def refresh_explorer() -> None:
    for read in EXPLORER_READS:
        read.clear()


def csv_export(source: Source, filters: PaymentFilters, on_done: Callable[[], None] | None = None) -> Callable[[], bytes]:
    """A callable building the whole filtered result as CSV, for a deferred download button.

    It runs on a thread of its own when the user clicks, so it takes the warehouse now.
    Its error messages reach the browser: only PaydashError's user-facing text passes.
    """
    wh = warehouse(source)
    scope = search_scope(wh)
    with _read(source) as (wh, conn):
        filters = payments.resolve_search(conn, wh.marts, filters, scope)  # exact id or fragment, as the page
    return _csv_builder(wh, payments.export_select(wh.marts, filters, scope=scope), on_done)


def _csv_builder(wh: Warehouse, stmt, on_done: Callable[[], None] | None = None) -> Callable[[], bytes]:  # noqa: ANN001
    """A deferred download's builder: the statement's whole result as CSV; `on_done` after it (the audit entry)."""
    def build() -> bytes:
        buffer = io.BytesIO()
        try:
            with wh.read() as conn:
                wh.copy_csv(conn, stmt, buffer.write)
        except PaydashError:
            raise
        except Exception:
            log.exception("CSV export failed")
            raise PaydashError("the export failed unexpectedly; the details are in the server log") from None
        if on_done is not None:
            on_done()  # the audit log entry
        return buffer.getvalue()

    return build


# -- Operations ----------------------------------------------------------------------------
TTL_OPERATIONS = 30  # the page refreshes itself every minute; its reads live half that


def operations_missing(source: Source) -> str | None:
    """The operations mart's name when it is missing (the page says how to fill it), else None."""
    wh = _open(source)
    table = wh.marts.operations_events
    return None if wh.has_table(table) else table_name(table)


@st.cache_data(ttl=TTL_OPERATIONS, show_spinner=False, max_entries=100)
def operations_now(source: Source, real_now: datetime) -> Loaded:
    """(now, from_data, latest event): the page's "now", the latest event's time when the data is older."""
    with _read(source) as (wh, conn):
        latest = operations.latest_event_time(conn, wh.marts)
    now, from_data = operations.as_of(latest, real_now)
    return _loaded((now, from_data, latest))


@st.cache_data(ttl=TTL_OPERATIONS, show_spinner=False, max_entries=200)
def operations_panels(source: Source, now: datetime, hours: int, step_minutes: int) -> Loaded:
    """Every number of the Operations page as of `now`, over the last `hours`."""
    from datetime import timedelta

    start, day = now - timedelta(hours=hours), now - timedelta(hours=24)
    with _read(source) as (wh, conn):
        m = wh.marts
        return _loaded({
            "snapshot": operations.snapshot(conn, m, now),
            "success": operations.success_rate_series(conn, m, start, now, timedelta(minutes=step_minutes)),
            "hourly": operations.hourly(conn, m, start, now),
            "overrides": operations.manual_overrides(conn, m, start, now),
            "reasons": operations.failure_reasons(conn, m, day, now),
            "receipt_errors": operations.failure_reasons(conn, m, start, now, events=("receipt_generated",)),
            "slo": operations.expired_without_retry(conn, m, day, now),
            "backlog": operations.retry_backlog(conn, m, now),
            "heatmap": operations.retry_outcomes(conn, m, start, now),
            "receipts": operations.recent_receipts(conn, m, now),
            "lag": operations.webhook_lag_series(conn, m, start, now, timedelta(minutes=5)),
        })


def refresh_operations() -> None:
    for read in (operations_now, operations_panels, _alert_view):
        read.clear()


@st.cache_data(ttl=TTL_OPERATIONS, show_spinner=False, max_entries=10)
def _alert_view(state_url: str) -> Loaded:
    from paydash.state import open_state

    return _loaded(open_state(settings()).alerts.for_dashboard(50))


def alert_state(source: Source) -> Loaded | None:
    """Alert state and history for the Operations page, from the alert runner's state in the
    state store (PAYDASH_STATE_URL, docs/state.md): Loaded({"rules": [{rule, state, since, channel,
    value}], "history": [{at, rule, change, action, channel, delivery}]}), or None before any
    runner has written it."""
    from paydash.state import open_state

    loaded = _alert_view(open_state(settings()).url)  # keyed by the resolved URL, not a relative path
    return loaded if loaded.value["rules"] else None


# -- Customers and Promotions ----------------------------------------------------------------
CustomerSearch = customers.CustomerSearch
UsageFilters = promotions.UsageFilters
usage_filters = promotions.usage_filters
USAGE_ACTIONS = promotions.PROMOTION_USAGE_ACTIONS


def warehouse_table_name(source: Source, mart: str) -> str:
    """The configured name of a mart (`customers`, `promotion_codes`, ...), for messages."""
    return table_name(getattr(warehouse(source).marts, mart))


def optional_marts(source: Source) -> dict[str, bool]:
    """Which optional marts exist (the warehouse looks them up at most once a minute)."""
    wh = _open(source)
    present = {name: wh.has_table(getattr(wh.marts, name))
               for name in ("customers", "promotion_codes", "promotion_usage", "customer_totals", "customer_months",
                            "refunds", "disputes")}
    return {**present, "rollup": wh.has_rollup()}


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def customers_page(source: Source, search: customers.CustomerSearch, after: tuple | None) -> Loaded:
    present = optional_marts(source)
    with _read(source) as (wh, conn):
        return _loaded(customers.customers_page(conn, wh.marts, search, after, precomputed=present["customer_totals"],
                                                with_profiles=present["customers"]))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def customer_detail(source: Source, customer_id: str) -> Loaded:
    present = optional_marts(source)
    with _read(source) as (wh, conn):
        return _loaded(customers.customer_detail(conn, wh.marts, customer_id, with_profile=present["customers"],
                                                 with_usage=present["promotion_usage"]))


def today(source: Source) -> date:
    """Today in the reporting timezone (read by the page, passed to the queries)."""
    return today_in(source.timezone)


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=100)
def retention_cohorts(source: Source, today: date | None = None) -> Loaded:
    """The cohort grid; the cells of `today`'s month are marked partial."""
    precomputed = optional_marts(source)["customer_months"]
    with _read(source) as (wh, conn):
        return _loaded(customers.retention_cohorts(conn, wh.marts, source.timezone, mart_tz=source.timezone,
                                                   precomputed=precomputed, today=today))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=200)
def promotion_codes(source: Source, page: int) -> Loaded:
    with _read(source) as (wh, conn):
        return _loaded(promotions.promotion_codes(conn, wh.marts, page))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=1000)
def promotion_code(source: Source, promotion_code_id: str) -> Loaded:
    with _read(source) as (wh, conn):
        return _loaded(promotions.code_detail(conn, wh.marts, promotion_code_id))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=1000)
def promotion_customers(source: Source, promotion_code_id: str, page: int) -> Loaded:
    present = optional_marts(source)
    with _read(source) as (wh, conn):
        return _loaded(promotions.code_customers(conn, wh.marts, promotion_code_id, page, with_profiles=present["customers"]))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def promotion_usage(source: Source, filters: promotions.UsageFilters, page: int) -> Loaded:
    with _read(source) as (wh, conn):
        return _loaded(promotions.usage_history(conn, wh.marts, filters, page))


CUSTOMER_READS = (customers_page, customer_detail, retention_cohorts)
PROMOTION_READS = (promotion_codes, promotion_code, promotion_customers, promotion_usage)


def refresh_customers() -> None:
    for read in CUSTOMER_READS:
        read.clear()


def refresh_promotions() -> None:
    for read in PROMOTION_READS:
        read.clear()


# Every table of the Customers and Promotions pages as a whole-result CSV export:
# name -> (query function building the statement from the marts and the arguments)
def _exports(source: Source) -> dict[str, Callable[..., Any]]:
    present = optional_marts(source)
    tz = source.timezone
    return {
        "customers": lambda marts, search: customers.customers_export_select(
            marts, search, precomputed=present["customer_totals"], with_profiles=present["customers"]),
        "customer_timeline": customers.timeline_export_select,
        "customer_usage": customers.usage_of_export_select,
        "cohorts": lambda marts: customers.cohorts_export_select(marts, tz, mart_tz=tz, precomputed=present["customer_months"]),
        "promotion_codes": promotions.codes_export_select,
        "promotion_customers": promotions.code_customers_export_select,
        "promotion_usage": promotions.usage_export_select,
    }


def table_csv(source: Source, table: str, *args: Any, on_done: Callable[[], None] | None = None) -> Callable[[], bytes]:
    """A deferred CSV of one of these pages' tables (the whole result), streamed by the warehouse."""
    wh = warehouse(source)
    return _csv_builder(wh, _exports(source)[table](wh.marts, *args), on_done)


# -- pages declared in configuration (docs/pages.md) ------------------------------------------
@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=10)
def declared_pages(source: Source) -> dict[str, Any]:
    """The declared pages by name (paydash's and PAYDASH_PAGES_FILE's); `paydash serve` refused a bad
    file at start, so a ConfigError here means the file changed since (the caller shows it)."""
    from paydash.declared_pages import load_pages

    return load_pages(source.settings)


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=200)
def declared_columns(source: Source, table: str) -> dict[str, str] | None:
    """What the warehouse says `table` has (name -> type), None when it is not there."""
    from paydash.queries.declared import read_columns

    wh = _open(source)
    try:
        return read_columns(wh, table)
    except DatabaseUnreachable:
        _went_down(wh.display_url)  # the page's banner says it, as for the other reads
        raise


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=10)
def present_tables(source: Source) -> set[str]:
    """The tables and views there are (bare names in the current schema, schema.name for all)."""
    return _open(source).table_names()


_TABLES_UNKNOWN_SINCE: dict[str, float] = {}  # configuration -> when the database last failed to list them
TABLES_RETRY = 30.0  # seconds the menu does without the list after a failure (no wait on every click)


def tables_present(source: Source) -> set[str] | None:
    """present_tables, or None when the database cannot say (the menu then shows every page, and each
    page says what is wrong); after a failure it is not asked again for TABLES_RETRY seconds."""
    import time

    failed = _TABLES_UNKNOWN_SINCE.get(source.key)
    if failed is not None and time.monotonic() - failed < TABLES_RETRY:
        return None
    try:
        found = present_tables(source)
    except PaydashError:
        _TABLES_UNKNOWN_SINCE[source.key] = time.monotonic()
        return None
    _TABLES_UNKNOWN_SINCE.pop(source.key, None)
    return found


def declared_table(source: Source, name: str):  # noqa: ANN201
    """(page, its table as SQLAlchemy sees it, or None when the table is missing); ConfigError when the
    table lacks a column the page names (a page of paydash's on a mart of another shape)."""
    from paydash.declared_pages import check_columns
    from paydash.queries.declared import table_of

    page = declared_pages(source)[name]
    columns = declared_columns(source, page.table)
    check_columns(page, columns)
    return page, None if columns is None else table_of(page.table, columns)


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def declared_rows(source: Source, name: str, query: Any) -> Loaded:
    from paydash.queries import declared

    page, table = declared_table(source, name)
    with _read(source) as (wh, conn):
        result = declared.page_rows(conn, page, table, query, source.timezone)
        if result.total and query.page > result.pages:  # a link past the end: its last page
            from dataclasses import replace

            result = declared.page_rows(conn, page, table, replace(query, page=result.pages), source.timezone)
        return _loaded(result)


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def declared_stats(source: Source, name: str, query: Any) -> Loaded:
    from paydash.queries import declared

    page, table = declared_table(source, name)
    with _read(source) as (wh, conn):
        return _loaded(declared.value_counts(conn, page, table, query, source.timezone))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=200)
def declared_options(source: Source, name: str) -> Loaded:
    from paydash.queries import declared

    page, table = declared_table(source, name)
    with _read(source) as (wh, conn):
        return _loaded(declared.filter_options(conn, page, table))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def declared_row(source: Source, name: str, key: str) -> Loaded:
    from paydash.queries import declared

    page, table = declared_table(source, name)
    with _read(source) as (wh, conn):
        return _loaded(declared.row_by_key(conn, page, table, key))


def declared_date_filters(page: Any, table: Any) -> set[str]:
    """The page's filters that are date ranges (the rest are choices)."""
    from paydash.queries import declared

    return declared.date_filters(page, table)


def declared_shown_columns(page: Any, table: Any) -> list[str]:
    from paydash.queries import declared

    return declared.shown_columns(page, table)


DECLARED_READS = (declared_pages, present_tables, declared_columns, declared_rows, declared_stats, declared_options, declared_row)


def refresh_declared() -> None:
    for read in DECLARED_READS:
        read.clear()


def declared_csv(source: Source, name: str, query: Any, on_done: Callable[[], None] | None = None) -> Callable[[], bytes]:
    """A deferred CSV of the page's whole filtered result, formula-safe, streamed by the warehouse."""
    from paydash.queries import declared

    page, table = declared_table(source, name)
    return _csv_builder(warehouse(source), declared.export_select(page, table, query, source.timezone), on_done)


# -- an unreachable database: said once, at the top of the page ----------------------------------
# when each database (by its display URL) was first found unreachable since it last answered,
# for this server process; a successful read forgets it
_DOWN_SINCE: dict[str, datetime] = {}
_DOWN_LOCK = threading.Lock()
_BANNER_KEY = "paydash_outage_banner"


def _went_down(where: str) -> datetime:
    with _DOWN_LOCK:
        return _DOWN_SINCE.setdefault(where, datetime.now(timezone.utc))


def _came_back(where: str) -> None:
    if where in _DOWN_SINCE:
        with _DOWN_LOCK:
            _DOWN_SINCE.pop(where, None)


@dataclass
class _Banner:
    run: object  # the page run that placed it (Streamlit's per-run cursor map)
    slot: Any  # st.empty() at the top of the page
    admin: bool
    where: str  # the database's display URL (password hidden)
    tz: str
    reason: str = ""  # the first "unreachable" message of this run; '' while none

    def scrub(self, text: str) -> str:
        """Viewers see no connection details: the database's URL becomes 'the database'."""
        return text if self.admin else text.replace(self.where, "the database")


def _this_run() -> object | None:
    ctx = get_script_run_ctx(suppress_warning=True)
    return None if ctx is None else ctx.cursors  # a new map at every run (fragment runs included)


def _banner() -> _Banner | None:
    """The banner of the page run in progress, if the page placed one."""
    run = _this_run()
    if run is None:
        return None
    try:
        banner = st.session_state.get(_BANNER_KEY)
    except Exception:  # noqa: BLE001 - no session (a download built on another thread)
        return None
    return banner if banner is not None and banner.run is run else None


def outage_banner(source: Source, user: Any) -> None:
    """Where this page says that its database is unreachable: call it at the top of the page
    (a page whose reads all run in an auto-refreshing fragment: at the top of the fragment,
    whose own runs cannot clear what the rest of the page wrote). Called again later in the
    same run, it keeps the first. It shows nothing while the database answers. Admins are
    shown the fix with the connection details; other users are not shown where the database is."""
    run = _this_run()
    if run is None or _banner() is not None:
        return  # not a page run, or the page's banner (placed earlier in this run) serves
    st.session_state[_BANNER_KEY] = _Banner(run, st.empty(), bool(getattr(user, "is_admin", False)),
                                            warehouse(source).display_url, source.timezone)


def _ago(delta: timedelta) -> str:
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return "just now"
    minutes = seconds // 60
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    hours = minutes // 60
    return f"{hours} hours ago" if hours < 48 else f"{hours // 24} days ago"


def outage_message(reason: str, since: datetime, tz: str, admin: bool, now: datetime | None = None) -> str:
    """The banner's text: what is unreachable, since when, that the page retries; the fix for admins."""
    now = now or datetime.now(timezone.utc)
    text = (f"**The database is unreachable** (since {fmt.loaded_at(since, tz)}, {_ago(now - since)}), so this page "
            "cannot show its numbers. It tries again at every refresh or click: they come back as soon as the "
            "database answers.")
    if admin:
        return text + f"\n\n**To fix it:** {md_escape(reason)}"
    return text + "\n\nAn admin of this paydash can see what is wrong and how to fix it."


def unreachable(exc: DatabaseUnreachable) -> None:
    """Report an unreachable database: in the page's banner, once per run (later sections stay quiet)."""
    banner = _banner()
    if banner is None:  # a page without a banner: say it here, without connection details
        run = _this_run()
        banner = _Banner(run, st.empty(), False, "", settings().timezone)
        if run is not None:
            st.session_state[_BANNER_KEY] = banner
    since = _went_down(banner.where) if banner.where else datetime.now(timezone.utc)
    if banner.reason:
        return
    banner.reason = str(exc)
    banner.slot.error(outage_message(banner.scrub(str(exc)), since, banner.tz, banner.admin), icon=":material/cloud_off:")


# -- errors --------------------------------------------------------------------------------
@contextmanager
def section(what: str) -> Iterator[None]:
    """Show a failure inside this part of the page as a message, and go on with the rest.

    An unreachable database goes to the page's banner instead (`outage_banner`), once."""
    try:
        yield
    except DatabaseUnreachable as exc:
        unreachable(exc)
    except PaydashError as exc:
        banner = _banner()
        message = banner.scrub(str(exc)) if banner is not None else str(exc)
        st.error(f"**{what}** could not be loaded: {md_escape(message)}", icon=":material/error:")
    except Exception:  # noqa: BLE001 - a bug must not take the page down or show a trace
        log.exception("section %r failed", what)
        st.error(
            f"**{what}** could not be shown because of an unexpected error; the details are in the server log.",
            icon=":material/error:",
        )
