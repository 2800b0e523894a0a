"""The session check in the app (login.py), through the whole app (main.py) and a page script on its own.

Signing in and out is the HTTP layer's (tests/app/test_server.py, tests/browser/): here the
session is made in the real state store (conftest's `signed_in`) and the app must notice
every way it can end while a tab stays open.
"""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlsplit

import pytest
from streamlit.runtime.scriptrunner_utils.script_requests import RerunData, ScriptRequests
from streamlit.runtime.scriptrunner_utils.script_run_context import ScriptRunContext

from paydash.app import login
from paydash.settings import load_settings
from paydash.state import open_state
from paydash.state.audit import LOGOUT, AuditFilter
from paydash.state.models import SessionRules


def store():  # noqa: ANN201
    return open_state(load_settings())


def stored(at):  # noqa: ANN001, ANN201
    """The session behind `at`'s token as the store has it now (not renewed by looking)."""
    settings = load_settings()
    return open_state(settings).sessions.get(at.session_token, time.time(), SessionRules.from_settings(settings),
                                             touch=False).session


def sign_in_link(at) -> str:  # noqa: ANN001
    links = [link for m in at.markdown for link in re.findall(r"\[Sign in again\]\(([^)]*)\)", m.value)]
    assert len(links) == 1, [m.value for m in at.markdown]
    return links[0]


def next_of(at) -> str:  # noqa: ANN001
    href = sign_in_link(at)
    assert urlsplit(href).path == "/auth/login"
    return parse_qs(urlsplit(href).query)["next"][0]


def shows_only_the_session_message(at) -> None:  # noqa: ANN001
    assert not at.exception
    assert not at.metric and not at.dataframe and not at.text_input
    assert not at.sidebar.caption  # no "Signed in as"


# -- nobody signed in ---------------------------------------------------------------------------
def test_without_a_session_the_app_shows_only_the_way_to_sign_in(main_app) -> None:  # noqa: ANN001
    at = main_app(opened=True)
    shows_only_the_session_message(at)
    assert [i.value for i in at.info] == [login.NOT_SIGNED_IN]
    assert next_of(at) == "/"


def test_an_unknown_token_is_refused(page) -> None:  # noqa: ANN001
    at = page("overview", sign_in=False)
    at.session_state[login.TEST_TOKEN_KEY] = "made-up-token-of-a-stranger"
    at.run()
    shows_only_the_session_message(at)
    assert "sign in again" in at.info[0].value


# -- signed in ----------------------------------------------------------------------------------
def test_a_signed_in_user_gets_the_overview_and_their_name_in_the_sidebar(main_app, signed_in) -> None:  # noqa: ANN001
    at = signed_in(main_app()).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [t.value for t in at.title] == ["Overview"]
    assert [m.label for m in at.metric][:4] == ["Revenue", "Success rate", "Failed payments", "Attempts"]
    assert [c.value for c in at.sidebar.caption] == ["Signed in as team (admin)"]


def test_sign_out_ends_the_session_on_the_server(main_app, signed_in, tmp_path) -> None:  # noqa: ANN001
    at = signed_in(main_app()).run()
    assert at.metric
    at = at.sidebar.button(key="logout").click().run()
    shows_only_the_session_message(at)
    assert [i.value for i in at.info] == [login.SIGNED_OUT]
    assert stored(at) is None  # the cookie's token is refused from now on, in every tab
    assert parse_qs(urlsplit(sign_in_link(at)).query)["ended"] == ["signed_out"]
    assert [(e.username, e.action) for e in store().audit.page(AuditFilter()).entries][:1] == [("team", LOGOUT)]
    at.run()  # and stays signed out
    shows_only_the_session_message(at)


def test_activity_renews_the_idle_clock(page, signed_in) -> None:  # noqa: ANN001
    at = signed_in(page("overview", sign_in=False), signed_in_ago=3600, idle_for=29 * 60)
    before = time.time()
    at.run()
    assert at.metric, ([i.value for i in at.info], [e.value for e in at.error], at.exception)
    assert stored(at).last_seen >= before


# -- the ways a session ends while the tab stays open ---------------------------------------------
@pytest.mark.parametrize(
    "signed_in_ago, idle_for, notice, code",
    [(13 * 3600, 60, "12 hours", "expired"), (3600, 31 * 60, "30 minutes without activity", "idle")],
)
def test_an_expired_session_asks_to_sign_in_again(page, signed_in, signed_in_ago, idle_for, notice, code) -> None:  # noqa: ANN001
    at = signed_in(page("overview", sign_in=False), signed_in_ago=signed_in_ago, idle_for=idle_for).run()
    shows_only_the_session_message(at)
    assert notice in at.info[0].value and "sign in again" in at.info[0].value
    assert parse_qs(urlsplit(sign_in_link(at)).query)["ended"] == [code]  # the sign-in page says why too


def test_the_sign_in_link_comes_back_to_the_page_and_its_query(page, signed_in) -> None:  # noqa: ANN001
    at = signed_in(page("payments", sign_in=False), signed_in_ago=3600, idle_for=31 * 60)
    at.context["url"] = "http://127.0.0.1:8501/payments"
    at.query_params["status"] = "failed"
    at.query_params["funnel"] = "mobile_app"
    at.run()
    shows_only_the_session_message(at)
    assert next_of(at) == "/payments?status=failed&funnel=mobile_app"


def test_a_session_ended_on_the_server_ends_in_the_open_tab(main_app, signed_in) -> None:  # noqa: ANN001
    at = signed_in(main_app()).run()
    assert at.metric
    store().sessions.end(at.session_token)  # signed out in another tab
    at.run()
    shows_only_the_session_message(at)
    assert "sign in again" in at.info[0].value


def test_a_removed_user_is_signed_out(main_app, signed_in) -> None:  # noqa: ANN001
    store().users.add("alice", "alice-password", "admin")
    store().users.add("bob", "bob-password", "viewer")
    at = signed_in(main_app(), username="bob", role="viewer").run()
    assert at.metric
    assert [c.value for c in at.sidebar.caption] == ["Signed in as bob (viewer)"]
    store().users.remove("bob")
    at.run()
    shows_only_the_session_message(at)
    assert "sign in again" in at.info[0].value


def test_a_changed_role_signs_the_user_out(main_app, signed_in) -> None:  # noqa: ANN001
    store().users.add("bob", "bob-password", "admin")
    at = signed_in(main_app(), username="bob", role="admin").run()
    assert at.metric
    store().users.add("bob", "bob-password", "viewer")  # demoted: no admin pages on an old session
    at.run()
    shows_only_the_session_message(at)


def test_the_team_password_session_ends_once_named_users_exist(main_app, signed_in) -> None:  # noqa: ANN001
    at = signed_in(main_app()).run()
    assert at.metric
    store().users.add("alice", "alice-password", "admin")  # the team password no longer signs anyone in
    at.run()
    shows_only_the_session_message(at)
    assert [i.value for i in at.info] == [login.CHANGED]
    assert stored(at) is None  # ended in the store, not only hidden


# -- viewers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["system", "data_explorer"])
def test_a_viewer_has_no_admin_page(main_app, signed_in, name: str) -> None:  # noqa: ANN001
    store().users.add("bob", "bob-password", "viewer")
    at = signed_in(main_app(), username="bob", role="viewer").run()
    assert [t.value for t in at.title] == ["Overview"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page(f"app_pages/{name}.py")


def test_no_pages_directory_beside_main_py(app_dir) -> None:  # noqa: ANN001
    # Streamlit routes /<page> straight to pages/<page>.py, past main.py's session check,
    # until st.navigation has run once in the process (see paydash/app/main.py)
    assert (app_dir / "main.py").exists()
    assert not (app_dir / "pages").exists()


# -- the state store down --------------------------------------------------------------------------
def test_an_unreachable_state_store_shows_one_message_and_no_data(page, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_STATE_URL", "postgresql://paydash@127.0.0.1:1/state")
    at = page("overview", sign_in=False)
    at.session_state[login.TEST_TOKEN_KEY] = "some-token"
    at.run()
    assert not at.exception
    assert len(at.error) == 1 and "Sign-in cannot be checked right now" in at.error[0].value
    assert not at.metric and not at.dataframe


# -- auto-refresh is not activity -----------------------------------------------------------------
def test_streamlit_still_says_which_runs_are_auto_refreshes() -> None:
    # login.is_auto_refresh reads these (Streamlit 1.67); the browser test
    # tests/browser/test_sessions.py::test_an_untouched_operations_tab_signs_out proves the behaviour
    assert RerunData(is_auto_rerun=True).is_auto_rerun is True
    assert "script_requests" in ScriptRunContext.__dataclass_fields__
    assert "fragment_ids_this_run" in ScriptRunContext.__dataclass_fields__
    assert ScriptRequests()._rerun_data.is_auto_rerun is False
