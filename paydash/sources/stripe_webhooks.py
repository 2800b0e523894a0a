"""`paydash webhooks`: the Stripe webhook receiver (an ASGI app served by uvicorn).

POST /webhooks/stripe verifies `Stripe-Signature`, then in ONE database transaction stores
the event (idempotent on its id), upserts the object it carries into the raw tables (an
older state never replaces a newer one) and refreshes the marts for the charges it touched.
It answers 2xx only after that transaction committed, 400 for a bad signature or payload
(recorded only in stripe_invalid_deliveries), 413 for an oversized body and 503 when the
database cannot be written, so that Stripe delivers again. GET /healthz answers 200 when
the database answers.

Embedded DuckDB: this process is the file's single writer. It opens the file only for the
length of one write transaction (no pooled connection keeps it locked), serialises its own
writes with a lock, and waits a little when another process holds the file. See docs/stripe.md.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paydash.errors import ConfigError, DatabaseUnreachable, PaydashError
from paydash.sources.stripe_transform import TransformOptions, prepare_database, refresh_charges
from paydash.warehouse.raw import UPSERTS, RawTables, _now

log = logging.getLogger("paydash.webhooks")


class SignatureError(ValueError):
    """The delivery is not signed by a configured secret (the message says why; never a secret)."""


def parse_secrets(text: str | None) -> list[str]:
    secrets = [s.strip() for s in (text or "").split(",") if s.strip()]
    if not secrets:
        raise ConfigError(
            "no webhook signing secret: set PAYDASH_STRIPE_WEBHOOK_SECRET to the endpoint's `whsec_...` "
            "secret (comma-separated while rolling it)"
        )
    return secrets


def sign(payload: bytes, secret: str, timestamp: int) -> str:
    """The v1 signature Stripe sends for `payload` at `timestamp` (tests sign with this too)."""
    return hmac.new(secret.encode("utf-8"), b"%d." % timestamp + payload, hashlib.sha256).hexdigest()


def verify_signature(payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int,
                     now: float | None = None) -> int:
    """Check a `Stripe-Signature` header; returns its timestamp or raises SignatureError."""
    if not header:
        raise SignatureError("no Stripe-Signature header")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            try:
                timestamp = int(value)
            except ValueError:
                raise SignatureError("the Stripe-Signature timestamp is not a number") from None
        elif key == "v1":
            candidates.append(value.strip())
    if timestamp is None:
        raise SignatureError("the Stripe-Signature header has no timestamp (t=)")
    if not candidates:
        raise SignatureError("the Stripe-Signature header has no v1 signature")
    matched = False
    for secret in secrets:
        expected = sign(payload, secret, timestamp)
        for candidate in candidates:
            # no early exit: every comparison runs, each in constant time
            matched |= hmac.compare_digest(expected.encode(), candidate.encode("utf-8", "replace"))
    if not matched:
        raise SignatureError("no v1 signature matches a configured secret")
    now = time.time() if now is None else now
    if timestamp < now - tolerance:
        raise SignatureError(f"the signed timestamp is more than {tolerance} s old (a replay or a slow delivery)")
    if timestamp > now + tolerance:
        raise SignatureError(f"the signed timestamp is more than {tolerance} s in the future")
    return timestamp


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event in a delivery, or ValueError naming what is wrong with it."""
    try:
        event = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"the body is not JSON ({exc})") from None
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
    if kind in UPSERTS and (not isinstance(obj.get("id"), str) or not isinstance(obj.get("created"), int)):
        raise ValueError(f"the event's {kind} has no id or no integer created")
    return event


@dataclass
class Stored:
    new: bool
    charges_refreshed: int


class Receiver:
    """Stores verified events; one per process."""

    def __init__(self, wh, options: TransformOptions):  # noqa: ANN001 - a writable Warehouse
        self.wh = wh
        self.options = options
        self.raw: RawTables = prepare_database(wh)
        # DuckDB allows one writer: serialise this process's transactions
        self._lock = threading.Lock() if wh.dialect == "duckdb" else None

    def _retrying(self, work):  # noqa: ANN001, ANN202
        # the Warehouse waits for another process's lock on a DuckDB file (hold_duckdb_file=False)
        if self._lock is None:
            with self.wh.write() as conn:
                return work(conn)
        with self._lock, self.wh.write() as conn:
            return work(conn)

    def store(self, event: Mapping[str, Any]) -> Stored:
        return self._retrying(lambda conn: self._store(conn, event))

    def _store(self, conn, event: Mapping[str, Any]) -> Stored:  # noqa: ANN001
        obj = event["data"]["object"]
        kind = obj.get("object")
        events = self.raw.events
        inserted = conn.execute(
            pg_insert(events).values(
                id=event["id"], type=event["type"], created=event["created"], object_type=kind,
                object_id=obj.get("id") if isinstance(obj.get("id"), str) else None,
                livemode=bool(event.get("livemode")), received_at=_now(),
                data=json.dumps(event, sort_keys=True, separators=(",", ":")),
            ).on_conflict_do_nothing(index_elements=["id"]).returning(events.c.id)
        ).first()
        if inserted is None:
            return Stored(new=False, charges_refreshed=0)
        if kind not in UPSERTS:
            return Stored(new=True, charges_refreshed=0)
        UPSERTS[kind](conn, self.raw, obj, event["created"])
        c = self.raw.charges.c
        if kind == "charge":
            charge_ids = [obj["id"]]
        elif kind == "payment_intent":
            charge_ids = [i for (i,) in conn.execute(sa.select(c.id).where(c.payment_intent_id == obj["id"]))]
        else:
            charge_ids = [i for (i,) in conn.execute(sa.select(c.id).where(c.balance_transaction_id == obj["id"]))]
        return Stored(True, refresh_charges(conn, self.wh.marts, self.raw, charge_ids, self.options))

    def record_invalid(self, reason: str, body: bytes) -> None:
        def work(conn) -> None:  # noqa: ANN001
            conn.execute(self.raw.invalid_deliveries.insert().values(
                id=uuid.uuid4().hex, received_at=_now(), reason=reason[:500], body_bytes=len(body),
                body_prefix=body[:2000].decode("utf-8", "replace"),
            ))
        try:
            self._retrying(work)
        except PaydashError as exc:
            log.warning("could not record an invalid delivery (%s): %s", reason, exc)

    def ping(self) -> float:
        return self.wh.ping()


def create_app(receiver: Receiver, secrets: Sequence[str], tolerance: int = 300, max_body: int = 1_048_576) -> Starlette:
    secrets = list(secrets)
    if not secrets:
        raise ConfigError("the webhook receiver needs at least one signing secret")

    async def stripe_webhook(request: Request) -> JSONResponse:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        payload = bytes(body)
        try:
            verify_signature(payload, request.headers.get("stripe-signature"), secrets, tolerance)
            event = parse_event(payload)
        except (SignatureError, ValueError) as exc:
            reason = f"{'signature' if isinstance(exc, SignatureError) else 'payload'}: {exc}"
            log.warning("refused a delivery: %s", reason)
            await run_in_threadpool(receiver.record_invalid, reason, payload)
            return JSONResponse({"error": str(exc)}, status_code=400)
        try:
            stored = await run_in_threadpool(receiver.store, event)
        except PaydashError as exc:
            log.error("could not store event %s (%s): %s", event["id"], event["type"], exc)
            return JSONResponse({"error": "the database cannot be written; deliver again later"}, status_code=503)
        log.info("event %s %s: %s", event["id"], event["type"], "stored" if stored.new else "duplicate")
        return JSONResponse({"received": True, "duplicate": not stored.new})

    async def healthz(request: Request) -> JSONResponse:
        try:
            seconds = await run_in_threadpool(receiver.ping)
        except PaydashError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
        return JSONResponse({"ok": True, "database_ms": round(seconds * 1000, 1)})

    return Starlette(routes=[
        Route("/webhooks/stripe", stripe_webhook, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
    ])


def run(db: str | None, address: str, port: int) -> None:
    """Build the receiver from settings and serve it until interrupted."""
    import uvicorn

    from paydash.settings import load_settings
    from paydash.warehouse.engine import Warehouse

    settings = load_settings()
    secrets = parse_secrets(settings.stripe_webhook_secret)
    wh = Warehouse(db or settings.database_url, settings, read_only=False, hold_duckdb_file=False)
    try:
        receiver = Receiver(wh, TransformOptions.from_settings(settings))
        app = create_app(receiver, secrets, settings.webhook_tolerance, settings.webhook_max_body)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.info("receiving Stripe webhooks on http://%s:%d/webhooks/stripe into %s", address, port, wh.display_url)
        uvicorn.run(app, host=address, port=port, log_level="info")
    finally:
        wh.dispose()
