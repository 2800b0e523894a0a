"""Sessions in a real browser against `paydash serve`: signed in through the server's form, they last
across reloads, tabs and a restart; a stranger's deep link survives the sign-in; sign-out ends the
session on the server (the old cookie is refused); an untouched auto-refreshing page signs out.
"""

from __future__ import annotations

import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from paydash.queries import payments
from paydash.queries.filters import PaymentFilters
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse

from dashboard_server import PASSWORD, VIEWPORT, Server, start_server
from test_dashboard import count_text, open_signed_in, sign_in, wait_idle

WAIT = 60_000  # ms: a limit for waiting, not a timed assertion (the machine is shared)
COOKIE = "paydash_session"
LOGIN = re.compile(r"/auth/login\?")
IDLE = 30  # seconds: PAYDASH_SESSION_IDLE_TIMEOUT of the idle server ...
REFRESH = 5  # ... whose Operations page refreshes itself this often (several times within IDLE)


@pytest.fixture(scope="module")
def warehouse(browser_db: Path):  # noqa: ANN201
    wh = Warehouse(str(browser_db), Settings(), read_only=True)
    yield wh
    wh.dispose()


def expected_count(warehouse: Warehouse, filters: PaymentFilters) -> int:
    with warehouse.read() as conn:
        return payments.count_payments(conn, warehouse.marts, filters)


def session_cookie(context: BrowserContext) -> dict:
    found = [c for c in context.cookies() if c["name"] == COOKIE]
    assert len(found) == 1, context.cookies()
    return found[0]


def signed_in_overview(page: Page, user: str = "team (admin)") -> None:
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(f"Signed in as {user}")).to_be_visible(timeout=WAIT)


def status_of(url: str, cookie: str | None = None) -> tuple[int, str]:
    """(status, Location) of a GET without following redirects."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            return None

    request = urllib.request.Request(url, headers={"Cookie": f"{COOKIE}={cookie}"} if cookie else {})
    try:
        with urllib.request.build_opener(NoRedirect).open(request, timeout=30) as response:
            return response.status, response.headers.get("Location", "")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Location", "")


# -- a session lasts ------------------------------------------------------------------------------
def test_reload_and_a_new_tab_keep_you_signed_in(page: Page, server: Server, warehouse) -> None:  # noqa: ANN001
    open_signed_in(page, server.url)
    signed_in_overview(page)
    cookie = session_cookie(page.context)
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax" and cookie["path"] == "/"
    assert cookie["value"] not in page.content()

    page.reload(wait_until="domcontentloaded")
    expect(page).not_to_have_url(LOGIN)
    signed_in_overview(page)
    wait_idle(page)

    # a new tab of the same browser, straight onto a link with a query: no sign-in page
    tab = page.context.new_page()
    tab.goto(f"{server.url}/payments?status=failed", wait_until="domcontentloaded")
    expect(tab.get_by_role("heading", name="Payments", exact=True)).to_be_visible(timeout=WAIT)
    expect(tab).not_to_have_url(LOGIN)
    expect(count_text(tab, expected_count(warehouse, PaymentFilters(status="failed")))).to_be_visible(timeout=WAIT)
    assert session_cookie(page.context)["value"] == cookie["value"]  # the same session, not a new sign-in


def test_a_strangers_deep_link_lands_where_it_pointed_after_sign_in(page: Page, server: Server, warehouse) -> None:  # noqa: ANN001
    page.goto(f"{server.url}/payments?status=failed&card_brand=mastercard", wait_until="domcontentloaded")
    expect(page).to_have_url(LOGIN)
    assert parse_qs(urlsplit(page.url).query)["next"] == ["/payments?status=failed&card_brand=mastercard"]
    expect(page.locator('[data-testid="stApp"]')).to_have_count(0)  # no Streamlit for a stranger
    sign_in(page)
    expect(page).to_have_url(re.compile(r"/payments\?"), timeout=WAIT)
    query = parse_qs(urlsplit(page.url).query)
    assert query["status"] == ["failed"] and query["card_brand"] == ["mastercard"]
    both = PaymentFilters(status="failed", card_brand="mastercard")
    expect(count_text(page, expected_count(warehouse, both))).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("Signed in as team (admin)")).to_be_visible(timeout=WAIT)


def test_a_restarted_server_keeps_you_signed_in(browser: Browser, browser_db: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "serve"
    first = start_server(browser_db, workdir, {"PAYDASH_PASSWORD": PASSWORD})
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = context.new_page()
        open_signed_in(page, first.url)
        signed_in_overview(page)
        first.stop()
        # the same working directory (its state store); a cookie is the host's whatever the port
        second = start_server(browser_db, workdir, {"PAYDASH_PASSWORD": PASSWORD})
        try:
            page.goto(f"{second.url}/operations", wait_until="domcontentloaded")
            expect(page).not_to_have_url(LOGIN)
            expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible(timeout=WAIT)
            expect(page.get_by_text("Signed in as team (admin)")).to_be_visible(timeout=WAIT)
        finally:
            second.stop()
    finally:
        first.stop()
        context.close()


# -- sign-out ---------------------------------------------------------------------------------------
def test_sign_out_ends_the_session_and_the_old_cookie_is_refused(browser: Browser, page: Page, server: Server) -> None:
    open_signed_in(page, server.url)
    signed_in_overview(page)
    wait_idle(page)
    old = session_cookie(page.context)
    other_tab = page.context.new_page()
    other_tab.goto(f"{server.url}/payments", wait_until="domcontentloaded")
    expect(other_tab.get_by_role("heading", name="Payments", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(other_tab)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out.")).to_be_visible(timeout=WAIT)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(0, timeout=WAIT)

    # the tab still open on Payments is signed out at its next click, without a page load
    other_tab.locator('[data-testid="stSidebarNav"]').get_by_role("link", name="Overview").click()
    expect(other_tab.get_by_text("Your session has ended; please sign in again.")).to_be_visible(timeout=WAIT)
    expect(other_tab.locator('[data-testid="stMetric"]')).to_have_count(0, timeout=WAIT)

    # a reload asks the server, which sends the sign-in page (and drops the dead cookie)
    page.reload(wait_until="domcontentloaded")
    expect(page).to_have_url(LOGIN)

    # the old cookie, put back into a fresh browser: refused, by the page and by plain HTTP
    fresh = browser.new_context(viewport=VIEWPORT)
    try:
        fresh.add_cookies([old])
        stranger = fresh.new_page()
        stranger.goto(f"{server.url}/payments", wait_until="domcontentloaded")
        expect(stranger).to_have_url(LOGIN)
        expect(stranger.get_by_role("button", name="Sign in")).to_be_visible(timeout=WAIT)
    finally:
        fresh.close()
    status, location = status_of(f"{server.url}/payments", old["value"])
    assert status == 303 and location.startswith("/auth/login?")


# -- idle expiry on a page that refreshes itself -----------------------------------------------------
@pytest.fixture(scope="module")
def idle_server(browser_db: Path, tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    running = start_server(browser_db, tmp_path_factory.mktemp("idle-serve"), {
        "PAYDASH_PASSWORD": PASSWORD, "PAYDASH_SESSION_IDLE_TIMEOUT": str(IDLE),
        "PAYDASH_OPERATIONS_REFRESH": str(REFRESH)})
    yield running
    running.stop()


def test_an_untouched_operations_tab_signs_out(browser: Browser, idle_server: Server) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(WAIT)
    try:
        page = context.new_page()
        open_signed_in(page, f"{idle_server.url}/operations")
        expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible(timeout=WAIT)
        expect(page.get_by_role("switch", name=f"Refresh every {REFRESH} seconds")).to_be_checked(timeout=WAIT)
        expect(page.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=WAIT)
        # now nobody touches the page: it refreshes itself every REFRESH seconds, which is not
        # activity, so once IDLE seconds have passed since the sign-in a refresh ends the session
        # (were a refresh activity, the session would never end and this would time out)
        ended = page.get_by_text(re.compile(r"Your session ended after .* minutes without activity"))
        expect(ended).to_be_visible(timeout=10 * IDLE * 1000)
        expect(page.locator('[data-testid="stMetric"]')).to_have_count(0, timeout=WAIT)
        link = page.get_by_role("link", name="Sign in again")
        query = parse_qs(urlsplit(link.get_attribute("href")).query)
        assert query == {"next": ["/operations"], "ended": ["idle"]}

        # the server agrees: a reload is the sign-in page (the store dropped the expired session when
        # the refresh found it, so the page says it ended), and leads back here
        page.reload(wait_until="domcontentloaded")
        expect(page).to_have_url(LOGIN)
        expect(page.get_by_role("status")).to_contain_text(re.compile(r"session (has )?ended"))
        sign_in(page)
        expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible(timeout=WAIT)
    finally:
        context.close()
