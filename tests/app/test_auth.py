"""Who may sign in and whose session may go on (paydash/app/auth.py): pure logic, no Streamlit, no HTTP.

Users, sessions and the throttle themselves are the state store's (tests/test_state_store.py);
the sign-in page and its throttle are the HTTP layer's tests; OIDC roles and sessions are
tests/test_oidc.py's.
"""

from __future__ import annotations

from paydash.app import auth
from paydash.settings import Settings
from paydash.state.models import TEAM_USER, Session, User
from paydash.state.users import hash_password


def named(**users: tuple[str, str]) -> dict[str, User]:
    return {name: User(name, role, hash_password(password)) for name, (password, role) in users.items()}


def session(username: str, role: str, method: str) -> Session:
    return Session(username, role, method, 0.0, 0.0)


# -- which login ---------------------------------------------------------------------------------
def test_login_config_prefers_named_users_then_team_password_then_nothing() -> None:
    assert not auth.login_config(Settings({}), {}).configured
    assert auth.login_config(Settings({"password": "team-pass"}), {}).mode == "password"
    config = auth.login_config(Settings({"password": "team-pass"}), named(alice=("alice-password", "viewer")))
    assert config.mode == "users"
    # once named users exist, the team password no longer opens the dashboard
    assert auth.check_credentials(config, "", "team-pass") is None


def test_team_password() -> None:
    config = auth.LoginConfig("password", {}, "team-pass-123")
    assert auth.check_credentials(config, "", "team-pass-123").username == TEAM_USER
    assert auth.check_credentials(config, "", "team-pass-12") is None
    assert auth.check_credentials(config, "", "") is None
    assert auth.password_username(config, "anyone") == TEAM_USER


def test_named_users() -> None:
    config = auth.LoginConfig("users", named(alice=("alice-password", "admin"), bob=("bob-password", "viewer")))
    assert auth.check_credentials(config, "alice", "alice-password").role == "admin"
    assert auth.check_credentials(config, " Bob ", "bob-password").role == "viewer"
    assert auth.check_credentials(config, "alice", "bob-password") is None
    assert auth.check_credentials(config, "carol", "alice-password") is None
    assert auth.password_username(config, " Bob ") == "bob"


# -- whose session may go on -----------------------------------------------------------------------
def test_a_team_password_session_ends_once_named_users_exist() -> None:
    team = session(TEAM_USER, "admin", "password")
    assert auth.still_allowed(team, auth.LoginConfig("password", {}, "team-pass"))
    assert not auth.still_allowed(team, auth.LoginConfig("users", named(alice=("alice-password", "admin"))))


def test_a_named_users_session_ends_when_removed_or_role_changed_or_users_gone() -> None:
    bob = session("bob", "viewer", "user")
    assert auth.still_allowed(bob, auth.LoginConfig("users", named(bob=("bob-password", "viewer"))))
    assert not auth.still_allowed(bob, auth.LoginConfig("users", named(bob=("bob-password", "admin"))))
    assert not auth.still_allowed(bob, auth.LoginConfig("users", named(alice=("alice-password", "admin"))))
    assert not auth.still_allowed(bob, auth.LoginConfig("password", {}, "team-pass"))


def test_an_unknown_method_never_goes_on() -> None:
    assert not auth.still_allowed(session(TEAM_USER, "admin", "magic"), auth.LoginConfig("password", {}, "x"))
