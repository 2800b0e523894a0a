"""Everything the pages read, and the only module of the app that calls the query layer.

- one `Warehouse` per database configuration, shared by every session (`st.cache_resource`);
- every read cached with a lifetime (`st.cache_data`, PAYDASH_CACHE_TTL_OVERVIEW /
  PAYDASH_CACHE_TTL_EXPLORER) and keyed by all of its parameters, the database included;
- `section()` turns a failure into a clear message in the part of the page it affects,
  so the rest of the page still renders and no stack trace reaches the user.

Errors are not cached, so a page works again as soon as the database is back.
"""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterator

import streamlit as st

from paydash.app.format import md_escape
from paydash.errors import ConfigError, PaydashError
from paydash.queries import customers, failures, operations, overview, payments, promotions, recovery
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters
from paydash.settings import Settings, load_settings
from paydash.warehouse.engine import Warehouse
from paydash.warehouse.schema import display_name

log = logging.getLogger("paydash.app")

# Settings that change what a query returns or how it connects; they key the caches.
WAREHOUSE_SETTINGS = ("database_url", "payments_table", "daily_table", "timezone", "connect_timeout", "statement_timeout", "pool_size",
                      "operations_events_table")


def settings() -> Settings:
    """The current settings; a broken configuration stops the page with its message."""
    try:
        return load_settings()
    except ConfigError as exc:
        st.error(f"paydash is not configured correctly: {md_escape(exc)}")
        st.stop()
        raise  # unreachable: st.stop() raises


def _ttl(name: str) -> int:
    # TTLs are fixed when the module is imported, i.e. at server start.
    try:
        return int(getattr(load_settings(), name))
    except ConfigError:
        from paydash.settings import BY_NAME

        return int(BY_NAME[name].default)


TTL_OVERVIEW = _ttl("cache_ttl_overview")
TTL_EXPLORER = _ttl("cache_ttl_explorer")


@dataclass(frozen=True)
class Source:
    """The database a page reads: hashable, so it is part of every cache key."""

    items: tuple[tuple[str, Any], ...]

    @classmethod
    def from_settings(cls, s: Settings) -> "Source":
        return cls(tuple((name, getattr(s, name)) for name in WAREHOUSE_SETTINGS))

    @property
    def settings(self) -> Settings:
        return Settings(dict(self.items))

    @property
    def timezone(self) -> str:
        return dict(self.items)["timezone"]


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


# -- Overview ---------------------------------------------------------------------------
@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def overview_totals(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        rng = DateRange(start, end, source.timezone)
        return _loaded(overview.overview(conn, wh.marts, rng, funnel, mart_tz=source.timezone))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def daily_series(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        rng = DateRange(start, end, source.timezone)
        return _loaded(overview.daily_series(conn, wh.marts, rng, funnel, mart_tz=source.timezone))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def failure_breakdown(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(failures.failure_breakdown(conn, wh.marts, DateRange(start, end, source.timezone), funnel))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=1000)
def recovery_trend(source: Source, start: date, end: date, funnel: str | None) -> Loaded:
    wh = warehouse(source)
    precomputed = wh.has_table(wh.marts.first_failures)
    with wh.read() as conn:
        return _loaded(recovery.recovery(conn, wh.marts, DateRange(start, end, source.timezone), funnel, precomputed,
                                             mart_tz=source.timezone))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=100)
def funnel_names(source: Source) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(overview.funnels(conn, wh.marts))


OVERVIEW_READS = (overview_totals, daily_series, failure_breakdown, recovery_trend, funnel_names)


def refresh_overview() -> None:
    for read in OVERVIEW_READS:
        read.clear()


# -- Payments explorer --------------------------------------------------------------------
@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=100)
def filter_options(source: Source) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(payments.filter_options(conn, wh.marts))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def payments_page(source: Source, filters: PaymentFilters, page: int) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(payments.payments_page(conn, wh.marts, filters, page, mart_tz=source.timezone))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def payment_detail(source: Source, charge_id: str) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(payments.payment_detail(conn, wh.marts, charge_id))


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
    return _csv_builder(wh, payments.export_select(wh.marts, filters), on_done)


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
    from paydash.warehouse.schema import display_name

    wh = warehouse(source)
    table = wh.marts.operations_events
    return None if wh.has_table(table) else display_name(table)


@st.cache_data(ttl=TTL_OPERATIONS, show_spinner=False, max_entries=100)
def operations_now(source: Source, real_now: datetime) -> Loaded:
    """(now, from_data, latest event): the page's "now", the latest event's time when the data is older."""
    wh = warehouse(source)
    with wh.read() as conn:
        latest = operations.latest_event_time(conn, wh.marts)
    now, from_data = operations.as_of(latest, real_now)
    return _loaded((now, from_data, latest))


@st.cache_data(ttl=TTL_OPERATIONS, show_spinner=False, max_entries=200)
def operations_panels(source: Source, now: datetime, hours: int, step_minutes: int) -> Loaded:
    """Every number of the Operations page as of `now`, over the last `hours`."""
    from datetime import timedelta

    wh = warehouse(source)
    start, day = now - timedelta(hours=hours), now - timedelta(hours=24)
    with wh.read() as conn:
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
# their optional marts' names are part of the database a page reads
WAREHOUSE_SETTINGS += ("customers_table", "promotion_codes_table", "promotion_usage_table")
CustomerSearch = customers.CustomerSearch
UsageFilters = promotions.UsageFilters
usage_filters = promotions.usage_filters
USAGE_ACTIONS = promotions.PROMOTION_USAGE_ACTIONS


def warehouse_table_name(source: Source, mart: str) -> str:
    """The configured name of a mart (`customers`, `promotion_codes`, ...), for messages."""
    return display_name(getattr(warehouse(source).marts, mart))


def optional_marts(source: Source) -> dict[str, bool]:
    """Which optional marts exist (the warehouse looks them up at most once a minute)."""
    wh = warehouse(source)
    return {name: wh.has_table(getattr(wh.marts, name))
            for name in ("customers", "promotion_codes", "promotion_usage", "customer_totals", "customer_months")}


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def customers_page(source: Source, search: customers.CustomerSearch, after: tuple | None) -> Loaded:
    wh = warehouse(source)
    present = optional_marts(source)
    with wh.read() as conn:
        return _loaded(customers.customers_page(conn, wh.marts, search, after, precomputed=present["customer_totals"],
                                                with_profiles=present["customers"]))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def customer_detail(source: Source, customer_id: str) -> Loaded:
    wh = warehouse(source)
    present = optional_marts(source)
    with wh.read() as conn:
        return _loaded(customers.customer_detail(conn, wh.marts, customer_id, with_profile=present["customers"],
                                                 with_usage=present["promotion_usage"]))


@st.cache_data(ttl=TTL_OVERVIEW, show_spinner=False, max_entries=100)
def retention_cohorts(source: Source) -> Loaded:
    wh = warehouse(source)
    precomputed = optional_marts(source)["customer_months"]
    with wh.read() as conn:
        return _loaded(customers.retention_cohorts(conn, wh.marts, source.timezone, mart_tz=source.timezone,
                                                   precomputed=precomputed))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=200)
def promotion_codes(source: Source, page: int) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(promotions.promotion_codes(conn, wh.marts, page))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=1000)
def promotion_code(source: Source, promotion_code_id: str) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
        return _loaded(promotions.code_detail(conn, wh.marts, promotion_code_id))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=1000)
def promotion_customers(source: Source, promotion_code_id: str, page: int) -> Loaded:
    wh = warehouse(source)
    present = optional_marts(source)
    with wh.read() as conn:
        return _loaded(promotions.code_customers(conn, wh.marts, promotion_code_id, page, with_profiles=present["customers"]))


@st.cache_data(ttl=TTL_EXPLORER, show_spinner=False, max_entries=2000)
def promotion_usage(source: Source, filters: promotions.UsageFilters, page: int) -> Loaded:
    wh = warehouse(source)
    with wh.read() as conn:
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


# -- errors --------------------------------------------------------------------------------
@contextmanager
def section(what: str) -> Iterator[None]:
    """Show a failure inside this part of the page as a message, and go on with the rest."""
    try:
        yield
    except PaydashError as exc:
        st.error(f"**{what}** could not be loaded: {md_escape(exc)}", icon=":material/error:")
    except Exception:  # noqa: BLE001 - a bug must not take the page down or show a trace
        log.exception("section %r failed", what)
        st.error(
            f"**{what}** could not be shown because of an unexpected error; the details are in the server log.",
            icon=":material/error:",
        )
