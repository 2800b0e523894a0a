"""The dashboard in a real browser: sign in (the server's form), Overview, explorer, a payment's link, CSV, hostile data."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from paydash.app import format as fmt
from paydash.queries import overview, payments
from paydash.queries.dates import last_n_days, today_in
from paydash.queries.filters import PaymentFilters
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse

from dashboard_server import ARTIFACTS, PASSWORD, VIEWPORT, start_server
from dashboard_db import HOSTILE_CHARGE, HOSTILE_CUSTOMER, HOSTILE_FUNNEL, SCRIPT


# -- helpers -------------------------------------------------------------------------------
CHART = '[data-testid="stVegaLiteChart"]'
DONUT = f"{CHART}:has(.mark-arc)"


def wait_idle(page: Page) -> None:
    """Connected, the script finished, nothing left loading."""
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0)


def sign_in(page: Page, password: str = PASSWORD, username: str | None = None) -> None:
    """Fill and send the server's sign-in page (/auth/login), where a page without a session lands."""
    expect(page).to_have_url(re.compile(r"/auth/login(\?|$)"))
    if username is not None:
        page.get_by_label("User name", exact=True).fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in").click()


def open_signed_in(page: Page, url: str, password: str = PASSWORD, username: str | None = None) -> None:
    """Open `url` in a browser without a session: the sign-in page first, then `url` itself."""
    page.goto(url, wait_until="domcontentloaded")
    sign_in(page, password, username)
    expect(page).not_to_have_url(re.compile(r"/auth/login"))


def metric_values(page: Page) -> dict[str, str]:
    values = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        values[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return values


def count_text(page: Page, total: int):  # noqa: ANN201
    return page.locator('[data-testid="stMarkdownContainer"]', has_text=f"{total:,} {fmt.plural(total, 'matching payment')}")


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a Streamlit select box by its label."""
    page.get_by_role("combobox", name=label, exact=True).click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(page.get_by_role("combobox", name=label, exact=True)).to_have_value(option)


def screenshot(page: Page, name: str) -> None:
    wait_idle(page)
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.fixture(scope="module")
def warehouse(browser_db: Path):  # noqa: ANN201
    """The server's database, read-only from the test process, for expected values."""
    wh = Warehouse(str(browser_db), Settings(), read_only=True)
    yield wh
    wh.dispose()


def expected_count(warehouse: Warehouse, filters: PaymentFilters) -> int:
    with warehouse.read() as conn:
        return payments.count_payments(conn, warehouse.marts, filters)


# -- tests -----------------------------------------------------------------------------------
def test_sign_in_refuses_a_wrong_password_then_opens_the_overview(page: Page, server) -> None:  # noqa: ANN001
    page.goto(server.url, wait_until="domcontentloaded")
    expect(page).to_have_url(re.compile(r"/auth/login"))
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.get_by_label("User name", exact=True)).to_have_count(0)  # no named users: the team password alone
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "sign-in.png"), full_page=True)
    sign_in(page, "not-the-password")
    expect(page.get_by_role("alert")).to_contain_text("Wrong password")
    expect(page.get_by_label("Password", exact=True)).to_have_value("")  # never sent back
    sign_in(page)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.get_by_text("Signed in as team (admin)")).to_be_visible()


def test_overview_renders_its_cards_and_charts(page: Page, server, warehouse) -> None:  # noqa: ANN001
    open_signed_in(page, server.url)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(12)  # 4 totals, 4 refunds and disputes, 4 recovery
    expect(page.locator(CHART)).to_have_count(3)
    wait_idle(page)
    with warehouse.read() as conn:
        numbers = overview.overview(conn, warehouse.marts, last_n_days(30, "UTC"), mart_tz="UTC")["current"]
    shown = metric_values(page)
    assert shown["Revenue"] == fmt.money_compact(numbers["revenue_usd"])
    assert shown["Success rate"] == fmt.percent(numbers["success_rate"])
    assert shown["Failed payments"] == fmt.count(numbers["failed"])
    assert shown["Attempts"] == fmt.count(numbers["attempts"])
    # the bars, the success-rate line, the donut's slices and the recovery line are drawn
    expect(page.locator(f"{CHART}:has(.mark-rect) .mark-rect path")).to_have_count(30)
    expect(page.locator(f"{CHART}:has(.mark-rect) .mark-line path")).to_have_count(1)
    assert page.locator(f"{DONUT} .mark-arc path").count() >= 5
    expect(page.locator(f"{CHART}:not(:has(.mark-rect)):not(:has(.mark-arc)) .mark-line path")).to_have_count(1)
    expect(page.get_by_text("Data loaded")).to_be_visible()
    screenshot(page, "overview")


def test_explorer_filters_and_search(page: Page, server, warehouse) -> None:  # noqa: ANN001
    open_signed_in(page, f"{server.url}/payments")
    expect(count_text(page, expected_count(warehouse, PaymentFilters()))).to_be_visible()
    expect(page.get_by_text("Page 1 of")).to_be_visible()

    choose(page, "Status", "failed")
    expect(count_text(page, expected_count(warehouse, PaymentFilters(status="failed")))).to_be_visible()
    choose(page, "Card brand", "mastercard")
    both = PaymentFilters(status="failed", card_brand="mastercard")
    expect(count_text(page, expected_count(warehouse, both))).to_be_visible()
    expect(page).to_have_url(re.compile(r"status=failed.*card_brand=mastercard|card_brand=mastercard.*status=failed"))

    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text("Page 2 of")).to_be_visible()
    expect(page).to_have_url(re.compile(r"page=2"))
    screenshot(page, "payments")

    with warehouse.read() as conn:
        customer = payments.payments_page(conn, warehouse.marts, both, 1).rows[3]["customer_id"]
    search = page.get_by_role("textbox", name="Search")
    search.fill(customer)
    search.press("Enter")
    expect(count_text(page, expected_count(warehouse, PaymentFilters(status="failed", card_brand="mastercard", search=customer)))).to_be_visible()
    expect(page.get_by_text("Page 1 of 1")).to_be_visible()


def test_a_payments_link_opens_its_detail_after_sign_in(page: Page, server, warehouse) -> None:  # noqa: ANN001
    with warehouse.read() as conn:
        p = warehouse.marts.payments.c
        # a retry of the demo's that won its payment (the oldest: other tests add rows of their own)
        charge_id = conn.execute(sa.select(p.charge_id).where(p.is_successful, p.attempt_number >= 2)
                                 .order_by(p.created_at, p.charge_id).limit(1)).scalar_one()
        retried = {"charge_id": charge_id}
        detail = payments.payment_detail(conn, warehouse.marts, charge_id)
    open_signed_in(page, f"{server.url}/payments?{urlencode({'charge': retried['charge_id']})}")
    panel = page.locator(".st-key-payments_detail")
    expect(panel.get_by_text("Payment detail")).to_be_visible()
    expect(panel.locator('[data-testid="stCode"]').first).to_have_text(retried["charge_id"])
    shown = metric_values(page)
    assert shown["Amount (USD)"] == fmt.money(detail["amount_usd"])
    assert shown["Outcome of the payment"] == "recovered"
    assert shown["Attempts"] == str(len(detail["retry_history"]))
    link = panel.locator('[data-testid="stCode"]').nth(1).inner_text().strip()
    assert link == f"{server.url}/payments?{urlencode({'charge': retried['charge_id']})}"
    screenshot(page, "payment-detail")

    # the link shown is the link that works: a new browser session lands on the same payment
    other = page.context.browser.new_context(viewport=VIEWPORT)
    try:
        second = other.new_page()
        open_signed_in(second, link)
        expect(second.locator(".st-key-payments_detail [data-testid='stCode']").first).to_have_text(retried["charge_id"])
    finally:
        other.close()


def test_csv_download_holds_the_whole_filtered_result(page: Page, server, warehouse, tmp_path: Path) -> None:  # noqa: ANN001
    filters = PaymentFilters(status="failed", funnel="mobile_app")
    total = expected_count(warehouse, filters)
    assert total > 50  # more than one page: the download is not just what is shown
    open_signed_in(page, f"{server.url}/payments?status=failed&funnel=mobile_app")
    button = page.get_by_role("button", name=f"Download CSV ({total:,} payments)")
    expect(button).to_be_visible()
    with page.expect_download() as downloading:
        button.click()
    # named after its filters (paydash/app/file_names.py), in the reporting timezone (UTC here)
    assert downloading.value.suggested_filename == f"payments-failed-mobile_app-until-{today_in('UTC')}.csv"
    target = tmp_path / "payments.csv"
    downloading.value.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(rows) == total
    assert {r["status"] for r in rows} == {"failed"} and {r["funnel_name"] for r in rows} == {"mobile_app"}
    with warehouse.read() as conn:
        newest = payments.payments_page(conn, warehouse.marts, filters, 1).rows[:5]
    assert [r["charge_id"] for r in rows[:5]] == [r["charge_id"] for r in newest]


def test_hostile_ids_and_metadata_are_shown_as_text(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, f"{server.url}/payments?{urlencode({'search': HOSTILE_CUSTOMER, 'charge': HOSTILE_CHARGE})}")
    expect(count_text(page, 2)).to_be_visible()
    panel = page.locator(".st-key-payments_detail")
    expect(panel.locator('[data-testid="stCode"]').first).to_have_text(HOSTILE_CHARGE)
    expect(page.get_by_role("textbox", name="Search")).to_have_value(HOSTILE_CUSTOMER)
    wait_idle(page)

    page.get_by_role("link", name="Overview").click()
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()
    page.locator('[data-testid="stButtonGroup"]').get_by_text("Last 7 days", exact=True).click()
    choose(page, "Funnel", HOSTILE_FUNNEL)
    expect(page.locator('[data-testid="stMetricValue"]').nth(3)).to_have_text("2")  # the two hostile attempts
    expect(page.locator(DONUT)).to_contain_text(SCRIPT)  # the legend, drawn as SVG text
    wait_idle(page)
    screenshot(page, "hostile-data")

    assert page.dialogs == []
    assert page.locator("img[src='x']").count() == 0
    scripts = page.evaluate("() => [...document.scripts].map(s => s.text).join('\\n')")
    assert "alert(1)" not in scripts
    assert page.locator("img[onerror]").count() == 0


def test_demo_prints_a_fresh_password_that_signs_in(browser, browser_db: Path, tmp_path: Path) -> None:  # noqa: ANN001
    demo = start_server(browser_db, tmp_path / "demo", {}, args=["--demo-login"])
    try:
        assert demo.printed_password and len(demo.printed_password) >= 12
        written = "".join(p.read_text(errors="ignore") for p in tmp_path.rglob("*") if p.is_file() and p.name != "server.log")
        assert demo.printed_password not in written
        context = browser.new_context(viewport=VIEWPORT)
        page = context.new_page()
        # the first page this server ever serves is a deep link: it still goes through the
        # sign-in, main.py's session check and navigation (not an old-style pages/ route)
        open_signed_in(page, f"{demo.url}/payments?status=failed", demo.printed_password)
        expect(page.get_by_role("heading", name="Payments")).to_be_visible()
        expect(page).to_have_url(re.compile(r"/payments\?status=failed$"))
        nav = page.locator('[data-testid="stSidebarNav"]')
        expect(nav.get_by_role("link", name="Overview")).to_be_visible()
        expect(nav.get_by_role("link", name="Payments")).to_be_visible()
        expect(page.get_by_text("Signed in as team (admin)")).to_be_visible()
        nav.get_by_role("link", name="Overview").click()
        expect(page.get_by_role("heading", name="Overview")).to_be_visible()
        context.close()
    finally:
        demo.stop()


def test_a_failure_category_on_the_overview_leads_to_its_payments(page: Page, server, warehouse) -> None:  # noqa: ANN001
    open_signed_in(page, server.url)
    wait_idle(page)
    rng = last_n_days(30, "UTC")
    with warehouse.read() as conn:
        categories = overview_failures(conn, warehouse, rng)
    category = categories[0]
    links = page.locator('[data-testid="stMarkdownContainer"]', has_text="See the payments:")
    target = links.get_by_role("link", name=category, exact=True)
    href = target.get_attribute("href")
    assert href == f"/payments?status=failed&from={rng.start}&to={rng.end}&failure_category={category}"
    with page.context.expect_page() as opened:
        target.click()  # Streamlit opens markdown links in a new tab
    explorer = opened.value
    explorer.wait_for_load_state("domcontentloaded")
    expect(explorer).to_have_url(re.compile(re.escape(href) + "$"))
    want = expected_count(warehouse, PaymentFilters(status="failed", date_range=rng, failure_category=category))
    assert want > 0
    expect(count_text(explorer, want)).to_be_visible()
    expect(explorer.get_by_role("combobox", name="Failure category", exact=True)).to_have_value(category)
    expect(explorer.get_by_role("combobox", name="Status", exact=True)).to_have_value("failed")
    screenshot(explorer, "payments-by-failure-category")
    explorer.close()


def overview_failures(conn, warehouse: Warehouse, rng) -> list[str]:  # noqa: ANN001
    """The categories the Overview's donut shows, largest first (only paydash's own ones)."""
    from paydash.decline_codes import FAILURE_CATEGORIES
    from paydash.queries.failures import failure_breakdown

    by_category = failure_breakdown(conn, warehouse.marts, rng)["by_category"]
    return [c["failure_category"] for c in by_category if c["failure_category"] in FAILURE_CATEGORIES]


def test_moving_between_pages_in_the_sidebar_and_back_draws_each_page(page: Page, server) -> None:  # noqa: ANN001
    # Streamlit forgets a page's widget values when another page runs: coming back (Payments ->
    # Overview -> Payments) must draw the page again, not fail on a value it forgot
    open_signed_in(page, server.url + "/payments?status=failed")
    wait_idle(page)
    nav = page.locator('[data-testid="stSidebarNav"]')
    for name in ("Overview", "Payments", "Customers", "Overview", "Promotions", "Payments", "Operations", "Overview"):
        nav.get_by_role("link", name=name, exact=True).click()
        expect(page.get_by_role("heading", name=name, exact=True).first).to_be_visible(timeout=20_000)
        wait_idle(page)
        expect(page.locator('[data-testid="stException"]')).to_have_count(0)
        expect(page.get_by_text("This app has encountered an error")).to_have_count(0)
        expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible()


def test_overview_by_its_name_is_the_overview(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, server.url + "/overview?range=7d")
    wait_idle(page)
    expect(page).to_have_url(re.compile(r"/\?range=7d$"))
    expect(page.get_by_text("Page not found")).to_have_count(0)
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
