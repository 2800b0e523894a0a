"""Alert state outside the warehouse: a SQLite file (PAYDASH_ALERT_STATE_FILE, data/alerts.sqlite).

Three tables: `rule_state` (each rule's current state), `transitions` (the history) and
`outbox` (every notification, from the moment the state changed until the channel took it).
A state change and its notification are written in one transaction, so a runner that stops
at any point neither pages twice nor forgets a resolve: the next one finds the incident
still firing with its dedup key, and the notification still waiting in the outbox.

For the Operations page: `current_states()` and `history(limit)` read the file read-only
and return plain dicts (an empty list when no runner has written it yet).
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable, Iterator

from paydash.alerts.evaluate import RuleState, Transition
from paydash.errors import ConfigError, PaydashError

SCHEMA = """
CREATE TABLE IF NOT EXISTS rule_state (
    rule TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    since TEXT,
    breach_since TEXT,
    clear_since TEXT,
    dedup_key TEXT,
    value REAL,
    volume INTEGER NOT NULL DEFAULT 0,
    evaluated_at TEXT,
    channel TEXT
);
CREATE TABLE IF NOT EXISTS transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    from_state TEXT NOT NULL,
    to_state TEXT NOT NULL,
    at TEXT NOT NULL,
    value REAL,
    dedup_key TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    rule TEXT NOT NULL,
    channel TEXT NOT NULL,
    action TEXT NOT NULL,
    at TEXT NOT NULL,
    dedup_key TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',  -- pending | sent | failed
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT,
    last_error TEXT,
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS ix_outbox_pending ON outbox (status, id);
PRAGMA user_version = 1;
"""
# user_version numbers this layout, for the step that changes it one day


def _text(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat(sep=" ", timespec="seconds")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class OutboxItem:
    id: int
    rule: str
    channel: str
    action: str
    at: datetime
    dedup_key: str
    payload: dict[str, Any]
    attempts: int


class AlertStore:
    """The SQLite file of one runner (one runner per file at a time)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")  # the dashboard reads while the runner writes
                conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error, PaydashError) as exc:
            raise ConfigError(f"cannot open the alert state file {self.path} ({exc}); set PAYDASH_ALERT_STATE_FILE "
                              "to a writable path") from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=10)) as conn:
                conn.row_factory = sqlite3.Row
                with conn:  # one transaction, committed on success
                    yield conn
        except sqlite3.Error as exc:
            raise PaydashError(f"the alert state file {self.path} could not be used ({exc}); check the disk and "
                               "PAYDASH_ALERT_STATE_FILE") from exc

    # -- rule state ------------------------------------------------------------------------
    def load(self) -> dict[str, RuleState]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM rule_state").fetchall()
        return {
            r["rule"]: RuleState(r["rule"], r["state"], _time(r["since"]), _time(r["breach_since"]),
                                 _time(r["clear_since"]), r["dedup_key"], r["value"], r["volume"],
                                 _time(r["evaluated_at"]))
            for r in rows
        }

    def save(self, states: Iterable[RuleState], transitions: Iterable[Transition],
             notifications: Iterable[tuple[Any, dict[str, Any]]], channels: dict[str, str] | None = None) -> None:
        """New states, their transitions and their notifications (with payloads), in one transaction."""
        channels = channels or {}
        with self._connect() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO rule_state VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s.rule, s.state, _text(s.since), _text(s.breach_since), _text(s.clear_since), s.dedup_key,
                  s.value, s.volume, _text(s.evaluated_at), channels.get(s.rule)) for s in states],
            )
            conn.executemany(
                "INSERT INTO transitions (rule, from_state, to_state, at, value, dedup_key) VALUES (?, ?, ?, ?, ?, ?)",
                [(t.rule, t.from_state, t.to_state, _text(t.at), t.value, t.dedup_key) for t in transitions],
            )
            conn.executemany(
                "INSERT INTO outbox (rule, channel, action, at, dedup_key, payload) VALUES (?, ?, ?, ?, ?, ?)",
                [(n.rule, n.channel, n.action, _text(n.at), n.dedup_key, json.dumps(payload))
                 for n, payload in notifications],
            )

    # -- outbox ----------------------------------------------------------------------------
    def pending(self) -> list[OutboxItem]:
        """Notifications not yet delivered, oldest first."""
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM outbox WHERE status = 'pending' ORDER BY id").fetchall()
        return [self._item(r) for r in rows]

    def due(self, row_id: int, now: datetime) -> bool:
        with self._connect() as conn:
            row = conn.execute("SELECT next_attempt_at FROM outbox WHERE id = ?", (row_id,)).fetchone()
        return row is None or row[0] is None or _time(row[0]) <= now

    @staticmethod
    def _item(r: sqlite3.Row) -> OutboxItem:
        return OutboxItem(r["id"], r["rule"], r["channel"], r["action"], _time(r["at"]), r["dedup_key"],
                          json.loads(r["payload"]), r["attempts"])

    def mark(self, row_id: int, status: str, detail: str, now: datetime, next_attempt_at: datetime | None = None) -> None:
        """Record a delivery attempt: sent, failed (not to be retried) or pending (retry at next_attempt_at)."""
        with self._connect() as conn:
            conn.execute(
                "UPDATE outbox SET status = ?, attempts = attempts + 1, last_error = ?, next_attempt_at = ?, "
                "sent_at = CASE WHEN ? = 'sent' THEN ? ELSE sent_at END WHERE id = ?",
                (status, None if status == "sent" else detail, _text(next_attempt_at), status, _text(now), row_id),
            )

    def outbox(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM outbox ORDER BY id DESC LIMIT ?", (limit,)).fetchall()
        return [dict(r) | {"payload": json.loads(r["payload"])} for r in rows]


# -- read-only views for the dashboard ---------------------------------------------------------
def _state_path(path: str | Path | None) -> Path:
    if path is not None:
        return Path(path)
    from paydash.settings import load_settings

    return Path(load_settings().alert_state_file)


def _read(path: str | Path | None, sql: str, params: tuple = ()) -> list[dict[str, Any]]:
    file = _state_path(path)
    if not file.is_file():
        return []
    with closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True, timeout=5)) as conn:
        conn.row_factory = sqlite3.Row
        try:
            return [dict(r) for r in conn.execute(sql, params)]
        except sqlite3.OperationalError:  # a file no runner has finished creating yet
            return []


def current_states(path: str | Path | None = None) -> list[dict[str, Any]]:
    """Each rule's state: rule, state (ok|pending|firing|resolved), since, channel, breach_since, dedup_key,
    value, volume, evaluated_at (times are UTC 'YYYY-MM-DD HH:MM:SS' text), firing first."""
    return _read(path, "SELECT rule, state, since, channel, breach_since, dedup_key, value, volume, evaluated_at "
                       "FROM rule_state ORDER BY CASE state WHEN 'firing' THEN 0 WHEN 'pending' THEN 1 "
                       "WHEN 'resolved' THEN 2 ELSE 3 END, rule")


def history(limit: int = 50, path: str | Path | None = None) -> list[dict[str, Any]]:
    """The latest state changes, newest first: rule, from_state, to_state, at, value, dedup_key,
    with the delivery of the notification it caused, if any (channel, action, delivery: pending|sent|failed)."""
    return _read(
        path,
        "SELECT t.rule, t.from_state, t.to_state, t.at, t.value, t.dedup_key, o.channel, o.action, "
        "o.status AS delivery FROM transitions t LEFT JOIN outbox o ON o.rule = t.rule AND o.at = t.at "
        "AND o.dedup_key = t.dedup_key AND ((t.to_state = 'firing' AND o.action = 'trigger') OR "
        "(t.to_state = 'resolved' AND o.action = 'resolve')) ORDER BY t.id DESC LIMIT ?",
        (int(limit),),
    )


def for_dashboard(limit: int = 50, path: str | Path | None = None) -> dict[str, list[dict[str, Any]]]:
    """What the Operations page shows: {"rules": [{rule, state, since, channel, value}],
    "history": [{at, rule, change, action, channel, delivery}]}, newest change first."""
    rules = [{k: s[k] for k in ("rule", "state", "since", "channel", "value")} for s in current_states(path)]
    changes = [
        {"at": h["at"], "rule": h["rule"], "change": f"{h['from_state']} -> {h['to_state']}", "action": h["action"],
         "channel": h["channel"], "delivery": h["delivery"]}
        for h in history(limit, path)
    ]
    return {"rules": rules, "history": changes}
