"""Reconciliation through Stripe's Events API: what no list call returns and no webhook brought.

Listing by `created` never sees an object again once its window is read, and a receiver that
was down missed the events of its outage: a dispute that closed, a refund that failed, a
checkout session that expired. Stripe keeps 30 days of events (GET /v1/events, newest first).
`paydash sync` walks them after its incremental pass, from its own cursor (the `events` row of
paydash_sync_state, less OVERLAP seconds, so events of the same second are never skipped),
and stores each event the warehouse does not hold yet exactly as the receiver would
(events.py: the object it carries is applied only when newer than what is stored). Events
already stored, delivered or found before, are not applied again; each new one is counted as
missing, by type, in the run (paydash_sync_runs), and stays marked as never delivered until a
webhook brings it.

Only events about objects paydash stores are kept (charges, payment intents, balance
transactions, customers, refunds, disputes, checkout sessions, invoices, promotion codes,
coupons). Each page is committed with the run's counts, and the cursor moves only when the
walk is done: a killed run walks again from the old cursor, and what it had stored is not
counted twice.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from paydash.sources.stripe.api import EVENTS, PAGE_LIMIT, KeyMayNotRead, SyncError
from paydash.sources.stripe.events import API, STORED_KINDS, check_event, store_events
from paydash.warehouse import sync_runs
from paydash.warehouse.raw import utc_now

if TYPE_CHECKING:
    from paydash.sources.stripe.sync import Syncer

log = logging.getLogger("paydash.sync")

RETENTION = 30 * 86_400  # Stripe keeps events this long
OVERLAP = 300  # seconds before the cursor walked again


def _day(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


class Reconciliation:
    """One walk of the Events API inside a sync run (the Syncer's transactions, lock and run row)."""

    def __init__(self, syncer: "Syncer", required: bool):
        self.syncer = syncer
        self.required = required  # `paydash sync --reconcile`: a key that may not read events is an error
        self.walked = False  # the walk reached the end
        self.read = 0  # events listed
        self.applied = 0  # new events whose object was stored
        self.missing: Counter = Counter()  # event type -> new events (no webhook had delivered them)

    @property
    def missing_total(self) -> int:
        return sum(self.missing.values())

    def run(self) -> None:
        s = self.syncer
        with s.transaction() as conn:
            cursor = sync_runs.load_cursor(conn, s.objects, sync_runs.EVENTS)
        now = s.until or int(datetime.now(timezone.utc).timestamp())
        oldest = now - RETENTION
        if cursor.synced_until is not None and cursor.synced_until < oldest:
            s.notes.append(
                f"events were last reconciled up to {_day(cursor.synced_until)}, more than 30 days ago: Stripe no "
                f"longer has the events before {_day(oldest)}; run `paydash sync --since "
                f"{datetime.fromtimestamp(cursor.synced_until, timezone.utc):%Y-%m-%d}` to read those objects again")
        start = max(oldest, (cursor.synced_until or oldest) - OVERLAP)
        newest = (cursor.synced_until, cursor.starting_after)
        after: str | None = None
        while True:
            if s.stop_requested():
                raise KeyboardInterrupt
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "created": {"gte": start}}
            if after:
                params["starting_after"] = after
            try:
                page = s.timed_list_page(EVENTS, params)
            except KeyMayNotRead as exc:
                if self.required or after is not None:
                    raise
                s.notes.append(f"reconciliation skipped: {exc}")
                return
            self.read += len(page.objects)
            for event in page.objects:
                try:
                    check_event(event)
                except ValueError as exc:
                    raise SyncError(f"the events list returned something that is not a Stripe event ({exc}); "
                                    "is --api-base pointing at the Stripe API?") from None
                if (event.get("created") or 0, event.get("id") or "") > (newest[0] or 0, newest[1] or ""):
                    newest = (event["created"], event["id"])
            kept = [e for e in page.objects if _object_kind(e) in STORED_KINDS]
            clock = time.perf_counter()
            with s.transaction(group=True) as conn:
                stored = store_events(conn, s.wh.marts, s.raw, s.objects, kept, source=API, received=utc_now(),
                                      options=s.options)
                self.applied += stored.applied
                self.missing.update(stored.types)
                s.record_progress(conn)
            s.timings["pages"] += time.perf_counter() - clock
            s.progress("events", self.read, start, now)
            if not (page.has_more and page.objects):
                break
            after = page.objects[-1]["id"]
        cursor.synced_until, cursor.starting_after = newest
        cursor.window_start = cursor.window_end = None
        cursor.objects += self.missing_total
        with s.transaction() as conn:
            sync_runs.save_cursor(conn, s.objects, sync_runs.EVENTS, cursor)
            self.walked = True
            s.record_progress(conn)
        if self.missing:
            log.info("reconciliation applied %d events no webhook had delivered", self.missing_total)


def _object_kind(event: Any) -> str | None:
    try:
        return event["data"]["object"].get("object")
    except (KeyError, TypeError, AttributeError):
        return None
