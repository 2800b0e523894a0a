"""The Overview in a real browser: its view in the URL, today so far, and how its numbers read."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from dashboard_server import ARTIFACTS, PASSWORD

CHART = '[data-testid="stVegaLiteChart"]'
DAILY = f"{CHART}:has(.mark-rect)"
DONUT = f"{CHART}:has(.mark-arc)"


def wait_idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]')
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]')
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0)


def open_signed_in(page: Page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    expect(page).to_have_url(re.compile(r"/auth/login(\?|$)"))
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))


def test_a_shared_overview_link_reopens_its_range_and_funnel(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, f"{server.url}/?range=7d&funnel=mobile_app")
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    wait_idle(page)
    expect(page.get_by_role("combobox", name="Funnel", exact=True)).to_have_value("mobile_app")
    expect(page.get_by_text(re.compile(r"\(7 days, UTC\), compared with"))).to_be_visible()
    expect(page).to_have_url(re.compile(r"range=7d"))
    expect(page).to_have_url(re.compile(r"funnel=mobile_app"))

    page.locator('[data-testid="stButtonGroup"]').get_by_text("Last 90 days", exact=True).click()
    expect(page).to_have_url(re.compile(r"range=90d"))
    expect(page.get_by_text(re.compile(r"\(90 days, UTC\)"))).to_be_visible()
    shared = page.url

    # the link in a new tab of the same browser: the same view
    other = page.context.new_page()
    other.goto(shared)
    expect(other.get_by_text(re.compile(r"\(90 days, UTC\)"))).to_be_visible()
    expect(other.get_by_role("combobox", name="Funnel", exact=True)).to_have_value("mobile_app")
    other.close()


def test_today_so_far_and_the_way_numbers_read(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, server.url)
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    expect(page.locator(f"{DONUT} .mark-arc path").first).to_be_attached()
    wait_idle(page)
    # the range ends today: both periods are compared up to the same time of day
    expect(page.get_by_text(re.compile(r"today so far, compared up to \d\d:\d\d on"))).to_be_visible()

    # the revenue axis abbreviates as the cards do ($50K, not $50k)
    axis = [t for t in page.locator(f"{DAILY} .role-axis-label text").all_text_contents() if t.startswith("$")]
    assert axis and all(re.fullmatch(r"\$\d+(\.\d+)?[KMB]?", t) for t in axis), axis
    assert any(t.endswith("K") for t in axis), axis
    revenue = page.locator('[data-testid="stMetric"]', has_text="Revenue").first
    expect(revenue.locator('[data-testid="stMetricValue"]')).to_have_text(re.compile(r"^\$[\d,.]+[KMB]?$"))

    # the donut's legend is in words
    legend = page.locator(f"{DONUT} .role-legend-label text").all_text_contents()
    assert "Card declined" in legend and not any("_" in label for label in legend), legend

    # the top reasons are readable: the table fits its place, no column scrolled out of sight
    table = page.locator('[data-testid="stDataFrame"]').first
    table.scroll_into_view_if_needed()
    hidden = table.locator(".dvn-scroller").first.evaluate("e => e.scrollWidth - e.clientWidth")
    assert hidden <= 1, f"{hidden} px of the top reasons are scrolled out of sight"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview-polish.png"), full_page=True)
