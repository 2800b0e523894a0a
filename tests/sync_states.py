"""Sync states built row by row for the sync-health tests (tests/test_sync_health.py, the System page's)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from paydash.queries.sync_health import SyncTables
from paydash.warehouse.migrations import migrate
from paydash.warehouse.stripe_objects import create_object_tables

NOW = datetime(2026, 12, 4, 12, 0)


def unix(t: datetime) -> int:
    return int(t.replace(tzinfo=timezone.utc).timestamp())


def sync_database(db):  # noqa: ANN001, ANN201
    """A writable Warehouse with the tables the sync and the receiver make."""
    wh = db.warehouse(read_only=False)
    tables = SyncTables.of(wh)
    migrate(wh, tables.raw)
    with wh.write() as conn:
        create_object_tables(conn, tables.objects)
    return wh, tables


def run_row(run_id: str, status: str, started: datetime, finished: datetime | None = None,
            updated: datetime | None = None, error: str | None = None, **extra) -> dict:  # noqa: ANN003
    return {"run_id": run_id, "status": status, "started_at": started, "updated_at": updated or finished or started,
            "finished_at": finished, "error": error, "objects": json.dumps(extra.pop("objects", {})), "pid": 1,
            "events_read": None, "events_applied": None, "events_missing": None, "missing": None, "reconciled": None,
            **extra}


def event_row(event_id: str, type_: str, created: datetime, received: datetime, source: str = "webhook",
              delivered: datetime | None | str = "received") -> dict:
    return {"id": event_id, "type": type_, "created": unix(created), "object_type": "charge", "object_id": "ch_1",
            "livemode": False, "received_at": received, "data": "{}", "source": source,
            "delivered_at": received if delivered == "received" else delivered}


def raw_row(object_id: str, created: datetime, loaded: datetime) -> dict:
    return {"id": object_id, "created": unix(created), "state_ts": unix(created), "state_rank": 0, "state_hash": "h",
            "loaded_at": loaded, "data": "{}"}


def state_row(name: str, updated: datetime, synced_until: datetime | None = None, objects: int = 0, **extra) -> dict:  # noqa: ANN003
    return {"object_type": name, "synced_until": unix(synced_until) if synced_until else None, "window_start": None,
            "window_end": None, "starting_after": None, "objects": objects, "transformed_through": None,
            "updated_at": updated, **extra}


def fill_troubled(wh) -> None:  # noqa: ANN001
    """A complete run (4 h before NOW), then a failed one, then one left `running` by a dead process;
    webhooks delivered up to 5 minutes before NOW; three events only the Events API saw; charges and
    refunds stored, the other object types never populated."""
    t = SyncTables.of(wh)
    o, r = t.objects, t.raw
    with wh.write() as conn:
        conn.execute(o.sync_runs.insert(), [
            run_row("run_complete", "complete", NOW - timedelta(hours=4), NOW - timedelta(hours=3, minutes=50),
                    objects={"charges": 2, "refunds": 1}, reconciled=True, events_read=40, events_applied=3,
                    events_missing=3, missing=json.dumps({"charge.dispute.closed": 2, "charge.refunded": 1})),
            run_row("run_failed", "failed", NOW - timedelta(hours=3), NOW - timedelta(hours=2, minutes=59),
                    error="Stripe answered 500 five times on /v1/charges\nsecond line", objects={"charges": 0}),
            run_row("run_dead", "running", NOW - timedelta(hours=2), updated=NOW - timedelta(hours=1, minutes=40)),
        ])
        conn.execute(o.sync_state.insert(), [
            state_row("charges", NOW - timedelta(hours=3, minutes=51), NOW - timedelta(hours=4), objects=2),
            state_row("refunds", NOW - timedelta(hours=2), NOW - timedelta(days=2), objects=1,
                      window_start=unix(NOW - timedelta(days=2)), window_end=unix(NOW - timedelta(days=1)),
                      starting_after="re_9"),
            state_row("events", NOW - timedelta(hours=3, minutes=51), NOW - timedelta(hours=4), objects=40,
                      starting_after="evt_api_3"),
            state_row("marts", NOW - timedelta(hours=3, minutes=50), transformed_through=NOW - timedelta(hours=3, minutes=55)),
        ])
        conn.execute(r.charges.insert(), [{**raw_row(f"ch_{i}", NOW - timedelta(days=1), NOW - timedelta(hours=4)),
                                           "status": "succeeded"} for i in (1, 2)])
        conn.execute(o.refunds.insert(), [raw_row("re_1", NOW - timedelta(days=1), NOW - timedelta(hours=4))])
        conn.execute(r.events.insert(), [
            event_row("evt_old", "charge.succeeded", NOW - timedelta(hours=30), NOW - timedelta(hours=30)),
            event_row("evt_1", "charge.succeeded", NOW - timedelta(minutes=10), NOW - timedelta(minutes=10) + timedelta(seconds=2)),
            event_row("evt_2", "charge.failed", NOW - timedelta(minutes=5), NOW - timedelta(minutes=5) + timedelta(seconds=4)),
            event_row("evt_api_1", "charge.refunded", NOW - timedelta(days=2), NOW - timedelta(hours=4), "api", None),
            event_row("evt_api_2", "charge.dispute.closed", NOW - timedelta(days=2, hours=1), NOW - timedelta(hours=4), "api", None),
            event_row("evt_api_3", "charge.dispute.closed", NOW - timedelta(days=1), NOW - timedelta(hours=4), "api", None),
            # found by the API first, delivered late: delivered
            event_row("evt_api_late", "invoice.paid", NOW - timedelta(days=1), NOW - timedelta(hours=4), "api",
                      NOW - timedelta(hours=3)),
        ])
