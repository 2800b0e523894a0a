"""`paydash users add|list|remove` as a user runs them: subprocesses in a fresh working directory,
against the state store (the default SQLite file there, or PostgreSQL through PAYDASH_STATE_URL)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from paydash.state import SessionRules, StateStore
from paydash.state.users import hash_password
from state_helpers import state_kind, state_pg, state_url  # noqa: F401 - fixtures


def paydash(cwd: Path, *args: str, stdin: str = "", env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    return subprocess.run([sys.executable, "-m", "paydash.cli", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, timeout=120, env={**clean, **(env or {})})


@pytest.fixture
def where(state_kind: str, state_url: str, tmp_path: Path) -> tuple[dict[str, str], str]:
    """(environment, the store's URL as the test opens it): SQLite is the default file in the working directory."""
    if state_kind == "sqlite":
        return {}, str(tmp_path / "data" / "state.sqlite")
    return {"PAYDASH_STATE_URL": state_url}, state_url


def test_add_list_remove(where, tmp_path: Path) -> None:  # noqa: ANN001
    env, url = where
    done = paydash(tmp_path, "users", "list", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("no users in the state store ")

    done = paydash(tmp_path, "users", "add", "Alice", "--role", "admin", "--password-stdin", stdin="alice-password\n", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("added alice (admin) in the state store ")
    if not env:
        assert str(tmp_path / "data" / "state.sqlite") in done.stdout
    else:
        assert "postgresql://" in done.stdout
    paydash(tmp_path, "users", "add", "bob", "--password-stdin", stdin="bob-password\n", env=env)

    store = StateStore(url)
    token = store.sessions.create("alice", "admin", "user", 1000.0)
    done = paydash(tmp_path, "users", "add", "alice", "--role", "viewer", "--password-stdin", stdin="alice-password\n",
                   env=env)
    assert done.returncode == 0 and done.stdout.startswith("updated alice (viewer)"), done.stderr
    assert store.sessions.get(token, 1001.0, SessionRules()).session is None  # a new role ends the session

    done = paydash(tmp_path, "users", "list", env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[:2] for line in lines] == [["alice", "viewer"], ["bob", "viewer"]]
    assert "$argon2" not in done.stdout and "password" not in done.stdout  # never the hashes

    token = store.sessions.create("bob", "viewer", "user", 1000.0)
    done = paydash(tmp_path, "users", "remove", "BOB", env=env)
    assert done.returncode == 0 and done.stdout.startswith("removed bob from the state store"), done.stderr
    assert store.sessions.get(token, 1001.0, SessionRules()).session is None
    assert list(store.users.all()) == ["alice"]
    store.close()


@pytest.mark.parametrize("args, stdin, message", [
    (("users", "add", "bad name!", "--password-stdin"), "long enough\n", "user name 'bad name!' is not valid"),
    (("users", "add", "carol", "--password-stdin"), "short\n", "the password is too short: use at least 8 characters"),
    (("users", "add", "carol", "--role", "owner", "--password-stdin"), "long enough\n", "role 'owner' is not one of viewer, admin"),
    (("users", "remove", "nobody"), "", "no user 'nobody' in the state store"),
])
def test_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], stdin: str, message: str) -> None:
    done = paydash(tmp_path, *args, stdin=stdin)
    assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr


def test_an_unreachable_store_is_one_line_and_hides_the_password(tmp_path: Path) -> None:
    done = paydash(tmp_path, "users", "add", "carol", "--password-stdin", stdin="long enough\n",
                   env={"PAYDASH_STATE_URL": "postgresql://paydash:s3cret@127.0.0.1:1/state", "PAYDASH_CONNECT_TIMEOUT": "2"})
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "the state store postgresql://paydash:***@127.0.0.1:1/state is unreachable" in done.stderr
    assert "s3cret" not in done.stderr


def test_an_old_users_file_is_listed_from_the_store(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "users.json").write_text(json.dumps({"users": [
        {"username": "dora", "role": "admin", "password_hash": hash_password("dora-password"),
         "created_at": "2025-01-02T03:04:05+00:00"}]}))
    done = paydash(tmp_path, "users", "list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["dora", "admin", "2025-01-02T03:04:05+00:00"]
    assert (tmp_path / "data" / "users.json").exists()  # left in place
