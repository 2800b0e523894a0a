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
OpenAPI fixtures) only when served, so 100k charges fit in little memory.
"""

from __future__ import annotations

import bisect
import json
import random
import threading
import time
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlsplit

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

    # -- building -----------------------------------------------------------------------
    def new_id(self, kind: str) -> str:
        self.counter += 1
        return make_id(kind, self.counter)

    def add(self, kind: str, created: int, **fields: Any) -> Rec:
        rec = Rec(kind, fields.pop("id", None) or self.new_id(kind), int(created), fields)
        self.records[kind].append(rec)
        self.by_id[rec.id] = rec
        self._index.pop(kind, None)
        return rec

    def update(self, obj_id: str, **fields: Any) -> None:
        self.by_id[obj_id].f.update(fields)

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
                 start: int | None = None) -> "Account":
        """About `charges` charges of a small business over `days` days ending at `end`, with their
        payment intents (retries), balance transactions (EUR and JPY settled in USD), customers,
        refunds, disputes, checkout sessions (some with a promotion code), coupons, promotion codes
        and invoices."""
        acct = cls()
        acct.extend(charges, seed, end=end, days=days, start=start)
        return acct

    def extend(self, charges: int, seed: int, end: int | None = None, days: int = 30, start: int | None = None) -> None:
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
                  balance_transaction=f.get("bt"), amount_refunded=0, refunded=False)
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
        x.update(amount=r.f["amount"], currency=r.f["currency"], charge=r.f["charge"],
                 payment_intent=r.f["payment_intent"], status="succeeded", reason="requested_by_customer")
        return x

    def _render_dispute(self, r: Rec, expand: set[str]) -> dict:
        x = _template("dispute")
        x.update(amount=r.f["amount"], currency=r.f["currency"], charge=r.f["charge"],
                 payment_intent=r.f["payment_intent"], status="needs_response", reason="fraudulent")
        return x

    def _render_checkout_session(self, r: Rec, expand: set[str]) -> dict:
        f = r.f
        s = _template("checkout.session")
        promo = f.get("promo")
        s.update(payment_intent=f["payment_intent"], customer=f["customer"], currency=f["currency"],
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
                 headers: dict[str, str] | None = None):
        self.status, self.type, self.message, self.param, self.headers = status, type_, message, param, headers or {}


@dataclass
class Served:
    method: str
    path: str
    params: dict[str, Any]
    status: int
    at: float
    ids: tuple[str, ...] = ()


class FakeStripe:
    """The server: start() -> base URL; `requests` records what was asked and answered."""

    def __init__(self, account: Account, secret_keys: tuple[str, ...] = ("sk_test_fakesecret000000000000",),
                 restricted_keys: tuple[str, ...] = ("rk_test_fakerestricted0000000000",)):
        self.account = account
        self.secret_keys = set(secret_keys)
        self.restricted_keys = set(restricted_keys)
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
            if not path.startswith("/v1/") or path[4:] not in RESOURCES:
                raise ApiError(404, "invalid_request_error", f"Unrecognized request URL (GET: {path}).")
            if method != "GET":
                if key in self.restricted_keys:
                    raise ApiError(403, "invalid_request_error",
                                   "The provided key 'rk_test_***' does not have the required permissions for this endpoint")
                raise ApiError(400, "invalid_request_error", "This fake only lists objects.")
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
            self._send(handler, exc.status, {"error": error}, exc.headers)
            status = exc.status
        with self._lock:
            self.requests.append(Served(method, path, params, status, time.monotonic(), ids))

    def _authorize(self, handler: BaseHTTPRequestHandler, method: str) -> str:
        auth = handler.headers.get("Authorization") or ""
        key = auth.removeprefix("Bearer ").strip()
        if key in self.secret_keys or key in self.restricted_keys:
            return key
        shown = key if self.leak_key_in_errors else (key[:8] + "*" * max(len(key) - 12, 0) + key[-4:])
        raise ApiError(401, "invalid_request_error", f"Invalid API Key provided: {shown}")

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

