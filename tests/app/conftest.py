"""AppTest fixtures: one page script at a time, with its settings and signed-in user set up front.

Settings come from the environment (monkeypatched per test) and the working directory is a
fresh temporary one, so no `.env`, secrets file or users file of the developer leaks in; the
state store (users, sessions, audit log) is the default SQLite file in it, a real one.
Streamlit's caches live for the whole process: tests that need a clean slate clear them.

Signing in: AppTest cannot send the `paydash_session` cookie, so `signed_in` makes a real
session in the state store and hands its token to the app the one way login.py reads it
under AppTest (`login.TEST_TOKEN_KEY`); the store lookup and every check after it are the
production code.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard_db import build_dashboard_database
from paydash.app import login
from paydash.settings import Settings, load_settings
from paydash.state import open_state
from paydash.state.models import TEAM_USER, SessionRules
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


def signed_in(at: AppTest, username: str = TEAM_USER, role: str = "admin", now: float | None = None,
              signed_in_ago: float = 60.0, idle_for: float = 5.0, method: str | None = None) -> AppTest:
    """Sign `username` in the way /auth/login does: a session in the state store, its token the cookie.

    The session started `signed_in_ago` seconds before `now` and was last used `idle_for`
    seconds before it. A named user must exist in the store (`open_state(...).users.add`)
    or the app ends the session. `at.session_token` is the token, for looking it up.
    """
    now = time.time() if now is None else now
    settings = load_settings()
    store = open_state(settings)
    rules = SessionRules.from_settings(settings)
    method = method or ("password" if username == TEAM_USER else "user")
    start, last_click = now - signed_in_ago, now - min(idle_for, signed_in_ago)
    token = store.sessions.create(username, role, method, start)
    # clicks often enough to keep it alive until the last one (unless it reached its absolute end first)
    step = rules.idle_timeout / 2
    clicks = [start + step * i for i in range(1, int((last_click - start) // step) + 1)] + [last_click]
    for click in clicks:
        if click - start < rules.max_age and click > start:
            store.sessions.get(token, click, rules, touch=True)
    at.session_state[login.TEST_TOKEN_KEY] = token
    at.session_token = token
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
    """The whole app (main.py: the session check, then navigation), nobody signed in.

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
