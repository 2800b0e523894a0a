"""Operations events from the receiver: Stripe events mapped, and the team's own via `POST /events`.

Both land in the operations events mart (`marts.operations_events`), idempotent on
event_id (a unique index; a redelivery inserts nothing). Stripe events are recorded in the
same transaction as the Stripe event itself (paydash/sources/stripe/webhooks.py), with
occurred_at = the event's `created` and received_at = when it was stored. The mapping is
documented in docs/stripe.md ("Operations events") and docs/operations.md.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from paydash.warehouse import indexes, load
from paydash.warehouse.schema import OPERATIONS_EVENT_NAMES, Marts

OUTCOMES = ("succeeded", "failed", "expired")
MAX_EVENTS_PER_REQUEST = 500
MAX_ID = 255
MAX_ERROR = 1_000
MAX_PROPERTIES = 8_192  # bytes of the properties object as JSON
MAX_FUTURE = timedelta(minutes=5)
_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
ID_FIELDS = ("checkout_session_id", "payment_intent_id", "receipt_id", "customer_id")
API_FIELDS = {"event_id", "event_name", "occurred_at", *ID_FIELDS, "attempt_number", "outcome", "duration_ms", "error",
              "properties"}


def _utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def ensure_table(wh) -> sa.Table:  # noqa: ANN001 - a writable Warehouse
    """Create the operations mart when missing, with the unique index on event_id that makes inserts idempotent."""
    table = wh.marts.operations_events
    with wh.write() as conn:
        if table.schema:
            conn.execute(CreateSchema(table.schema, if_not_exists=True))
        table.create(conn, checkfirst=True)
        indexes.create_unique(conn, table, "event_id")
    return table


def insert_events(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> set[str]:
    """Insert rows not stored yet (by event_id); returns the ids inserted now."""
    if not rows:
        return set()
    unique = {r["event_id"]: r for r in rows}
    columns = [c.name for c in table.columns]
    values = [{c: unique[k].get(c) for c in columns} for k in sorted(unique)]
    return set(load.insert_new(conn, table, values, "event_id"))


# -- POST /events ------------------------------------------------------------------------------
class InvalidEvents(ValueError):
    """A payload that cannot be stored; the message says which event and field, and what is expected."""


def parse_api_events(body: bytes, now: datetime | None = None, max_events: int = MAX_EVENTS_PER_REQUEST) -> list[dict[str, Any]]:
    """Validate a `POST /events` body (one event object, or a list of them) into mart rows (source 'api')."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidEvents(f"the body is not JSON ({exc})") from None
    items = data if isinstance(data, list) else [data]
    if not items:
        raise InvalidEvents("the list of events is empty")
    if len(items) > max_events:
        raise InvalidEvents(f"{len(items)} events in one request; send at most {max_events}")
    now = now or _utcnow()
    rows = [_api_row(item, i if isinstance(data, list) else None, now) for i, item in enumerate(items)]
    return rows


def _api_row(item: Any, index: int | None, now: datetime) -> dict[str, Any]:
    where = "the event" if index is None else f"event {index}"
    if not isinstance(item, dict):
        raise InvalidEvents(f"{where} is not a JSON object")
    unknown = sorted(set(item) - API_FIELDS)
    if unknown:
        raise InvalidEvents(f"{where} has unknown fields {unknown}; allowed: {sorted(API_FIELDS)}")

    def text(name: str, required: bool = False, limit: int = MAX_ID, pattern: re.Pattern | None = _ID) -> str | None:
        value = item.get(name)
        if value is None:
            if required:
                raise InvalidEvents(f"{where} needs {name}")
            return None
        if not isinstance(value, str) or not value or len(value) > limit:
            raise InvalidEvents(f"{where}: {name} must be a non-empty string of at most {limit} characters")
        if pattern is not None and not pattern.match(value):
            raise InvalidEvents(f"{where}: {name} may hold only letters, digits and _ . : -")
        return value

    event_id = text("event_id", required=True)
    name = text("event_name", required=True)
    if name not in OPERATIONS_EVENT_NAMES:
        raise InvalidEvents(f"{where}: event_name {name!r} is not one of {', '.join(OPERATIONS_EVENT_NAMES)}")
    occurred = _iso_time(item.get("occurred_at"), where)
    if occurred > now + MAX_FUTURE:
        raise InvalidEvents(f"{where}: occurred_at is more than {int(MAX_FUTURE.total_seconds() // 60)} minutes in the future")
    attempt = item.get("attempt_number")
    if attempt is not None and (not isinstance(attempt, int) or isinstance(attempt, bool) or not 0 <= attempt <= 1_000):
        raise InvalidEvents(f"{where}: attempt_number must be a whole number from 0 to 1000")
    outcome = item.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidEvents(f"{where}: outcome must be one of {', '.join(OUTCOMES)} (or absent)")
    duration = item.get("duration_ms")
    if duration is not None and (not isinstance(duration, int) or isinstance(duration, bool) or not 0 <= duration <= 86_400_000):
        raise InvalidEvents(f"{where}: duration_ms must be a whole number of milliseconds from 0 to 86400000")
    properties = item.get("properties", {})
    if not isinstance(properties, dict):
        raise InvalidEvents(f"{where}: properties must be a JSON object")
    properties_text = json.dumps(properties, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(properties_text.encode()) > MAX_PROPERTIES:
        raise InvalidEvents(f"{where}: properties is larger than {MAX_PROPERTIES} bytes as JSON")
    return {
        "event_id": event_id, "event_name": name, "occurred_at": occurred, "source": "api",
        **{f: text(f) for f in ID_FIELDS},
        "attempt_number": attempt, "outcome": outcome, "duration_ms": duration,
        "error": text("error", limit=MAX_ERROR, pattern=None), "properties": properties_text,
    }


def _iso_time(value: Any, where: str) -> datetime:
    """An ISO 8601 time with a timezone (Z or an offset) as naive UTC."""
    if not isinstance(value, str):
        raise InvalidEvents(f"{where} needs occurred_at as ISO 8601 text with a timezone, e.g. 2026-11-22T10:15:00Z")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise InvalidEvents(f"{where}: occurred_at {value[:40]!r} is not an ISO 8601 time (e.g. 2026-11-22T10:15:00Z)") from None
    if parsed.tzinfo is None:
        raise InvalidEvents(f"{where}: occurred_at {value[:40]!r} has no timezone; end it with Z (UTC) or an offset like +01:00")
    if not 2000 <= parsed.year <= 2100:
        raise InvalidEvents(f"{where}: occurred_at {value[:40]!r} is not a plausible time")
    return parsed.astimezone(timezone.utc).replace(tzinfo=None)


# -- Stripe events -----------------------------------------------------------------------------
def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def stripe_row(event: Mapping[str, Any]) -> dict[str, Any] | None:
    """The operations event a Stripe event maps to (None for the types that map to none).

    Payment-intent events carry `_latest_charge`: the receiver resolves it to the attempt
    number (from the raw charges) before storing, and keeps only retries (attempt > 1).
    """
    kind = event.get("type")
    obj = event["data"]["object"]
    base = {
        "event_id": event["id"], "occurred_at": datetime.fromtimestamp(event["created"], timezone.utc).replace(tzinfo=None),
        "source": "stripe", "customer_id": _id(obj.get("customer")), "properties": "{}",
    }
    if kind and kind.startswith("checkout.session."):
        session = {**base, "checkout_session_id": _id(obj.get("id")), "payment_intent_id": _id(obj.get("payment_intent"))}
        if kind == "checkout.session.created":
            return {**session, "event_name": "checkout_started"}
        if kind == "checkout.session.completed":
            status = obj.get("payment_status")
            if status == "unpaid":  # an asynchronous payment: its result comes with async_payment_*
                return None
            return {**session, "event_name": "checkout_completed",
                    "outcome": "succeeded" if status in ("paid", "no_payment_required") else "failed"}
        if kind == "checkout.session.async_payment_succeeded":
            return {**session, "event_name": "checkout_completed", "outcome": "succeeded"}
        if kind == "checkout.session.async_payment_failed":
            return {**session, "event_name": "checkout_completed", "outcome": "failed", "error": "async_payment_failed"}
        if kind == "checkout.session.expired":
            return {**session, "event_name": "checkout_expired", "outcome": "expired"}
        return None
    if kind in ("payment_intent.succeeded", "payment_intent.payment_failed"):
        error = obj.get("last_payment_error") if isinstance(obj.get("last_payment_error"), Mapping) else {}
        return {**base, "event_name": "retry_completed", "payment_intent_id": _id(obj.get("id")),
                "outcome": "succeeded" if kind == "payment_intent.succeeded" else "failed",
                "error": None if kind == "payment_intent.succeeded" else (error.get("decline_code") or error.get("code")),
                "_latest_charge": _id(obj.get("latest_charge"))}
    if kind in ("invoice.payment_failed", "invoice.paid", "invoice.payment_succeeded"):
        attempts = obj.get("attempt_count")
        if not isinstance(attempts, int) or attempts < 2:
            return None  # the first attempt is no retry
        failed = kind == "invoice.payment_failed"
        return {**base, "event_name": "retry_completed", "payment_intent_id": _id(obj.get("payment_intent")),
                "attempt_number": attempts - 1, "outcome": "failed" if failed else "succeeded",
                "properties": json.dumps({"invoice_id": _id(obj.get("id"))}, separators=(",", ":"))}
    return None


def record_stripe_events(conn: Connection, marts: Marts, raw_charges: sa.Table, events: Iterable[Mapping[str, Any]],
                         received_at: datetime) -> int:
    """Map newly stored Stripe events into the operations mart (same transaction); returns rows inserted."""
    rows = []
    for event in events:
        row = stripe_row(event)
        if row is None:
            continue
        if "_latest_charge" in row:
            attempt = _attempt_of(conn, raw_charges, row["payment_intent_id"], row.pop("_latest_charge"))
            if attempt is None or attempt < 2:
                continue  # a first attempt (or unknown): not a retry
            row["attempt_number"] = attempt - 1
        rows.append({**row, "received_at": received_at})
    return len(insert_events(conn, marts.operations_events, rows))


def _attempt_of(conn: Connection, charges: sa.Table, intent: str | None, latest_charge: str | None) -> int | None:
    """The charge attempt number of an intent's latest charge: its rank by `created` among the intent's stored charges."""
    if not intent:
        return None
    c = charges.c
    if latest_charge:
        created = conn.execute(sa.select(c.created).where(c.id == latest_charge)).scalar_one_or_none()
        if created is not None:
            return conn.execute(sa.select(sa.func.count()).where(
                c.payment_intent_id == intent,
                sa.or_(c.created < created, sa.and_(c.created == created, c.id <= latest_charge)))).scalar_one()
    count = conn.execute(sa.select(sa.func.count()).where(c.payment_intent_id == intent)).scalar_one()
    # the intent's event came before its latest charge's: that charge follows those stored
    return count + 1 if latest_charge else (count or None)
