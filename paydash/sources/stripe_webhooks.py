"""The Stripe webhook receiver: `paydash serve` mounts it on the dashboard's port when a
signing secret (or PAYDASH_EVENTS_TOKEN) is set; `paydash webhooks` serves it alone.

POST /webhooks/stripe verifies `Stripe-Signature`, then in ONE database transaction stores
the event (idempotent on its id), upserts the object it carries into the raw tables (an
older state never replaces a newer one) and queues the objects it changed for the marts,
which follow within about a second (see `Receiver`). It answers 2xx only after that
transaction committed, 400 for a bad signature or payload
(recorded only in stripe_invalid_deliveries), 413 for an oversized body and 503 when the
database cannot be written, so that Stripe delivers again. `paydash webhooks` answers
GET /healthz with 200 when the database answers (`paydash serve` has its own /healthz).

`ReceiverService` is the lifecycle (start the writer, close it), `receiver_routes` the routes.

Embedded DuckDB: the process running the receiver is the file's single writer. Inside
`paydash serve` it holds the file and the dashboard shares it in-process (warehouse/engine.py).
`paydash webhooks`, running apart, opens the file only for the length of one write
transaction (no pooled connection keeps it locked), serialises its own writes with a lock,
and waits a little when another process holds the file. See docs/stripe.md.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Callable, Mapping, Sequence

import sqlalchemy as sa

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from paydash.errors import ConfigError, DatabaseUnreachable, PaydashError
from paydash.sources import operations_events
from paydash.sources.stripe_transform import (
    TransformOptions,
    check_transformable,
    prepare_database,
    queue_refresh,
    refresh_queued,
)
from paydash.warehouse import load
from paydash.warehouse.raw import UPSERTS, RawBatch, RawTables, _now

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


@dataclass
class _Pending:
    event: Mapping[str, Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Stored | None = None
    error: BaseException | None = None
    # set by store_async: the request's event loop is woken directly (no thread-pool thread waits)
    loop: asyncio.AbstractEventLoop | None = None
    woken: asyncio.Future | None = None

    def finish(self) -> None:
        """Wake whoever waits for this event (idempotent)."""
        if self.done.is_set():
            return
        self.done.set()
        if self.loop is not None and self.woken is not None:
            try:
                self.loop.call_soon_threadsafe(_settle, self.woken)
            except RuntimeError:  # the server stopped and closed its loop: nobody is waiting
                pass


def _settle(future: asyncio.Future) -> None:
    if not future.done():
        future.set_result(None)


class Receiver:
    """Stores verified events; one per process.

    Group commit: request threads queue their event and wait; one writer thread takes
    whatever is queued (up to MAX_BATCH events) and stores it in one transaction, so a
    burst costs one commit and (DuckDB) one file open instead of one each. Every caller
    returns only after its own event committed. When a batch fails, its events are retried
    one by one, so one bad event cannot fail the others.

    The marts follow in a separate transaction: each stored batch queues the objects it
    changed (`stripe_refresh_queue`, in the batch's transaction), and the same writer thread
    carries the queue into the marts as soon as it is idle, or at least every REFRESH_GAP
    seconds under load (longer when a refresh itself is slow: at most REFRESH_SHARE of the
    writer's time), so one refresh covers many batches. A refresh that fails, or a
    process that stops in between, leaves the queue for the next refresh: nothing is lost.
    """

    MAX_BATCH = 200
    REFRESH_GAP = 1.0  # seconds between mart refreshes while events keep arriving ...
    REFRESH_SHARE = 0.25  # ... or longer, so refreshing takes at most this share of the writer's time
    RETRY_REFRESH = 5.0  # seconds before trying again after a refresh failed
    INVALID_KEEP_DAYS = 7  # refused deliveries are kept this long ...
    INVALID_KEEP_ROWS = 10_000  # ... and at most this many
    INVALID_PRUNE_EVERY = 100

    def __init__(self, wh, options: TransformOptions):  # noqa: ANN001 - a writable Warehouse
        self.wh = wh
        self.options = options
        self.raw: RawTables = prepare_database(wh)
        self.operations = operations_events.ensure_table(wh)  # Stripe events and POST /events land here
        # one writing thread per process (DuckDB allows one writer; PostgreSQL gains batches)
        self._lock = threading.Lock()
        self._queue: queue.Queue[_Pending] = queue.Queue()
        self._refresh_due = True  # whatever an earlier process left queued
        self._next_refresh = 0.0
        self.refresh_error: str | None = None
        self._invalid_seen = 0
        # stored and duplicate deliveries since the last summary line (one INFO line a minute,
        # not one per event: at hundreds of events a second the log would cost more than the store)
        self._tally = [0, 0]
        self._tally_since = time.monotonic()
        self._writer = threading.Thread(target=self._write_loop, name="paydash-webhook-writer", daemon=True)
        self._writer.start()

    def _retrying(self, work):  # noqa: ANN001, ANN202
        # the Warehouse waits for another process's lock on a DuckDB file (hold_duckdb_file=False)
        with self._lock, self.wh.write() as conn:
            return work(conn)

    async def store_async(self, event: Mapping[str, Any]) -> Stored:
        """Store one event; returns once it is committed (raises PaydashError when it cannot be).
        The request handler awaits it on the event loop, not in a pool thread.

        Measured (docs/performance.md): handing each delivery to a thread-pool thread that
        then waits for the writer cost a thread switch and a GIL hand-over per delivery.
        """
        loop = asyncio.get_running_loop()
        pending = _Pending(event, loop=loop, woken=loop.create_future())
        self._enqueue(pending)
        await asyncio.shield(pending.woken)  # a client that hangs up does not cancel the store
        if pending.error is not None:
            raise pending.error
        assert pending.result is not None
        return pending.result

    def _enqueue(self, pending: _Pending) -> None:
        # a stopped writer would leave the delivery waiting forever: 503, and Stripe delivers again
        if not self._writer.is_alive():
            raise PaydashError("the receiver is shutting down; deliver again later")
        self._queue.put(pending)
        if not self._writer.is_alive():  # it stopped in between: nobody else will take it
            self._refuse_waiting()

    def marts_pending(self) -> bool:
        """Whether stored (or queued) events have changes the marts do not show yet."""
        return bool(self._refresh_due or self._queue.qsize())

    def close(self) -> None:
        """Stop the writer thread once what is queued is written."""
        self._queue.put(None)  # type: ignore[arg-type]
        self._writer.join()

    def _write_loop(self) -> None:
        while True:
            if self._refresh_due and time.monotonic() >= self._next_refresh:
                self._refresh_marts()
                continue
            try:
                first = self._queue.get(timeout=max(0.0, self._next_refresh - time.monotonic()) if self._refresh_due else None)
            except queue.Empty:
                continue
            if first is None:
                self._refresh_marts()
                self._refuse_waiting()
                return
            batch = [first]
            stop = False
            while len(batch) < self.MAX_BATCH:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    stop = True
                    break
                batch.append(item)
            self._write_batch(batch)
            if stop:
                self._refresh_marts()
                self._refuse_waiting()
                return

    def _refuse_waiting(self) -> None:
        """Deliveries queued behind the stop are answered 503 (Stripe delivers them again), not left waiting."""
        while True:
            try:
                pending = self._queue.get_nowait()
            except queue.Empty:
                return
            if pending is not None:
                pending.error = PaydashError("the receiver is shutting down; deliver again later")
                pending.finish()

    def _refresh_marts(self, conn=None) -> None:  # noqa: ANN001
        """Carry the refresh queue into the marts (one transaction); on failure keep it for later.

        With `conn` (the connection a batch was just stored on) no new connection is opened:
        on a shared DuckDB file, a store and its refresh cost one file open, not two.
        """
        def work(c) -> int:  # noqa: ANN001
            with c.begin():
                return refresh_queued(c, self.wh.marts, self.raw, self.options)

        started = time.monotonic()
        try:
            if conn is not None:
                written = work(conn)
            else:
                with self._lock, self.wh.session() as fresh:
                    written = work(fresh)
        except Exception as exc:  # noqa: BLE001 - the queue stays; the next refresh tries again
            self.refresh_error = f"{type(exc).__name__}: {exc}"[:500]
            log.error("could not refresh the marts (the changes stay queued, retrying in %.0f s): %s",
                      self.RETRY_REFRESH, self.refresh_error)
            self._next_refresh = time.monotonic() + self.RETRY_REFRESH
            return
        self.refresh_error = None
        self._refresh_due = False
        # a refresh rebuilds the daily mart from the earliest day touched: under a burst of old
        # events that takes a while, and stores (what Stripe waits on) come first
        took = time.monotonic() - started
        self._next_refresh = time.monotonic() + max(self.REFRESH_GAP, took * (1 - self.REFRESH_SHARE) / self.REFRESH_SHARE)
        if written:
            log.debug("marts refreshed: %d charge rows", written)

    def _write_batch(self, batch: list[_Pending]) -> None:
        """Store a batch in one transaction, wake its waiters, then refresh the marts on the
        same connection when due. If the store fails, each event alone. Wakes every waiter."""
        stored = False
        try:
            with self._lock, self.wh.session() as conn:
                with conn.begin():
                    results = self._store_batch(conn, [p.event for p in batch])
                for pending, result in zip(batch, results):
                    pending.result = result
                    pending.finish()  # acknowledged now; the refresh below does not delay it
                stored = True
                self._count(results)
                self._refresh_due = self._refresh_due or any(r.new for r in results)
                if self._refresh_due and time.monotonic() >= self._next_refresh:
                    self._refresh_marts(conn)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests
            if stored:
                log.error("the connection failed after a batch was stored: %s", exc)
            elif len(batch) == 1:
                batch[0].error = exc
            else:
                for pending in batch:
                    try:
                        pending.result = self._retrying(lambda conn: self._store_batch(conn, [pending.event]))[0]
                        self._refresh_due = self._refresh_due or pending.result.new
                    except BaseException as single:  # noqa: BLE001
                        pending.error = single
        finally:
            for pending in batch:
                pending.finish()

    SUMMARY_EVERY = 60.0

    def _count(self, results: list["Stored"]) -> None:
        new = sum(1 for r in results if r.new)
        self._tally[0] += new
        self._tally[1] += len(results) - new
        now = time.monotonic()
        if now - self._tally_since >= self.SUMMARY_EVERY:
            log.info("stored %d new events and %d duplicate deliveries in the last %.0f s",
                     self._tally[0], self._tally[1], now - self._tally_since)
            self._tally, self._tally_since = [0, 0], now

    def _store_batch(self, conn, batch: list[Mapping[str, Any]]) -> list[Stored]:  # noqa: ANN001
        events = self.raw.events
        unique: dict[str, Mapping[str, Any]] = {}
        for event in batch:
            unique.setdefault(event["id"], event)
        received = _now()
        rows = [
            {
                "id": event["id"], "type": event["type"], "created": event["created"],
                "object_type": event["data"]["object"].get("object"),
                "object_id": event["data"]["object"].get("id") if isinstance(event["data"]["object"].get("id"), str) else None,
                "livemode": bool(event.get("livemode")), "received_at": received,
                "data": json.dumps(event, sort_keys=True, separators=(",", ":")),
            }
            for event in unique.values()
        ]
        # PostgreSQL: one statement, many parameter sets; DuckDB: one Arrow table (load.insert_rows)
        inserted = {
            i for (i,) in load.insert_rows(
                conn, events, sorted(rows, key=lambda r: r["id"]), returning=[events.c.id],
                on_conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["id"]))
        }
        touched: dict[str, set[str]] = {"charge": set(), "payment_intent": set(), "balance_transaction": set()}
        objects = RawBatch(self.raw, received)
        for event_id in sorted(inserted):
            event = unique[event_id]
            obj = event["data"]["object"]
            if obj.get("object") not in UPSERTS:
                continue
            check_transformable(obj, self.options)  # fails the event now, not the marts later
            kind = objects.add(obj, event["created"])
            touched[kind].add(obj["id"])
        objects.write(conn)
        queue_refresh(conn, self.raw, touched)
        # the first delivery of an event in this batch is the new one; the rest are duplicates
        first_seen: set[str] = set()
        new: list[bool] = []
        for event in batch:
            new.append(event["id"] in inserted and event["id"] not in first_seen)
            first_seen.add(event["id"])
        # the raw charges are written: a payment intent event's attempt number is read from them
        operations_events.record_stripe_events(conn, self.wh.marts, self.raw.charges,
                                               [unique[i] for i in sorted(inserted)], received)
        return [Stored(is_new) for is_new in new]

    def record_invalid(self, reason: str, body: bytes) -> None:
        """Keep a refused delivery for diagnosis (its first 2,000 bytes), within INVALID_KEEP rows and days."""
        self._invalid_seen += 1
        prune = self._invalid_seen % self.INVALID_PRUNE_EVERY == 1 % self.INVALID_PRUNE_EVERY  # the first, then every 100th

        def work(conn) -> None:  # noqa: ANN001
            t = self.raw.invalid_deliveries
            now = _now()
            conn.execute(t.insert().values(
                id=uuid.uuid4().hex, received_at=now, reason=reason[:500], body_bytes=len(body),
                body_prefix=body[:2000].decode("utf-8", "replace"),
            ))
            if prune:  # a flood of bad deliveries must not fill the disk
                conn.execute(t.delete().where(t.c.received_at < now - timedelta(days=self.INVALID_KEEP_DAYS)))
                newest = sa.select(t.c.id).order_by(t.c.received_at.desc(), t.c.id.desc()).limit(self.INVALID_KEEP_ROWS)
                conn.execute(t.delete().where(t.c.id.not_in(newest)))
        try:
            self._retrying(work)
        except PaydashError as exc:
            log.warning("could not record an invalid delivery (%s): %s", reason, exc)

    def ping(self) -> float:
        return self.wh.ping()

    def store_api_events(self, rows: list[dict]) -> int:
        """Store validated `POST /events` rows in one transaction; returns how many were new."""
        def work(conn) -> int:  # noqa: ANN001
            received = _now()
            return len(operations_events.insert_events(conn, self.operations, [{**r, "received_at": received} for r in rows]))
        return self._retrying(work)

    def metrics(self) -> str:
        from paydash.queries.operations import snapshot
        from paydash.sources.metrics import prometheus_text

        # under the writer's lock: on a DuckDB file this process opens it one transaction at a time
        with self._lock, self.wh.read() as conn:
            return prometheus_text(snapshot(conn, self.wh.marts, _now()))


async def read_body(request: Request, max_body: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed `max_body` bytes (declared or sent)."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_body:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > max_body:
            return None
    return bytes(body)


class ReceiverService:
    """The receiver's lifecycle inside a server: `start()` opens the writable warehouse and starts
    the writer thread (creating the raw tables on a new database), `close()` writes what is
    queued, stops the writer and closes the warehouse. `paydash webhooks` and `paydash serve`
    (the receiver on the dashboard's port) both run it.

    `start_or_retry()` is for a server that must come up while the database is down: the
    routes answer 503 (Stripe delivers again) until a background retry has started it.
    """

    RETRY_EVERY = 5.0

    def __init__(self, settings, url: str | None = None, hold_duckdb_file: bool = True):  # noqa: ANN001 - Settings
        self.settings = settings
        self.url = url or settings.database_url
        self.hold_duckdb_file = hold_duckdb_file
        self.receiver: Receiver | None = None
        self.start_error: str | None = None
        self._wh = None
        self._closed = threading.Event()
        self._guard = threading.Lock()
        self._retry: threading.Thread | None = None

    def start(self) -> Receiver:
        """Open the warehouse and start the writer; raises PaydashError when the database cannot be written."""
        from paydash.warehouse.engine import Warehouse, require_incremental_writes

        require_incremental_writes(self.url, "the webhook receiver")
        with self._guard:
            if self.receiver is not None:
                return self.receiver
            if self._closed.is_set():
                raise PaydashError("the receiver is shutting down")
            wh = Warehouse(self.url, self.settings, read_only=False, hold_duckdb_file=self.hold_duckdb_file)
            try:
                self.receiver = Receiver(wh, TransformOptions.from_settings(self.settings))
            except BaseException as exc:
                wh.dispose()
                self.start_error = str(exc) if isinstance(exc, PaydashError) else f"{type(exc).__name__}: {exc}"
                raise
            self._wh = wh
            self.start_error = None
            return self.receiver

    def start_or_retry(self) -> bool:
        """Start now; when the database cannot be reached, keep trying in the background. True when started."""
        try:
            self.start()
            return True
        except DatabaseUnreachable as exc:
            if self.url.startswith("duckdb") or "://" not in self.url:
                # an embedded file held by another process: say so now; a later start could find
                # the dashboard holding the file read-only in this process
                raise
            log.error("the webhook receiver cannot open the database (deliveries get 503 until it can; "
                      "retrying every %.0f s): %s", self.RETRY_EVERY, exc)
            self._retry = threading.Thread(target=self._retry_loop, name="paydash-receiver-start", daemon=True)
            self._retry.start()
            return False

    def _retry_loop(self) -> None:
        while not self._closed.wait(self.RETRY_EVERY):
            try:
                self.start()
            except PaydashError:
                continue
            log.info("the webhook receiver is writing to %s", self._wh.display_url if self._wh else self.url)
            return

    @property
    def display_url(self) -> str:
        from paydash.warehouse.engine import safe_url

        return self._wh.display_url if self._wh is not None else safe_url(self.url)

    def close(self) -> None:
        """Write what is queued, stop the writer, close the warehouse (idempotent)."""
        self._closed.set()
        if self._retry is not None:
            self._retry.join()
        with self._guard:
            if self.receiver is not None:
                self.receiver.close()
                self.receiver = None
            if self._wh is not None:
                self._wh.dispose()
                self._wh = None

    def status(self) -> dict[str, Any]:
        """What /healthz says about the receiver."""
        receiver = self.receiver
        if receiver is None:
            return {"ok": False, "error": self.start_error or "not started"}
        # stored events whose changes the marts do not show yet (they follow within about a second)
        body: dict[str, Any] = {"ok": True, "marts_pending": receiver.marts_pending()}
        if receiver.refresh_error:
            body["marts_refresh_error"] = receiver.refresh_error  # events are stored; the marts lag
        return body


def receiver_routes(service: ReceiverService, secrets: Sequence[str] | None, tolerance: int = 300,
                    max_body: int = 1_048_576, events_token: str | None = None,
                    events_max_body: int = 262_144) -> list[Route]:
    """`POST /webhooks/stripe` (when there are signing secrets), `POST /events` and `GET /metrics`,
    served by `service`'s receiver; 503 while it is not started (the database is down)."""
    secrets = list(secrets or [])

    def receiver_or_none() -> Receiver | None:
        return service.receiver

    async def stripe_webhook(request: Request) -> JSONResponse:
        payload = await read_body(request, max_body)
        if payload is None:
            return JSONResponse({"error": f"body larger than {max_body} bytes"}, status_code=413)
        receiver = receiver_or_none()
        try:
            verify_signature(payload, request.headers.get("stripe-signature"), secrets, tolerance)
            event = parse_event(payload)
        except (SignatureError, ValueError) as exc:
            reason = f"{'signature' if isinstance(exc, SignatureError) else 'payload'}: {exc}"
            log.warning("refused a delivery: %s", reason)
            if receiver is not None:
                await run_in_threadpool(receiver.record_invalid, reason, payload)
            return JSONResponse({"error": str(exc)}, status_code=400)
        if receiver is None:
            return JSONResponse({"error": "the database cannot be written; deliver again later"}, status_code=503)
        try:
            stored = await receiver.store_async(event)
        except PaydashError as exc:
            log.error("could not store event %s (%s): %s", event["id"], event["type"], exc)
            return JSONResponse({"error": "the database cannot be written; deliver again later"}, status_code=503)
        except Exception as exc:  # noqa: BLE001 - an event the transform cannot take: not stored, Stripe retries
            log.error("event %s (%s) could not be processed and was not stored: %s: %s",
                      event["id"], event["type"], type(exc).__name__, exc)
            return JSONResponse({"error": "the event could not be processed; it was not stored"}, status_code=500)
        log.debug("event %s %s: %s", event["id"], event["type"], "stored" if stored.new else "duplicate")
        return JSONResponse({"received": True, "duplicate": not stored.new})

    events_endpoint, metrics_endpoint = operations_routes(receiver_or_none, events_token, events_max_body)
    routes = [Route("/webhooks/stripe", stripe_webhook, methods=["POST"])] if secrets else []
    return routes + [
        Route("/events", events_endpoint, methods=["POST"]),
        Route("/metrics", metrics_endpoint, methods=["GET"]),
    ]


def service_routes(service: ReceiverService, settings) -> list[Route]:  # noqa: ANN001 - Settings
    """The receiver's routes as the settings configure them (signing secrets, events token, limits)."""
    secrets = parse_secrets(settings.stripe_webhook_secret) if (settings.stripe_webhook_secret or "").strip() else []
    return receiver_routes(service, secrets, settings.webhook_tolerance, settings.webhook_max_body,
                           settings.events_token, settings.events_max_body)


def create_app(service: ReceiverService, secrets: Sequence[str], tolerance: int = 300, max_body: int = 1_048_576,
               events_token: str | None = None, events_max_body: int = 262_144) -> Starlette:
    """`paydash webhooks`: the receiver's routes and its own GET /healthz."""
    secrets = list(secrets)
    if not secrets:
        raise ConfigError("the webhook receiver needs at least one signing secret")

    async def healthz(request: Request) -> JSONResponse:
        receiver = service.receiver
        if receiver is None:
            return JSONResponse({"ok": False, "error": service.start_error or "the receiver is not started"},
                                status_code=503)
        try:
            seconds = await run_in_threadpool(receiver.ping)
        except PaydashError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=503)
        body: dict[str, Any] = {"ok": True, "database_ms": round(seconds * 1000, 1)}
        if receiver.refresh_error:
            body["marts_refresh_error"] = receiver.refresh_error  # events are stored; the marts lag
        return JSONResponse(body)

    routes = receiver_routes(service, secrets, tolerance, max_body, events_token, events_max_body)
    return Starlette(routes=[*routes, Route("/healthz", healthz, methods=["GET"])])


def operations_routes(get_receiver: Callable[[], Receiver | None], token: str | None, max_body: int):  # noqa: ANN201
    """`POST /events` (bearer token, validated, size-limited, idempotent) and `GET /metrics`."""
    from starlette.responses import PlainTextResponse

    from paydash.sources.metrics import CONTENT_TYPE

    expected = (token or "").strip()

    async def events(request: Request) -> JSONResponse:
        if not expected:
            return JSONResponse({"error": "POST /events is disabled: set PAYDASH_EVENTS_TOKEN on the receiver to a long "
                                          "random token and send it as `Authorization: Bearer <token>`"}, status_code=404)
        scheme, _, given = (request.headers.get("authorization") or "").partition(" ")
        # compared in constant time, whatever was sent
        if not hmac.compare_digest(given.strip().encode("utf-8", "replace"), expected.encode()) or scheme.lower() != "bearer":
            return JSONResponse({"error": "missing or wrong bearer token (Authorization: Bearer <PAYDASH_EVENTS_TOKEN>)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        body = await read_body(request, max_body)
        if body is None:
            return JSONResponse({"error": f"body larger than {max_body} bytes; send fewer events per request"}, status_code=413)
        try:
            rows = operations_events.parse_api_events(body)
        except operations_events.InvalidEvents as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        receiver = get_receiver()
        if receiver is None:
            return JSONResponse({"error": "the database cannot be written; send the events again later"}, status_code=503)
        try:
            stored = await run_in_threadpool(receiver.store_api_events, rows)
        except PaydashError as exc:
            log.error("could not store %d operations events: %s", len(rows), exc)
            return JSONResponse({"error": "the database cannot be written; send the events again later"}, status_code=503)
        return JSONResponse({"received": len(rows), "stored": stored, "duplicates": len({r["event_id"] for r in rows}) - stored})

    async def metrics(request: Request) -> PlainTextResponse:
        receiver = get_receiver()
        if receiver is None:
            return PlainTextResponse("# operations metrics unavailable: the database cannot be reached\n", status_code=503)
        try:
            text = await run_in_threadpool(receiver.metrics)
        except PaydashError as exc:
            return PlainTextResponse(f"# operations metrics unavailable: {exc}\n", status_code=503)
        return PlainTextResponse(text, media_type=CONTENT_TYPE)

    return events, metrics


def run(db: str | None, address: str, port: int) -> None:
    """`paydash webhooks`: build the receiver from settings and serve it until interrupted.

    It runs apart from `paydash serve` (which serves the same routes on the dashboard's port):
    on an embedded DuckDB file it opens the file one transaction at a time (hold_duckdb_file=False)
    and waits while another process holds it; see PAYDASH_DUCKDB_SHARED.
    """
    import uvicorn

    from paydash.settings import load_settings

    from paydash.warehouse.engine import require_incremental_writes

    settings = load_settings()
    require_incremental_writes(db or settings.database_url, "`paydash webhooks`")
    secrets = parse_secrets(settings.stripe_webhook_secret)
    service = ReceiverService(settings, db, hold_duckdb_file=False)
    service.start()
    try:
        app = create_app(service, secrets, settings.webhook_tolerance, settings.webhook_max_body,
                         settings.events_token, settings.events_max_body)
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        log.info("receiving Stripe webhooks on http://%s:%d/webhooks/stripe into %s", address, port, service.display_url)
        # one log line per event is ours (below); uvicorn's access line per request would repeat it
        uvicorn.run(app, host=address, port=port, log_level="info", access_log=False)
    finally:
        service.close()
