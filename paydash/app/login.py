"""The sign-in gate in front of every page (Streamlit side of `paydash.app.auth`).

The signed-in user lives in `st.session_state[SESSION_KEY]` as an `auth.Session`;
`current_user()` is the one place that reads it, so tests can seed a user there.
"""

from __future__ import annotations

import time

import streamlit as st

from paydash import audit
from paydash.app import auth
from paydash.app.format import md_escape
from paydash.errors import ConfigError
from paydash.settings import Settings

SESSION_KEY = "paydash_session"
_NOTICE_KEY = "login_notice"


@st.cache_resource(show_spinner=False)
def _throttle() -> auth.Throttle:
    # one per server process: a new browser tab must not reset the failure count
    return auth.Throttle()


def current_user() -> auth.Session | None:
    return st.session_state.get(SESSION_KEY)


def sign_out() -> None:
    st.session_state.pop(SESSION_KEY, None)
    st.session_state[_NOTICE_KEY] = "You are signed out."


def valid_session(settings: Settings) -> auth.Session | None:
    """The signed-in user's session, renewed; None (with a notice why) when there is none."""
    session = current_user()
    if session is None:
        return None
    problem = auth.session_problem(session, time.time(), auth.SessionRules.from_settings(settings))
    if not problem:
        try:
            allowed = auth.still_allowed(session, auth.login_config(settings))
        except ConfigError:
            allowed = False
        if not allowed:
            problem = "Your account has changed; please sign in again."
    if problem:
        st.session_state.pop(SESSION_KEY, None)
        st.session_state[_NOTICE_KEY] = problem
        return None
    session = session.touched(time.time())
    st.session_state[SESSION_KEY] = session
    return session


def sign_in_page(settings: Settings) -> None:
    """The sign-in form; on success the script reruns with the user signed in."""
    try:
        config = auth.login_config(settings)
    except ConfigError as exc:
        st.error(f"Sign-in is not available: {md_escape(exc)}")
        return
    _sign_in_form(config, settings)


def require_user(settings: Settings) -> auth.Session:
    """The signed-in user; otherwise show the sign-in form and stop the page here."""
    session = valid_session(settings)
    if session is None:
        sign_in_page(settings)
        st.stop()
    return session


def require_admin(settings: Settings) -> auth.Session:
    """The signed-in admin; anyone else sees why not, and the page stops here."""
    session = require_user(settings)
    if not session.is_admin:
        st.error("This page is for admins. Ask an admin of this dashboard if you need it.", icon=":material/lock:")
        st.stop()
    return session


def _sign_in_form(config: auth.LoginConfig, settings: Settings) -> None:
    st.title("paydash")
    notice = st.session_state.pop(_NOTICE_KEY, None)
    if notice:
        st.info(notice)
    if not config.configured:
        st.error(auth.NOT_CONFIGURED)
        return
    with st.form("login", clear_on_submit=True, enter_to_submit=True):
        st.subheader("Sign in")
        username = st.text_input("User name", key="login_username", autocomplete="username") if config.mode == "users" else ""
        password = st.text_input("Password", type="password", key="login_password", autocomplete="current-password")
        submitted = st.form_submit_button("Sign in", type="primary")
    if not submitted:
        return
    attempt = auth.attempt_login(
        config, _throttle(), auth.ThrottleRules.from_settings(settings), username or "", password or "", time.time()
    )
    log = audit.AuditLog(settings.audit_log_file)
    if attempt.user is None:
        log.record(auth.normalize_username(username or "") or auth.TEAM_USER, audit.LOGIN_FAILED, attempt.message)
        st.error(attempt.message)
        return
    log.record(attempt.user.username, audit.LOGIN, f"role {attempt.user.role}")
    st.session_state[SESSION_KEY] = auth.new_session(attempt.user, time.time())
    st.rerun()


def sidebar_account(session: auth.Session) -> None:
    with st.sidebar:
        st.caption(f"Signed in as {md_escape(session.username)} ({session.role})")
        st.button("Sign out", key="logout", on_click=sign_out, icon=":material/logout:")
