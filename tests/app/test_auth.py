"""Sign-in logic without Streamlit: users file, password checks, lockout, session expiry, CLI."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from paydash.app import auth
from paydash.cli import app as cli_app
from paydash.errors import ConfigError, InvalidInput
from paydash.settings import Settings

RULES = auth.ThrottleRules(max_failures=5, window=300, lockout=300)


def users_config(tmp_path: Path, **users: tuple[str, str]) -> auth.LoginConfig:
    path = tmp_path / "users.json"
    for name, (password, role) in users.items():
        auth.add_user(path, name, password, role)
    return auth.login_config(Settings({"users_file": str(path)}))


# -- users file ------------------------------------------------------------------------------
def test_users_file_keeps_only_argon2_hashes_readable_by_owner(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "users.json"
    auth.add_user(path, "Alice", "s3cret-password", "admin")
    text = path.read_text()
    assert "s3cret-password" not in text
    entry = json.loads(text)["users"][0]
    assert entry["username"] == "alice" and entry["role"] == "admin"
    assert entry["password_hash"].startswith("$argon2id$")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_adding_an_existing_user_replaces_password_and_role_but_keeps_created_at(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    first = auth.add_user(path, "bob", "first-password", "viewer")
    second = auth.add_user(path, "bob", "second-password", "admin")
    assert second.created_at == first.created_at
    config = auth.login_config(Settings({"users_file": str(path)}))
    assert auth.check_credentials(config, "bob", "first-password") is None
    assert auth.check_credentials(config, "bob", "second-password").role == "admin"


@pytest.mark.parametrize(
    "username, password, role, message",
    [
        ("", "long-enough-password", "viewer", "user name"),
        ("has space", "long-enough-password", "viewer", "user name"),
        ("bob", "short", "viewer", "too short"),
        ("bob", "long-enough-password", "owner", "role"),
    ],
)
def test_add_user_refuses_bad_input(tmp_path: Path, username: str, password: str, role: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        auth.add_user(tmp_path / "users.json", username, password, role)
    assert not (tmp_path / "users.json").exists()


def test_remove_user(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    auth.add_user(path, "alice", "alice-password", "admin")
    auth.add_user(path, "bob", "bob-password-1", "viewer")
    auth.remove_user(path, "BOB")
    assert list(auth.load_users(path)) == ["alice"]
    with pytest.raises(InvalidInput, match="no user 'bob'"):
        auth.remove_user(path, "bob")


def test_a_broken_users_file_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    path.write_text('{"users": [{"username": "x", "role": "root", "password_hash": "h"}]}')
    with pytest.raises(ConfigError, match=str(path)):
        auth.load_users(path)


# -- which login -------------------------------------------------------------------------------
def test_login_config_prefers_named_users_then_team_password_then_nothing(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    assert not auth.login_config(Settings({"users_file": str(path)})).configured
    assert auth.login_config(Settings({"users_file": str(path), "password": "team-pass"})).mode == "password"
    auth.add_user(path, "alice", "alice-password", "viewer")
    config = auth.login_config(Settings({"users_file": str(path), "password": "team-pass"}))
    assert config.mode == "users"
    # once named users exist, the team password no longer opens the dashboard
    assert auth.check_credentials(config, "", "team-pass") is None


def test_team_password() -> None:
    config = auth.LoginConfig("password", {}, "team-pass-123")
    assert auth.check_credentials(config, "", "team-pass-123").username == auth.TEAM_USER
    assert auth.check_credentials(config, "", "team-pass-12") is None
    assert auth.check_credentials(config, "", "") is None


def test_named_users(tmp_path: Path) -> None:
    config = users_config(tmp_path, alice=("alice-password", "admin"), bob=("bob-password", "viewer"))
    assert auth.check_credentials(config, "alice", "alice-password").role == "admin"
    assert auth.check_credentials(config, " Bob ", "bob-password").role == "viewer"
    assert auth.check_credentials(config, "alice", "bob-password") is None
    assert auth.check_credentials(config, "carol", "alice-password") is None


# -- lockout -----------------------------------------------------------------------------------
def test_five_failures_lock_the_user_even_with_the_right_password() -> None:
    config = auth.LoginConfig("password", {}, "team-pass-123")
    throttle = auth.Throttle()
    for i in range(4):
        attempt = auth.attempt_login(config, throttle, RULES, "", "wrong", now=1000 + i)
        assert attempt.user is None and attempt.message == "Wrong password."
    fifth = auth.attempt_login(config, throttle, RULES, "", "wrong", now=1004)
    assert "Too many failed sign-ins" in fifth.message
    refused = auth.attempt_login(config, throttle, RULES, "", "team-pass-123", now=1005)
    assert refused.user is None and "try again in 5 minutes" in refused.message
    still = auth.attempt_login(config, throttle, RULES, "", "team-pass-123", now=1004 + 299)
    assert still.user is None
    after = auth.attempt_login(config, throttle, RULES, "", "team-pass-123", now=1004 + 300)
    assert after.user is not None and after.message == ""


def test_failures_outside_the_window_do_not_count() -> None:
    throttle = auth.Throttle()
    for t in (0, 100, 200, 300):
        assert not throttle.failed("bob", t, RULES)
    # the failure at t=0 has left the 5-minute window by t=301
    assert not throttle.failed("bob", 301, RULES)
    assert throttle.failed("bob", 302, RULES)


def test_lockout_is_per_user_and_a_success_resets_the_count(tmp_path: Path) -> None:
    config = users_config(tmp_path, alice=("alice-password", "admin"), bob=("bob-password", "viewer"))
    throttle = auth.Throttle()
    for i in range(5):
        auth.attempt_login(config, throttle, RULES, "alice", "nope", now=i)
    assert auth.attempt_login(config, throttle, RULES, "alice", "alice-password", now=10).user is None
    assert auth.attempt_login(config, throttle, RULES, "bob", "bob-password", now=10).user is not None

    for i in range(4):
        auth.attempt_login(config, throttle, RULES, "bob", "nope", now=20 + i)
    assert auth.attempt_login(config, throttle, RULES, "BOB", "bob-password", now=30).user is not None
    assert auth.attempt_login(config, throttle, RULES, "bob", "nope", now=31).message == "Wrong user name or password."


def test_unknown_users_are_locked_out_too(tmp_path: Path) -> None:
    # so trying names cannot tell which exist
    config = users_config(tmp_path, alice=("alice-password", "admin"))
    throttle = auth.Throttle()
    messages = {auth.attempt_login(config, throttle, RULES, "mallory", "x", now=i).message for i in range(4)}
    assert messages == {"Wrong user name or password."}
    assert "Too many" in auth.attempt_login(config, throttle, RULES, "mallory", "x", now=5).message


def test_attempt_without_any_login_configured() -> None:
    attempt = auth.attempt_login(auth.LoginConfig(None, {}), auth.Throttle(), RULES, "", "x", now=0)
    assert attempt.user is None and "PAYDASH_PASSWORD" in attempt.message


# -- sessions ----------------------------------------------------------------------------------
SESSION_RULES = auth.SessionRules(max_age=12 * 3600, idle_timeout=30 * 60)


@pytest.mark.parametrize(
    "signed_in_ago, idle_for, problem",
    [
        (60, 0, ""),
        (12 * 3600 - 1, 29 * 60, ""),
        (12 * 3600, 0, "after 12 hours"),
        (3600, 30 * 60, "after 30 minutes without activity"),
        (13 * 3600, 31 * 60, "after 12 hours"),
    ],
)
def test_session_expiry(signed_in_ago: float, idle_for: float, problem: str) -> None:
    now = 1_000_000.0
    session = auth.Session("alice", "viewer", now - signed_in_ago, now - idle_for)
    found = auth.session_problem(session, now, SESSION_RULES)
    assert (problem in found) if problem else found == ""


def test_activity_keeps_a_session_alive_until_its_absolute_end() -> None:
    session = auth.new_session(auth.User("alice", "viewer", ""), now=0)
    for minute in range(0, 12 * 60, 20):
        assert auth.session_problem(session, minute * 60, SESSION_RULES) == ""
        session = session.touched(minute * 60)
    assert "12 hours" in auth.session_problem(session.touched(12 * 3600 - 1), 12 * 3600, SESSION_RULES)


def test_removed_user_or_changed_role_ends_the_session(tmp_path: Path) -> None:
    path = tmp_path / "users.json"
    auth.add_user(path, "alice", "alice-password", "admin")
    session = auth.Session("alice", "admin", 0, 0)
    assert auth.still_allowed(session, auth.login_config(Settings({"users_file": str(path)})))
    auth.add_user(path, "alice", "alice-password", "viewer")
    assert not auth.still_allowed(session, auth.login_config(Settings({"users_file": str(path)})))
    auth.remove_user(path, "alice")
    assert not auth.still_allowed(auth.Session("alice", "viewer", 0, 0), auth.login_config(Settings({"users_file": str(path)})))


# -- paydash users ... -------------------------------------------------------------------------
def test_users_cli_add_list_remove(tmp_path: Path) -> None:
    runner = CliRunner()
    file = str(tmp_path / "users.json")
    added = runner.invoke(cli_app, ["users", "add", "alice", "--role", "admin", "--password-stdin", "--file", file],
                          input="alice-password\n")
    assert added.exit_code == 0, added.output
    prompted = runner.invoke(cli_app, ["users", "add", "bob", "--file", file], input="bob-password\nbob-password\n")
    assert prompted.exit_code == 0, prompted.output
    listed = runner.invoke(cli_app, ["users", "list", "--file", file])
    lines = listed.output.splitlines()
    assert [line.split()[:2] for line in lines] == [["alice", "admin"], ["bob", "viewer"]]
    assert "argon2" not in listed.output
    removed = runner.invoke(cli_app, ["users", "remove", "bob", "--file", file])
    assert removed.exit_code == 0
    assert list(auth.load_users(Path(file))) == ["alice"]


def test_users_cli_uses_the_configured_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYDASH_USERS_FILE", str(tmp_path / "elsewhere.json"))
    result = CliRunner().invoke(cli_app, ["users", "add", "carol", "--password-stdin"], input="carol-password\n")
    assert result.exit_code == 0, result.output
    assert list(auth.load_users(tmp_path / "elsewhere.json")) == ["carol"]
