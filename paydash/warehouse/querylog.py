"""The slowest recent queries, timed by the query layer itself (for the System page).

Every statement a `Warehouse` engine runs is timed between SQLAlchemy's
before/after_cursor_execute events and kept in a small in-process ring buffer of
(label, milliseconds, when). The label is the `paydash.queries` function that ran it
(found on the call stack, so no caller has to name its queries), else the statement's
first words. Per process: each dashboard server (and each CLI run) has its own.
"""

from __future__ import annotations

import re
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import event
from sqlalchemy.engine import Engine

CAPACITY = 500


@dataclass(frozen=True)
class TimedQuery:
    label: str
    ms: float
    at: datetime  # naive UTC, when it finished
    statement: str  # the first 200 characters, parameters not included
    dialect: str


class QueryLog:
    """A thread-safe ring buffer of the last `capacity` timed statements."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._items: deque[TimedQuery] = deque(maxlen=capacity)
        self._lock = threading.Lock()

    def add(self, item: TimedQuery) -> None:
        with self._lock:
            self._items.append(item)

    def recent(self) -> list[TimedQuery]:
        with self._lock:
            return list(self._items)

    def slowest(self, n: int = 20) -> list[TimedQuery]:
        return sorted(self.recent(), key=lambda q: q.ms, reverse=True)[:n]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


RECENT = QueryLog()
_WHITESPACE = re.compile(r"\s+")


def label_from_stack(statement: str) -> str:
    """The innermost paydash.queries (else paydash) function on the stack, or the SQL's first words."""
    frame = sys._getframe(2)
    fallback = None
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module.startswith("paydash.queries."):
            return f"{module.removeprefix('paydash.queries.')}.{frame.f_code.co_name}"
        if fallback is None and module.startswith("paydash.") and not module.startswith(
            ("paydash.warehouse.engine", "paydash.warehouse.querylog")
        ):
            fallback = f"{module.removeprefix('paydash.')}.{frame.f_code.co_name}"
        frame = frame.f_back
    return fallback or " ".join(_WHITESPACE.sub(" ", statement).split(" ")[:4])[:60]


def install(engine: Engine, log: QueryLog = RECENT) -> None:
    """Time every statement `engine` runs into `log`."""

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        conn.info["paydash_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):  # noqa: ANN001
        started = conn.info.pop("paydash_started", None)
        if started is None:
            return
        ms = (time.perf_counter() - started) * 1000
        log.add(TimedQuery(label_from_stack(statement), ms, datetime.now(timezone.utc).replace(tzinfo=None),
                           _WHITESPACE.sub(" ", statement).strip()[:200], engine.dialect.name))

    @event.listens_for(engine, "handle_error")
    def _error(context):  # noqa: ANN001
        if context.connection is not None:
            context.connection.info.pop("paydash_started", None)
