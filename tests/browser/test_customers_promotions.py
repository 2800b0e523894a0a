"""The Customers and Promotions pages in a real browser: list, cohort heatmap, a customer's link, a code's link, CSV."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from urllib.parse import urlencode

import pytest
from playwright.sync_api import Page, expect

from paydash.app import format as fmt
from paydash.queries import customers as cq
from paydash.queries import promotions as pq
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse

from dashboard_db import HOSTILE_CUSTOMER
from test_dashboard import metric_values, open_signed_in, screenshot, wait_idle

HEATMAP_CELLS = '[data-testid="stVegaLiteChart"] .mark-rect.role-mark path'  # not the legend's gradient


@pytest.fixture(scope="module")
def warehouse(browser_db: Path):  # noqa: ANN201
    wh = Warehouse(str(browser_db), Settings(), read_only=True)
    yield wh
    wh.dispose()


def test_customers_list_and_cohort_heatmap(page: Page, server, warehouse) -> None:  # noqa: ANN001
    with warehouse.read() as conn:
        first = cq.customers_page(conn, warehouse.marts, precomputed=True, with_profiles=True)
        grid = cq.retention_cohorts(conn, warehouse.marts, "UTC", "UTC")
    open_signed_in(page, f"{server.url}/customers")
    expect(page.get_by_text(f"{first.total:,} customers", exact=True)).to_be_visible()
    expect(page.get_by_text(f"Page 1 of {first.pages:,}")).to_be_visible()
    wait_idle(page)
    expect(page.locator(HEATMAP_CELLS)).to_have_count(len(grid))  # one cell per (cohort, month since)
    expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(page.get_by_text(f"Page 2 of {first.pages:,}")).to_be_visible()
    screenshot(page, "customers")


def test_a_customers_link_opens_the_deep_dive_and_exports_it(page: Page, server, warehouse, tmp_path: Path) -> None:  # noqa: ANN001
    with warehouse.read() as conn:
        rows = cq.customers_page(conn, warehouse.marts, precomputed=True, with_profiles=True).rows
        someone = next((r for r in rows if r["failed"]), rows[0])
        detail = cq.customer_detail(conn, warehouse.marts, someone["customer_id"], with_profile=True)
    open_signed_in(page, f"{server.url}/customers?{urlencode({'customer': someone['customer_id']})}")
    expect(page.get_by_text(f"Customer {someone['customer_id']}")).to_be_visible()
    wait_idle(page)
    shown = metric_values(page)
    assert shown["Revenue"] == fmt.money(detail["totals"]["revenue_usd"])
    assert shown["Payments"] == str(detail["totals"]["payments"])
    with page.expect_download() as downloading:
        page.get_by_role("button", name="Download CSV (all attempts)").click()
    target = tmp_path / "customer.csv"
    downloading.value.save_as(target)
    exported = list(csv.DictReader(io.StringIO(target.read_text())))
    assert len(exported) == detail["totals"]["attempts"]
    assert {r["charge_id"] for r in exported} == {a["charge_id"] for p in detail["timeline"] for a in p["attempts"]}
    screenshot(page, "customer-detail")


def test_hostile_customer_is_text(page: Page, server) -> None:  # noqa: ANN001
    open_signed_in(page, f"{server.url}/customers?{urlencode({'customer': HOSTILE_CUSTOMER})}")
    expect(page.get_by_text(f"Customer {HOSTILE_CUSTOMER}")).to_be_visible()
    wait_idle(page)
    assert page.dialogs == []
    assert page.locator("img[onerror]").count() == 0


def test_a_codes_link_opens_its_usage_history(page: Page, server, warehouse) -> None:  # noqa: ANN001
    with warehouse.read() as conn:
        codes = pq.promotion_codes(conn, warehouse.marts)
        code = max(codes.rows, key=lambda r: r["uses"])
        applied = pq.usage_history(conn, warehouse.marts, pq.UsageFilters(code["promotion_code_id"], action="applied"))
    open_signed_in(page, f"{server.url}/promotions")
    expect(page.get_by_text(f"{codes.total} promotion codes", exact=True)).to_be_visible()
    page.goto(f"{server.url}/promotions?{urlencode({'code': code['promotion_code_id'], 'action': 'applied'})}",
              wait_until="domcontentloaded")
    # a new page load keeps the session: no sign-in again
    expect(page.get_by_text(f"Code {code['code']}")).to_be_visible()
    expect(page.get_by_text(f"{applied.total:,} matching uses", exact=True)).to_be_visible()
    wait_idle(page)
    assert metric_values(page)["Uses"] == f"{code['uses']:,}"
    screenshot(page, "promotion-code")
