"""The one-time import of the files paydash kept before the state store: data/users.json, the audit
log's data/audit.sqlite and the alert runner's data/alerts.sqlite, written here by hand in their old
formats (the schemas copied from the old modules). Imported once and only once, nothing lost, the
old files left untouched; on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest
import sqlalchemy as sa

from paydash.errors import ConfigError
from paydash.settings import Settings
from paydash.state import close_all, open_state, schema
from paydash.state.audit import AuditFilter
from paydash.state.users import hash_password, verify_password
from state_helpers import state_kind, state_pg, state_url, store  # noqa: F401 - fixtures

ROOT = Path(__file__).resolve().parent.parent

# -- the old formats, as paydash/audit.py and paydash/alerts/state.py created them ----------------
OLD_AUDIT_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at TEXT NOT NULL,"
    " username TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS ix_audit_at ON audit_log (at)",
    "CREATE INDEX IF NOT EXISTS ix_audit_user_at ON audit_log (username, at)",
    "CREATE INDEX IF NOT EXISTS ix_audit_action_at ON audit_log (action, at)",
)
OLD_ALERTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT PRIMARY KEY, state TEXT NOT NULL, since TEXT, breach_since TEXT, clear_since TEXT, dedup_key TEXT,
    value REAL, volume INTEGER NOT NULL DEFAULT 0, evaluated_at TEXT, channel TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL,
    at TEXT NOT NULL, value REAL, dedup_key TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, channel TEXT NOT NULL, action TEXT NOT NULL,
    at TEXT NOT NULL, dedup_key TEXT NOT NULL, payload TEXT NOT NULL, status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at TEXT, last_error TEXT, sent_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_outbox_pending ON outbox (status, id);
PRAGMA user_version = 1;
"""
KEY = "paydash-checkout_success_rate_low-20261111T140200Z"
AUDIT_ROWS = [
    ("2026-03-01 09:00:00.000000", "alice", "login", "role admin"),
    ("2026-03-01 23:30:00.123456", "mallory", "login_failed", "Wrong user name or password."),
    ("2026-03-02 10:00:00.000000", "alice", "export", "payments CSV, 12 rows"),
]


def write_old_files(data: Path) -> dict[str, Path]:
    data.mkdir(parents=True, exist_ok=True)
    users = data / "users.json"
    users.write_text(json.dumps({"users": [
        {"username": "alice", "role": "admin", "password_hash": hash_password("alice-password"),
         "created_at": "2025-01-02T03:04:05+00:00"},
        {"username": "bob", "role": "viewer", "password_hash": hash_password("bob-password"),
         "created_at": "2025-02-03T04:05:06+00:00"},
    ]}, indent=2) + "\n")
    audit = data / "audit.sqlite"
    with closing(sqlite3.connect(audit)) as conn, conn:
        for statement in OLD_AUDIT_SCHEMA:
            conn.execute(statement)
        conn.executemany("INSERT INTO audit_log (at, username, action, detail) VALUES (?, ?, ?, ?)", AUDIT_ROWS)
    alerts = data / "alerts.sqlite"
    with closing(sqlite3.connect(alerts)) as conn, conn:
        conn.executescript(OLD_ALERTS_SCHEMA)
        conn.executemany("INSERT INTO rule_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            ("checkout_success_rate_low", "firing", "2026-11-11 14:12:00", "2026-11-11 14:02:00", None, KEY, 0.2, 40,
             "2026-11-11 14:12:00", "pagerduty"),
            ("retry_failures_high", "ok", "2026-11-11 14:12:00", None, None, None, None, 0, "2026-11-11 14:12:00", "slack"),
        ])
        conn.executemany("INSERT INTO transitions (rule, from_state, to_state, at, value, dedup_key) VALUES (?, ?, ?, ?, ?, ?)", [
            ("checkout_success_rate_low", "ok", "pending", "2026-11-11 14:02:00", 0.5, None),
            ("checkout_success_rate_low", "pending", "firing", "2026-11-11 14:12:00", 0.2, KEY),
        ])
        conn.executemany(
            "INSERT INTO outbox (rule, channel, action, at, dedup_key, payload, status, attempts, next_attempt_at, "
            "last_error, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
                ("checkout_success_rate_low", "pagerduty", "trigger", "2026-11-11 14:12:00", KEY, '{"n": 1}', "sent", 1,
                 None, None, "2026-11-11 14:12:01"),
                ("retry_failures_high", "slack", "trigger", "2026-11-11 13:00:00", "k2", '{"n": 2}', "failed", 3, None,
                 "400 Bad Request", None),
                ("retry_failures_high", "slack", "resolve", "2026-11-11 13:30:00", "k2", '{"n": 3}', "pending", 1,
                 "2026-11-11 14:13:00", "503", None),
            ])
    return {"users_file": users, "audit_log_file": audit, "alert_state_file": alerts}


def fingerprint(paths: dict[str, Path]) -> dict[str, tuple[str, int]]:
    return {k: (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns) for k, p in paths.items()}


def settings_for(state_url: str, files: dict[str, Path]) -> Settings:
    return Settings({"state_url": state_url, **{k: str(v) for k, v in files.items()}})


def count(store, table) -> int:  # noqa: ANN001
    with store.read() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(table)).scalar()


def test_old_files_are_imported_once_with_nothing_lost(state_url: str, tmp_path: Path) -> None:
    files = write_old_files(tmp_path / "old")
    before = fingerprint(files)
    store = open_state(settings_for(state_url, files))

    users = store.users.all()
    assert [(u.username, u.role, u.created_at) for u in users.values()] == [
        ("alice", "admin", "2025-01-02T03:04:05+00:00"), ("bob", "viewer", "2025-02-03T04:05:06+00:00")]
    assert verify_password(users["alice"].password_hash, "alice-password")  # the argon2 hash came across as it was
    assert verify_password(users["bob"].password_hash, "bob-password")

    page = store.audit.page(AuditFilter(), page_size=100)
    assert [(str(e.at), e.username, e.action, e.detail) for e in reversed(page.entries)] == [
        ("2026-03-01 09:00:00", "alice", "login", "role admin"),
        ("2026-03-01 23:30:00.123456", "mallory", "login_failed", "Wrong user name or password."),
        ("2026-03-02 10:00:00", "alice", "export", "payments CSV, 12 rows")]

    alerts = store.alerts
    assert alerts.for_dashboard() == {
        "rules": [{"rule": "checkout_success_rate_low", "state": "firing", "since": "2026-11-11 14:12:00",
                   "channel": "pagerduty", "value": 0.2},
                  {"rule": "retry_failures_high", "state": "ok", "since": "2026-11-11 14:12:00", "channel": "slack",
                   "value": None}],
        "history": [{"at": "2026-11-11 14:12:00", "rule": "checkout_success_rate_low", "change": "pending -> firing",
                     "action": "trigger", "channel": "pagerduty", "delivery": "sent"},
                    {"at": "2026-11-11 14:02:00", "rule": "checkout_success_rate_low", "change": "ok -> pending",
                     "action": None, "channel": None, "delivery": None}]}
    loaded = alerts.load()["checkout_success_rate_low"]
    assert (loaded.dedup_key, loaded.volume, str(loaded.breach_since)) == (KEY, 40, "2026-11-11 14:02:00")
    outbox = alerts.outbox()
    assert [(o["action"], o["status"], o["attempts"], o["payload"], o["last_error"], o["next_attempt_at"], o["sent_at"])
            for o in reversed(outbox)] == [
        ("trigger", "sent", 1, {"n": 1}, None, None, "2026-11-11 14:12:01"),
        ("trigger", "failed", 3, {"n": 2}, "400 Bad Request", None, None),
        ("resolve", "pending", 1, {"n": 3}, "503", "2026-11-11 14:13:00", None)]
    assert [o.payload for o in alerts.pending()] == [{"n": 3}]

    with store.read() as conn:
        imports = conn.execute(sa.select(schema.state_imports.c.kind, schema.state_imports.c.path,
                                         schema.state_imports.c.rows)).all()
    assert sorted(imports) == sorted([("users", str(files["users_file"].resolve()), 2),
                                      ("audit", str(files["audit_log_file"].resolve()), 3),
                                      ("alerts", str(files["alert_state_file"].resolve()), 7)])

    # once only: a new process (here: the cache forgotten) opening the same store imports nothing again,
    # even after the store changed (a user removed stays removed)
    store.users.remove("bob")
    close_all()
    again = open_state(settings_for(state_url, files))
    assert list(again.users.all()) == ["alice"]
    assert count(again, schema.audit_log) == 3 and count(again, schema.alert_transitions) == 2
    assert count(again, schema.alert_outbox) == 3
    assert fingerprint(files) == before  # the old files were only read


def test_what_the_store_holds_wins_over_an_old_file(state_url: str, tmp_path: Path) -> None:
    files = write_old_files(tmp_path / "old")
    first = open_state(Settings({"state_url": state_url}))  # no old files named: nothing imported
    first.users.add("alice", "a newer password", "viewer")
    close_all()
    store = open_state(settings_for(state_url, files))
    assert store.users.get("alice").role == "viewer"
    assert verify_password(store.users.get("alice").password_hash, "a newer password")
    assert store.users.get("bob").role == "viewer"


def test_processes_opening_at_once_import_once(state_url: str, tmp_path: Path) -> None:
    files = write_old_files(tmp_path / "old")
    script = ("import sys, json; from paydash.settings import Settings; from paydash.state import open_state; "
              "s = open_state(Settings(json.loads(sys.argv[1]))); print(len(s.users.all()))")
    arg = json.dumps({"state_url": state_url, **{k: str(v) for k, v in files.items()}})
    procs = [subprocess.Popen([sys.executable, "-c", script, arg], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err for _, err in results]
    assert [out.strip() for out, _ in results] == ["2", "2", "2"]
    store = open_state(settings_for(state_url, files))
    assert count(store, schema.audit_log) == 3 and count(store, schema.alert_outbox) == 3
    assert count(store, schema.state_imports) == 3


def test_missing_old_files_are_fine(state_url: str, tmp_path: Path) -> None:
    store = open_state(Settings({"state_url": state_url, "users_file": str(tmp_path / "none.json"),
                                 "audit_log_file": str(tmp_path / "none.sqlite"),
                                 "alert_state_file": str(tmp_path / "gone" / "a.sqlite")}))
    assert store.users.all() == {} and count(store, schema.state_imports) == 0
    assert not (tmp_path / "none.sqlite").exists() and not (tmp_path / "gone").exists()


def test_a_broken_old_users_file_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "users.json").write_text("{not json")
    store = open_state(Settings({"state_url": str(tmp_path / "state.sqlite"), "users_file": str(tmp_path / "users.json")}))
    with pytest.raises(ConfigError) as caught:
        store.users.all()
    message = str(caught.value)
    assert "\n" not in message and str(tmp_path / "users.json") in message and "PAYDASH_USERS_FILE" in message
    close_all()
