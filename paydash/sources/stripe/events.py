"""Storing Stripe events, whoever brought them: the webhook receiver (source 'webhook') or
reconciliation through the Events API (source 'api', reconcile.py). One rule for both.

In the caller's transaction: each event is stored once (stripe_events, idempotent on its
id); for an event new to the warehouse, the object it carries is upserted into its raw table
with the event's `created` as the state's time, so an older state never replaces a newer one
(raw.py's newest-state-wins). The receiver's objects are queued for the marts
(stripe_refresh_queue); the sync's reach them through its own rebuild of what it loaded. An
event the API found first and a webhook delivers later is only marked delivered.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Mapping, Sequence

from sqlalchemy.engine import Connection

from paydash.sources import operations_events
from paydash.sources.stripe.transform import TransformOptions, check_transformable, queue_refresh
from paydash.warehouse import load
from paydash.warehouse.raw import UPSERTS, RawBatch, RawTables
from paydash.warehouse.schema import Marts
from paydash.warehouse.stripe_objects import KINDS, ObjectBatch, ObjectTables

WEBHOOK, API = "webhook", "api"
# the objects paydash stores: an event about anything else is kept (webhook) or skipped (API), never applied
STORED_KINDS = frozenset(UPSERTS) | frozenset(KINDS)


def check_event(event: Any) -> None:
    """Raise ValueError saying what is wrong when `event` is not a Stripe event paydash can store."""
    if not isinstance(event, dict) or event.get("object") != "event":
        raise ValueError("the body is not a Stripe event (object != 'event')")
    if not isinstance(event.get("id"), str) or not event["id"].startswith("evt_"):
        raise ValueError("the event has no evt_ id")
    if not isinstance(event.get("type"), str) or not isinstance(event.get("created"), int):
        raise ValueError("the event needs a type and an integer created")
    obj = (event.get("data") or {}).get("object") if isinstance(event.get("data"), dict) else None
    if not isinstance(obj, dict):
        raise ValueError("the event has no data.object")
    kind = obj.get("object")
    if kind in STORED_KINDS and (not isinstance(obj.get("id"), str) or not isinstance(obj.get("created"), int)):
        raise ValueError(f"the event's {kind} has no id or no integer created")


@dataclass
class StoredEvents:
    new: set[str] = field(default_factory=set)  # ids of events the warehouse did not hold before
    applied: int = 0  # of those, events whose object paydash stores
    types: Counter = field(default_factory=Counter)  # event type -> new events


def event_row(event: Mapping[str, Any], source: str, received: datetime) -> dict[str, Any]:
    obj = event["data"]["object"]
    return {
        "id": event["id"], "type": event["type"], "created": event["created"],
        "object_type": obj.get("object"),
        "object_id": obj.get("id") if isinstance(obj.get("id"), str) else None,
        "livemode": bool(event.get("livemode")), "received_at": received,
        "data": json.dumps(event, sort_keys=True, separators=(",", ":")),
        "source": source, "delivered_at": received if source == WEBHOOK else None,
    }


def store_events(conn: Connection, marts: Marts, raw: RawTables, objects: ObjectTables,
                 events: Sequence[Mapping[str, Any]], *, source: str, received: datetime,
                 options: TransformOptions) -> StoredEvents:
    table = raw.events
    unique: dict[str, Mapping[str, Any]] = {}
    for event in events:
        unique.setdefault(event["id"], event)
    rows = [event_row(e, source, received) for e in unique.values()]
    # PostgreSQL: one statement, many parameter sets; DuckDB: one Arrow table (load.insert_rows)
    new = {
        i for (i,) in load.insert_rows(
            conn, table, sorted(rows, key=lambda r: r["id"]), returning=[table.c.id],
            on_conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["id"]))
    }
    held = sorted(set(unique) - new)
    if source == WEBHOOK and held:
        # found by reconciliation first, delivered now: delivered, not applied again
        for i in range(0, len(held), 500):
            conn.execute(table.update().where(table.c.id.in_(held[i:i + 500]), table.c.delivered_at.is_(None))
                         .values(delivered_at=received))
    stored = StoredEvents(new=new)
    touched: dict[str, set[str]] = {}
    core = RawBatch(raw, received)
    other = ObjectBatch(objects, received)
    for event_id in sorted(new):
        event = unique[event_id]
        stored.types[event["type"]] += 1
        obj = event["data"]["object"]
        kind = obj.get("object")
        if kind not in STORED_KINDS:
            continue
        if kind in UPSERTS:
            check_transformable(obj, options)  # fails the event now, not the marts later
            kind = core.add(obj, event["created"])
        else:
            other.add(obj, event["created"])
        stored.applied += 1
        touched.setdefault(kind, set()).add(obj["id"])
    core.write(conn)
    other.write(conn)
    if source == WEBHOOK:
        # the receiver refreshes the marts from this queue; the sync rebuilds what it loaded (by loaded_at)
        queue_refresh(conn, raw, touched)
    # the raw charges are written: a payment intent event's attempt number is read from them
    operations_events.record_stripe_events(conn, marts, raw.charges, [unique[i] for i in sorted(new)], received)
    return stored

