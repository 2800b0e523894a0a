"""The one-time import of the local files paydash kept before the state store.

- users (data/users.json, PAYDASH_USERS_FILE): {"users": [{username, role, password_hash, created_at}]};
- audit (data/audit.sqlite, PAYDASH_AUDIT_LOG_FILE): table audit_log(id, at, username, action, detail);
- alerts (data/alerts.sqlite, PAYDASH_ALERT_STATE_FILE): tables rule_state, transitions, outbox.

Each file is imported once: its kind and resolved path are recorded in paydash_state_imports in
the same transaction as its rows, so two processes opening the store at once import it once (the
second one's record collides and its transaction rolls back). Nothing is lost: users keep their
argon2 hashes and creation dates, audit entries their times, the alert state its history and
outbox in order with their statuses. The old files are only read, and left where they are.
What the store already holds wins (a user or a rule's state of the same name is not overwritten).
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from paydash.errors import ConfigError
from paydash.state import schema
from paydash.state.models import ROLES

if TYPE_CHECKING:
    from paydash.state.store import StateStore

log = logging.getLogger("paydash.state")

SETTING = {"users": "PAYDASH_USERS_FILE", "audit": "PAYDASH_AUDIT_LOG_FILE", "alerts": "PAYDASH_ALERT_STATE_FILE"}


def import_file(store: "StateStore", kind: str, path: Path) -> int | None:
    """Import `path` (of `kind`) unless it is missing or was imported before; rows imported, or None."""
    if not path.is_file():
        return None
    imports = schema.state_imports
    with store._raw_write() as conn:
        if conn.execute(sa.select(imports.c.kind).where(imports.c.kind == kind, imports.c.path == str(path))).first():
            return None
    reader = {"users": _read_users, "audit": _read_sqlite_audit, "alerts": _read_sqlite_alerts}[kind]
    content = reader(path)
    try:
        with store._raw_write() as conn:
            # the record first: a second process importing the same file now waits here, then collides
            conn.execute(imports.insert().values(kind=kind, path=str(path), imported_at=time.time(), rows=0))
            rows = {"users": _write_users, "audit": _write_audit, "alerts": _write_alerts}[kind](conn, content)
            conn.execute(imports.update().where(imports.c.kind == kind, imports.c.path == str(path)).values(rows=rows))
    except sa.exc.IntegrityError:
        return None  # another process imported it just now
    log.warning("state store %s: imported %d %s rows from %s (the file is left in place and not read again)",
                store.display_url, rows, kind, path)
    return rows


def _broken(kind: str, path: Path, why: object) -> ConfigError:
    return ConfigError(f"the old {kind} file {path} cannot be imported into the state store ({why}); fix it, "
                       f"or point {SETTING[kind]} at another path, and start paydash again")


# -- users -------------------------------------------------------------------------------------
def _read_users(path: Path) -> list[dict[str, str]]:
    try:
        data = json.loads(path.read_text())
        users = []
        for entry in data.get("users", []):
            user = {"username": str(entry["username"]), "role": str(entry["role"]),
                    "password_hash": str(entry["password_hash"]), "created_at": str(entry.get("created_at", ""))}
            if user["role"] not in ROLES:
                raise ValueError(f"user {user['username']!r} has unknown role {user['role']!r}")
            users.append(user)
        return users
    except OSError as exc:
        raise _broken("users", path, exc.strerror) from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _broken("users", path, exc) from None


def _write_users(conn: sa.Connection, users: list[dict[str, str]]) -> int:
    t = schema.users
    present = set(conn.execute(sa.select(t.c.username)).scalars())
    new = [u for u in users if u["username"] not in present]
    if new:
        conn.execute(t.insert(), new)
    return len(new)


# -- the old SQLite files --------------------------------------------------------------------
def _query(path: Path, kind: str, sql: str) -> list[dict[str, Any]]:
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, timeout=10)) as conn:
            conn.row_factory = sqlite3.Row
            return [dict(r) for r in conn.execute(sql)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []  # a file created but never written
        raise _broken(kind, path, exc) from None
    except sqlite3.Error as exc:
        raise _broken(kind, path, exc) from None


def _read_sqlite_audit(path: Path) -> list[dict[str, Any]]:
    return _query(path, "audit", "SELECT at, username, action, detail FROM audit_log ORDER BY id")


def _write_audit(conn: sa.Connection, rows: list[dict[str, Any]]) -> int:
    for start in range(0, len(rows), 1000):
        conn.execute(schema.audit_log.insert(), [{**r, "detail": r["detail"] or ""} for r in rows[start:start + 1000]])
    return len(rows)


def _read_sqlite_alerts(path: Path) -> dict[str, list[dict[str, Any]]]:
    return {
        "rule_state": _query(path, "alerts", "SELECT rule, state, since, breach_since, clear_since, dedup_key, value, "
                                             "volume, evaluated_at, channel FROM rule_state ORDER BY rule"),
        "transitions": _query(path, "alerts", "SELECT rule, from_state, to_state, at, value, dedup_key "
                                              "FROM transitions ORDER BY id"),
        "outbox": _query(path, "alerts", "SELECT rule, channel, action, at, dedup_key, payload, status, attempts, "
                                         "next_attempt_at, last_error, sent_at FROM outbox ORDER BY id"),
    }


def _write_alerts(conn: sa.Connection, content: dict[str, list[dict[str, Any]]]) -> int:
    state = schema.alert_rule_state
    present = set(conn.execute(sa.select(state.c.rule)).scalars())
    states = [r for r in content["rule_state"] if r["rule"] not in present]
    if states:
        conn.execute(state.insert(), states)
    for table, rows in ((schema.alert_transitions, content["transitions"]), (schema.alert_outbox, content["outbox"])):
        for row in rows:  # one by one: the ids keep the old order
            conn.execute(table.insert().values(**row))
    return len(states) + len(content["transitions"]) + len(content["outbox"])
