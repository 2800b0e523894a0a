"""The Stripe API as paydash reads it: the key (checked, never shown), the object types and their
list endpoints, and `StripeReader`, which lists pages through the official client with paydash's
own retries.

Only GET requests are made, so a restricted key with read access is enough. The key is never
logged, stored or put into an error message (every message from Stripe is scrubbed).

Rate limits: stripe-python retries a 429 only when Stripe sends `Stripe-Should-Retry: true`,
and then ignores `Retry-After`. So the client's own retries are off (max_network_retries=0)
and `StripeReader` retries: 429, 409, 5xx and connection errors, waiting `Retry-After` when
given (else 0.5 s doubling up to 8 s), never when `Stripe-Should-Retry: false`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable

from paydash.errors import ConfigError, PaydashError

log = logging.getLogger("paydash.sync")

DEFAULT_API_BASE = "https://api.stripe.com"
PAGE_LIMIT = 100


class SyncError(PaydashError):
    """The sync stopped (the run is recorded as failed); the message never holds the key."""


class KeyMayNotRead(SyncError):
    """Stripe answered 403: the (restricted) key lacks read access to this resource."""


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


# the Events API: Stripe keeps 30 days of events (reconcile.py)
EVENTS = ObjectType("events", "event", "/v1/events")


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


def header_value(headers: Any, name: str) -> str | None:
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


class ScrubKey(logging.Filter):
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
        for old in [f for f in stripe_logger.filters if isinstance(f, ScrubKey)]:
            stripe_logger.removeFilter(old)
        stripe_logger.addFilter(ScrubKey(api_key))
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
                    refused = KeyMayNotRead if isinstance(exc, stripe.PermissionError) else SyncError
                    raise refused(self._explain(otype, exc)) from None
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
        should = (header_value(headers, "stripe-should-retry") or "").lower()
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
        after = header_value(headers, "retry-after")
        if after is not None:
            try:
                return min(max(float(after), 0.0), self.retry.max_wait)
            except ValueError:
                pass  # an HTTP date: rare from Stripe; back off instead
        return backoff

    def redact(self, text: str) -> str:
        """`text` without this reader's key (or anything shaped like a key)."""
        return redact(text, self._key)

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
                    "coupons, invoices, balance transactions and events")
        if isinstance(exc, stripe.RateLimitError):
            return f"Stripe kept rate-limiting the {what} list (429) after {self.retries} retries; run again later"
        if isinstance(exc, stripe.APIConnectionError):
            # stripe-python wraps the socket error in a paragraph; the user needs the reason
            reason = re.search(r"\[Errno -?\d+\] ([^\"')\]]+)", detail)
            why = reason.group(1).strip() if reason else " ".join(detail.split())[:300]
            return (f"cannot reach the Stripe API at {self.api_base} while reading {what} ({why}); "
                    "check --api-base and the network")
        return f"Stripe answered {status or 'an error'} while reading {what}: {detail}"
