"""A page declared in configuration in a real browser: docs/pages.md's Appointments page over the fixture
table, served by `paydash serve` with PAYDASH_PAGES_FILE: search, a filter, a row's detail, the URL."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import duckdb
import pytest
from playwright.sync_api import Page, expect

from dashboard_server import CHROMIUM, PASSWORD, VIEWPORT, Server, start_server
from test_dashboard import open_signed_in

WAIT = 60_000  # ms: a limit for waiting, not a timed assertion (the machine is shared)
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "appointments.csv"
LIST = '[class*="st-key-declared_appointments_table_"]'
DETAIL = '[class*="st-key-declared_appointments_detail"]'


def doc_example() -> str:
    text = (REPO / "docs" / "pages.md").read_text()
    return re.search(r"## Worked example.*?```toml\n(.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def board_server(tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing")
    workdir = tmp_path_factory.mktemp("board-serve")
    db = workdir / "board.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute(f"CREATE TABLE appointments AS SELECT appointment_id, title, end_user, status, booking_source, "
                    f"CAST(starts_at AS TIMESTAMP) AS starts_at, extra FROM read_csv('{FIXTURE}', all_varchar=true)")
    (workdir / "pages.toml").write_text(doc_example())
    running = start_server(db, workdir, {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_PAGES_FILE": str(workdir / "pages.toml")})
    yield running
    running.stop()


@pytest.fixture
def page(browser, board_server: Server) -> Iterator[Page]:  # noqa: ANN001
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(30_000)
    yield context.new_page()
    context.close()


def wait_idle(page: Page) -> None:
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT)


def matching(page: Page, n: int):  # noqa: ANN201
    return page.locator('[data-testid="stMarkdownContainer"]', has_text=f"{n} matching row{'' if n == 1 else 's'}")


def test_search_filter_and_open_an_appointment(page: Page, board_server: Server) -> None:
    open_signed_in(page, f"{board_server.url}/appointments")
    expect(page.get_by_role("heading", name="Appointments", exact=True)).to_be_visible(timeout=WAIT)
    expect(matching(page, 7)).to_be_visible(timeout=WAIT)
    # the menu holds the declared page
    expect(page.get_by_role("link", name="Appointments")).to_be_visible()

    search = page.get_by_role("textbox", name="Search")
    search.fill("anna")
    search.press("Enter")
    expect(matching(page, 2)).to_be_visible(timeout=WAIT)
    expect(page).to_have_url(re.compile(r"[?&]q=anna"), timeout=WAIT)

    page.get_by_role("combobox", name="Status", exact=True).click()
    page.get_by_role("option", name="booked", exact=True).click()
    expect(matching(page, 1)).to_be_visible(timeout=WAIT)
    expect(page).to_have_url(re.compile(r"status=booked"), timeout=WAIT)
    wait_idle(page)

    # select the one row (its marker on the left): the detail opens at the top, the extra data as JSON
    listing = page.locator(LIST)
    expect(listing).to_be_visible(timeout=WAIT)
    listing.click(position={"x": 18, "y": 35 + 35 / 2})
    detail = page.locator(DETAIL)
    expect(detail).to_be_visible(timeout=WAIT)
    expect(detail.locator('[data-testid="stCode"]')).to_contain_text('"stylist": "Lea"', timeout=WAIT)
    expect(page).to_have_url(re.compile(r"key=apt_01"), timeout=WAIT)

    # the URL reproduces the view in a new tab
    shared = page.url
    other = page.context.new_page()
    other.goto(shared)
    expect(other.locator(DETAIL).locator('[data-testid="stCode"]')).to_contain_text('"notes": "short"', timeout=WAIT)
    expect(matching(other, 1)).to_be_visible(timeout=WAIT)
