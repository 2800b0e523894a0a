"""The state store (paydash/state): users, sessions, the sign-in throttle, migrations, and what it
never stores. Every test runs on a SQLite file and on PostgreSQL; several prove that two stores on
one database, and two OS processes, see the same sessions and lockouts."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa

from paydash.errors import ConfigError, InvalidInput
from paydash.settings import Settings
from paydash.state import SessionRules, StateStore, StateUnavailable, ThrottleRules, open_state, schema
from paydash.state import users as users_mod
from state_helpers import state_kind, state_pg, state_url, store  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent
RULES = SessionRules(max_age=12 * 3600, idle_timeout=1800, touch_every=15)
THROTTLE = ThrottleRules()
T0 = 1_800_000_000.0


# -- opening -----------------------------------------------------------------------------------
def test_a_path_is_a_sqlite_file_relative_to_the_working_directory(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.chdir(tmp_path)
    store = open_state(Settings({"state_url": "nested/dir/state.sqlite"}))
    assert store.ping() >= 0
    assert (tmp_path / "nested" / "dir" / "state.sqlite").is_file()
    assert store.display_url == str(tmp_path / "nested" / "dir" / "state.sqlite")
    assert open_state(Settings({"state_url": str(tmp_path / "nested/dir/state.sqlite")})) is store  # one per URL
    with store.read() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    store.close()


def test_display_url_hides_the_password() -> None:
    store = StateStore("postgresql://paydash:s3cret-pw@db.example:5432/state")
    assert store.display_url == "postgresql://paydash:***@db.example:5432/state"
    assert store.url.startswith("postgresql+psycopg://")


def test_an_unreachable_store_is_one_line_naming_it_and_the_fix() -> None:
    store = StateStore("postgresql://paydash:s3cret-pw@127.0.0.1:1/state", connect_timeout=2)
    with pytest.raises(StateUnavailable) as caught:
        store.ping()
    message = str(caught.value)
    assert "\n" not in message and "s3cret-pw" not in message
    assert "postgresql://paydash:***@127.0.0.1:1/state" in message and "PAYDASH_STATE_URL" in message


def test_an_unwritable_sqlite_path_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StateUnavailable, match="PAYDASH_STATE_URL"):
        StateStore(str(tmp_path / "file" / "state.sqlite")).ping()


@pytest.mark.parametrize("url", ["mysql://x@y/z", "  ", "sqlite:///:memory:"])
def test_a_bad_url_says_what_to_set(url: str) -> None:
    with pytest.raises(ConfigError, match="PAYDASH_STATE_URL"):
        StateStore(url)


def test_migrations_are_versioned_and_create_every_table(store: StateStore) -> None:
    assert store.version() == schema.LATEST
    names = set(sa.inspect(store.engine).get_table_names())
    assert {t.name for t in schema.metadata.sorted_tables} <= names
    assert all(n.startswith("paydash_") for n in {t.name for t in schema.metadata.sorted_tables})
    again = StateStore(store.url)  # opening again applies nothing twice
    assert again.version() == schema.LATEST
    with again.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.state_version)).scalar() == len(schema.MIGRATIONS)
    again.close()


def test_processes_opening_a_new_store_at_once_migrate_it_once(state_url: str) -> None:
    script = "import sys; from paydash.state import StateStore; s = StateStore(sys.argv[1]); s.ping(); print(s.version())"
    procs = [subprocess.Popen([sys.executable, "-c", script, state_url], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, [err for _, err in results]
    assert [out.strip() for out, _ in results] == [str(schema.LATEST)] * 4
    store = StateStore(state_url)
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.state_version)).scalar() == len(schema.MIGRATIONS)
    store.close()


# -- users -------------------------------------------------------------------------------------
def test_users_add_get_all_remove(store: StateStore) -> None:
    assert store.users.all() == {} and not store.users.exists()
    alice = store.users.add("  Alice ", "correct horse", "admin")
    assert alice.username == "alice" and alice.role == "admin" and alice.password_hash.startswith("$argon2")
    store.users.add("bob", "battery staple", "viewer")
    assert list(store.users.all()) == ["alice", "bob"] and store.users.exists()
    assert store.users.get("ALICE") == alice
    assert users_mod.verify_password(store.users.get("bob").password_hash, "battery staple")
    assert not users_mod.verify_password(store.users.get("bob").password_hash, "battery stapler")
    store.users.remove("Bob")
    assert store.users.get("bob") is None
    with pytest.raises(InvalidInput, match="no user 'bob'.*paydash users list"):
        store.users.remove("bob")


def test_updating_a_user_keeps_created_at_and_changes_the_hash(store: StateStore) -> None:
    first = store.users.add("alice", "correct horse", "viewer")
    second = store.users.add("alice", "another password", "admin")
    assert second.created_at == first.created_at and second.password_hash != first.password_hash
    assert store.users.get("alice").role == "admin"


@pytest.mark.parametrize("name, password, role, message", [
    ("bad name!", "long enough", "viewer", "user name 'bad name!' is not valid"),
    ("alice", "short", "viewer", "the password is too short: use at least 8 characters"),
    ("alice", "long enough", "owner", "role 'owner' is not one of viewer, admin"),
])
def test_bad_users_are_refused_with_the_reason(store: StateStore, name: str, password: str, role: str,
                                               message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        store.users.add(name, password, role)
    assert store.users.all() == {}


def test_verify_password_with_no_hash_is_false_but_still_verifies() -> None:
    assert users_mod.verify_password(None, "paydash: no such user") is False  # the dummy's own password
    assert users_mod.verify_password("plain-text-not-argon2", "plain-text-not-argon2") is False
    assert users_mod.verify_password(users_mod.hash_password("pw123456"), "pw123456") is True


# -- sessions ----------------------------------------------------------------------------------
def test_a_session_lives_while_used_and_ends_when_idle(store: StateStore) -> None:
    token = store.sessions.create("alice", "admin", "user", T0)
    found = store.sessions.get(token, T0 + 60, RULES)
    assert found.session.username == "alice" and found.session.role == "admin" and found.session.method == "user"
    assert found.session.last_seen == T0 + 60
    # activity every 20 minutes keeps it alive for hours
    for minutes in range(20, 200, 20):
        assert store.sessions.get(token, T0 + minutes * 60, RULES).session is not None
    ended = store.sessions.get(token, T0 + 180 * 60 + 1800, RULES)
    assert ended.session is None and ended.problem == ("Your session ended after 30 minutes without activity; "
                                                       "please sign in again.")
    assert store.sessions.count() == 0  # an expired session is deleted
    assert store.sessions.get(token, T0 + 180 * 60 + 1801, RULES).problem == "Your session has ended; please sign in again."


def test_a_session_ends_after_the_absolute_limit_however_active(store: StateStore) -> None:
    token = store.sessions.create("alice", "admin", "user", T0)
    t = T0
    while t < T0 + 12 * 3600 - 600:
        t += 600
        assert store.sessions.get(token, t, RULES).session is not None
    ended = store.sessions.get(token, T0 + 12 * 3600, RULES)
    assert ended.session is None and ended.problem == "Your session ended after 12 hours; please sign in again."


def test_an_auto_refresh_does_not_extend_a_session(store: StateStore) -> None:
    token = store.sessions.create("alice", "admin", "user", T0)
    for minutes in range(1, 30):
        found = store.sessions.get(token, T0 + minutes * 60, RULES, touch=False)
        assert found.session is not None and found.session.last_seen == T0
    assert store.sessions.get(token, T0 + 1800, RULES, touch=False).session is None


def test_last_seen_is_written_at_most_every_touch_every_seconds(store: StateStore) -> None:
    token = store.sessions.create("alice", "admin", "user", T0)
    assert store.sessions.get(token, T0 + 10, RULES).session.last_seen == T0
    assert store.sessions.get(token, T0 + 20, RULES).session.last_seen == T0 + 20
    assert store.sessions.get(token, T0 + 30, RULES, touch=False).session.last_seen == T0 + 20


def test_no_token_is_no_problem_and_a_wrong_token_is_ended(store: StateStore) -> None:
    assert store.sessions.get(None, T0, RULES).problem == ""
    assert store.sessions.get("", T0, RULES).problem == ""
    assert store.sessions.get("made-up", T0, RULES).session is None


def test_sign_out_ends_only_that_session(store: StateStore) -> None:
    one = store.sessions.create("alice", "admin", "user", T0)
    two = store.sessions.create("alice", "admin", "user", T0)
    assert one != two and len(one) >= 43
    assert store.sessions.end(one) is True
    assert store.sessions.get(one, T0 + 1, RULES).session is None
    assert store.sessions.get(two, T0 + 1, RULES).session is not None
    assert store.sessions.end(one) is False
    with pytest.raises(InvalidInput, match="session method"):
        store.sessions.create("alice", "admin", "magic", T0)


def test_changing_a_role_or_password_or_removing_a_user_ends_their_sessions(store: StateStore) -> None:
    store.users.add("alice", "correct horse", "admin")
    store.users.add("bob", "battery staple", "viewer")
    alice = store.sessions.create("alice", "admin", "user", T0)
    bob = store.sessions.create("bob", "viewer", "user", T0)
    store.users.add("alice", "correct horse", "admin")  # same role, same password: nothing changes
    assert store.sessions.get(alice, T0 + 1, RULES).session is not None
    store.users.add("alice", "correct horse", "viewer")  # a new role
    assert store.sessions.get(alice, T0 + 2, RULES).session is None
    alice = store.sessions.create("alice", "viewer", "user", T0)
    store.users.add("alice", "a new password", "viewer")  # a new password
    assert store.sessions.get(alice, T0 + 3, RULES).session is None
    assert store.sessions.get(bob, T0 + 3, RULES).session is not None
    store.users.remove("bob")
    assert store.sessions.get(bob, T0 + 4, RULES).session is None
    assert store.sessions.end_user("nobody") == 0


def test_expired_sessions_are_pruned(store: StateStore) -> None:
    for _ in range(3):
        store.sessions.create("alice", "admin", "user", T0)
    live = store.sessions.create("bob", "admin", "user", T0 + 3000)
    assert store.sessions.prune(T0 + 3600, RULES) == 3
    assert store.sessions.get(live, T0 + 3600, RULES).session is not None


def test_a_session_made_by_one_store_is_valid_on_another(state_url: str) -> None:
    one, two = StateStore(state_url), StateStore(state_url)
    token = one.sessions.create("alice", "admin", "user", T0)
    assert two.sessions.get(token, T0 + 60, RULES).session.username == "alice"
    assert two.sessions.end(token)
    assert one.sessions.get(token, T0 + 61, RULES).session is None
    one.close()
    two.close()


# -- throttle ----------------------------------------------------------------------------------
def test_five_failures_lock_that_client_out_for_that_user_only(store: StateStore) -> None:
    th = store.throttle
    for i in range(4):
        assert th.failed("Alice", "10.0.0.1", T0 + i, THROTTLE) == 0
    assert th.failed("alice", "10.0.0.1", T0 + 4, THROTTLE) == 300
    assert th.retry_after("alice", "10.0.0.1", T0 + 10, THROTTLE) == 294
    assert th.retry_after("alice", "10.0.0.2", T0 + 10, THROTTLE) == 0  # another client, same user
    assert th.retry_after("bob", "10.0.0.1", T0 + 10, THROTTLE) == 0  # same client, another user
    assert th.retry_after("alice", "10.0.0.1", T0 + 304, THROTTLE) == 0  # the lockout is over
    # ... and the count starts afresh
    assert th.failed("alice", "10.0.0.1", T0 + 305, THROTTLE) == 0


def test_failures_outside_the_window_do_not_count(store: StateStore) -> None:
    for i in range(10):
        assert store.throttle.failed("team", "10.0.0.1", T0 + i * 100, THROTTLE) == 0  # never 5 within 300 s


def test_a_success_clears_the_pairs_failures(store: StateStore) -> None:
    th = store.throttle
    for i in range(4):
        th.failed("team", "10.0.0.1", T0 + i, THROTTLE)
    th.succeeded("team", "10.0.0.1")
    assert th.retry_after("team", "10.0.0.1", T0 + 5, THROTTLE) == 0
    for i in range(4):
        assert th.failed("team", "10.0.0.1", T0 + 10 + i, THROTTLE) == 0
    assert th.failed("team", "10.0.0.1", T0 + 14, THROTTLE) == 300


def test_fifty_failures_an_hour_per_address_whatever_the_names(store: StateStore) -> None:
    th = store.throttle
    for i in range(49):
        assert th.failed(f"user{i}", "10.0.0.9", T0 + i * 10, THROTTLE) == 0
    refused = th.failed("user49", "10.0.0.9", T0 + 490, THROTTLE)
    assert refused == 3600 - 490  # until the first of those fifty is an hour old
    assert th.retry_after("someone-else", "10.0.0.9", T0 + 500, THROTTLE) == 3600 - 500
    assert th.retry_after("someone-else", "10.0.0.10", T0 + 500, THROTTLE) == 0
    assert th.retry_after("someone-else", "10.0.0.9", T0 + 3600, THROTTLE) == 0  # one has left the window


def test_old_failures_and_lockouts_are_pruned(store: StateStore) -> None:
    for i in range(5):
        store.throttle.failed("alice", "10.0.0.1", T0 + i, THROTTLE)
    store.throttle.prune(T0 + 4000, THROTTLE)
    with store.read() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.login_failures)).scalar() == 0
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.lockouts)).scalar() == 0


def test_a_lockout_holds_on_another_store_of_the_same_database(state_url: str) -> None:
    one, two = StateStore(state_url), StateStore(state_url)
    for i in range(3):
        one.throttle.failed("team", "10.0.0.1", T0 + i, THROTTLE)
    for i in range(3, 5):  # the count is shared: two more on the other store lock the client out
        two.throttle.failed("team", "10.0.0.1", T0 + i, THROTTLE)
    assert one.throttle.retry_after("team", "10.0.0.1", T0 + 5, THROTTLE) == 299
    one.close()
    two.close()


def test_a_lockout_recorded_by_another_process_holds_here(state_url: str) -> None:
    script = textwrap.dedent("""
        import sys
        from paydash.state import StateStore, ThrottleRules
        store = StateStore(sys.argv[1])
        t0 = float(sys.argv[2])
        print(max(store.throttle.failed("team", "192.0.2.7", t0 + i, ThrottleRules()) for i in range(5)))
        print(store.sessions.create("alice", "viewer", "user", t0))
    """)
    done = subprocess.run([sys.executable, "-c", script, state_url, str(T0)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    refused, token = done.stdout.split()
    assert float(refused) == 300
    store = StateStore(state_url)
    assert store.throttle.retry_after("team", "192.0.2.7", T0 + 10, THROTTLE) == 294
    assert store.throttle.retry_after("team", "192.0.2.8", T0 + 10, THROTTLE) == 0
    assert store.sessions.get(token, T0 + 10, RULES).session.role == "viewer"
    store.close()


# -- what is never stored --------------------------------------------------------------------------
def test_no_table_holds_a_password_or_a_raw_token(state_url: str, state_kind: str) -> None:
    password, team_password = "Sup3r-secret-passw0rd", "team-password-42"
    store = StateStore(state_url)
    store.users.add("alice", password, "admin")
    tokens = [store.sessions.create("alice", "admin", "user", T0), store.sessions.create("team", "admin", "password", T0)]
    store.sessions.get(tokens[0], T0 + 100, RULES)
    store.throttle.failed("alice", "10.0.0.1", T0, THROTTLE)
    store.throttle.failed("team", "10.0.0.1", T0, THROTTLE)
    store.audit.record("alice", "login", "role admin")
    needles = [password, team_password, *tokens]
    found = []
    with store.read() as conn:
        for table in schema.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, (sa.String, sa.Text))]
            for row in conn.execute(sa.select(*columns)):
                for column, value in zip(columns, row):
                    found += [(table.name, column.name) for n in needles if value and n in value]
        assert conn.execute(sa.select(sa.func.count()).select_from(schema.sessions)).scalar() == 2
    assert found == []
    store.close()
    if state_kind == "sqlite":  # the file's bytes too, log included
        for path in Path(state_url).parent.glob("state.sqlite*"):
            data = path.read_bytes()
            assert not [n for n in needles if n.encode() in data], path
