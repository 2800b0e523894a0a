"""The Stripe sync's bookkeeping in the warehouse: its runs (paydash_sync_runs) and its cursors
(paydash_sync_state), written by `paydash sync` and read by `paydash sync status`.

A run is `running` from its start, then `complete`, `failed` (with the error) or
`interrupted` (Ctrl-C, SIGTERM, or a process that died: the next run, which holds the sync
lock, finds it still `running` and marks it). A run that did not finish is never `complete`.

Each object type has a cursor row: how far its list is read (`synced_until`, and the window a
killed run left half read). Two rows are not object types: `marts` holds how far the marts
are built (`transformed_through`, a loaded_at watermark) and `events` the reconciliation's
place in the Events API (`synced_until` = the newest event's `created`, `starting_after` = its
id, `objects` = events applied through the API in all).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from paydash.warehouse.raw import utc_now
from paydash.warehouse.stripe_objects import ObjectTables

RUNNING, COMPLETE, FAILED, INTERRUPTED = "running", "complete", "failed", "interrupted"
STATUSES = (RUNNING, COMPLETE, FAILED, INTERRUPTED)
MARTS = "marts"  # the cursor row of the marts' watermark
EVENTS = "events"  # the cursor row of reconciliation
LEFT_RUNNING = "the process stopped before recording a result (killed?); the next run resumed from its last page"


@dataclass
class Cursor:
    synced_until: int | None = None
    window_start: int | None = None
    window_end: int | None = None
    starting_after: str | None = None
    objects: int = 0


def load_cursor(conn: Connection, tables: ObjectTables, name: str) -> Cursor:
    s = tables.sync_state
    row = conn.execute(sa.select(s).where(s.c.object_type == name)).mappings().first()
    if row is None:
        return Cursor()
    return Cursor(row["synced_until"], row["window_start"], row["window_end"], row["starting_after"],
                  row["objects"] or 0)


def save_cursor(conn: Connection, tables: ObjectTables, name: str, cursor: Cursor) -> None:
    s = tables.sync_state
    values = {"synced_until": cursor.synced_until, "window_start": cursor.window_start,
              "window_end": cursor.window_end, "starting_after": cursor.starting_after,
              "objects": cursor.objects, "updated_at": utc_now()}
    if conn.execute(s.update().where(s.c.object_type == name).values(**values)).rowcount == 0:
        conn.execute(s.insert().values(object_type=name, **values))


def transformed_through(conn: Connection, tables: ObjectTables) -> datetime | None:
    """The newest raw `loaded_at` the marts are built from (None: never built)."""
    s = tables.sync_state
    return conn.execute(sa.select(s.c.transformed_through).where(s.c.object_type == MARTS)).scalar()


def mark_transformed(conn: Connection, tables: ObjectTables, newest: datetime) -> None:
    s = tables.sync_state
    values = {"transformed_through": newest, "updated_at": utc_now()}
    if conn.execute(s.update().where(s.c.object_type == MARTS).values(**values)).rowcount == 0:
        conn.execute(s.insert().values(object_type=MARTS, objects=0, **values))


def start_run(conn: Connection, tables: ObjectTables, run_id: str, *, since: int | None, until: int | None,
              api_base: str, objects: Mapping[str, int]) -> int:
    """Record a new `running` run. Call it holding the sync lock: any run still `running` then
    belongs to a process that died, and becomes `interrupted`. Returns how many did."""
    runs = tables.sync_runs
    now = utc_now()
    left = conn.execute(runs.update().where(runs.c.status == RUNNING).values(
        status=INTERRUPTED, finished_at=now, error=LEFT_RUNNING)).rowcount
    conn.execute(runs.insert().values(
        run_id=run_id, status=RUNNING, started_at=now, updated_at=now, since_ts=since, until_ts=until,
        api_base=api_base, objects=json.dumps(dict(objects)), pid=os.getpid()))
    return left or 0


def record_progress(conn: Connection, tables: ObjectTables, run_id: str, objects: Mapping[str, int],
                    **reconcile: Any) -> None:
    """The run's counts so far (and reconciliation's: events_read, events_applied, events_missing, missing)."""
    runs = tables.sync_runs
    conn.execute(runs.update().where(runs.c.run_id == run_id).values(
        updated_at=utc_now(), objects=json.dumps(dict(objects)), **_reconcile_values(reconcile)))


def finish_run(conn: Connection, tables: ObjectTables, run_id: str, status: str, error: str | None,
               objects: Mapping[str, int], **reconcile: Any) -> None:
    if status not in (COMPLETE, FAILED, INTERRUPTED):
        raise ValueError(f"a run finishes complete, failed or interrupted, not {status!r}")
    runs = tables.sync_runs
    now = utc_now()
    conn.execute(runs.update().where(runs.c.run_id == run_id).values(
        status=status, error=error, finished_at=now, updated_at=now, objects=json.dumps(dict(objects)),
        **_reconcile_values(reconcile)))


def _reconcile_values(values: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(values)
    if isinstance(out.get("missing"), Mapping):
        out["missing"] = json.dumps(dict(sorted(out["missing"].items())))
    return out
