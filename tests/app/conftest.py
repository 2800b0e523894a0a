"""AppTest fixtures: one page script at a time, with its settings and signed-in user set up front.

Settings come from the environment (monkeypatched per test) and the working directory is a
fresh temporary one, so no `.env`, secrets file or users file of the developer leaks in.
Streamlit's caches live for the whole process: tests that need a clean slate clear them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard_db import build_dashboard_database
from paydash.app import auth, login
from paydash.settings import Settings
from paydash.warehouse.engine import Warehouse

APP = Path(__file__).resolve().parents[2] / "paydash" / "app"
PASSWORD = "correct horse battery"
# The first run of a page imports pandas, pyarrow and the query layer: generous, not timed.
TIMEOUT = 60


@pytest.fixture(scope="session")
def dashboard_db(tmp_path_factory) -> Path:  # noqa: ANN001
    return build_dashboard_database(tmp_path_factory.mktemp("dash") / "dash.duckdb", payments=12_000, seed=11)


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, dashboard_db: Path) -> pytest.MonkeyPatch:
    """A team password and the test database; the working directory is empty."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYDASH_DATABASE_URL", str(dashboard_db))
    monkeypatch.setenv("PAYDASH_PASSWORD", PASSWORD)
    return monkeypatch


@pytest.fixture(scope="session", autouse=True)
def _close_cached_warehouses():  # noqa: ANN202
    # the app keeps its engines in st.cache_resource; close them before DuckDB is torn down
    yield
    st.cache_resource.clear()


@pytest.fixture(autouse=True)
def _fresh_lockouts() -> None:
    # the lockout counter is one per process (as on a server); tests must not share it
    login._throttle.clear()


@pytest.fixture
def team_password() -> str:
    return PASSWORD


@pytest.fixture
def app_dir() -> Path:
    return APP


@pytest.fixture
def warehouse(dashboard_db: Path):  # noqa: ANN201
    """The test database opened the way the app opens it (read-only), for expected values."""
    wh = Warehouse(str(dashboard_db), Settings(), read_only=True)
    yield wh
    wh.dispose()


def signed_in(at: AppTest, username: str = auth.TEAM_USER, role: str = "admin", now: float | None = None,
              signed_in_ago: float = 60.0, idle_for: float = 5.0) -> AppTest:
    """Seed the signed-in user the way the sign-in form leaves it."""
    now = time.time() if now is None else now
    at.session_state[login.SESSION_KEY] = auth.Session(username, role, now - signed_in_ago, now - idle_for)
    return at


@pytest.fixture(name="signed_in")
def signed_in_fixture() -> Callable[..., AppTest]:
    """signed_in(at, username='team', role='admin', signed_in_ago=60, idle_for=5) -> at."""
    return signed_in


@pytest.fixture
def page(env: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    """page('overview') -> an AppTest of that page script with the team user signed in."""

    def make(name: str, sign_in: bool = True) -> AppTest:
        at = AppTest.from_file(str(APP / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)
        return signed_in(at) if sign_in else at

    return make


@pytest.fixture
def main_app(env: pytest.MonkeyPatch) -> Callable[[], AppTest]:
    """The whole app (main.py: sign-in gate, then navigation), nobody signed in.

    `main_app()` is not run yet; `main_app(opened=True)` has run it the way a browser
    opens it. AppTest's first run asks for the main script and its second for the page
    st.navigation chose; values typed between the two are dropped as a page change, which
    a browser (asking for the page from the start) never sees.
    """

    def make(opened: bool = False) -> AppTest:
        at = AppTest.from_file(str(APP / "main.py"), default_timeout=TIMEOUT)
        return at.run().run() if opened else at

    return make


def clear_data_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()
