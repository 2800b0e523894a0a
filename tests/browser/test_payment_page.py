"""A payment's page in a real browser: its link opens the detail at the top, above the list; a row
selected in a scrolled list opens the detail in view; amounts, links and the Overview's refund cards."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from playwright.sync_api import Page, expect

from paydash.app import format as fmt
from paydash.app import tables
from paydash.queries import overview, payments
from paydash.queries.dates import last_n_days
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse

from test_dashboard import metric_values, open_signed_in, screenshot, wait_idle

DETAIL = ".st-key-payments_detail"
LIST = '[class*="st-key-payments_table_"]'
SMALL = {"width": 1400, "height": 900}
WAIT = 20_000  # ms: a first page load on a busy machine takes longer than expect's 5 s  # a laptop's screen: the list's lower rows are below the fold


@pytest.fixture(scope="module")
def warehouse(browser_db: Path):  # noqa: ANN201
    wh = Warehouse(str(browser_db), Settings(), read_only=True)
    yield wh
    wh.dispose()


def disputed_foreign_charge(warehouse: Warehouse) -> dict:
    """A disputed charge in a currency other than USD, with its detail as the query layer gives it."""
    with warehouse.read() as conn:
        d, p = warehouse.marts.disputes.c, warehouse.marts.payments.c
        charge_id = conn.execute(
            sa.select(d.charge_id).select_from(warehouse.marts.disputes.join(warehouse.marts.payments, p.charge_id == d.charge_id))
            .where(p.currency != "usd").order_by(d.created_at, d.dispute_id).limit(1)).scalar_one()
        return payments.payment_detail(conn, warehouse.marts, charge_id, with_refunds=True, with_disputes=True,
                                       with_customer=True, fx_rates=warehouse.conversion_rates())


def test_a_payments_link_opens_it_at_the_top_above_the_list(page: Page, server, warehouse) -> None:  # noqa: ANN001
    detail = disputed_foreign_charge(warehouse)
    page.set_viewport_size(SMALL)
    open_signed_in(page, f"{server.url}/payments?{urlencode({'charge': detail['charge_id']})}")
    panel = page.locator(DETAIL)
    expect(panel.locator('[data-testid="stCode"]').first).to_have_text(detail["charge_id"], timeout=WAIT)
    listing = page.locator(LIST)
    expect(listing).to_be_visible(timeout=WAIT)
    wait_idle(page)
    top, below = panel.bounding_box(), listing.bounding_box()
    # without scrolling, the detail starts on the first screen, and the list comes after it
    assert 0 <= top["y"] < SMALL["height"] / 2, top
    assert top["y"] + top["height"] <= below["y"], (top, below)
    # the amount in the charge's own currency and in USD with the rate
    shown = metric_values(page)
    assert shown["Amount"] == tables.original_amount(detail) and detail["currency"].upper() in shown["Amount"]
    assert shown["Amount (USD)"] == fmt.money(detail["amount_usd"])
    expect(panel.get_by_text(tables.conversion(detail), exact=True)).to_be_visible()
    # ids are links: the customer, the payment intent's attempts, Stripe's Dashboard
    customer = panel.get_by_role("link", name="The customer")
    expect(customer).to_have_attribute("href", f"{server.url}/customers?{urlencode({'customer': detail['customer_id']})}")
    intent = panel.get_by_role("link", name="Every attempt of its payment intent")
    expect(intent).to_have_attribute("href", f"{server.url}/payments?{urlencode({'search': detail['payment_intent_id']})}")
    expect(panel.get_by_role("link", name="Open in Stripe's Dashboard")).to_have_attribute(
        "href", f"https://dashboard.stripe.com/payments/{detail['payment_intent_id']}")
    screenshot(page, "payment-page")

    # the payment intent's link lists its attempts
    page.goto(intent.get_attribute("href"))
    attempts = len(detail["retry_history"])
    expect(page.get_by_text(f"{attempts} {fmt.plural(attempts, 'matching payment')}", exact=False)).to_be_visible(timeout=WAIT)


def test_a_selected_row_opens_its_detail_in_view(page: Page, server, warehouse) -> None:  # noqa: ANN001
    page.set_viewport_size(SMALL)
    open_signed_in(page, f"{server.url}/payments")
    listing = page.locator(LIST)
    expect(listing).to_be_visible(timeout=WAIT)
    wait_idle(page)
    # scroll the page down to the list's end (where the old detail began, below it), then select its
    # tenth row (the row markers are on the left)
    listing.evaluate("e => e.scrollIntoView({block: 'end'})")
    wait_idle(page)
    box = listing.bounding_box()
    header, row_height = 35, 35
    y = header + 9 * row_height + row_height / 2
    assert box["y"] + y < SMALL["height"], "the row to select is not on screen"
    listing.click(position={"x": 18, "y": y})
    dialog = page.get_by_role("dialog")
    expect(dialog).to_be_visible(timeout=WAIT)
    panel = dialog.locator(DETAIL)
    expect(panel.locator('[data-testid="stCode"]').first).to_be_visible(timeout=WAIT)
    wait_idle(page)
    opened = panel.locator('[data-testid="stCode"]').first.inner_text().strip()
    with warehouse.read() as conn:
        newest = payments.payments_page(conn, warehouse.marts, payments.PaymentFilters(), 1).rows
    assert opened == newest[9]["charge_id"]
    # the detail is where the eye is: its top on the screen, not below the list
    top = panel.bounding_box()
    assert 0 <= top["y"] < SMALL["height"] / 2, top
    screenshot(page, "payment-dialog")
    # the URL names the payment, so it can be shared; closing the dialog forgets it
    expect(page).to_have_url(f"{server.url}/payments?{urlencode({'charge': opened})}")
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0, timeout=WAIT)
    expect(page).to_have_url(f"{server.url}/payments", timeout=WAIT)


def test_the_overview_shows_refunds_and_disputes(page: Page, server, warehouse) -> None:  # noqa: ANN001
    with warehouse.read() as conn:
        now = overview.overview(conn, warehouse.marts, last_n_days(30, "UTC"), mart_tz="UTC", with_refunds=True,
                                with_disputes=True)["current"]
    assert now["refunds"] and now["disputes"]  # the demo has both: the cards can be wrong
    open_signed_in(page, f"{server.url}/overview")
    expect(page.locator('[data-testid="stMetric"]').first).to_be_visible(timeout=WAIT)
    wait_idle(page)
    shown = metric_values(page)
    assert {card: shown[card] for card in ("Net revenue", "Refunds", "Disputes", "Dispute rate")} == {
        "Net revenue": fmt.money_compact(now["net_revenue_usd"]), "Refunds": fmt.count(now["refunds"]),
        "Disputes": fmt.count(now["disputes"]), "Dispute rate": fmt.percent(now["dispute_rate"], 2)}

