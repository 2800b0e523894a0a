"""A fake Stripe API on 127.0.0.1 for the sync's tests and benchmark: a real HTTP server.

It serves the list endpoints `paydash sync` reads (GET /v1/charges, /v1/payment_intents,
/v1/customers, /v1/refunds, /v1/disputes, /v1/checkout/sessions, /v1/promotion_codes,
/v1/coupons, /v1/invoices, /v1/balance_transactions) as Stripe does: newest first,
`limit` (1-100, default 10), `starting_after`, `created[gte|gt|lt|lte]`, `has_more`, and
`expand[]` of data.balance_transaction (charges) and data.discounts (invoices). Bearer keys:
a secret key may do anything, a restricted key only GET (403 otherwise); an unknown key gets
401 with the key masked as Stripe masks it. It can answer 429 (with Retry-After and,
optionally, Stripe-Should-Retry) every Nth request, fail with 500 from some request on, and
slow each request down so that a test can kill a sync midway.

The account is generated from a seed (`Account.generate`) and kept compact: one small record
per object, rendered into Stripe's published shape (tests/fixtures/*.json, Stripe's own
OpenAPI fixtures) only when served, so 100k charges fit in little memory. Generation leaves some
refunds `pending`, disputes open (`needs_response`, `under_review`) and checkout sessions `open`,
so that a scenario has something to fail, close and expire (`Account.ids(kind, status=...)`).

Events (reconciliation). The account keeps an event log, served by GET /v1/events (newest first,
`limit`, `starting_after` | `ending_before`, `created[...]`, `type` with `*`, `types[]`, `has_more`)
and GET /v1/events/{id}, like Stripe's: only events created in the 30 days before `Account.now()`
(an injectable clock, `Clock`); an unknown or expired id is 404 resource_missing on retrieve and
400 resource_missing as a cursor. Recorded: each object added after generation (its creation event,
dated its `created`; generated objects too with generate(events=True)) and each change made through
`Account.update` or the scenario methods (close_dispute, fail_refund, expire_checkout_session,
refund_charge, dispute_charge, pay_invoice), dated `now()`, with the object as it is at that moment
(stored as JSON text, so it never changes) and `previous_attributes`. Events are never backdated by
Stripe; here an object added with a past `created` (add(created=...), extend(start=...)) gets a
creation event of that date, behind a reader's cursor if that is newer: for objects made during an
outage, let them be created at `now()`. A restricted key may lack a permission
(restricted_keys={"rk_...": {"events": False}}: 403 on /v1/events). `deliver(url, event, secret)`
posts an event to a webhook receiver signed as Stripe signs (paydash's own `sign`);
`Account.events_since(mark)` lists the events a receiver missed since `Account.latest_event_id()`.
"""

from __future__ import annotations

import bisect
import json
import random
import re
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

_FIXTURES = Path(__file__).parent / "fixtures"
TEMPLATES: dict[str, dict] = {
    **json.loads((_FIXTURES / "stripe_fixtures.json").read_text()),
    **json.loads((_FIXTURES / "stripe_sync_fixtures.json").read_text()),
}
TEMPLATES.pop("_source", None)
_TEMPLATE_TEXT = {k: json.dumps(v) for k, v in TEMPLATES.items()}

# path -> Stripe `object`
RESOURCES = {
    "charges": "charge",
    "payment_intents": "payment_intent",
    "customers": "customer",
    "refunds": "refund",
    "disputes": "dispute",
    "checkout/sessions": "checkout.session",
    "promotion_codes": "promotion_code",
    "coupons": "coupon",
    "invoices": "invoice",
    "balance_transactions": "balance_transaction",
}
PREFIX = {"charge": "ch", "payment_intent": "pi", "customer": "cus", "refund": "re", "dispute": "dp",
          "checkout.session": "cs_test", "promotion_code": "promo", "coupon": "co", "invoice": "in",
          "balance_transaction": "txn", "discount": "di"}
FX_TO_USD = {"usd": Decimal("1"), "eur": Decimal("1.08"), "jpy": Decimal("0.0067")}
DECLINES = (("card_declined", "issuer_declined", "insufficient_funds"),
            ("card_declined", "issuer_declined", "do_not_honor"),
            ("card_declined", "issuer_declined", "generic_decline"),
            ("expired_card", "invalid", None),
            ("incorrect_cvc", "invalid", None),
            ("card_declined", "blocked", "highest_risk_level"))


API_VERSION = "2024-06-20"
RETENTION = 30 * 86_400  # Stripe serves events of the last 30 days
DISPUTE_CLOSED = ("won", "lost", "warning_closed")
# an object's creation event, by kind and the status it was created in (None: Stripe sends none)
CREATED_EVENT: dict[str, Callable[[dict], str | None]] = {
    "charge": lambda o: {"succeeded": "charge.succeeded", "failed": "charge.failed"}.get(o["status"], "charge.pending"),
    "payment_intent": lambda o: "payment_intent.created",
    "customer": lambda o: "customer.created",
    "refund": lambda o: "refund.created",
    "dispute": lambda o: "charge.dispute.created",
    "checkout.session": lambda o: {"complete": "checkout.session.completed",
                                   "expired": "checkout.session.expired"}.get(o["status"]),
    "invoice": lambda o: "invoice.paid" if o["status"] == "paid" else "invoice.created",
    "coupon": lambda o: "coupon.created",
    "promotion_code": lambda o: "promotion_code.created",
    "balance_transaction": lambda o: None,
}


def _changed_event(kind: str, before: dict, after: dict) -> str | None:
    """The type Stripe gives the event of this change (None: Stripe sends none for it)."""
    status, moved = after.get("status"), before.get("status") != after.get("status")
    if kind == "dispute":
        return "charge.dispute.closed" if moved and status in DISPUTE_CLOSED else "charge.dispute.updated"
    if kind == "refund":
        return "refund.failed" if moved and status == "failed" else "refund.updated"
    if kind == "charge":
        if after.get("amount_refunded", 0) > before.get("amount_refunded", 0):
            return "charge.refunded"
        if moved and status in ("succeeded", "failed"):
            return f"charge.{status}"
        return "charge.updated"
    if kind == "checkout.session":
        return {"complete": "checkout.session.completed", "expired": "checkout.session.expired"}.get(status) \
            if moved else None
    if kind == "payment_intent":
        return {"succeeded": "payment_intent.succeeded", "canceled": "payment_intent.canceled",
                "requires_payment_method": "payment_intent.payment_failed", "processing": "payment_intent.processing",
                "requires_action": "payment_intent.requires_action"}.get(status) if moved else None
    if kind == "invoice":
        return "invoice.paid" if moved and status == "paid" else "invoice.updated"
    if kind in ("customer", "coupon", "promotion_code"):
        return f"{kind}.updated"
    return None


class Clock:
    """An injectable clock for `Account.now`: `acct.now = clock = Clock(T)`; `clock.advance(3 * 86_400)`."""

    def __init__(self, t: float | None = None):
        self.t = int(time.time() if t is None else t)

    def __call__(self) -> int:
        return self.t

    def advance(self, seconds: float) -> int:
        self.t += int(seconds)
        return self.t

    def set(self, t: float) -> int:
        self.t = int(t)
        return self.t


def _now() -> int:
    return int(time.time())


@dataclass(slots=True)
class Event:
    """One recorded event: its order (`seq`, the order of recording), id, created, type, the object's id and
    the whole event as JSON text (so its snapshot of the object never changes)."""

    seq: int
    id: str
    created: int
    type: str
    obj_id: str
    text: str

    def body(self) -> dict[str, Any]:
        return json.loads(self.text)


def _type_pattern(type_: str) -> re.Pattern[str]:
    """An event `type` filter: a name, or a group with `*` as a wildcard (charge.dispute.*)."""
    return re.compile(".*".join(re.escape(part) for part in type_.split("*")))


def _template(kind: str) -> dict:
    return json.loads(_TEMPLATE_TEXT[kind])


def make_id(kind: str, n: int) -> str:
    return f"{PREFIX[kind]}_1Fake{n:018d}"


@dataclass(slots=True)
class Rec:
    """One object, compact: its kind, id, created and the fields that vary (`f`)."""

    kind: str
    id: str
    created: int
    f: dict


@dataclass
class Account:
    """Every object of a fake Stripe account, per kind sorted by (created, id)."""

    records: dict[str, list[Rec]] = field(default_factory=lambda: {k: [] for k in RESOURCES.values()})
    _index: dict[str, dict[str, int]] = field(default_factory=dict)
    _created: dict[str, list[int]] = field(default_factory=dict)
    by_id: dict[str, Rec] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    counter: int = 0
    # -- the event log (GET /v1/events) ---------------------------------------------------------
    now: Callable[[], int] = field(default=_now, repr=False)  # the clock of changes, events and retention
    recording: bool = True  # record an event for each object added and each change made through update()
    events: list[Event] = field(default_factory=list, repr=False)  # ascending (created, seq)
    _event_keys: list[tuple[int, int]] = field(default_factory=list, repr=False)
    events_by_id: dict[str, Event] = field(default_factory=dict, repr=False)
    _event_seq: int = 0
    _collect: list[Rec] | None = field(default=None, repr=False)
    _elock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # -- building -----------------------------------------------------------------------
    def new_id(self, kind: str) -> str:
        self.counter += 1
        return make_id(kind, self.counter)

    def add(self, kind: str, created: int | None = None, **fields: Any) -> Rec:
        """A new object (created defaults to `now()`); while recording, its creation event (e.g.
        charge.succeeded, customer.created, charge.dispute.created) at its `created`."""
        created = self.now() if created is None else created
        rec = Rec(kind, fields.pop("id", None) or self.new_id(kind), int(created), fields)
        self.records[kind].append(rec)
        self.by_id[rec.id] = rec
        self._index.pop(kind, None)
        if self._collect is not None:  # inside extend(): its events come at its end, in final state
            self._collect.append(rec)
        elif self.recording:
            self._created_event(rec)
        return rec

    def update(self, obj_id: str, event_type: str | None = None, **fields: Any) -> dict | None:
        """Change an object's compact fields (`Rec.f`, e.g. status=...). While recording, appends the event
        Stripe would send, created `now()`, with the object as it is now and previous_attributes (the
        changed top-level fields' old values). Its type follows the change (`_changed_event`: a dispute
        becoming won/lost -> charge.dispute.closed, a refund becoming failed -> refund.failed, a session
        becoming expired -> checkout.session.expired, ...) unless `event_type` is given. Returns the event,
        or None when none was recorded (not recording, or a change Stripe sends no event for, such as a
        balance transaction's)."""
        rec = self.by_id[obj_id]
        if not self.recording:
            rec.f.update(fields)
            return None
        before = self.render(rec)
        rec.f.update(fields)
        after = self.render(rec)
        previous = {k: before.get(k) for k in after if before.get(k) != after[k]}
        type_ = event_type or _changed_event(rec.kind, before, after)
        if type_ is None:
            return None
        return self._record(type_, self.now(), after, previous)

    # -- the event log ------------------------------------------------------------------
    def _created_event(self, rec: Rec) -> None:
        obj = self.render(rec)
        type_ = CREATED_EVENT[rec.kind](obj)
        if type_ is not None:
            self._record(type_, rec.created, obj, None)

    def _record(self, type_: str, created: int, obj: dict, previous: dict | None) -> dict:
        with self._elock:
            self._event_seq += 1
            seq = self._event_seq
            event_id = f"evt_1Fake{seq:018d}"
            data: dict[str, Any] = {"object": obj}
            if previous is not None:
                data["previous_attributes"] = previous
            body = {"id": event_id, "object": "event", "api_version": API_VERSION, "created": int(created),
                    "data": data, "livemode": False, "pending_webhooks": 1,
                    "request": {"id": None, "idempotency_key": None}, "type": type_}
            event = Event(seq, event_id, int(created), type_, obj["id"], json.dumps(body))
            key = (event.created, seq)
            at = bisect.bisect_right(self._event_keys, key)
            self._event_keys.insert(at, key)
            self.events.insert(at, event)
            self.events_by_id[event_id] = event
        return event.body()

    def event(self, event_id: str) -> dict[str, Any]:
        """The event as recorded (a fresh copy)."""
        return self.events_by_id[event_id].body()

    def latest_event_id(self) -> str | None:
        """The id of the event recorded last (a mark for `events_since`), None when there is none."""
        with self._elock:
            return f"evt_1Fake{self._event_seq:018d}" if self._event_seq else None

    def events_since(self, event_id: str | None = None, type: str | None = None) -> list[dict[str, Any]]:  # noqa: A002
        """The events recorded after `event_id` (all when None), in the order they were recorded: what a
        receiver that was down since that event would have been sent. Ignores retention."""
        after = self.events_by_id[event_id].seq if event_id else 0
        pattern = _type_pattern(type) if type else None
        with self._elock:
            found = sorted((e for e in self.events if e.seq > after), key=lambda e: e.seq)
        return [e.body() for e in found if pattern is None or pattern.fullmatch(e.type)]

    def list_events(self, params: dict[str, Any]) -> tuple[list[dict], bool]:
        """GET /v1/events: newest first, only events created in the last 30 days by `now()`."""
        with self._elock:
            keys, events = self._event_keys, self.events
            lo = bisect.bisect_left(keys, (self.now() - RETENTION, -1))
            hi = len(keys)
            c = params.get("created", {})
            if "gte" in c:
                lo = max(lo, bisect.bisect_left(keys, (c["gte"], -1)))
            if "gt" in c:
                lo = max(lo, bisect.bisect_left(keys, (c["gt"] + 1, -1)))
            if "lt" in c:
                hi = min(hi, bisect.bisect_left(keys, (c["lt"], -1)))
            if "lte" in c:
                hi = min(hi, bisect.bisect_left(keys, (c["lte"] + 1, -1)))
            types = params.get("types")
            match = (lambda e: any(p.fullmatch(e.type) for p in types)) if types else (lambda e: True)
            limit = params["limit"]
            found: list[Event] = []
            if "ending_before" in params:  # the page just newer than the cursor, still served newest first
                cursor = self.events_by_id[params["ending_before"]]
                i = max(lo, bisect.bisect_right(keys, (cursor.created, cursor.seq)))
                while i < hi and len(found) <= limit:
                    if match(events[i]):
                        found.append(events[i])
                    i += 1
                has_more = len(found) > limit
                page = found[:limit][::-1]
            else:
                if "starting_after" in params:
                    cursor = self.events_by_id[params["starting_after"]]
                    hi = min(hi, bisect.bisect_left(keys, (cursor.created, cursor.seq)))
                i = hi - 1
                while i >= lo and len(found) <= limit:
                    if match(events[i]):
                        found.append(events[i])
                    i -= 1
                has_more = len(found) > limit
                page = found[:limit]
        return [e.body() for e in page], has_more

    def served_event(self, event_id: str) -> Event | None:
        """The event if GET /v1/events/{id} would serve it (known, and not past retention)."""
        event = self.events_by_id.get(event_id)
        if event is None or event.created < self.now() - RETENTION:
            return None
        return event

    # -- changes a scenario makes (each records its event) ---------------------------------
    def ids(self, kind: str, **where: Any) -> list[str]:
        """Ids of the objects of a kind (Stripe's `object`: "dispute", "refund", "checkout.session", ...)
        whose served (rendered) fields equal `where`, oldest first: ids("dispute", status="needs_response")."""
        recs, _, _ = self._sorted(kind)
        if not where:
            return [r.id for r in recs]
        out = []
        for r in recs:
            obj = self.render(r)
            if all(obj.get(k) == v for k, v in where.items()):
                out.append(r.id)
        return out

    def close_dispute(self, dispute_id: str, status: str = "won") -> dict | None:
        """An open dispute closes (won, lost or warning_closed): charge.dispute.closed."""
        if status not in DISPUTE_CLOSED:
            raise ValueError(f"a dispute closes as one of {DISPUTE_CLOSED}, not {status!r}")
        return self.update(dispute_id, status=status)

    def fail_refund(self, refund_id: str, reason: str = "expired_or_canceled_card") -> dict | None:
        """A (pending) refund fails: refund.failed, with failure_reason."""
        return self.update(refund_id, status="failed", failure_reason=reason)

    def expire_checkout_session(self, session_id: str) -> dict | None:
        """An open checkout session expires: checkout.session.expired."""
        rec = self.by_id[session_id]
        if rec.f["status"] != "open":
            raise ValueError(f"{session_id} is {rec.f['status']}; only an open session expires")
        return self.update(session_id, status="expired")

    def refund_charge(self, charge_id: str, amount: int | None = None, status: str = "succeeded") -> str:
        """A refund of a succeeded charge (whole by default), created now: refund.created, then
        charge.refunded (the charge's amount_refunded grows). Returns the refund's id."""
        ch = self.by_id[charge_id]
        if ch.f["status"] != "succeeded":
            raise ValueError(f"{charge_id} is {ch.f['status']}; only a succeeded charge is refunded")
        amount = ch.f["amount"] if amount is None else int(amount)
        refund = self.add("refund", self.now(), charge=charge_id, payment_intent=ch.f["payment_intent"],
                          amount=amount, currency=ch.f["currency"], status=status)
        self.update(charge_id, amount_refunded=ch.f.get("amount_refunded", 0) + amount)
        return refund.id

    def pay_invoice(self, invoice_id: str) -> dict | None:
        """An open invoice is paid: invoice.paid."""
        return self.update(invoice_id, status="paid")

    def dispute_charge(self, charge_id: str, amount: int | None = None, status: str = "needs_response") -> str:
        """A dispute of a succeeded charge, created now: charge.dispute.created. Returns its id."""
        ch = self.by_id[charge_id]
        dispute = self.add("dispute", self.now(), charge=charge_id, payment_intent=ch.f["payment_intent"],
                           amount=ch.f["amount"] if amount is None else int(amount), currency=ch.f["currency"],
                           status=status)
        return dispute.id

    def _sorted(self, kind: str) -> tuple[list[Rec], list[int], dict[str, int]]:
        with self.lock:
            if kind not in self._index:
                recs = self.records[kind]
                recs.sort(key=lambda r: (r.created, r.id))
                self._index[kind] = {r.id: i for i, r in enumerate(recs)}
                self._created[kind] = [r.created for r in recs]
            return self.records[kind], self._created[kind], self._index[kind]

    @classmethod
    def generate(cls, charges: int, seed: int = 1, end: int | None = None, days: int = 30,
                 start: int | None = None, events: bool = False, now: Callable[[], int] | None = None) -> "Account":
        """About `charges` charges of a small business over `days` days ending at `end`, with their
        payment intents (retries), balance transactions (EUR and JPY settled in USD), customers,
        refunds (some pending), disputes (some open: needs_response, under_review), checkout sessions
        (some with a promotion code, a few still open), coupons, promotion codes and invoices.

        `events`: also record the generated objects' creation events (off by default, to keep 100k
        charges small); either way every later add()/update()/extend() is recorded."""
        acct = cls() if now is None else cls(now=now)
        acct.recording = events
        acct.extend(charges, seed, end=end, days=days, start=start)
        acct.recording = True
        return acct

    def extend(self, charges: int, seed: int, end: int | None = None, days: int = 30, start: int | None = None) -> None:
        """More objects (see generate); while recording, each new object's creation event at its
        `created`, in its final generated state."""
        self._collect = made = []
        try:
            self._extend(charges, seed, end, days, start)
        finally:
            self._collect = None
        if self.recording:
            for rec in sorted(made, key=lambda r: (r.created, r.id)):
                self._created_event(rec)

    def _extend(self, charges: int, seed: int, end: int | None, days: int, start: int | None) -> None:
        rng = random.Random(seed)
        end = int(end if end is not None else time.time() - 3600)
        start = int(start if start is not None else end - days * 86_400)
        span = max(end - start, 1)
        if not self.records["coupon"]:
            self._coupons(start - 30 * 86_400, rng)
        n_customers = max(1, charges // 5)
        # a new account's customers may predate its payments; later ones sign up in the period
        older = 90 * 86_400 if not self.records["customer"] else 0
        customers = [self.add("customer", start - rng.randrange(0, older) if older and rng.random() < 0.5
                              else start + rng.randrange(0, span),
                              email=f"user{self.counter + 1}@example.com", name=f"Customer {self.counter + 1}").id
                     for _ in range(n_customers)]
        promos = [r.id for r in self.records["promotion_code"]]
        made = 0
        while made < charges:
            created = start + rng.randrange(0, span)
            customer = rng.choice(customers)
            currency = rng.choices(("usd", "eur", "jpy"), (85, 10, 5))[0]
            amount = rng.choice((900, 1900, 2900, 4900, 9900)) * (1 if currency != "jpy" else 1) \
                if currency != "jpy" else rng.choice((1000, 2500, 5000, 12000))
            funnel = rng.choice(("main_funnel", "main_funnel", "upsell"))
            pi = self.add("payment_intent", created, customer=customer, amount=amount, currency=currency,
                          status="requires_payment_method", funnel=funnel)
            attempts = 1
            succeeded = rng.random() < 0.82
            while not succeeded and attempts < 3 and rng.random() < 0.6:
                attempts += 1
                succeeded = rng.random() < 0.5 if attempts > 1 else succeeded
            at = created
            latest = None
            for n in range(1, attempts + 1):
                ok = succeeded and n == attempts
                decline = None if ok else rng.choice(DECLINES)
                brand, country = rng.choice((("visa", "US"), ("mastercard", "US"), ("amex", "US"),
                                             ("visa", "DE"), ("mastercard", "GB")))
                ch = self.add("charge", at, payment_intent=pi.id, customer=customer, amount=amount, currency=currency,
                              status="succeeded" if ok else "failed", decline=decline, brand=brand, country=country,
                              funnel=funnel, profile=f"prof_{customer[-6:]}")
                if ok:
                    usd = (Decimal(amount) / (1 if currency == "jpy" else 100) * FX_TO_USD[currency]) \
                        .quantize(Decimal("0.01"), ROUND_HALF_UP)
                    bt = self.add("balance_transaction", at, source=ch.id, amount=int(usd * 100), currency="usd",
                                  exchange_rate=None if currency == "usd" else float(FX_TO_USD[currency]))
                    ch.f["bt"] = bt.id
                    if rng.random() < 0.03:
                        self.add("refund", at + 86_400 if at + 86_400 < end else at, charge=ch.id, payment_intent=pi.id,
                                 amount=amount, currency=currency)
                    if rng.random() < 0.005:
                        self.add("dispute", at + 2 * 86_400 if at + 2 * 86_400 < end else at, charge=ch.id,
                                 payment_intent=pi.id, amount=amount, currency=currency)
                latest = ch.id
                made += 1
                at = min(at + rng.randrange(600, 3 * 3600), end - 1)
            pi.f.update(status="succeeded" if succeeded else "requires_payment_method", latest_charge=latest)
            # a checkout session started each payment; some used a promotion code
            promo = rng.choice(promos) if promos and rng.random() < 0.15 else None
            discount = (amount // 10) if promo else 0
            self.add("checkout.session", created, payment_intent=pi.id, customer=customer, currency=currency,
                     status="complete" if succeeded else "expired", promo=promo, discount=discount,
                     amount_total=amount)
            if rng.random() < 0.02:
                self._invoice(created, customer, rng, promos)
        self._states(random.Random(f"fake-stripe-states:{seed}"), customers, start, end, charges)

    def _states(self, rng: random.Random, customers: list[str], start: int, end: int, charges: int) -> None:
        """Refunds pending, disputes open and checkout sessions open among the objects just made, so that a
        scenario has something to fail, close and expire. A separate random stream (from the seed), so the
        objects made before are exactly what they were before this existed."""
        made = self._collect or []
        refunds = [r for r in made if r.kind == "refund"]
        disputes = [r for r in made if r.kind == "dispute"]
        for r in refunds:
            r.f["status"] = "pending" if rng.random() < 0.2 else "succeeded"
        for r in disputes:
            r.f["status"] = rng.choices(("needs_response", "under_review", "won", "lost"), (35, 25, 25, 15))[0]
        taken = {r.f["charge"] for r in refunds + disputes}
        free = [r for r in made if r.kind == "charge" and r.f["status"] == "succeeded" and r.id not in taken]
        rng.shuffle(free)

        def later(ch: Rec, by: int) -> int:
            return ch.created + by if ch.created + by < end else ch.created

        want = [("refund", "pending", 86_400)] * max(0, 2 - sum(r.f["status"] == "pending" for r in refunds))
        want += [("dispute", "needs_response", 2 * 86_400)] * max(
            0, 2 - sum(r.f["status"] == "needs_response" for r in disputes))
        want += [("dispute", "under_review", 2 * 86_400)] * max(
            0, 1 - sum(r.f["status"] == "under_review" for r in disputes))
        for (kind, status, by), ch in zip(want, free):
            self.add(kind, later(ch, by), charge=ch.id, payment_intent=ch.f["payment_intent"], amount=ch.f["amount"],
                     currency=ch.f["currency"], status=status)
        recent = max(start, end - 12 * 3600)
        for _ in range(max(2, charges // 100)):
            amount = rng.choice((900, 1900, 2900))
            self.add("checkout.session", recent + rng.randrange(0, max(end - recent, 1)), payment_intent=None,
                     customer=rng.choice(customers), currency="usd", status="open", promo=None, discount=0,
                     amount_total=amount)

    def _coupons(self, when: int, rng: random.Random) -> None:
        specs = (("SAVE10", {"percent_off": 10.0}), ("SAVE25", {"percent_off": 25.0}),
                 ("FIVEOFF", {"amount_off": 500, "currency": "usd"}), ("EURO5", {"amount_off": 500, "currency": "eur"}),
                 ("YEN500", {"amount_off": 500, "currency": "jpy"}), ("HALF", {"percent_off": 50.0}))
        for i, (code, terms) in enumerate(specs):
            coupon = self.add("coupon", when + i, id=f"co_{code.lower()}", **terms)
            for j in range(2 if i < 4 else 1):
                self.add("promotion_code", when + 10 * i + j, code=f"{code}{j or ''}", coupon=coupon.id,
                         active=not (i == 5), max_redemptions=None if j else 1000)

    def _invoice(self, created: int, customer: str, rng: random.Random, promos: list[str]) -> None:
        promo = rng.choice(promos) if promos and rng.random() < 0.3 else None
        amount = rng.choice((1500, 4500))
        status = rng.choice(("paid", "paid", "paid", "open"))
        discount_id = None
        if promo:
            discount_id = self.new_id("discount")
        self.add("invoice", created, customer=customer, status=status, attempt_count=rng.randint(1, 3), amount=amount,
                 promo=promo, discount_id=discount_id, discount=(amount // 5) if promo else 0)

    # -- rendering ----------------------------------------------------------------------
    def render(self, rec: Rec, expand: set[str] = frozenset()) -> dict[str, Any]:
        obj = getattr(self, "_render_" + rec.kind.replace(".", "_"))(rec, expand)
        obj["id"], obj["created"], obj["object"], obj["livemode"] = rec.id, rec.created, rec.kind, False
        return obj

    def _render_charge(self, r: Rec, expand: set[str]) -> dict:
        f = r.f
        ch = _template("charge")
        ok = f["status"] == "succeeded"
        decline = f.get("decline")
        ch.update(amount=f["amount"], amount_captured=f["amount"] if ok else 0, captured=ok, paid=ok,
                  currency=f["currency"], customer=f["customer"], payment_intent=f["payment_intent"],
                  status=f["status"], failure_code=decline[0] if decline else None,
                  failure_message="Your card was declined." if decline else None,
                  metadata={"funnel_name": f["funnel"], "profile_id": f["profile"]},
                  balance_transaction=f.get("bt"), amount_refunded=f.get("amount_refunded", 0),
                  refunded=f.get("amount_refunded", 0) >= f["amount"])
        ch["outcome"].update(type="authorized" if ok else decline[1], reason=None if ok else decline[2],
                             network_status="approved_by_network" if ok else "declined_by_network",
                             risk_level="normal", seller_message="Payment complete." if ok else "The bank declined.")
        ch["payment_method_details"]["card"].update(brand=f["brand"], country=f["country"])
        if "data.balance_transaction" in expand and f.get("bt"):
            ch["balance_transaction"] = self.render(self.by_id[f["bt"]])
        return ch

    def _render_balance_transaction(self, r: Rec, expand: set[str]) -> dict:
        bt = _template("balance_transaction")
        fee = int(r.f["amount"] * 0.029) + 30
        bt.update(amount=r.f["amount"], currency=r.f["currency"], exchange_rate=r.f["exchange_rate"], fee=fee,
                  net=r.f["amount"] - fee, source=r.f["source"], status="available", available_on=r.created + 2 * 86_400,
                  fee_details=[], description=None)
        return bt

    def _render_payment_intent(self, r: Rec, expand: set[str]) -> dict:
        pi = _template("payment_intent")
        f = r.f
        pi.update(amount=f["amount"], currency=f["currency"], customer=f["customer"], status=f["status"],
                  latest_charge=f.get("latest_charge"), amount_received=f["amount"] if f["status"] == "succeeded" else 0,
                  metadata={"funnel_name": f["funnel"]}, client_secret=None, last_payment_error=None)
        return pi

    def _render_customer(self, r: Rec, expand: set[str]) -> dict:
        c = _template("customer")
        c.update(email=r.f["email"], name=r.f["name"], discount=None)
        return c

    def _render_refund(self, r: Rec, expand: set[str]) -> dict:
        x = _template("refund")
        status = r.f.get("status", "succeeded")
        x.update(amount=r.f["amount"], currency=r.f["currency"], charge=r.f["charge"],
                 payment_intent=r.f["payment_intent"], status=status, reason="requested_by_customer")
        if status == "failed":
            x["failure_reason"] = r.f.get("failure_reason", "unknown")
        return x

    def _render_dispute(self, r: Rec, expand: set[str]) -> dict:
        x = _template("dispute")
        x.update(amount=r.f["amount"], currency=r.f["currency"], charge=r.f["charge"],
                 payment_intent=r.f["payment_intent"], status=r.f.get("status", "needs_response"), reason="fraudulent")
        x["evidence_details"] = {**x["evidence_details"], "due_by": r.created + 7 * 86_400}
        return x

    def _render_checkout_session(self, r: Rec, expand: set[str]) -> dict:
        f = r.f
        s = _template("checkout.session")
        promo = f.get("promo")
        s.update(payment_intent=f.get("payment_intent"), customer=f["customer"], currency=f["currency"],
                 status=f["status"], payment_status="paid" if f["status"] == "complete" else "unpaid",
                 amount_subtotal=f["amount_total"] + f["discount"], amount_total=f["amount_total"],
                 expires_at=r.created + 86_400, invoice=None, url=None,
                 discounts=[{"coupon": None, "promotion_code": promo}] if promo else [])
        s["total_details"] = {"amount_discount": f["discount"], "amount_shipping": 0, "amount_tax": 0}
        return s

    def _render_promotion_code(self, r: Rec, expand: set[str]) -> dict:
        p = _template("promotion_code")
        p.update(code=r.f["code"], active=r.f["active"], max_redemptions=r.f["max_redemptions"],
                 expires_at=None, times_redeemed=r.f.get("times_redeemed", 0))
        p["promotion"] = {"coupon": r.f["coupon"], "type": "coupon"}
        return p

    def _render_coupon(self, r: Rec, expand: set[str]) -> dict:
        c = _template("coupon")
        c.update(percent_off=r.f.get("percent_off"), amount_off=r.f.get("amount_off"),
                 currency=r.f.get("currency"), name=r.id, duration="once", duration_in_months=None, redeem_by=None)
        return c

    def _render_invoice(self, r: Rec, expand: set[str]) -> dict:
        f = r.f
        inv = _template("invoice")
        paid = f["status"] == "paid"
        discounts: list[Any] = []
        if f.get("discount_id"):
            discount = _template("discount")
            discount.update(id=f["discount_id"], customer=f["customer"], invoice=r.id, promotion_code=f["promo"],
                            start=r.created, end=None)
            discount["source"] = {"coupon": self.by_id[f["promo"]].f["coupon"], "type": "coupon"}
            discounts = [discount if "data.discounts" in expand else f["discount_id"]]
        inv.update(customer=f["customer"], status=f["status"], attempt_count=f["attempt_count"], attempted=True,
                   amount_due=f["amount"] - f["discount"], amount_paid=f["amount"] - f["discount"] if paid else 0,
                   subtotal=f["amount"], total=f["amount"] - f["discount"], currency="usd", discounts=discounts,
                   total_discount_amounts=[{"amount": f["discount"], "discount": f["discount_id"]}] if f.get("discount_id") else [])
        inv["status_transitions"] = {"finalized_at": r.created, "marked_uncollectible_at": None,
                                     "paid_at": r.created + 60 if paid else None, "voided_at": None}
        inv["lines"] = {"object": "list", "data": [], "has_more": False, "url": f"/v1/invoices/{r.id}/lines"}
        return inv

    # -- listing --------------------------------------------------------------------------
    def list(self, kind: str, params: dict[str, Any]) -> tuple[list[dict], bool]:
        recs, created, index = self._sorted(kind)
        lo, hi = 0, len(recs)  # ascending (created, id); Stripe pages newest first
        c = params.get("created", {})
        if "gte" in c:
            lo = max(lo, bisect.bisect_left(created, c["gte"]))
        if "gt" in c:
            lo = max(lo, bisect.bisect_right(created, c["gt"]))
        if "lt" in c:
            hi = min(hi, bisect.bisect_left(created, c["lt"]))
        if "lte" in c:
            hi = min(hi, bisect.bisect_right(created, c["lte"]))
        after = params.get("starting_after")
        if after is not None:
            hi = min(hi, index[after])
        limit = params["limit"]
        start = max(lo, hi - limit)
        page = recs[start:hi][::-1]
        return [self.render(r, params["expand"]) for r in page], start > lo

    def all_objects(self, kind: str) -> list[dict]:
        recs, _, _ = self._sorted(kind)
        return [self.render(r, {"data.balance_transaction", "data.discounts"}) for r in recs]


class ApiError(Exception):
    def __init__(self, status: int, type_: str, message: str, param: str | None = None,
                 headers: dict[str, str] | None = None, code: str | None = None):
        self.status, self.type, self.message, self.param, self.headers = status, type_, message, param, headers or {}
        self.code = code


@dataclass
class Served:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    at: float
    ids: tuple[str, ...] = ()


class FakeStripe:
    """The server: start() -> base URL; `requests` records what was asked and answered.

    `restricted_keys` is a tuple of keys (each may read everything) or a mapping key -> permissions,
    {resource: bool} by the URL's resource ("events", "charges", "checkout/sessions", ...), a resource
    missing from it being readable: FakeStripe(acct, restricted_keys={"rk_test_noevents": {"events": False}})
    answers that key 403 on /v1/events and /v1/events/{id}, as Stripe answers a restricted key without
    the Events read permission. `permissions` may also be changed after start."""

    def __init__(self, account: Account, secret_keys: tuple[str, ...] = ("sk_test_fakesecret000000000000",),
                 restricted_keys: tuple[str, ...] | dict[str, dict[str, bool]] = ("rk_test_fakerestricted0000000000",)):
        self.account = account
        self.secret_keys = set(secret_keys)
        self.restricted_keys = set(restricted_keys)
        self.permissions: dict[str, dict[str, bool]] = {
            key: dict(restricted_keys[key]) if isinstance(restricted_keys, dict) else {} for key in restricted_keys}
        self.rate_limit_every: int | None = None
        self.retry_after: str | None = "0.2"
        self.should_retry: str | None = None
        self.fail_from: int | None = None  # 500 from this request number on
        self.fail_path: str | None = None  # ... only for this path
        self.fail_should_retry: str | None = None
        self.delay = 0.0
        self.leak_key_in_errors = False  # a hostile server: echoes the key in its 401 message
        self.requests: list[Served] = []
        self._count = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.on_request: Callable[[int], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> str:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out at once, not 40 ms apart

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_GET(self) -> None:  # noqa: N802
                fake._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                fake._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-stripe").start()
        return self.url

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeStripe":
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- requests -------------------------------------------------------------------------
    def served(self, path: str | None = None, status: int | None = 200) -> list[Served]:
        with self._lock:
            return [r for r in self.requests if (path is None or r.path == path) and (status is None or r.status == status)]

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._lock:
            self._count += 1
            number = self._count
        if self.delay:
            time.sleep(self.delay)
        url = urlsplit(handler.path)
        path = url.path
        params: dict[str, Any] = {}
        ids: tuple[str, ...] = ()
        try:
            key = self._authorize(handler, method)
            if self.on_request:
                self.on_request(number)
            if self.fail_from is not None and number >= self.fail_from and self.fail_path in (None, path):
                raise ApiError(500, "api_error", "An unknown error occurred on Stripe's end.",
                               headers={"Stripe-Should-Retry": self.fail_should_retry} if self.fail_should_retry else {})
            if self.rate_limit_every and number % self.rate_limit_every == 0:
                headers = {}
                if self.retry_after is not None:
                    headers["Retry-After"] = self.retry_after
                if self.should_retry is not None:
                    headers["Stripe-Should-Retry"] = self.should_retry
                raise ApiError(429, "invalid_request_error", "Too many requests hit the API too quickly.",
                               headers=headers)
            resource = path[4:].split("/")[0] if path.startswith("/v1/events") else path[4:]
            if not path.startswith("/v1/") or (resource not in RESOURCES and resource != "events") \
                    or (resource == "events" and path.count("/") > 3):
                raise ApiError(404, "invalid_request_error", f"Unrecognized request URL (GET: {path}).")
            if method != "GET":
                if key in self.restricted_keys:
                    raise ApiError(403, "invalid_request_error",
                                   "The provided key 'rk_test_***' does not have the required permissions for this endpoint")
                raise ApiError(400, "invalid_request_error", "This fake only lists objects.")
            if key in self.restricted_keys and self.permissions.get(key, {}).get(resource, True) is False:
                permission = {"events": "rak_event_read"}.get(resource, f"rak_{resource.replace('/', '_')}_read")
                raise ApiError(403, "invalid_request_error",
                               f"The provided key '{self._mask(key)}' does not have the required permissions for this "
                               f"endpoint on account 'acct_1Fake000000000000'. Having the '{permission}' permission "
                               f"would allow this request to continue.")
            if resource == "events" and path != "/v1/events":
                event = self.account.served_event(path.rsplit("/", 1)[1])
                if event is None:
                    raise ApiError(404, "invalid_request_error", f"No such event: '{path.rsplit('/', 1)[1]}'", "id",
                                   code="resource_missing")
                ids = (event.id,)
                self._send(handler, 200, event.body(), {"Request-Id": f"req_fake{number}"})
            else:
                if resource == "events":
                    params = self._event_params(url.query)
                    objects, has_more = self.account.list_events(params)
                else:
                    kind = RESOURCES[path[4:]]
                    params = self._params(url.query, kind)
                    objects, has_more = self.account.list(kind, params)
                ids = tuple(o["id"] for o in objects)
                body = {"object": "list", "data": objects, "has_more": has_more, "url": path}
                self._send(handler, 200, body, {"Request-Id": f"req_fake{number}"})
            status = 200
        except ApiError as exc:
            error = {"type": exc.type, "message": exc.message}
            if exc.param:
                error["param"] = exc.param
            if exc.code:
                error["code"] = exc.code
            self._send(handler, exc.status, {"error": error}, exc.headers)
            status = exc.status
        with self._lock:
            self.requests.append(Served(method, path, params, status, time.monotonic(), ids))

    def _authorize(self, handler: BaseHTTPRequestHandler, method: str) -> str:
        auth = handler.headers.get("Authorization") or ""
        key = auth.removeprefix("Bearer ").strip()
        if key in self.secret_keys or key in self.restricted_keys:
            return key
        shown = key if self.leak_key_in_errors else self._mask(key)
        raise ApiError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")

    @staticmethod
    def _mask(key: str) -> str:
        return key[:8] + "*" * max(len(key) - 12, 0) + key[-4:]

    def _event_params(self, query: str) -> dict[str, Any]:
        """GET /v1/events: limit, starting_after | ending_before, created[...], type | types[]. A cursor that
        is unknown or past the 30 days is refused 400 resource_missing ("No such event"), as Stripe refuses
        an unknown id."""
        params: dict[str, Any] = {"created": {}, "limit": 10}
        types: list[str] = []
        rest = []
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name == "type":
                if "type" in params:
                    raise ApiError(400, "invalid_request_error", "Received multiple values for type", "type")
                params["type"] = value
                types.append(value)
            elif name == "types[]" or (name.startswith("types[") and name[6:-1].isdigit() and name.endswith("]")):
                params.setdefault("types_given", []).append(value)
            elif name in ("starting_after", "ending_before"):
                if self.account.served_event(value) is None:
                    raise ApiError(400, "invalid_request_error", f"No such event: '{value}'", name,
                                   code="resource_missing")
                params[name] = value
            elif name == "delivery_success":
                if value not in ("true", "false"):
                    raise ApiError(400, "invalid_request_error", "Invalid boolean", name)
            else:
                rest.append((name, value))
        if "starting_after" in params and "ending_before" in params:
            raise ApiError(400, "invalid_request_error",
                           "You may only specify one of these parameters: ending_before, starting_after.", "ending_before")
        given = params.pop("types_given", [])
        if given and "type" in params:
            raise ApiError(400, "invalid_request_error", "You may only specify one of these parameters: type, types.",
                           "types")
        if len(given) > 20:
            raise ApiError(400, "invalid_request_error", "Invalid array: types may hold at most 20 values", "types")
        types += given
        if types:
            params["types"] = [_type_pattern(t) for t in types]
        common = self._params(urlencode(rest), "event")  # created[...], limit: as the list endpoints check them
        params["created"], params["limit"] = common["created"], common["limit"]
        return params

    def _params(self, query: str, kind: str) -> dict[str, Any]:
        params: dict[str, Any] = {"created": {}, "expand": set(), "limit": 10}
        for name, value in parse_qsl(query, keep_blank_values=True):
            if name.startswith("created[") and name.endswith("]"):
                op = name[8:-1]
                if op not in ("gt", "gte", "lt", "lte") or not value.lstrip("-").isdigit():
                    raise ApiError(400, "invalid_request_error", f"Invalid {name}", name)
                params["created"][op] = int(value)
            elif name == "created":
                if not value.isdigit():
                    raise ApiError(400, "invalid_request_error", "Invalid created", name)
                params["created"].update(gte=int(value), lte=int(value))
            elif name == "limit":
                if not value.isdigit() or not 1 <= int(value) <= 100:
                    raise ApiError(400, "invalid_request_error", "Invalid limit: must be between 1 and 100", "limit")
                params["limit"] = int(value)
            elif name == "starting_after":
                rec = self.account.by_id.get(value)
                if rec is None or rec.kind != kind:
                    raise ApiError(400, "invalid_request_error", f"No such {kind}: '{value}'", "starting_after")
                params["starting_after"] = value
            elif name == "ending_before":
                raise ApiError(400, "invalid_request_error", "The fake does not page backwards", "ending_before")
            elif name == "expand[]" or (name.startswith("expand[") and name[7:-1].isdigit()):
                if value not in ("data.balance_transaction", "data.discounts"):
                    raise ApiError(400, "invalid_request_error", f"This property cannot be expanded ({value}).", name)
                params["expand"].add(value)
        return params

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, body: dict, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


# -- webhook delivery, signed as Stripe signs ---------------------------------------------------
def _sign(payload: bytes, secret: str, timestamp: int) -> str:
    """paydash's own `sign` (Stripe's v1 scheme)."""
    from paydash.sources.stripe.webhooks import sign

    return sign(payload, secret, timestamp)


def signature_header(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """Stripe-Signature: t=<unix>,v1=<HMAC-SHA256 of f"{t}.{payload}" keyed by the whole whsec_ secret>."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={t},v1={_sign(payload, secret, t)}"


def deliver(url: str, event: dict[str, Any], secret: str, timestamp: int | None = None, timeout: float = 10.0) -> int:
    """POST one event to a webhook receiver as Stripe does (JSON body, Stripe-Signature signed with
    `secret` at `timestamp`, now by default: a receiver checks it against its 5-minute tolerance by
    its own clock). Returns the HTTP status."""
    import httpx

    payload = json.dumps(event).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
               "Stripe-Signature": signature_header(payload, secret, timestamp)}
    return httpx.post(url, content=payload, headers=headers, timeout=timeout).status_code


def deliver_all(url: str, events: list[dict[str, Any]], secret: str, timeout: float = 10.0) -> list[int]:
    """deliver() each event in turn (e.g. `account.events_since(mark)` once the receiver is up again)."""
    return [deliver(url, event, secret, timeout=timeout) for event in events]


# -- what the dashboard should show, computed straight from the API's objects ----------------
def expected_totals(account: Account, start_day: str, end_day: str) -> dict[str, Any]:
    """Attempts, successes, revenue (USD) and success rate of charges created on [start, end] (UTC days),
    computed from the rendered charges and their balance transactions, the way docs/stripe.md says."""
    from datetime import date, datetime, timezone

    first, last = date.fromisoformat(start_day), date.fromisoformat(end_day)
    attempts = successful = 0
    revenue = Decimal("0")
    for rec in account._sorted("charge")[0]:
        day = datetime.fromtimestamp(rec.created, timezone.utc).date()
        if not first <= day <= last:
            continue
        ch = account.render(rec, {"data.balance_transaction"})
        attempts += 1
        if ch["status"] != "succeeded":
            continue
        successful += 1
        bt = ch["balance_transaction"]
        if ch["currency"] == "usd":
            revenue += Decimal(ch["amount"]) / 100
        else:
            assert isinstance(bt, dict) and bt["currency"] == "usd"
            revenue += Decimal(bt["amount"]) / 100
    return {"attempts": attempts, "successful": successful, "revenue_usd": revenue.quantize(Decimal("0.01")),
            "success_rate": successful / attempts if attempts else None}

