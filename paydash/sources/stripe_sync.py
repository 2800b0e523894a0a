"""`paydash sync`: load a Stripe account through its API into the raw tables, then the marts.

For each object type, the list endpoint is walked in `created` windows
(created[gte]/created[lt], oldest window first; inside a window Stripe pages newest first
with `starting_after`, 100 objects a page). Each page's objects and the cursor (the window
and the last id read) are committed in ONE transaction, so a run killed at any moment
resumes after its last committed page and stores nothing twice. A finished window moves
`synced_until` forward; the next run starts there (minus PAYDASH_STRIPE_SYNC_LOOKBACK, to
pick up recent objects whose state changed). Coupons and promotion codes are few and change
(times_redeemed, active): every run reads them all.

Only GET requests are made, so a restricted key with read access is enough. The key is
never logged, stored or put into an error message (every message from Stripe is scrubbed).

Rate limits: stripe-python retries a 429 only when Stripe sends `Stripe-Should-Retry: true`,
and then ignores `Retry-After`. So the client's own retries are off (max_network_retries=0)
and this module retries: 429, 409, 5xx and connection errors, waiting `Retry-After` when
given (else 0.5 s doubling up to 8 s), never when `Stripe-Should-Retry: false`.

After loading, the marts are rebuilt for what changed (raw rows whose loaded_at is newer
than the marts' watermark): the charge mart and the daily marts (stripe_transform), and the
customers, promotion codes and promotion usage marts (stripe_marts).

Each run is a row of paydash_sync_runs: running, then complete, or failed with the error.
One sync at a time per database (a lock file beside a DuckDB file; an advisory lock on
PostgreSQL); a run left `running` by a killed process is marked failed by the next one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable, Iterator, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from paydash.errors import ConfigError, PaydashError
from paydash.sources import stripe_marts
from paydash.sources.stripe_transform import TransformOptions, prepare_database, refresh_charges
from paydash.warehouse import locks
from paydash.warehouse.raw import RawBatch, RawTables, _now
from paydash.warehouse.stripe_objects import (
    ObjectBatch,
    ObjectTables,
    create_object_tables,
    object_tables_for,
    upsert_page,
)

log = logging.getLogger("paydash.sync")

DEFAULT_API_BASE = "https://api.stripe.com"
# Stripe opened in 2011: nothing in an account is older
EARLIEST = int(datetime(2010, 1, 1, tzinfo=timezone.utc).timestamp())
PAGE_LIMIT = 100
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
MART_SLICE = 10_000  # charges transformed at a time (their JSON is held in memory)
_PG_LOCK_KEY = 0x70617973  # "pays"
# set by SIGTERM: the run stops before its next request and is recorded as failed ("interrupted")
STOP = threading.Event()


class SyncError(PaydashError):
    """The sync stopped (the run is recorded as failed); the message never holds the key."""


@dataclass(frozen=True)
class ObjectType:
    name: str  # as shown and stored in paydash_sync_state
    kind: str  # Stripe's `object`
    path: str  # the list endpoint
    expand: tuple[str, ...] = ()
    every_run_all: bool = False  # few objects whose state keeps changing: read all each run


OBJECT_TYPES: tuple[ObjectType, ...] = (
    ObjectType("customers", "customer", "/v1/customers"),
    ObjectType("coupons", "coupon", "/v1/coupons", every_run_all=True),
    ObjectType("promotion_codes", "promotion_code", "/v1/promotion_codes", every_run_all=True),
    ObjectType("payment_intents", "payment_intent", "/v1/payment_intents"),
    # the balance transaction settles the charge in USD (amount_usd); expanded, not listed apart
    ObjectType("charges", "charge", "/v1/charges", expand=("data.balance_transaction",)),
    ObjectType("refunds", "refund", "/v1/refunds"),
    ObjectType("disputes", "dispute", "/v1/disputes"),
    ObjectType("checkout_sessions", "checkout.session", "/v1/checkout/sessions"),
    # discounts expanded: an invoice lists only discount ids otherwise, without their promotion code
    ObjectType("invoices", "invoice", "/v1/invoices", expand=("data.discounts",)),
)


# -- the key, never shown ------------------------------------------------------------------------
_KEY_PATTERN = re.compile(r"\b(sk|rk|pk)_(live|test)_[A-Za-z0-9]+")


def check_api_key(key: str | None) -> str:
    key = (key or "").strip()
    if not key:
        raise ConfigError("no Stripe API key: pass --api-key or set PAYDASH_STRIPE_API_KEY "
                          "(a restricted key with read access is enough)")
    if key.startswith("pk_"):
        raise ConfigError("that is a publishable key (pk_...), which cannot read payments; use a restricted key "
                          "(rk_...) with read access, or a secret key (sk_...)")
    if not re.fullmatch(r"(sk|rk)_(live|test)_[A-Za-z0-9]+", key):
        raise ConfigError("the Stripe API key does not look like one (rk_live_..., sk_live_..., or their _test_ "
                          "forms); check PAYDASH_STRIPE_API_KEY or --api-key")
    return key


def redact(text: str, key: str | None = None) -> str:
    """`text` without the key or anything shaped like a Stripe key."""
    if key:
        text = text.replace(key, "***")
    return _KEY_PATTERN.sub(lambda m: f"{m.group(1)}_{m.group(2)}_***", text)


def check_api_base(url: str | None) -> str:
    url = (url or DEFAULT_API_BASE).strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", url):
        raise ConfigError(f"--api-base {url!r} is not an http(s) URL; e.g. https://api.stripe.com or http://127.0.0.1:12111")
    return url


def parse_since(text: str | None) -> int | None:
    """'2024-01-31' (midnight UTC) or an ISO date-time -> unix seconds."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    try:
        if len(text) == 10:
            moment = datetime.combine(date.fromisoformat(text), datetime.min.time(), timezone.utc)
        else:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=timezone.utc)
    except ValueError:
        raise ConfigError(f"--since {text!r} is not a date; write YYYY-MM-DD (UTC) or 2024-01-31T12:00:00Z") from None
    return int(moment.timestamp())


# -- the API -----------------------------------------------------------------------------------
@dataclass
class RetryPolicy:
    max_retries: int = 8  # per request
    max_wait: float = 60.0  # longest Retry-After honoured as such
    base_delay: float = 0.5
    max_delay: float = 8.0
    sleep: Callable[[float], None] = time.sleep


@dataclass
class Page:
    objects: list[dict[str, Any]]
    has_more: bool


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    try:
        items = headers.items()
    except AttributeError:
        return None
    for key, value in items:
        if str(key).lower() == name:
            return str(value)
    return None


class _Scrub(logging.Filter):
    """Takes anything shaped like a Stripe key out of stripe-python's log records (it logs
    response bodies at debug level, and a server may echo a key back in an error)."""

    def __init__(self, key: str):
        super().__init__()
        self.key = key

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage(), self.key), ()
        return True


class StripeReader:
    """List pages through the official client, with our own retries and a scrubbed key."""

    def __init__(self, api_key: str, api_base: str, retry: RetryPolicy | None = None):
        import stripe
        import stripe._util

        # stripe-python prints its request log straight to stderr when STRIPE_LOG / stripe.log
        # say so, past any logging filter: keep it to the `stripe` logger, scrubbed
        stripe.log = None
        stripe._util.STRIPE_LOG = None
        stripe_logger = logging.getLogger("stripe")
        for old in [f for f in stripe_logger.filters if isinstance(f, _Scrub)]:
            stripe_logger.removeFilter(old)
        stripe_logger.addFilter(_Scrub(api_key))
        self._stripe = stripe
        self._key = api_key
        self.api_base = api_base
        self.retry = retry or RetryPolicy()
        self.requests = 0
        self.retries = 0
        self.client = stripe.StripeClient(
            api_key, base_addresses={"api": api_base}, max_network_retries=0,
        )

    def list_page(self, otype: ObjectType, params: dict[str, Any]) -> Page:
        stripe = self._stripe
        attempt = 0
        while True:
            self.requests += 1
            try:
                # the raw JSON: building StripeObjects of every page would cost more than storing it
                data = self.client.raw_request("get", otype.path, **params).data
                return Page(list(data["data"]), bool(data.get("has_more")))
            except stripe.StripeError as exc:
                wait = self._wait(exc, attempt)
                if wait is None:
                    raise SyncError(self._explain(otype, exc)) from None
            attempt += 1
            self.retries += 1
            log.info("%s: retrying in %.1f s (attempt %d)", otype.name, wait, attempt + 1)
            self.retry.sleep(wait)

    def _wait(self, exc: Exception, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None when this error is not retried."""
        stripe = self._stripe
        if attempt >= self.retry.max_retries:
            return None
        headers = getattr(exc, "headers", None)
        should = (_header(headers, "stripe-should-retry") or "").lower()
        if should == "false":
            return None
        status = getattr(exc, "http_status", None)
        if isinstance(exc, stripe.APIConnectionError):
            retryable = bool(getattr(exc, "should_retry", True))
        else:
            retryable = should == "true" or status in (409, 429) or (isinstance(status, int) and status >= 500)
        if not retryable:
            return None
        backoff = min(self.retry.base_delay * 2 ** attempt, self.retry.max_delay)
        after = _header(headers, "retry-after")
        if after is not None:
            try:
                return min(max(float(after), 0.0), self.retry.max_wait)
            except ValueError:
                pass  # an HTTP date: rare from Stripe; back off instead
        return backoff

    def _explain(self, otype: ObjectType, exc: Exception) -> str:
        stripe = self._stripe
        status = getattr(exc, "http_status", None)
        detail = redact(str(getattr(exc, "user_message", None) or exc or type(exc).__name__), self._key)
        what = otype.name.replace("_", " ")
        if isinstance(exc, stripe.AuthenticationError):
            return f"Stripe refused the API key (401: {detail}); check PAYDASH_STRIPE_API_KEY or --api-key"
        if isinstance(exc, stripe.PermissionError):
            return (f"the API key may not read {what} (403: {detail}); give the restricted key read access to "
                    "charges, payment intents, customers, refunds, disputes, checkout sessions, promotion codes, "
                    "coupons, invoices and balance transactions")
        if isinstance(exc, stripe.RateLimitError):
            return f"Stripe kept rate-limiting the {what} list (429) after {self.retries} retries; run again later"
        if isinstance(exc, stripe.APIConnectionError):
            # stripe-python wraps the socket error in a paragraph; the user needs the reason
            reason = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", detail)
            why = reason.group(1).strip() if reason else " ".join(detail.split())[:300]
            return (f"cannot reach the Stripe API at {self.api_base} while reading {what} ({why}); "
                    "check --api-base and the network")
        return f"Stripe answered {status or 'an error'} while reading {what}: {detail}"


# -- bookkeeping --------------------------------------------------------------------------------
@dataclass
class Cursor:
    synced_until: int | None = None
    window_start: int | None = None
    window_end: int | None = None
    starting_after: str | None = None
    objects: int = 0


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


ProgressFn = Callable[[str, int, int, int], None]  # (object type, objects this run, window start, window end)


class Syncer:
    """One `paydash sync` run against one warehouse (opened writable, hold_duckdb_file=False)."""

    def __init__(self, wh, reader: StripeReader, options: TransformOptions, *, since: int | None = None,  # noqa: ANN001
                 lookback: int = 86_400, progress: ProgressFn | None = None, until: int | None = None,
                 types: tuple[ObjectType, ...] = OBJECT_TYPES, hold_seconds: float | None = None):
        self.wh = wh
        self.reader = reader
        self.options = options
        self.since = since
        self.lookback = lookback
        self.progress = progress or (lambda *_: None)
        self.until = until
        self.types = types
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
    def _tx(self, group: bool = False) -> Iterator[Connection]:
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
        started = time.monotonic()
        self.raw: RawTables = prepare_database(self.wh)
        self.objects: ObjectTables = object_tables_for(self.wh)
        with self.wh.write() as conn:
            create_object_tables(conn, self.objects)
            stripe_marts.create_optional_marts(conn, self.wh.marts)
        with self._exclusive(), self._released():
            self.until = self.until or int(time.time())
            self._begin()
            try:
                for otype in self.types:
                    self._sync_type(otype)
                clock = time.perf_counter()
                charges = self._build_marts()
                self.timings["marts"] += time.perf_counter() - clock
            except BaseException as exc:  # noqa: BLE001 - recorded, then raised again
                message = self._failure_message(exc)
                self._finish("failed", message)
                if isinstance(exc, (PaydashError, KeyboardInterrupt)):
                    raise
                raise SyncError(message) from None
            self._finish("complete", None)
        return SyncReport(self.run_id, "complete", dict(self.counts), self.reader.requests, self.reader.retries,
                          charges, round(time.monotonic() - started, 1),
                          {k: round(v, 1) for k, v in self.timings.items()})

    def _failure_message(self, exc: BaseException) -> str:
        if isinstance(exc, KeyboardInterrupt):
            return "interrupted"
        text = str(exc) if isinstance(exc, PaydashError) else f"{type(exc).__name__}: {exc}"
        return redact(text, self.reader._key)[:2000]

    @contextmanager
    def _released(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def _exclusive(self) -> Iterator[None]:
        """One sync at a time per database (what the lock is on each engine: warehouse/locks.py)."""
        with locks.exclusive_run(self.wh, _PG_LOCK_KEY, lambda where: SyncError(
                f"another `paydash sync` is running against {where}; wait for it to finish")):
            yield

    def _begin(self) -> None:
        runs = self.objects.sync_runs
        now = _now()
        with self._tx() as conn:
            # we hold the lock: a run still `running` belongs to a process that died
            conn.execute(runs.update().where(runs.c.status == "running").values(
                status="failed", finished_at=now,
                error="interrupted: the process stopped before recording a result (killed?); the next run resumed it"))
            conn.execute(runs.insert().values(
                run_id=self.run_id, status="running", started_at=now, updated_at=now, since_ts=self.since,
                until_ts=self.until, api_base=self.reader.api_base, objects=json.dumps(self.counts), pid=os.getpid()))

    def _finish(self, status: str, error: str | None) -> None:
        runs = self.objects.sync_runs
        try:
            with self._tx() as conn:
                conn.execute(runs.update().where(runs.c.run_id == self.run_id).values(
                    status=status, error=error, finished_at=_now(), updated_at=_now(), objects=json.dumps(self.counts)))
        except PaydashError as exc:
            if status == "complete":
                raise
            log.error("could not record the failed run %s: %s", self.run_id, exc)

    # -- cursors -------------------------------------------------------------------------
    def _cursor(self, conn: Connection, name: str) -> Cursor:
        s = self.objects.sync_state
        row = conn.execute(sa.select(s).where(s.c.object_type == name)).mappings().first()
        if row is None:
            return Cursor()
        return Cursor(row["synced_until"], row["window_start"], row["window_end"], row["starting_after"],
                      row["objects"] or 0)

    def _save_cursor(self, conn: Connection, name: str, cursor: Cursor) -> None:
        s = self.objects.sync_state
        values = {"synced_until": cursor.synced_until, "window_start": cursor.window_start,
                  "window_end": cursor.window_end, "starting_after": cursor.starting_after,
                  "objects": cursor.objects, "updated_at": _now()}
        updated = conn.execute(s.update().where(s.c.object_type == name).values(**values))
        if updated.rowcount == 0:
            conn.execute(s.insert().values(object_type=name, **values))

    # -- one object type ---------------------------------------------------------------
    def _sync_type(self, otype: ObjectType) -> None:
        with self._tx() as conn:  # also commits the pages of the type before
            cursor = self._cursor(conn, otype.name)
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
            if STOP.is_set():
                raise KeyboardInterrupt
            params: dict[str, Any] = {"limit": PAGE_LIMIT, "created": {"gte": start, "lt": end}}
            if after:
                params["starting_after"] = after
            if otype.expand:
                params["expand"] = list(otype.expand)
            clock = time.perf_counter()
            page = self.reader.list_page(otype, params)
            self.timings["api"] += time.perf_counter() - clock
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

    def _commit_page(self, otype: ObjectType, objects: list[dict[str, Any]], cursor: Cursor) -> None:
        """The page's objects, the cursor after it and the run's counts: one transaction."""
        state_ts = int(time.time())
        loaded_at = _now()
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
        runs = self.objects.sync_runs
        with self._tx(group=True) as conn:
            for name, rows in core.rows.items():
                upsert_page(conn, getattr(self.raw, name), rows)
            for kind, rows in other.rows.items():
                upsert_page(conn, self.objects.by_kind[kind], rows)
            self._save_cursor(conn, otype.name, cursor)
            conn.execute(runs.update().where(runs.c.run_id == self.run_id).values(
                updated_at=_now(), objects=json.dumps(self.counts)))

    # -- the marts ---------------------------------------------------------------------
    def _build_marts(self) -> int:
        """Rewrite the marts for every raw row loaded since the marts were last built."""
        raw, objects, marts = self.raw, self.objects, self.wh.marts
        with self._tx() as conn:
            mark = self._transformed_through(conn)

            def changed(table: sa.Table, column: sa.Column | None = None) -> set[str]:
                column = table.c.id if column is None else column
                stmt = sa.select(column)
                if mark is not None:
                    stmt = stmt.where(table.c.loaded_at > mark)
                return {v for (v,) in conn.execute(stmt) if v}

            tables = (raw.charges, raw.payment_intents, raw.balance_transactions, *objects.by_kind.values())
            newest = max((conn.execute(sa.select(sa.func.max(t.c.loaded_at))).scalar() for t in tables),
                         key=lambda v: v or datetime.min)
            c = raw.charges.c
            charge_ids = changed(raw.charges)
            intents = changed(raw.payment_intents)
            bts = changed(raw.balance_transactions)
            for column, keys in ((c.payment_intent_id, intents), (c.balance_transaction_id, bts)):
                ordered = sorted(keys)
                for i in range(0, len(ordered), 500):
                    charge_ids.update(v for (v,) in conn.execute(sa.select(c.id).where(column.in_(ordered[i:i + 500]))))
            # in slices of whole payment intents, so memory stays flat after a large backfill
            intent_of = dict(conn.execute(sa.select(c.id, c.payment_intent_id)).all()) if charge_ids else {}
            ordered = sorted(charge_ids, key=lambda i: (intent_of.get(i) or "", i))
            written = 0
            for i in range(0, len(ordered), MART_SLICE):
                written += refresh_charges(conn, marts, raw, ordered[i:i + MART_SLICE], self.options)
            for part in _slices(changed(objects.customers)):
                stripe_marts.refresh_customers(conn, marts, objects, part)
            stripe_marts.refresh_promotion_codes(conn, marts, objects, changed(objects.promotion_codes),
                                                 changed(objects.coupons), self.options)
            refunds, disputes = changed(objects.refunds), changed(objects.disputes)
            for part in _slices(refunds | disputes | charge_ids):
                # ids of the three kinds never collide (re_, dp_, ch_), so one slice serves all
                stripe_marts.refresh_refunds_disputes(conn, marts, raw, objects, [i for i in part if i in refunds],
                                                      [i for i in part if i in disputes],
                                                      [i for i in part if i in charge_ids], self.options)
            invoices = changed(objects.invoices)
            for part in _slices(changed(objects.checkout_sessions)):
                stripe_marts.refresh_promotion_usage(conn, marts, raw, objects, part, (), self.options)
            for part in _slices(invoices):
                stripe_marts.refresh_promotion_usage(conn, marts, raw, objects, (), part, self.options)
            if newest is not None:
                s = objects.sync_state
                values = {"transformed_through": newest, "updated_at": _now()}
                if conn.execute(s.update().where(s.c.object_type == "marts").values(**values)).rowcount == 0:
                    conn.execute(s.insert().values(object_type="marts", objects=0, **values))
        return written

    def _transformed_through(self, conn: Connection) -> datetime | None:
        s = self.objects.sync_state
        return conn.execute(sa.select(s.c.transformed_through).where(s.c.object_type == "marts")).scalar()


def _slices(ids: set[str]) -> list[list[str]]:
    ordered = sorted(ids)
    return [ordered[i:i + MART_SLICE] for i in range(0, len(ordered), MART_SLICE)]


# -- the command --------------------------------------------------------------------------------
def _interrupted(signum, frame) -> None:  # noqa: ANN001
    # stop at the next page boundary: raising here could land inside a database call
    STOP.set()


def run_cli(db: str | None, api_key: str | None, since: str | None, api_base: str | None) -> SyncReport:
    """`paydash sync`: settings, a progress line per object type while it runs, a summary at the end."""
    import signal

    import typer

    from paydash.settings import load_settings
    from paydash.warehouse.engine import Warehouse, require_incremental_writes

    settings = load_settings()
    require_incremental_writes(db or settings.database_url, "`paydash sync`")
    key = check_api_key(api_key or settings.stripe_api_key)
    base = check_api_base(api_base)
    since_ts = parse_since(since)
    # SIGTERM (a platform stopping the process) ends the run as failed, like Ctrl-C
    signal.signal(signal.SIGTERM, _interrupted)
    wh = Warehouse(db or settings.database_url, settings, read_only=False, hold_duckdb_file=False)
    shown: dict[str, float] = {}

    def progress(name: str, count: int, start: int, end: int) -> None:
        now = time.monotonic()
        if now - shown.get(name, 0.0) >= 1.0:
            shown[name] = now
            day = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")  # noqa: E731
            typer.echo(f"  {name}: {count:,} objects (created {day(start)} .. {day(end)})", err=True)

    typer.echo(f"syncing Stripe ({base}) into {wh.display_url}", err=True)
    syncer = Syncer(wh, StripeReader(key, base), TransformOptions.from_settings(settings), since=since_ts,
                    lookback=settings.stripe_sync_lookback, progress=progress)
    try:
        report = syncer.run()
    finally:
        wh.dispose()
    for name, count in report.objects.items():
        typer.echo(f"  {name}: {count:,}")
    typer.echo(f"sync complete: {sum(report.objects.values()):,} objects in {report.requests:,} requests "
               f"({report.retries} retried), {report.charges_in_mart:,} charge-mart rows rewritten, {report.seconds} s "
               f"(API {report.timings['api']} s, writing pages {report.timings['pages']} s, marts {report.timings['marts']} s)")
    return report
