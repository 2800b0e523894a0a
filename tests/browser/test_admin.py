"""The admin pages in a real browser: System and Data explorer for an admin, nothing of them for a viewer."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import Page, expect

from dashboard_server import Server, start_server
from test_dashboard import open_signed_in

WAIT = 60_000  # ms: a limit for waiting, not a timed assertion (the machine is shared)
SAVED_QUERIES = '''
[[query]]
name = "Payments by status"
description = "How many attempts of each status"
sql = "SELECT status, count(*) AS attempts FROM mart_stripe_payments GROUP BY status ORDER BY status"

[[query]]
name = "Read a server file"
description = "Refused by the database"
sql = "SELECT * FROM read_csv('/etc/passwd')"
'''


def add_user(workdir: Path, username: str, password: str, role: str) -> None:
    """`paydash users add NAME --role ROLE --password-stdin` in the server's working directory, as a team would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "users", "add", username, "--role", role,
                           "--password-stdin"], input=password + "\n", cwd=workdir, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert password not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def admin_server(browser_db: Path, tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    """`paydash serve` with named users (alice admin, bob viewer), added by the CLI, and saved queries."""
    workdir = tmp_path_factory.mktemp("admin-serve")
    add_user(workdir, "alice", "alice-password", "admin")
    add_user(workdir, "bob", "bob-password", "viewer")
    (workdir / "queries.toml").write_text(SAVED_QUERIES)
    running = start_server(browser_db, workdir, {"PAYDASH_REDIS_URL": "redis://127.0.0.1:6379/0"})
    running.workdir = workdir
    yield running
    running.stop()


def wait_idle(page: Page) -> None:
    """Connected, the script finished, nothing left loading (test_dashboard's, with longer limits)."""
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stApp"][data-test-script-state="notRunning"]', timeout=WAIT)
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached", timeout=WAIT)
    expect(page.locator('[data-testid="stSkeleton"]')).to_have_count(0, timeout=WAIT)


def sign_in_as(page: Page, url: str, username: str, password: str) -> None:
    open_signed_in(page, url, password, username=username)


def audit_actions(server: Server) -> list[tuple[str, str]]:
    with sqlite3.connect(server.workdir / "data" / "state.sqlite") as conn:  # the state store's default file
        return conn.execute("SELECT username, action FROM paydash_audit_log ORDER BY id").fetchall()


def test_system_page_for_an_admin(page: Page, admin_server: Server, tmp_path: Path) -> None:
    # a link to /system survives the sign-in
    sign_in_as(page, f"{admin_server.url}/system", "alice", "alice-password")
    expect(page.get_by_role("heading", name="System", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(page)
    for heading in ("Health", "Tables", "Growth", "Data quality", "Versions and environment", "Slowest recent queries",
                    "Actions", "Audit log"):
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible(timeout=WAIT)
    database = page.locator('[data-testid="stMetric"]', has_text="Database (duckdb)")
    expect(database.locator('[data-testid="stMetricValue"]')).to_have_text(re.compile(r"^\d+ ms$"), timeout=WAIT)
    expect(page.get_by_role("link", name="System")).to_be_visible(timeout=WAIT)  # in the admin's menu

    # the row counts as CSV
    with page.expect_download() as downloading:
        page.locator('[data-testid="stDownloadButton"]').first.get_by_role("button").click()
    target = tmp_path / "tables.csv"
    downloading.value.save_as(target)
    rows = {r["Table"]: r for r in csv.DictReader(io.StringIO(target.read_text()))}
    assert rows["mart_stripe_payments"]["Present"] == "yes" and int(rows["mart_stripe_payments"]["Rows"]) > 0

    # the system report
    with page.expect_download() as downloading:
        page.get_by_role("button", name="System report (JSON)").click()
    report = json.loads(Path(downloading.value.path()).read_text())
    assert report["database"]["ok"] is True and report["generated_by"] == "alice"
    assert report["redis"]["ok"] is True
    assert {r["setting"]: r["value"] for r in report["environment"]}["PAYDASH_REDIS_URL"] == "set"

    # an action, then the audit log on the page holds the sign-in, the downloads and the action
    page.get_by_role("button", name="Test the connection").click()
    expect(page.get_by_text("A new connection to")).to_be_visible(timeout=WAIT)
    wait_idle(page)
    assert ("alice", "login") in audit_actions(admin_server)
    assert ("alice", "export") in audit_actions(admin_server)
    assert ("alice", "system_report") in audit_actions(admin_server)
    assert ("alice", "test_connection") in audit_actions(admin_server)
    expect(page.locator('[data-testid="stMarkdownContainer"]', has_text="entries").first).to_be_visible(timeout=WAIT)


def test_payments_export_is_audited(page: Page, admin_server: Server) -> None:
    sign_in_as(page, f"{admin_server.url}/payments?status=failed&funnel=mobile_app", "alice", "alice-password")
    expect(page.get_by_text("matching payments")).to_be_visible(timeout=WAIT)
    wait_idle(page)
    button = page.get_by_role("button", name=re.compile(r"^Download CSV \(\d[\d,]* payments\)$"))
    expect(button).to_be_visible(timeout=WAIT)
    with page.expect_download() as downloading:
        button.click()
    assert Path(downloading.value.path()).read_text().startswith("charge_id,")
    assert audit_actions(admin_server)[-1] == ("alice", "export")


def test_data_explorer_for_an_admin(page: Page, admin_server: Server) -> None:
    sign_in_as(page, f"{admin_server.url}/data-explorer", "alice", "alice-password")
    expect(page.get_by_role("heading", name="Data explorer", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(page)
    expect(page.get_by_text("How many attempts of each status")).to_be_visible(timeout=WAIT)
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("rows in")).to_be_visible(timeout=WAIT)
    wait_idle(page)
    # the refused one: a clear message, no table
    page.get_by_role("combobox", name="Query", exact=True).click()
    page.get_by_role("option", name="Read a server file", exact=True).click()
    wait_idle(page)
    page.get_by_role("button", name="Run").click()
    expect(page.get_by_text("the database refused this query")).to_be_visible(timeout=WAIT)
    expect(page.get_by_text("file system operations are disabled")).to_be_visible(timeout=WAIT)
    assert audit_actions(admin_server)[-2:] == [("alice", "run_query"), ("alice", "run_query")]


ADMIN_HEADINGS = ("System", "Data explorer", "Health", "Tables", "Audit log", "Saved queries")


@pytest.mark.parametrize("path", ["system", "data-explorer"])
def test_a_viewer_neither_sees_nor_opens_the_admin_pages(page: Page, admin_server: Server, path: str) -> None:
    # a link to an admin page, signed in as a viewer on the way: the Overview, no admin menu entry
    sign_in_as(page, f"{admin_server.url}/{path}", "bob", "bob-password")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(page)
    expect(page.get_by_text("Signed in as bob (viewer)")).to_be_visible(timeout=WAIT)
    nav = page.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_role("link", name="Payments")).to_be_visible(timeout=WAIT)
    expect(nav.get_by_role("link", name="System")).to_have_count(0, timeout=WAIT)
    expect(nav.get_by_role("link", name="Data explorer")).to_have_count(0, timeout=WAIT)
    # the URL typed again, still signed in (the session lasts): still not the page
    page.goto(f"{admin_server.url}/{path}", wait_until="domcontentloaded")
    expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible(timeout=WAIT)
    wait_idle(page)
    expect(page.get_by_text("Signed in as bob (viewer)")).to_be_visible(timeout=WAIT)
    for heading in ADMIN_HEADINGS:
        expect(page.get_by_role("heading", name=heading, exact=True)).to_have_count(0, timeout=WAIT)
