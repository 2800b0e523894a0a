"""The sign-in gate, through the whole app (main.py) and through a page script on its own."""

from __future__ import annotations

import time

import pytest

from paydash.app import auth, login


def submit(at, password: str, username: str | None = None):  # noqa: ANN001, ANN201
    if username is not None:
        at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="FormSubmitter:login-Sign in").click().run()


def signed_in_user(at) -> auth.Session | None:  # noqa: ANN001
    return at.session_state[login.SESSION_KEY] if login.SESSION_KEY in at.session_state else None


def test_nothing_but_the_sign_in_form_before_signing_in(main_app) -> None:  # noqa: ANN001
    at = main_app(opened=True)
    assert not at.exception
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.metric and not at.dataframe
    assert [t.value for t in at.title] == ["paydash"]


def test_wrong_password_is_refused(main_app) -> None:  # noqa: ANN001
    at = submit(main_app(opened=True), "not the password")
    assert [e.value for e in at.error] == ["Wrong password."]
    assert signed_in_user(at) is None
    assert not at.metric


def test_right_password_opens_the_overview(main_app, team_password) -> None:  # noqa: ANN001
    at = submit(main_app(opened=True), team_password)
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert signed_in_user(at).username == auth.TEAM_USER
    assert [t.value for t in at.title] == ["Overview"]
    assert [m.label for m in at.metric][:4] == ["Revenue", "Success rate", "Failed payments", "Attempts"]


def test_lockout_after_five_failures_refuses_the_right_password(main_app, team_password) -> None:  # noqa: ANN001
    at = main_app(opened=True)
    for _ in range(4):
        at = submit(at, "wrong guess")
        assert [e.value for e in at.error] == ["Wrong password."]
    at = submit(at, "wrong guess")
    assert "Too many failed sign-ins" in at.error[0].value
    at = submit(at, team_password)
    assert "Too many failed sign-ins" in at.error[0].value
    assert signed_in_user(at) is None
    # the count is per server, not per browser tab: a new session is refused too
    fresh = submit(main_app(opened=True), team_password)
    assert "Too many failed sign-ins" in fresh.error[0].value


def test_named_users_sign_in_with_name_and_password(main_app, env, tmp_path, team_password) -> None:  # noqa: ANN001
    auth.add_user(tmp_path / "users.json", "alice", "alice-password", "viewer")
    env.setenv("PAYDASH_USERS_FILE", str(tmp_path / "users.json"))
    at = main_app(opened=True)
    assert [t.label for t in at.text_input] == ["User name", "Password"]
    at = submit(at, team_password, username="alice")  # the team password no longer works
    assert [e.value for e in at.error] == ["Wrong user name or password."]
    at = submit(at, "alice-password", username="alice")
    assert not at.error
    assert signed_in_user(at) == auth.Session("alice", "viewer", signed_in_user(at).signed_in_at, signed_in_user(at).last_seen)
    assert at.metric


@pytest.mark.parametrize(
    "signed_in_ago, idle_for, notice",
    [(13 * 3600, 60, "ended after 12 hours"), (3600, 31 * 60, "ended after 30 minutes without activity")],
)
def test_an_expired_session_asks_to_sign_in_again(page, signed_in, signed_in_ago, idle_for, notice) -> None:  # noqa: ANN001
    at = signed_in(page("overview", sign_in=False), signed_in_ago=signed_in_ago, idle_for=idle_for).run()
    assert not at.exception
    assert notice in at.info[0].value
    assert [t.label for t in at.text_input] == ["Password"]
    assert not at.metric
    assert signed_in_user(at) is None


def test_activity_renews_the_idle_clock(page, signed_in) -> None:  # noqa: ANN001
    at = signed_in(page("overview", sign_in=False), signed_in_ago=3600, idle_for=29 * 60)
    before = time.time()
    at.run()
    assert at.metric
    assert signed_in_user(at).last_seen >= before


def test_sign_out(main_app, signed_in) -> None:  # noqa: ANN001
    at = signed_in(main_app()).run()
    assert at.metric
    at = at.sidebar.button(key="logout").click().run()
    assert signed_in_user(at) is None
    assert "signed out" in at.info[0].value
    assert [t.label for t in at.text_input] == ["Password"]


def test_a_removed_user_is_signed_out(main_app, env, signed_in, tmp_path) -> None:  # noqa: ANN001
    users = tmp_path / "users.json"
    auth.add_user(users, "alice", "alice-password", "admin")
    auth.add_user(users, "bob", "bob-password", "viewer")
    env.setenv("PAYDASH_USERS_FILE", str(users))
    at = signed_in(main_app(), username="bob", role="viewer").run()
    assert at.metric
    auth.remove_user(users, "bob")
    at.run()
    assert signed_in_user(at) is None
    assert "sign in again" in at.info[0].value


def test_without_any_login_configured_the_app_says_how_to_set_one(main_app, env) -> None:  # noqa: ANN001
    env.delenv("PAYDASH_PASSWORD")
    at = main_app(opened=True)
    assert not at.text_input
    assert "PAYDASH_PASSWORD" in at.error[0].value and "paydash users add" in at.error[0].value


def test_no_pages_directory_beside_main_py(app_dir) -> None:  # noqa: ANN001
    # Streamlit routes /<page> straight to pages/<page>.py, past main.py's gate, until
    # st.navigation has run once in the process (see paydash/app/main.py)
    assert (app_dir / "main.py").exists()
    assert not (app_dir / "pages").exists()


def test_the_team_password_can_come_from_streamlit_secrets(main_app, env, tmp_path) -> None:  # noqa: ANN001
    env.delenv("PAYDASH_PASSWORD")
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text('[paydash]\npassword = "from-the-secrets-file"\n')
    at = submit(main_app(opened=True), "from-the-secrets-file")
    assert not at.error
    assert signed_in_user(at).username == auth.TEAM_USER
