"""PostgreSQL goes away under a running dashboard: one banner per page, not one red box per section.

The dashboard reads a real PostgreSQL database (demo data) through a TCP relay on loopback
(tests/tcp_relay.py); stopping the relay is the server going down for the dashboard:
connections refused, the pooled ones cut. The pages run in AppTest with a real session.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from paydash.settings import load_settings
from paydash.state import open_state
from tcp_relay import demo_database_behind_relay

pytestmark = pytest.mark.postgres
APP = Path(__file__).resolve().parents[2] / "paydash" / "app"
TIMEOUT = 60  # the first run of a page imports pandas and the query layer: generous, not timed

BANNER = "**The database is unreachable**"


@pytest.fixture(scope="module")
def pg_dashboard(pg_url: str):  # noqa: ANN201
    """(relay, database name, URL through the relay): a PostgreSQL database of demo payments."""
    with demo_database_behind_relay(pg_url, "down", seed=3) as found:
        yield found
        st.cache_resource.clear()  # the app's engines point at the relay


@pytest.fixture
def through_relay(env: pytest.MonkeyPatch, pg_dashboard):  # noqa: ANN001, ANN201
    relay, name, url = pg_dashboard
    if not relay.running:
        relay.start()
    env.setenv("PAYDASH_DATABASE_URL", url)
    env.setenv("PAYDASH_CONNECT_TIMEOUT", "3")
    yield relay, name
    if not relay.running:
        relay.start()


def page_as(name: str, signed_in, username: str = "team", role: str = "admin") -> AppTest:  # noqa: ANN001
    at = AppTest.from_file(str(APP / "app_pages" / f"{name}.py"), default_timeout=TIMEOUT)
    return signed_in(at, username=username, role=role)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def since_of(banner: str) -> str:
    found = re.search(r"since (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+)", banner)
    assert found, banner
    return found.group(1)


def test_postgres_down_one_banner_for_admins_with_the_fix_and_for_viewers_without_details(
        through_relay, signed_in) -> None:  # noqa: ANN001
    relay, database = through_relay
    users = open_state(load_settings()).users
    users.add("alice", "alice-password-123", "admin")
    users.add("ann", "ann-password-123", "viewer")
    admin = page_as("overview", signed_in, "alice", "admin").run()
    assert not errors(admin) and admin.metric[0].label == "Revenue"

    relay.stop()  # PostgreSQL goes away
    admin.button(key="overview_refresh").click().run()  # a refresh reads the database again
    assert not admin.exception
    shown = errors(admin)
    assert len(shown) == 1 and shown[0].startswith(BANNER), shown  # once, not once per section
    assert not admin.metric and not admin.warning
    banner = shown[0]
    assert "tries again at every refresh or click" in banner
    # the admin gets the fix, with the connection details
    assert "To fix it" in banner and "PAYDASH\\_DATABASE\\_URL" in banner
    assert "127\\.0\\.0\\.1" in banner and str(relay.port) in banner and database.replace("_", "\\_") in banner
    first_since = since_of(banner)

    viewer = page_as("overview", signed_in, "ann", "viewer").run()
    shown = errors(viewer)
    assert len(shown) == 1 and shown[0].startswith(BANNER), shown
    for detail in ("127", str(relay.port), database.replace("_", "\\_"), "PAYDASH", "postgresql"):
        assert detail not in shown[0], f"a viewer is shown {detail!r}"
    assert since_of(shown[0]) == first_since  # since the first failure in this process, not this page run

    relay.start()  # the database is back: the very next run shows the numbers
    admin.run()
    assert not errors(admin) and admin.metric[0].label == "Revenue"
    viewer.run()
    assert not errors(viewer) and viewer.metric[0].label == "Revenue"


@pytest.mark.parametrize("name", ["payments", "operations", "customers", "promotions", "system", "data_explorer"])
def test_every_page_says_it_once(through_relay, signed_in, name: str) -> None:  # noqa: ANN001
    relay, _ = through_relay
    st.cache_data.clear()  # nothing served from an earlier read
    relay.stop()
    at = page_as(name, signed_in).run()
    assert not at.exception
    shown = errors(at)
    assert len(shown) == 1 and shown[0].startswith(BANNER), shown
    relay.start()
    at.run()
    assert not errors(at)


def test_a_missing_table_still_shows_in_its_section_while_the_database_answers(through_relay, env, signed_in) -> None:  # noqa: ANN001
    relay, _ = through_relay
    env.setenv("PAYDASH_PAYMENTS_TABLE", "no_such_mart")
    users = open_state(load_settings()).users
    users.add("alice", "alice-password-123", "admin")
    users.add("ann", "ann-password-123", "viewer")
    at = page_as("overview", signed_in, "alice", "admin").run()
    shown = errors(at)
    assert shown and not any(e.startswith(BANNER) for e in shown)
    assert any("no\\_such\\_mart" in e and str(relay.port) in e for e in shown)  # the admin sees where
    viewer = page_as("overview", signed_in, "ann", "viewer").run()
    shown = errors(viewer)
    assert any("no\\_such\\_mart" in e for e in shown)
    assert not any(str(relay.port) in e or "127\\.0\\.0\\.1" in e for e in shown), shown  # a viewer does not
