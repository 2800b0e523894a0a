"""`paydash sync`: load a Stripe account through its API into the raw tables, then the marts.

For each object type, the list endpoint is walked in `created` windows
(created[gte]/created[lt], oldest window first; inside a window Stripe pages newest first
with `starting_after`, 100 objects a page). Each page's objects and the cursor (the window
and the last id read) are committed in ONE transaction, so a run killed at any moment
resumes after its last committed page and stores nothing twice. A finished window moves
`synced_until` forward; the next run starts there (minus PAYDASH_STRIPE_SYNC_LOOKBACK, to
pick up recent objects whose state changed). Coupons and promotion codes are few and change
(times_redeemed, active): every run reads them all.

Listing by `created` never sees an object again once its window is read, so changes to old
objects (a dispute closing, a refund failing, a checkout session expiring) come from events:
the webhook receiver's, and reconciliation's (reconcile.py), which `paydash sync` runs after
the incremental pass whenever the key may read events.

After loading, the marts are rebuilt for what changed (raw rows whose loaded_at is newer
than the marts' watermark, marts.py).

Each run is a row of paydash_sync_runs (warehouse/sync_runs.py): running, then complete,
failed with the error, or interrupted. One sync at a time per database (warehouse/locks.py).
The HTTP side (the key, retries, rate limits) is api.py's.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from paydash.errors import PaydashError
from paydash.sources import operations_events
from paydash.sources.stripe import marts as stripe_marts
from paydash.sources.stripe.api import OBJECT_TYPES, PAGE_LIMIT, ObjectType, StripeReader, SyncError
from paydash.sources.stripe.transform import TransformOptions, prepare_database
from paydash.warehouse import locks, sync_runs
from paydash.warehouse.raw import RawBatch, RawTables, utc_now
from paydash.warehouse.stripe_objects import (
    ObjectBatch,
    ObjectTables,
    create_object_tables,
    object_tables_for,
    upsert_page,
)
from paydash.warehouse.sync_runs import Cursor

log = logging.getLogger("paydash.sync")

# Stripe opened in 2011: nothing in an account is older
EARLIEST = int(datetime(2010, 1, 1, tzinfo=timezone.utc).timestamp())
FIRST_WINDOW = 86_400
MAX_WINDOW = 4 * 366 * 86_400
WINDOW_TARGET = 2_000  # objects per window the widths aim at
# with PAYDASH_DUCKDB_SHARED, an embedded DuckDB file stays open across page commits at most
# this long, then is let go for a moment (while the next page is fetched) so that the receiver
# or the dashboard get a turn. Without it, no other process can share the file anyway, and the
# file stays open: each let-go costs a checkpoint, which grows with the database.
SHARED_HOLD_SECONDS = 2.0
# pages committed together: a commit costs an fsync, slow on a busy disk (measured: most of a
# page's 0.4 s at 100k charges on a shared machine)
GROUP_SECONDS = 1.0
SYNC_LOCK_KEY = 0x70617973  # "pays"
# set by SIGTERM: the run stops before its next request and is recorded as interrupted
STOP = threading.Event()

# what a run does: the incremental pass over the list endpoints, then reconciliation through
# the Events API; "auto" reconciles when the key may read events (skipped with a note when not)
RECONCILE_MODES = ("auto", "yes", "no", "only")


@dataclass
class SyncReport:
    run_id: str
    status: str
    objects: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    charges_in_mart: int = 0
    seconds: float = 0.0
    # where the time went: reading the API, committing pages, building the marts
    timings: dict[str, float] = field(default_factory=dict)
    reconciled: bool = False
    events_read: int = 0
    events_applied: int = 0
    events_missing: int = 0
    missing: dict[str, int] = field(default_factory=dict)  # event type -> events no webhook had delivered
    notes: list[str] = field(default_factory=list)  # what the run could not do, said once at the end


ProgressFn = Callable[[str, int, int, int], None]  # (object type, objects this run, window start, window end)


class Syncer:
    """One `paydash sync` run against one warehouse (opened writable, hold_duckdb_file=False)."""

    def __init__(self, wh, reader: StripeReader, options: TransformOptions, *, since: int | None = None,  # noqa: ANN001
                 lookback: int = 86_400, progress: ProgressFn | None = None, until: int | None = None,
                 types: tuple[ObjectType, ...] = OBJECT_TYPES, hold_seconds: float | None = None,
                 reconcile: str = "auto"):
        self.wh = wh
        self.reader = reader
        self.options = options
        self.since = since
        self.lookback = lookback
        self.progress = progress or (lambda *_: None)
        self.until = until
        self.types = types
        if reconcile not in RECONCILE_MODES:
            raise ValueError(f"reconcile must be one of {RECONCILE_MODES}, not {reconcile!r}")
        self.reconcile_mode = reconcile
        if reconcile == "only":
            self.types = ()
        self.reconciliation = None  # the Reconciliation of this run, once it started
        self.notes: list[str] = []
        self.counts: dict[str, int] = {t.name: 0 for t in types}
        self.run_id = uuid.uuid4().hex
        self._conn: Connection | None = None
        self._opened_at = 0.0
        self._pending: sa.engine.RootTransaction | None = None
        self._pending_since = 0.0
        self.hold_seconds = hold_seconds if hold_seconds is not None else (
            float("inf") if wh.holds_embedded_file else SHARED_HOLD_SECONDS)
        self.timings = {"api": 0.0, "pages": 0.0, "marts": 0.0}

    @contextmanager
    def transaction(self, group: bool = False) -> Iterator[Connection]:
        """A write transaction on the run's connection (opened on demand, let go every hold_seconds).

        group=True (pages): the transaction stays open for the next pages until GROUP_SECONDS
        have passed, then commits them together; every page still commits with its cursor, and
        a kill loses at most the pages of the last second, read again by the next run. Any
        other transaction commits what is pending first."""
        if self._conn is None:
            self._conn = self.wh.write_connection()
            self._opened_at = time.monotonic()
        try:
            with self.wh.translate_errors():
                if self._pending is None:
                    self._pending = self._conn.begin()
                    self._pending_since = time.monotonic()
                yield self._conn
                if not group or time.monotonic() - self._pending_since >= GROUP_SECONDS:
                    pending, self._pending = self._pending, None
                    pending.commit()
        except BaseException:
            self._release()
            raise
        if self._pending is None and time.monotonic() - self._opened_at > self.hold_seconds:
            self._release()

    def _release(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            try:
                pending.rollback()
            except Exception:  # noqa: BLE001 - the connection is dropped below either way
                pass
        if self._conn is not None:
            conn, self._conn = self._conn, None
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - a broken connection is dropped either way
                pass

    # -- the run ----------------------------------------------------------------------
    def run(self) -> SyncReport:
        from paydash.sources.stripe.reconcile import Reconciliation

        started = time.monotonic()
        self.raw: RawTables = prepare_database(self.wh)
        self.objects: ObjectTables = object_tables_for(self.wh)
        with self.wh.write() as conn:
            create_object_tables(conn, self.objects)
            stripe_marts.create_optional_marts(conn, self.wh.marts)
        operations_events.ensure_table(self.wh)  # reconciled checkout events feed the operations view, as delivered ones
        with self._exclusive(), self._released():
            self.until = self.until or int(time.time())
            self._begin()
            try:
                for otype in self.types:
                    self._sync_type(otype)
                if self.reconcile_mode != "no":
                    self.reconciliation = Reconciliation(self, required=self.reconcile_mode in ("yes", "only"))
                    self.reconciliation.run()
                clock = time.perf_counter()
                charges = self._build_marts()
                self.timings["marts"] += time.perf_counter() - clock
            except BaseException as exc:  # noqa: BLE001 - recorded, then raised again
                interrupted = isinstance(exc, KeyboardInterrupt)
                message = self._failure_message(exc)
                self._finish(sync_runs.INTERRUPTED if interrupted else sync_runs.FAILED, message)
                if isinstance(exc, (PaydashError, KeyboardInterrupt)):
                    raise
                raise SyncError(message) from None
            self._finish(sync_runs.COMPLETE, None)
        r = self.reconciliation
        return SyncReport(self.run_id, sync_runs.COMPLETE, dict(self.counts), self.reader.requests, self.reader.retries,
                          charges, round(time.monotonic() - started, 1),
                          {k: round(v, 1) for k, v in self.timings.items()},
                          reconciled=bool(r and r.walked), events_read=r.read if r else 0,
                          events_applied=r.applied if r else 0, events_missing=r.missing_total if r else 0,
                          missing=dict(r.missing) if r else {}, notes=list(self.notes))

    def _failure_message(self, exc: BaseException) -> str:
        if isinstance(exc, KeyboardInterrupt):
            return "interrupted (Ctrl-C or SIGTERM); the next run resumes from the last page stored"
        text = str(exc) if isinstance(exc, PaydashError) else f"{type(exc).__name__}: {exc}"
        return self.reader.redact(text)[:2000]

    @contextmanager
    def _released(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One sync at a time per database (what the lock is on each engine: warehouse/locks.py)."""
        with locks.exclusive_run(self.wh, SYNC_LOCK_KEY, lambda where: SyncError(
                f"another `paydash sync` is running against {where}; wait for it to finish")):
            yield

    def _reconcile_values(self) -> dict[str, Any]:
        r = self.reconciliation
        if r is None:
            return {"reconciled": False}
        return {"reconciled": r.walked, "events_read": r.read, "events_applied": r.applied,
                "events_missing": r.missing_total, "missing": dict(r.missing)}

    def record_progress(self, conn: Connection) -> None:
        """The run's counts so far, in the caller's transaction."""
        sync_runs.record_progress(conn, self.objects, self.run_id, self.counts, **self._reconcile_values())

    def _begin(self) -> None:
        with self.transaction() as conn:
            # we hold the lock: a run still `running` belongs to a process that died
            left = sync_runs.start_run(conn, self.objects, self.run_id, since=self.since, until=self.until,
                                       api_base=self.reader.api_base, objects=self.counts)
        if left:
            log.warning("%d earlier run(s) left `running` by a stopped process are now recorded as interrupted", left)

    def _finish(self, status: str, error: str | None) -> None:
        try:
            with self.transaction() as conn:
                sync_runs.finish_run(conn, self.objects, self.run_id, status, error, self.counts,
                                     **self._reconcile_values())
        except PaydashError as exc:
            if status == sync_runs.COMPLETE:
                raise
            log.error("could not record the %s run %s: %s", status, self.run_id, exc)

    # -- one object type ---------------------------------------------------------------
    def _sync_type(self, otype: ObjectType) -> None:
        with self.transaction() as conn:  # also commits the pages of the type before
            cursor = sync_runs.load_cursor(conn, self.objects, otype.name)
        if cursor.window_end is not None:
            # a window a killed run left half read: finish it first, from its last page
            start = cursor.window_end
            self._walk_window(otype, cursor, cursor.window_start, cursor.window_end, cursor.starting_after)
        elif self.since is not None:
            start = self.since
        elif otype.every_run_all or cursor.synced_until is None:
            start = EARLIEST
        else:
            start = max(EARLIEST, cursor.synced_until - self.lookback)
        width = FIRST_WINDOW
        while start < self.until:
            end = min(start + width, self.until)
            read = self._walk_window(otype, cursor, start, end, None)
            start = end
            # aim at WINDOW_TARGET objects a window: empty history is crossed in a few requests
            if read < WINDOW_TARGET // 4:
                width = min(width * 2, MAX_WINDOW)
            elif read > WINDOW_TARGET * 2:
                width = max(int(width * WINDOW_TARGET / read), 60)

    def _walk_window(self, otype: ObjectType, cursor: Cursor, start: int, end: int, after: str | None) -> int:
        read = 0
        while True:
            if self.stop_requested():
                raise KeyboardInterrupt
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "created": {"gte": start, "lt": end}}
            if after:
                params["starting_after"] = after
            if otype.expand:
                params["expand"] = list(otype.expand)
            page = self.timed_list_page(otype, params)
            read += len(page.objects)
            self.counts[otype.name] += len(page.objects)
            cursor.objects += len(page.objects)
            if page.has_more and page.objects:
                after = page.objects[-1]["id"]
                cursor.window_start, cursor.window_end, cursor.starting_after = start, end, after
            else:
                cursor.window_start = cursor.window_end = cursor.starting_after = None
                cursor.synced_until = max(cursor.synced_until or 0, end)
            clock = time.perf_counter()
            self._commit_page(otype, page.objects, cursor)
            self.timings["pages"] += time.perf_counter() - clock
            self.progress(otype.name, self.counts[otype.name], start, end)
            if cursor.window_end is None:
                return read

    @staticmethod
    def stop_requested() -> bool:
        """SIGTERM asked the run to stop (it stops at the next page boundary)."""
        return STOP.is_set()

    def timed_list_page(self, otype: ObjectType, params: dict[str, Any]):  # noqa: ANN201 - api.Page
        clock = time.perf_counter()
        try:
            return self.reader.list_page(otype, params)
        finally:
            self.timings["api"] += time.perf_counter() - clock

    def _commit_page(self, otype: ObjectType, objects: list[dict[str, Any]], cursor: Cursor) -> None:
        """The page's objects, the cursor after it and the run's counts: one transaction."""
        state_ts = int(time.time())
        loaded_at = utc_now()
        core = RawBatch(self.raw, loaded_at)
        other = ObjectBatch(self.objects, loaded_at)
        for obj in objects:
            if obj.get("object") != otype.kind:
                raise SyncError(f"the {otype.name} list returned a {obj.get('object')!r} object; is --api-base "
                                "pointing at the Stripe API?")
            if otype.kind == "charge" and isinstance(obj.get("balance_transaction"), Mapping):
                # stored apart; the charge keeps its id, as webhooks deliver it
                core.add(obj["balance_transaction"], state_ts)
                obj = {**obj, "balance_transaction": obj["balance_transaction"]["id"]}
            if otype.kind in ("charge", "payment_intent"):
                core.add(obj, state_ts)
            else:
                other.add(obj, state_ts)
        with self.transaction(group=True) as conn:
            for name, rows in core.rows.items():
                upsert_page(conn, getattr(self.raw, name), rows)
            for kind, rows in other.rows.items():
                upsert_page(conn, self.objects.by_kind[kind], rows)
            sync_runs.save_cursor(conn, self.objects, otype.name, cursor)
            self.record_progress(conn)

    # -- the marts ---------------------------------------------------------------------
    def _build_marts(self) -> int:
        """Rewrite the marts for every raw row loaded since the marts were last built."""
        with self.transaction() as conn:
            changed, newest = stripe_marts.changed_since(conn, self.raw, self.objects,
                                                         sync_runs.transformed_through(conn, self.objects))
            written = stripe_marts.refresh_objects(conn, self.wh.marts, self.raw, self.objects, changed, self.options)
            if newest is not None:
                sync_runs.mark_transformed(conn, self.objects, newest)
        return written
