"""Browser tests: `paydash serve` in a subprocess, driven by Playwright through Debian's Chromium.

The recipe of STACK-NOTES.md: a free port, the real server command, poll /_stcore/health,
then wait for the app's own state (elements, texts), never for fixed times. When a test
fails, the server's output and a screenshot are kept under test-artifacts/.

Without /usr/bin/chromium these tests skip with a loud reason, except under CI=true,
where they fail (`.ci/run` installs chromium).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import pytest

from dashboard_db import build_dashboard_database
from dashboard_server import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, IN_CI, PASSWORD, VIEWPORT, Server, start_server

_SKIPPED: list[str] = []


def pytest_collection_modifyitems(items) -> None:  # noqa: ANN001
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):  # noqa: ANN001, ANN201
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ANN001
    if _SKIPPED:
        terminalreporter.write_sep("!", "BROWSER TESTS SKIPPED", red=True, bold=True)
        terminalreporter.write_line(_SKIPPED[0], red=True, bold=True)


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = (f"{CHROMIUM} is missing: the browser tests did NOT run. Install it with "
               "`apt-get install -y chromium` (`playwright install` cannot download browsers here).")
    if IN_CI:
        pytest.fail("CI=true: " + message, pytrace=False)
    if not _SKIPPED:
        _SKIPPED.append(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def browser_db(tmp_path_factory) -> Path:  # noqa: ANN001
    _require_chromium()
    return build_dashboard_database(tmp_path_factory.mktemp("browser") / "dash.duckdb", payments=20_000, seed=5)


@pytest.fixture(scope="session")
def server(browser_db: Path, tmp_path_factory) -> Iterator[Server]:  # noqa: ANN001
    running = start_server(browser_db, tmp_path_factory.mktemp("serve"), {"PAYDASH_PASSWORD": PASSWORD})
    yield running
    running.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator:  # noqa: ANN001
    _require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server: Server, request) -> Iterator:  # noqa: ANN001
    """A fresh browser session (its own Streamlit session), with dialogs recorded, not run."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.set_default_timeout(30_000)
    page = context.new_page()
    page.dialogs = []  # any alert() would land here

    def on_dialog(dialog) -> None:  # noqa: ANN001
        page.dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", on_dialog)
    yield page
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"), full_page=True)
        except Exception:  # noqa: BLE001 - the report matters more than the picture
            pass
        print(f"\n---- paydash serve output ({server.log}) ----\n{server.output()[-8000:]}")
    context.close()
