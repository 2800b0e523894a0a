"""The Operations page in a real browser: tiles and charts drawn, refresh and the auto-refresh toggle work."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from test_dashboard import CHART, metric_values, open_signed_in, screenshot, wait_idle

# a waiting limit, not a timing assertion: reruns on a busy shared machine take seconds
WAIT = 30_000
TILES = ["Checkout success (15 min)", "Sessions active", "Sessions pending", "Expired without retry (24 h)",
         "Expired sessions (1 h)", "Retry backlog", "Receipt render p95 (1 h)", "Webhook lag (5 min)"]


def test_operations_page_draws_its_panels_and_refreshes(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, f"{server.url}/operations")
    expect(page.get_by_role("heading", name="Operations", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(page)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(len(TILES), timeout=WAIT)
    assert list(metric_values(page)) == TILES
    assert page.locator(CHART).count() >= 7
    # the success-rate line and its 97% target rule, and the receipts table are drawn
    expect(page.locator(f"{CHART}:has(.mark-line) .mark-rule").first).to_be_attached(timeout=WAIT)
    expect(page.get_by_text("Recent receipts")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text(re.compile(r"^As of "))).to_be_visible(timeout=WAIT)
    screenshot(page, "operations")

    page.get_by_role("button", name="Refresh now").click()
    wait_idle(page)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(len(TILES), timeout=WAIT)
    toggle = page.get_by_role("switch", name="Refresh every minute")
    expect(toggle).to_be_checked(timeout=WAIT)
    toggle.click(force=True)
    expect(toggle).not_to_be_checked(timeout=WAIT)
    wait_idle(page)
    expect(page.locator('[data-testid="stMetric"]')).to_have_count(len(TILES), timeout=WAIT)
    assert page.dialogs == []
