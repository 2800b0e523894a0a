"""The audit log: who signed in, who failed to, who exported what, which admin did what.

A SQLite file outside the warehouse (PAYDASH_AUDIT_LOG_FILE; the dashboard never writes
to the warehouse). One row per event: when (UTC), who, what action, and a detail text.
Admins read it on the System page: filtered and paged in SQLite, exported as CSV in
chunks. Writing an entry never breaks what it records: a failure is logged, not raised.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Iterator

from paydash.csv_safe import csv_chunks
from paydash.errors import ConfigError
from paydash.queries.dates import DateRange

log = logging.getLogger("paydash.audit")

LOGIN = "login"
LOGIN_FAILED = "login_failed"
EXPORT = "export"
CLEAR_CACHE = "clear_cache"
TEST_CONNECTION = "test_connection"
SYSTEM_REPORT = "system_report"
RUN_QUERY = "run_query"
ACTIONS = (LOGIN, LOGIN_FAILED, EXPORT, CLEAR_CACHE, TEST_CONNECTION, SYSTEM_REPORT, RUN_QUERY)
PAGE_SIZE = 50
COLUMNS = ("id", "at_utc", "username", "action", "detail")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS audit_log ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " at TEXT NOT NULL,"  # UTC, 'YYYY-MM-DD HH:MM:SS.ffffff' (sorts as time)
    " username TEXT NOT NULL,"
    " action TEXT NOT NULL,"
    " detail TEXT NOT NULL DEFAULT '')",
    "CREATE INDEX IF NOT EXISTS ix_audit_at ON audit_log (at)",
    "CREATE INDEX IF NOT EXISTS ix_audit_user_at ON audit_log (username, at)",
    "CREATE INDEX IF NOT EXISTS ix_audit_action_at ON audit_log (action, at)",
)


@dataclass(frozen=True)
class Entry:
    id: int
    at: datetime  # naive UTC
    username: str
    action: str
    detail: str


@dataclass(frozen=True)
class AuditFilter:
    username: str | None = None
    action: str | None = None
    date_range: DateRange | None = None


@dataclass(frozen=True)
class AuditPage:
    entries: list[Entry]
    total: int
    page: int
    pages: int


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


class AuditLog:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._ready = False

    def _connect(self) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, timeout=10)
        except (OSError, sqlite3.Error) as exc:
            raise ConfigError(f"cannot open the audit log {self.path}: {exc}; check PAYDASH_AUDIT_LOG_FILE") from None
        if not self._ready:
            with conn:
                conn.execute("PRAGMA journal_mode=WAL")  # readers do not block the writers of other sessions
                for statement in _SCHEMA:
                    conn.execute(statement)
            self._ready = True
        return conn

    # -- writing ---------------------------------------------------------------------------
    def record(self, username: str, action: str, detail: str = "", now: datetime | None = None) -> bool:
        """Add an entry; False (and a server log line) when it could not be written."""
        at = _stamp(now or datetime.now(timezone.utc))
        try:
            with closing(self._connect()) as conn, conn:
                conn.execute("INSERT INTO audit_log (at, username, action, detail) VALUES (?, ?, ?, ?)",
                             (at, username[:200], action[:50], detail[:2000]))
            return True
        except (sqlite3.Error, ConfigError):
            log.exception("could not write the audit log entry %s by %s", action, username)
            return False

    # -- reading ---------------------------------------------------------------------------
    def _where(self, f: AuditFilter) -> tuple[str, list]:
        clauses, params = [], []
        if f.username:
            clauses.append("username = ?")
            params.append(f.username)
        if f.action:
            clauses.append("action = ?")
            params.append(f.action)
        if f.date_range is not None:
            start, stop = f.date_range.utc_bounds()
            clauses += ["at >= ?", "at < ?"]
            params += [_stamp(start), _stamp(stop)]
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def page(self, f: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE) -> AuditPage:
        """One page of matching entries, newest first, and how many match."""
        where, params = self._where(f)
        with closing(self._connect()) as conn:
            total = conn.execute(f"SELECT count(*) FROM audit_log{where}", params).fetchone()[0]
            pages = max(1, -(-total // page_size))
            page = min(max(1, page), pages)
            rows = conn.execute(
                f"SELECT id, at, username, action, detail FROM audit_log{where} ORDER BY at DESC, id DESC LIMIT ? OFFSET ?",
                [*params, page_size, (page - 1) * page_size],
            ).fetchall()
        return AuditPage([_entry(r) for r in rows], total, page, pages)

    def choices(self) -> dict[str, list[str]]:
        """Users and actions present, for the filters."""
        with closing(self._connect()) as conn:
            users = [r[0] for r in conn.execute("SELECT DISTINCT username FROM audit_log ORDER BY 1 LIMIT 1000")]
            actions = [r[0] for r in conn.execute("SELECT DISTINCT action FROM audit_log ORDER BY 1")]
        return {"username": users, "action": sorted(set(actions) | set(ACTIONS))}

    def csv_chunks(self, f: AuditFilter) -> Iterator[bytes]:
        """Every matching entry as CSV (newest first), read and written in chunks."""
        where, params = self._where(f)
        with closing(self._connect()) as conn:
            cursor = conn.execute(
                f"SELECT id, at, username, action, detail FROM audit_log{where} ORDER BY at DESC, id DESC", params)

            def rows() -> Iterator[tuple]:
                while True:
                    batch = cursor.fetchmany(5_000)
                    if not batch:
                        return
                    yield from batch

            yield from csv_chunks(COLUMNS, rows())


def _entry(row: tuple) -> Entry:
    return Entry(int(row[0]), datetime.fromisoformat(row[1]), row[2], row[3], row[4])


def day_range(start: date | None, end: date | None, tz: str) -> DateRange | None:
    if start is None and end is None:
        return None
    return DateRange(start or end, end or start, tz)
