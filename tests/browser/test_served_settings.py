"""`paydash serve` hands the dashboard its WHOLE settings, and a database outage is one banner.

1. The seam that once broke: the dashboard rebuilt its settings from a hand-picked subset and
   lost PAYDASH_FIRST_FAILURES_TABLE (and the DuckDB sharing flag) on the way from `paydash
   serve` to the engine; every test built a Warehouse directly, so none saw it. Here the real
   `paydash serve` runs with that setting only in its environment, pointing at a doctored copy
   of the first-failures mart, and the Overview in the browser shows the copy's numbers.
2. PostgreSQL goes away under a signed-in browser (a relay on loopback in front of the real
   server is stopped): the page says it once, then shows the numbers again after a refresh
   once the database is back.
"""

from __future__ import annotations

import re
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from dashboard_server import PASSWORD, VIEWPORT, start_server
from paydash.app import format as fmt
from paydash.queries import recovery
from paydash.queries.dates import last_n_days
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse
from tcp_relay import demo_database_behind_relay

WAIT = 60_000  # ms; a waiting limit, never an assertion
CUSTOM = "custom_first_failures"
BANNER = "The database is unreachable"


def wait_idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT)
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=WAIT)


def open_signed_in(page: Page, url: str) -> None:
    """A browser without a session lands on the server's sign-in page, then on `url`."""
    page.goto(url, wait_until="domcontentloaded")
    expect(page).to_have_url(re.compile(r"/auth/login"), timeout=WAIT)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible(timeout=WAIT)


def metric(page: Page, label: str) -> str:
    name = page.locator('[data-testid="stMetricLabel"]').get_by_text(label, exact=True)
    card = page.locator('[data-testid="stMetric"]', has=name)
    expect(card).to_have_count(1, timeout=WAIT)
    return card.locator('[data-testid="stMetricValue"]').inner_text().strip()


@pytest.fixture
def context(browser):  # noqa: ANN001, ANN201
    ctx = browser.new_context(viewport=VIEWPORT)
    ctx.set_default_timeout(30_000)
    yield ctx
    ctx.close()


def recovered_usd(db: Path, first_failures_table: str | None) -> Decimal:
    settings = Settings({"first_failures_table": first_failures_table} if first_failures_table else {})
    wh = Warehouse(str(db), settings, read_only=True)
    try:
        assert wh.has_table(wh.marts.first_failures)
        with wh.read() as conn:
            return recovery.recovery(conn, wh.marts, last_n_days(30, "UTC"), None, precomputed=True,
                                     mart_tz="UTC")["recovered_usd"]
    finally:
        wh.dispose()


def test_a_setting_only_in_serves_environment_reaches_the_dashboards_engine(browser_db: Path, context,
                                                                            tmp_path: Path) -> None:  # noqa: ANN001
    db = tmp_path / "dash.duckdb"
    shutil.copy(browser_db, db)
    import duckdb

    with duckdb.connect(str(db)) as con:  # the same failures, ten times the money won back
        con.execute(f"CREATE TABLE {CUSTOM} AS SELECT * FROM mart_stripe_first_failures")
        con.execute(f"UPDATE {CUSTOM} SET recovered_usd = recovered_usd * 10")
        # as on dbt marts with their own first-failures model: no paydash rollups, which paydash
        # builds from its own first-failures mart and the Overview would read instead
        for (table,) in con.execute("SELECT table_name FROM information_schema.tables "
                                    "WHERE table_name LIKE 'mart_stripe_payment_rollup%'").fetchall():
            con.execute(f"DROP TABLE {table}")
    default, custom = recovered_usd(db, None), recovered_usd(db, CUSTOM)
    assert custom > 0 and fmt.money_compact(custom) != fmt.money_compact(default)

    server = start_server(db, tmp_path / "serve", {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_FIRST_FAILURES_TABLE": CUSTOM})
    try:
        page = context.new_page()
        open_signed_in(page, server.url)
        wait_idle(page)
        assert metric(page, "Recovered revenue") == fmt.money_compact(custom)
    finally:
        server.stop()


@pytest.fixture(scope="module")
def pg_demo(pg_url: str):  # noqa: ANN201
    """(relay, URL through the relay): a PostgreSQL database of demo payments behind a relay."""
    with demo_database_behind_relay(pg_url, "served", seed=5) as (relay, _name, url):
        yield relay, url


@pytest.mark.postgres
def test_postgres_down_is_one_banner_and_the_numbers_come_back(pg_demo, context, tmp_path: Path) -> None:  # noqa: ANN001
    relay, url = pg_demo
    server = start_server(url, tmp_path / "serve", {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_CONNECT_TIMEOUT": "3"})
    try:
        page = context.new_page()
        open_signed_in(page, server.url)
        wait_idle(page)
        revenue = metric(page, "Revenue")
        alerts = page.locator('[data-testid="stAlert"]')

        relay.stop()  # PostgreSQL goes away
        page.get_by_role("button", name="Refresh").click()
        banner = page.locator('[data-testid="stAlert"]', has_text=BANNER)
        expect(banner).to_have_count(1, timeout=WAIT)
        wait_idle(page)
        expect(alerts).to_have_count(1)  # one message for the page, none per section
        expect(page.locator('[data-testid="stMetric"]')).to_have_count(0)
        expect(banner).to_contain_text("tries again at every refresh or click")
        expect(banner).to_contain_text("To fix it")  # the team password signs in as an admin

        relay.start()  # back: the next refresh shows the numbers
        page.get_by_role("button", name="Refresh").click()
        expect(page.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=WAIT)
        wait_idle(page)
        expect(alerts).to_have_count(0)
        assert metric(page, "Revenue") == revenue
    finally:
        server.stop()


@pytest.mark.postgres
def test_the_operations_auto_refresh_says_it_once_and_recovers_by_itself(pg_demo, context, tmp_path: Path) -> None:  # noqa: ANN001
    relay, url = pg_demo
    server = start_server(url, tmp_path / "serve", {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_CONNECT_TIMEOUT": "3",
                                                     "PAYDASH_OPERATIONS_REFRESH": "2"})
    try:
        page = context.new_page()
        open_signed_in(page, server.url)
        wait_idle(page)
        tiles = page.locator('[data-testid="stMetric"]')
        alerts = page.locator('[data-testid="stAlert"]')
        banner = page.locator('[data-testid="stAlert"]', has_text=BANNER)

        relay.stop()  # PostgreSQL goes away before the Operations page is first opened
        page.goto(f"{server.url}/operations", wait_until="domcontentloaded")
        expect(banner).to_have_count(1, timeout=WAIT)
        page.wait_for_timeout(6_000)  # several auto-refreshes (every 2 s) of its fragment while it is down
        expect(banner).to_have_count(1)
        expect(alerts).to_have_count(1)  # still one message for the page
        expect(tiles).to_have_count(0)

        relay.start()  # no click: the next auto-refresh reads again
        expect(banner).to_have_count(0, timeout=WAIT)
        expect(tiles.first).to_be_visible(timeout=WAIT)
    finally:
        server.stop()
