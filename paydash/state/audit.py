"""The audit log: who signed in, who failed to, who signed out, who exported what, which admin did what.

Kept in the state store (paydash_audit_log; never in the warehouse): one row per event, when (UTC),
who, what action and a detail text. Admins read it on the System page, filtered and paged in SQL,
exported as CSV in chunks. Writing an entry never breaks what it records: a failure is logged,
not raised. `store.audit` (open_state(settings).audit) is the log of a store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Iterator

import sqlalchemy as sa

from paydash.csv_safe import csv_chunks as _csv_chunks
from paydash.errors import PaydashError
from paydash.queries.dates import DateRange
from paydash.state import schema

if TYPE_CHECKING:
    from paydash.state.store import StateStore

log = logging.getLogger("paydash.audit")

LOGIN = "login"
LOGIN_FAILED = "login_failed"
LOGOUT = "logout"
EXPORT = "export"
CLEAR_CACHE = "clear_cache"
TEST_CONNECTION = "test_connection"
SYSTEM_REPORT = "system_report"
RUN_QUERY = "run_query"
ACTIONS = (LOGIN, LOGIN_FAILED, LOGOUT, EXPORT, CLEAR_CACHE, TEST_CONNECTION, SYSTEM_REPORT, RUN_QUERY)
PAGE_SIZE = 50
COLUMNS = ("id", "at_utc", "username", "action", "detail")


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


def stamp(moment: datetime) -> str:
    """How a time is stored: naive UTC 'YYYY-MM-DD HH:MM:SS.ffffff' text, which sorts as time."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment.isoformat(sep=" ", timespec="microseconds")


def _entry(row: sa.Row) -> Entry:
    return Entry(int(row.id), datetime.fromisoformat(row.at), row.username, row.action, row.detail)


def day_range(start: date | None, end: date | None, tz: str) -> DateRange | None:
    if start is None and end is None:
        return None
    return DateRange(start or end, end or start, tz)


class AuditLog:
    """`store.audit`."""

    def __init__(self, store: "StateStore") -> None:
        self._store = store

    @property
    def where(self) -> str:
        """Where the log is kept, for the System page."""
        return self._store.display_url

    # -- writing ---------------------------------------------------------------------------
    def record(self, username: str, action: str, detail: str = "", now: datetime | None = None) -> bool:
        """Add an entry; False (and a server log line) when it could not be written."""
        at = stamp(now or datetime.now(timezone.utc))
        try:
            with self._store.write() as conn:
                conn.execute(schema.audit_log.insert().values(
                    at=at, username=(username or "")[:200], action=(action or "")[:50], detail=(detail or "")[:2000]))
            return True
        except (PaydashError, sa.exc.SQLAlchemyError, OSError):
            log.exception("could not write the audit log entry %s by %s", action, username)
            return False

    # -- reading ---------------------------------------------------------------------------
    @staticmethod
    def _filtered(query: sa.Select, f: AuditFilter) -> sa.Select:
        t = schema.audit_log
        if f.username:
            query = query.where(t.c.username == f.username)
        if f.action:
            query = query.where(t.c.action == f.action)
        if f.date_range is not None:
            start, stop = f.date_range.utc_bounds()
            query = query.where(t.c.at >= stamp(start), t.c.at < stamp(stop))
        return query

    def page(self, f: AuditFilter, page: int = 1, page_size: int = PAGE_SIZE) -> AuditPage:
        """One page of matching entries, newest first, and how many match."""
        t = schema.audit_log
        with self._store.read() as conn:
            total = int(conn.execute(self._filtered(sa.select(sa.func.count()).select_from(t), f)).scalar() or 0)
            pages = max(1, -(-total // page_size))
            page = min(max(1, page), pages)
            rows = conn.execute(self._filtered(sa.select(t), f).order_by(t.c.at.desc(), t.c.id.desc())
                                .limit(page_size).offset((page - 1) * page_size)).all()
        return AuditPage([_entry(r) for r in rows], total, page, pages)

    def choices(self) -> dict[str, list[str]]:
        """Users and actions present, for the filters."""
        t = schema.audit_log
        with self._store.read() as conn:
            users = list(conn.execute(sa.select(t.c.username).distinct().order_by(t.c.username).limit(1000)).scalars())
            actions = list(conn.execute(sa.select(t.c.action).distinct()).scalars())
        return {"username": users, "action": sorted(set(actions) | set(ACTIONS))}

    def csv_chunks(self, f: AuditFilter) -> Iterator[bytes]:
        """Every matching entry as CSV (newest first), read and written in chunks."""
        t = schema.audit_log
        query = self._filtered(sa.select(t.c.id, t.c.at, t.c.username, t.c.action, t.c.detail), f)
        with self._store.read() as conn:
            result = conn.execution_options(stream_results=True, yield_per=5_000).execute(
                query.order_by(t.c.at.desc(), t.c.id.desc()))

            def rows() -> Iterator[tuple]:
                for partition in result.partitions():
                    yield from (tuple(r) for r in partition)

            yield from _csv_chunks(COLUMNS, rows())
