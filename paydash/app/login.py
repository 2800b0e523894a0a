"""Who is signed in, for the pages: the Streamlit side of the sign-in.

Signing in happens at the HTTP layer (paydash/app/http_auth.py): `/auth/login` sets the
`paydash_session` cookie, and without a valid one no page and no Streamlit websocket is
served. The sidebar's "Sign out" ends the session in the state store, so the cookie is
refused from then on, in every tab. The script still checks the session itself, on
every run and every fragment run, because a websocket lives long after its handshake: the
session may end (idle or absolute limit, sign-out in another tab, user removed or role
changed) while the tab stays open, and an auto-refreshing fragment must notice.

`current_user(settings)` is the one place pages read the signed-in user from. It reads the
cookie the websocket handshake carried (`st.context.cookies`) and looks the session up in the
state store each time. Nothing about the user is kept in `st.session_state`.

Tests (AppTest has no browser and cannot send cookies) put a session token made by the real
state store in `st.session_state[TEST_TOKEN_KEY]`; it is read only while Streamlit runs the
script under AppTest (`global.appTest`), never in a served app. Everything after the cookie
(the store lookup, the limits, the re-check of the user) is the production path.
"""

from __future__ import annotations

import logging
import time
from urllib.parse import urlencode, urlsplit

import streamlit as st
from streamlit import config as st_config
from streamlit.runtime.scriptrunner import get_script_run_ctx

from paydash.app import auth
from paydash.app.format import md_escape
from paydash.app.http_auth import SESSION_COOKIE, ended_code
from paydash.errors import PaydashError
from paydash.settings import Settings
from paydash.state import open_state
from paydash.state.audit import LOGOUT
from paydash.state.models import Session, SessionLookup, SessionRules

log = logging.getLogger("paydash.app.login")

TEST_TOKEN_KEY = "paydash_test_session_token"
_ENDED_KEY = "paydash_session_ended"  # why a fragment found the session ended, for the full rerun it asks for
LOGIN_PATH = "/auth/login"
ENDED = "Your session ended; please sign in again."
NOT_SIGNED_IN = "You are not signed in."
CHANGED = "Your account has changed; please sign in again."
SIGNED_OUT = "You are signed out."


def _token() -> str | None:
    if st_config.get_option("global.appTest"):  # AppTest: no browser, no cookies (see the module's docstring)
        token = st.session_state.get(TEST_TOKEN_KEY)
    else:
        token = st.context.cookies.get(SESSION_COOKIE)
    return token if isinstance(token, str) and token else None


def _in_fragment_run() -> bool:
    ctx = get_script_run_ctx()
    return bool(ctx is not None and ctx.fragment_ids_this_run)


def is_auto_refresh() -> bool:
    """Whether this run is an `st.fragment(run_every=...)` refreshing itself, not the user.

    Streamlit marks such reruns `is_auto_rerun` in the rerun request, which it keeps on the
    run context's request queue while the run goes on (streamlit/runtime/scriptrunner_utils/
    script_requests.py). A fragment run whose kind cannot be read counts as automatic: at
    worst a click inside a fragment does not renew the session, never the other way round.
    """
    if not _in_fragment_run():
        return False  # a full run is a page load, a widget change or a click
    requests = getattr(get_script_run_ctx(), "script_requests", None)
    rerun = getattr(requests, "_rerun_data", None)
    return bool(getattr(rerun, "is_auto_rerun", True))


def _lookup(settings: Settings) -> SessionLookup:
    """The session behind the cookie, checked now; renewed unless this run is an auto-refresh."""
    token = _token()
    if token is None:
        return SessionLookup(None, NOT_SIGNED_IN)
    store = open_state(settings)
    found = store.sessions.get(token, time.time(), SessionRules.from_settings(settings),
                               touch=not is_auto_refresh())
    if found.session is None:
        return SessionLookup(None, found.problem or ENDED)
    # removals and role changes end sessions in the store already; this catches a switch of
    # login method since sign-in (team password <-> named users, OIDC turned off or narrowed)
    if not auth.still_allowed(found.session, auth.login_config(settings, store.users.all()), settings):
        store.sessions.end(token)
        return SessionLookup(None, CHANGED)
    return found


def current_user(settings: Settings) -> Session | None:
    """The signed-in user's session, checked against the state store now; None when there is none."""
    return check_session(settings).session


def check_session(settings: Settings) -> SessionLookup:
    """`current_user` with the reason when there is no session (for the message)."""
    try:
        found = _lookup(settings)
    except PaydashError as exc:
        # the state store is down: nobody can be told apart, so nothing is shown, and no
        # connection details to someone who may not be an admin (they are in the log and /healthz)
        log.error("cannot check the session: %s", exc)
        st.error("Sign-in cannot be checked right now: the state store is unreachable. Reload the page in a "
                 "moment; admins find the cause in the server log and at /healthz.", icon=":material/error:")
        st.stop()
        raise  # unreachable: st.stop() raises
    ended = st.session_state.pop(_ENDED_KEY, None)
    if found.session is None and ended:
        found = SessionLookup(None, ended)
    return found


def here() -> str:
    """This page's path and query, for `next=` of the sign-in link."""
    url = st.context.url
    path = (urlsplit(url).path if url else "") or "/"
    params = st.query_params
    query = urlencode([(key, value) for key in params for value in params.get_all(key)])
    return f"{path}?{query}" if query else path


def sign_in_link(problem: str = "", next_path: str | None = None) -> str:
    """The sign-in page, saying why (its own fixed words for `problem`), then back to `next_path` (this page)."""
    params = {"next": next_path or here()}
    if problem and problem != NOT_SIGNED_IN:
        params["ended"] = "signed_out" if problem == SIGNED_OUT else ended_code(problem)
    return f"{LOGIN_PATH}?{urlencode(params)}"


def session_ended(problem: str) -> None:
    """Why there is no session, and the way back to this page through the sign-in.

    Only elements the page has already drawn (a lazily loaded widget would need the server,
    which refuses it without a session). Streamlit opens a Markdown link in a new tab;
    reloading this tab does the same (the server sends it to the sign-in, then back here).
    """
    st.title("paydash")
    st.info(problem, icon=":material/lock_clock:")
    st.markdown(f"**[Sign in again]({sign_in_link(problem)})**, or reload this page: you sign in and come back to it.")


def require_user(settings: Settings) -> Session:
    """The signed-in user; otherwise the session-ended message, and the page stops here.

    In a fragment run, an ended session reruns the whole app, so the page shows only the
    message (not the rest of the page around a fragment that says it ended).
    """
    found = check_session(settings)
    if found.session is not None:
        return found.session
    if _in_fragment_run():
        st.session_state[_ENDED_KEY] = found.problem
        st.rerun(scope="app")
    session_ended(found.problem)
    st.stop()
    raise AssertionError("unreachable: st.stop() raises")


def require_admin(settings: Settings) -> Session:
    """The signed-in admin; anyone else sees why not, and the page stops here."""
    session = require_user(settings)
    if not session.is_admin:
        st.error("This page is for admins. Ask an admin of this dashboard if you need it.", icon=":material/lock:")
        st.stop()
    return session


def sign_out(settings: Settings, session: Session) -> None:
    """End this browser's session on the server: its cookie is refused from now on, in every tab."""
    token = _token()
    store = open_state(settings)
    if token and store.sessions.end(token):
        store.audit.record(session.username, LOGOUT, "from the dashboard")
    st.session_state[_ENDED_KEY] = SIGNED_OUT


def sidebar_account(settings: Settings, session: Session) -> None:
    """Who is signed in, and the sign-out."""
    with st.sidebar:
        st.caption(f"Signed in as {md_escape(session.username)} ({session.role})")
        st.button("Sign out", key="logout", on_click=sign_out, args=(settings, session), icon=":material/logout:")
