"""Deterministic, vectorized demo data: Stripe-like charge attempts at any size.

The same function builds the demo database, the test fixtures and the benchmark data.
It makes coherent data: customers who join over time and buy again, payment intents with
1-3 attempts where some first failures are won back by a retry, real Stripe decline codes
mapped through `paydash.decline_codes`, funnels, card brands and countries, several
currencies converted to USD, weekday and hour seasonality, growth, and incidents (hours
where failures spike) so charts and alerts have something to show.

Everything is numpy; no Python loop runs per payment. The output is a pyarrow Table in
the data contract's column order (then the optional card_last4 and paydash's id sketches),
sorted by created_at
(DuckDB's zone maps like that).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Callable
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow as pa

from paydash.decline_codes import CATEGORIES, DECLINE_CODES
from paydash.warehouse import id_sketch

DAY = 86_400

FUNNELS = (("main_funnel", 0.52), ("mobile_app", 0.22), ("paid_social", 0.16), ("partner_referral", 0.10))
# country, weight, currency, extra failure probability
COUNTRIES = (
    ("US", 0.48, "usd", 0.00),
    ("GB", 0.10, "gbp", 0.01),
    ("CA", 0.08, "cad", 0.00),
    ("DE", 0.07, "eur", 0.01),
    ("FR", 0.05, "eur", 0.02),
    ("AU", 0.05, "aud", 0.01),
    ("NL", 0.03, "eur", 0.01),
    ("ES", 0.03, "eur", 0.03),
    ("JP", 0.04, "jpy", 0.02),
    ("BR", 0.04, "brl", 0.08),
    ("IN", 0.03, "inr", 0.10),
)
BRANDS = (("visa", 0.54), ("mastercard", 0.30), ("amex", 0.10), ("discover", 0.03), ("jcb", 0.02), ("unionpay", 0.01))
# USD per unit of currency (fixed demo rates), and whether the currency has decimals
FX_TO_USD = {"usd": 1.0, "eur": 1.08, "gbp": 1.27, "cad": 0.73, "aud": 0.66, "jpy": 0.0067, "brl": 0.18, "inr": 0.012}
ZERO_DECIMAL = {"jpy"}
PRICES_USD = ((9.99, 0.16), (19.99, 0.24), (29.0, 0.18), (49.0, 0.17), (99.0, 0.13), (149.0, 0.07), (299.0, 0.05))

# Decline codes of everyday failures (weights within failures).
BASELINE_CODES = (
    ("do_not_honor", 0.17),
    ("generic_decline", 0.16),
    ("insufficient_funds", 0.22),
    ("card_velocity_exceeded", 0.02),
    ("authentication_required", 0.09),
    ("expired_card", 0.07),
    ("incorrect_cvc", 0.04),
    ("incorrect_number", 0.02),
    ("incorrect_zip", 0.02),
    ("fraudulent", 0.03),
    ("highest_risk_level", 0.02),
    ("lost_card", 0.01),
    ("processing_error", 0.04),
    ("issuer_not_available", 0.01),
    ("card_not_supported", 0.03),
    ("currency_not_supported", 0.01),
    ("transaction_not_allowed", 0.02),
    ("try_again_later", 0.01),
    ("duplicate_transaction", 0.01),
)
# Chance that a failure in this category is retried, and that the retry wins.
RETRY = {
    "card_declined": (0.55, 0.30),
    "insufficient_funds": (0.80, 0.45),
    "authentication_required": (0.70, 0.65),
    "incorrect_details": (0.75, 0.75),
    "expired_card": (0.50, 0.60),
    "card_unusable": (0.35, 0.40),
    "fraud_block": (0.05, 0.10),
    "processing_error": (0.85, 0.80),
    "other": (0.30, 0.30),
}
WEEKDAY_FACTOR = np.array([1.00, 1.03, 1.04, 1.01, 0.96, 0.80, 0.76])  # Monday first
HOUR_FACTOR = np.array(
    [0.35, 0.25, 0.18, 0.14, 0.13, 0.17, 0.30, 0.50, 0.75, 0.95, 1.05, 1.12,
     1.20, 1.15, 1.08, 1.05, 1.07, 1.12, 1.25, 1.38, 1.40, 1.25, 0.95, 0.60]
)
LAST4 = pa.array([f"{i:04d}" for i in range(10_000)], type=pa.string())
DAY_NAMES = np.array(["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"])


@dataclass(frozen=True)
class Incident:
    """Hours when first attempts fail far more often, with these decline codes."""

    name: str
    days_before_end: int
    start_hour: int
    hours: float
    failure_rate: float
    codes: tuple[tuple[str, float], ...]


DEFAULT_INCIDENTS = (
    Incident("issuer outage", 9, 14, 3.0, 0.45, (("processing_error", 0.5), ("issuer_not_available", 0.3), ("try_again_later", 0.2))),
    Incident("fraud wave", 23, 2, 5.0, 0.30, (("fraudulent", 0.5), ("highest_risk_level", 0.3), ("stolen_card", 0.2))),
    Incident("3DS provider degradation", 51, 10, 8.0, 0.25, (("authentication_required", 0.7), ("authentication_not_handled", 0.3))),
)


@dataclass(frozen=True)
class DemoSpec:
    payments: int = 300_000
    days: int = 90
    seed: int = 42
    end: date | None = None  # default: today in tz
    tz: str = "UTC"
    now: datetime | None = None  # naive UTC; default: the real now (or the end of `end`)
    incidents: tuple[Incident, ...] = DEFAULT_INCIDENTS
    base_failure_rate: float = 0.095
    growth: float = 0.35  # volume at the end relative to the start, minus one
    extra: dict = field(default_factory=dict, compare=False)

    def resolved_end(self) -> date:
        return self.end or datetime.now(ZoneInfo(self.tz)).date()

    def resolved_now(self) -> datetime:
        end = self.resolved_end()
        end_of_range = datetime.combine(end + timedelta(days=1), datetime.min.time(), tzinfo=ZoneInfo(self.tz))
        end_utc = end_of_range.astimezone(timezone.utc).replace(tzinfo=None)
        if self.now is not None:
            return min(self.now, end_utc)
        real_now = datetime.now(timezone.utc).replace(tzinfo=None)
        return min(real_now, end_utc)


def _choice(rng: np.random.Generator, options, n: int) -> np.ndarray:
    """Indices into `options` ((value, weight) pairs) drawn by weight."""
    w = np.array([o[1] for o in options], dtype=float)
    return rng.choice(len(options), size=n, p=w / w.sum())


def _base62_rows(values: np.ndarray, width: int) -> np.ndarray:
    """(width, n) uint8 base62 digits of `values`, most significant first, one row per digit."""
    v = values.astype(np.uint64)
    out = np.empty((width, len(v)), dtype=np.uint8)
    for k in range(width - 1, -1, -1):
        q = v // np.uint64(62)
        out[k] = (v - q * np.uint64(62)).astype(np.uint8)
        v = q
    return _digits_to_ascii(out)


def _digits_to_ascii(d: np.ndarray) -> np.ndarray:
    """0-61 -> '0'-'9', 'A'-'Z', 'a'-'z', with vector arithmetic (no table lookups)."""
    return d + np.uint8(48) + np.uint8(7) * (d >= 10) + np.uint8(6) * (d >= 36)


def stripe_ids(prefix: str, ordinal: np.ndarray, rng: np.random.Generator, ordered_width: int = 8, random_width: int = 14) -> pa.Array:
    """Ids like Stripe's: prefix + base62 ordinal (unique, and sorting like `ordinal`) + random tail."""
    n = len(ordinal)
    rows = np.empty((len(prefix) + ordered_width + random_width, n), dtype=np.uint8)
    rows[: len(prefix)] = np.frombuffer(prefix.encode(), dtype=np.uint8)[:, None]
    rows[len(prefix) : len(prefix) + ordered_width] = _base62_rows(ordinal, ordered_width)
    tail = np.frombuffer(rng.bytes(random_width * n), dtype=np.uint8).reshape(random_width, n) % np.uint8(62)
    rows[len(prefix) + ordered_width :] = _digits_to_ascii(tail)
    data = np.ascontiguousarray(rows.T)  # one id per row, back to back
    width = rows.shape[0]
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32 if (n + 1) * width < 2**31 else np.int64)
    kind = pa.string() if offsets.dtype == np.int32 else pa.large_string()
    return pa.Array.from_buffers(kind, n, [None, pa.py_buffer(offsets), pa.py_buffer(data)])


def decimal_cents(cents: np.ndarray, precision: int = 12) -> pa.Array:
    """An Arrow decimal(precision, 2) array from integer cents, exactly (no float on the way)."""
    raw = np.zeros((len(cents), 2), dtype=np.int64)
    raw[:, 0] = cents
    raw[:, 1] = np.where(cents < 0, -1, 0)
    return pa.Array.from_buffers(pa.decimal128(precision, 2), len(cents), [None, pa.py_buffer(raw)])


def _sample_times(rng: np.random.Generator, n: int, spec: DemoSpec) -> np.ndarray:
    """Local wall-clock seconds since the start day's midnight, with growth and seasonality."""
    days = spec.days
    start = spec.resolved_end() - timedelta(days=days - 1)
    weekday = (np.arange(days) + start.weekday()) % 7
    day_w = (1 + spec.growth * np.arange(days) / max(days - 1, 1)) * WEEKDAY_FACTOR[weekday]
    day_w *= 1 + 0.06 * np.sin(np.arange(days) * 0.9)  # a little irregularity
    day_idx = rng.choice(days, size=n, p=day_w / day_w.sum())
    hour_idx = rng.choice(24, size=n, p=HOUR_FACTOR / HOUR_FACTOR.sum())
    return day_idx.astype(np.int64) * DAY + hour_idx * 3600 + rng.integers(0, 3600, size=n)


def local_to_utc_epoch(local_seconds: np.ndarray, spec: DemoSpec) -> np.ndarray:
    """Seconds since the Unix epoch (UTC) of local wall-clock seconds from the start day."""
    start = spec.resolved_end() - timedelta(days=spec.days - 1)
    base = int(datetime.combine(start, datetime.min.time(), tzinfo=timezone.utc).timestamp())
    naive = local_seconds + base
    if spec.tz == "UTC":
        return naive
    import pandas as pd

    local = pd.to_datetime(naive, unit="s").tz_localize(spec.tz, ambiguous=True, nonexistent="shift_forward")
    # as_unit: pandas keeps the unit it was given (seconds here), so asi8 alone is not nanoseconds
    return local.tz_convert("UTC").tz_localize(None).as_unit("s").asi8.astype(np.int64)


def generate_payments(spec: DemoSpec = DemoSpec(), progress: Callable[[str], None] | None = None) -> pa.Table:
    """Exactly `spec.payments` charge attempts as a pyarrow Table in contract order."""
    say = progress or (lambda _msg: None)
    n_target = spec.payments
    if n_target <= 0:
        raise ValueError("the demo needs at least one payment")
    rng = np.random.default_rng(spec.seed)
    now_epoch = int(spec.resolved_now().replace(tzinfo=timezone.utc).timestamp())
    code_names = [c for c, _ in BASELINE_CODES] + sorted(
        {c for i in spec.incidents for c, _ in i.codes} - {c for c, _ in BASELINE_CODES}
    )
    code_category = [DECLINE_CODES[c].category for c in code_names]
    category_names = list(CATEGORIES)
    code_cat_idx = np.array([category_names.index(c) for c in code_category])
    retry_p = np.array([RETRY[c][0] for c in category_names])
    win_p = np.array([RETRY[c][1] for c in category_names])
    baseline_p = np.zeros(len(code_names))
    baseline_p[: len(BASELINE_CODES)] = [w for _, w in BASELINE_CODES]
    baseline_p /= baseline_p.sum()

    say("sampling payment intents")
    pool = n_target + 64  # intents average ~1.08 attempts, so one round is nearly always enough
    while True:
        local_t1 = _sample_times(rng, pool, spec)
        t1 = local_to_utc_epoch(local_t1, spec)
        alive = t1 < now_epoch
        by_time = np.argsort(t1)
        # Customers join over time and buy again, recent joiners more often; a customer
        # keeps one card (brand, country) and mostly one acquisition funnel.
        n_customers = max(1, int(pool * 0.42))
        join = np.sort(t1[rng.integers(0, pool, size=n_customers)] - rng.integers(0, 20 * DAY, size=n_customers))
        joined = np.empty(pool, dtype=np.int64)
        # searching in time order keeps the lookups cache-friendly
        joined[by_time] = np.searchsorted(join, t1[by_time], side="right")
        np.maximum(joined, 1, out=joined)
        customer = np.minimum((joined * rng.random(pool) ** 0.3).astype(np.int64), joined - 1)
        c_country = _choice(rng, COUNTRIES, n_customers)
        country = c_country[customer]

        # First attempts: a baseline failure rate by card country, spiking during incidents.
        p_fail = (spec.base_failure_rate + np.array([c[3] for c in COUNTRIES]))[country]
        forced_code = np.full(pool, -1, dtype=np.int64)
        for inc in spec.incidents:
            start_local = (spec.days - 1 - inc.days_before_end) * DAY + inc.start_hour * 3600
            hit = np.flatnonzero((local_t1 >= start_local) & (local_t1 < start_local + inc.hours * 3600))
            hit = hit[rng.random(len(hit)) < inc.failure_rate]
            inc_codes = np.array([code_names.index(c) for c, _ in inc.codes])
            inc_w = np.array([w for _, w in inc.codes])
            forced_code[hit] = inc_codes[rng.choice(len(inc_codes), size=len(hit), p=inc_w / inc_w.sum())]
        fail1 = (rng.random(pool) < p_fail) | (forced_code >= 0)

        # Retries, worked out only for the intents whose first attempt failed.
        f = np.flatnonzero(fail1 & alive)
        nf = len(f)
        codes1 = np.where(forced_code[f] >= 0, forced_code[f], rng.choice(len(code_names), size=nf, p=baseline_p))
        cat1 = code_cat_idx[codes1]
        retry2 = rng.random(nf) < retry_p[cat1]
        quick = rng.random(nf) < 0.55  # the customer retries at once; else dunning days later
        t2 = t1[f] + np.where(quick, rng.integers(30, 1800, size=nf), rng.integers(6 * 3600, 4 * DAY, size=nf))
        win2 = rng.random(nf) < win_p[cat1]
        codes2 = np.where(rng.random(nf) < 0.7, codes1, rng.choice(len(code_names), size=nf, p=baseline_p))
        cat2 = code_cat_idx[codes2]
        retry3 = retry2 & ~win2 & (rng.random(nf) < 0.5 * retry_p[cat2])
        t3 = t2 + rng.integers(12 * 3600, 5 * DAY, size=nf)
        win3 = rng.random(nf) < 0.6 * win_p[cat2]
        codes3 = np.where(rng.random(nf) < 0.7, codes2, rng.choice(len(code_names), size=nf, p=baseline_p))
        has2 = retry2 & (t2 < now_epoch)
        has3 = has2 & retry3 & (t3 < now_epoch)

        attempts = alive.astype(np.int64)
        attempts[f] += has2.astype(np.int64) + has3
        if attempts.sum() >= n_target:
            break
        pool = int(pool * 1.25) + 64

    say("building attempts")
    # Keep whole intents in index order (independent of time) until exactly n_target
    # charges; the last kept intent may lose its final retries.
    keep_k = np.clip(n_target - (np.cumsum(attempts) - attempts), 0, attempts)
    pis = by_time[keep_k[by_time] > 0]  # kept intents, in time order of their first attempt
    n_pi = len(pis)
    pi_rank = np.full(pool, -1, dtype=np.int64)
    pi_rank[pis] = np.arange(n_pi)
    f_keep = keep_k[f]
    a2 = np.flatnonzero(f_keep >= 2)
    a3 = np.flatnonzero(f_keep >= 3)
    a2 = a2[np.argsort(t2[a2])]
    a3 = a3[np.argsort(t3[a3])]
    # attempt rows: (intent, attempt number, time, failed, code); three runs sorted by time
    row_pi = np.concatenate([pis, f[a2], f[a3]])
    row_attempt = np.concatenate([np.ones(n_pi, np.int32), np.full(len(a2), 2, np.int32), np.full(len(a3), 3, np.int32)])
    row_time = np.concatenate([t1[pis], t2[a2], t3[a3]])
    code_of_pi = np.zeros(pool, dtype=np.int64)
    code_of_pi[f] = codes1
    row_code = np.concatenate([code_of_pi[pis], codes2[a2], codes3[a3]])
    row_failed = np.concatenate([fail1[pis], ~win2[a2], ~win3[a3]])

    say("sorting by time")
    order = np.argsort(row_time, kind="stable")  # timsort: merging three sorted runs
    row_pi, row_attempt, row_time, row_code, row_failed = (
        a[order] for a in (row_pi, row_attempt, row_time, row_code, row_failed)
    )
    n = len(row_time)
    pending = (row_time > now_epoch - 600) & (rng.random(n) < 0.15)  # still in flight
    status_idx = np.where(pending, 2, np.where(row_failed, 1, 0)).astype(np.int32)
    is_fail = status_idx == 1

    say("amounts, cards and funnels")
    c_brand = _choice(rng, BRANDS, n_customers)
    c_funnel = _choice(rng, FUNNELS, n_customers)
    pi_funnel = np.where(rng.random(pool) < 0.8, c_funnel[customer], _choice(rng, FUNNELS, pool))
    price = np.array([p for p, _ in PRICES_USD])[_choice(rng, PRICES_USD, pool)]
    country_fx = np.array([FX_TO_USD[c[2]] for c in COUNTRIES])
    country_zero_dec = np.array([c[2] in ZERO_DECIMAL for c in COUNTRIES])
    fx = country_fx[country]
    # local price points (charm pricing, round hundreds for zero-decimal currencies), in USD
    local_price = np.where(country_zero_dec[country], np.round(price / fx, -2), np.round(price / fx) - 0.01)
    local_price = np.where(fx == 1.0, price, local_price)
    pi_cents = np.round(local_price * fx * 100).astype(np.int64)
    row_customer = customer[row_pi]
    row_country = country[row_pi]

    say("making ids")
    # Charges and intents are numbered in time order, like the rows; customers by join time.
    charge_id = stripe_ids("ch_3", np.arange(n), rng, ordered_width=8, random_width=15)
    pi_ids = stripe_ids("pi_3", np.arange(n_pi), rng, ordered_width=8, random_width=15)
    cus_ids = stripe_ids("cus_", np.arange(n_customers), rng, ordered_width=6, random_width=8)
    prof_ids = stripe_ids("prof_", np.arange(n_customers), rng, ordered_width=6, random_width=6)

    say("local calendar fields")
    local_epoch = row_time if spec.tz == "UTC" else _utc_to_local_epoch(row_time, spec.tz)
    local_days = local_epoch // DAY

    # a customer keeps one card; its last four digits from a generator of their own, so the
    # other columns stay what they were for a seed
    c_last4 = np.random.default_rng([spec.seed, 4]).integers(0, 10_000, size=n_customers)

    say("id sketches")
    # each distinct id sketched once (paydash/warehouse/id_sketch.py), then spread to its rows
    charge_sketch = id_sketch.sketch_array(charge_id)
    pi_sketch = id_sketch.sketch_array(pi_ids).take(pa.array(pi_rank[row_pi]))
    cus_sketch = id_sketch.sketch_array(cus_ids).take(pa.array(row_customer))
    prof_sketch = id_sketch.sketch_array(prof_ids).take(pa.array(row_customer))

    fail_mask = ~is_fail
    return pa.table(
        {
            "charge_id": charge_id,
            # plain strings: a dictionary as large as the column costs every reader of each batch
            "payment_intent_id": pi_ids.take(pa.array(pi_rank[row_pi])),
            "customer_id": cus_ids.take(pa.array(row_customer)),
            "profile_id": prof_ids.take(pa.array(row_customer)),
            "status": labels(status_idx, ["succeeded", "failed", "pending"]),
            "is_successful": pa.array(status_idx == 0),
            "amount_usd": decimal_cents(pi_cents[row_pi]),
            "currency": labels(row_country, [c[2] for c in COUNTRIES]),
            "failure_code": labels(row_code, code_names, null=fail_mask),
            "failure_category": labels(row_code, code_category, null=fail_mask),
            "recovery_action": labels(row_code, [CATEGORIES[c][0] for c in code_category], null=fail_mask),
            "attempt_number": pa.array(row_attempt),
            "created_at": pa.array(row_time * 1_000_000, type=pa.timestamp("us")),
            "created_date": pa.array(local_days.astype(np.int32), type=pa.date32()),
            "hour_of_day": pa.array(((local_epoch % DAY) // 3600).astype(np.int32)),
            "day_of_week": labels((local_days + 3) % 7, list(DAY_NAMES)),  # 1970-01-01 was a Thursday
            "funnel_name": labels(pi_funnel[row_pi], [f for f, _ in FUNNELS]),
            "card_brand": labels(c_brand[row_customer], [b for b, _ in BRANDS]),
            "card_country": labels(row_country, [c[0] for c in COUNTRIES]),
            "card_last4": labels(c_last4[row_customer], LAST4),
            "charge_id_sketch": charge_sketch,
            "payment_intent_id_sketch": pi_sketch,
            "customer_id_sketch": cus_sketch,
            "profile_id_sketch": prof_sketch,
        }
    )


def _utc_to_local_epoch(epoch: np.ndarray, tz: str) -> np.ndarray:
    import pandas as pd

    local = pd.to_datetime(epoch, unit="s", utc=True).tz_convert(tz).tz_localize(None)
    return local.as_unit("s").asi8.astype(np.int64)


def labels(index: np.ndarray, names, null: np.ndarray | None = None) -> pa.DictionaryArray:
    """names[index] as a dictionary-encoded string array (null where `null`); no per-row Python."""
    indices = pa.array(np.asarray(index, dtype=np.int32), mask=null)
    dictionary = names if isinstance(names, pa.Array) else pa.array(list(names), type=pa.string())
    return pa.DictionaryArray.from_arrays(indices, dictionary)


def to_plain_strings(table: pa.Table) -> pa.Table:
    """The same table with dictionary columns decoded (for writers that want plain strings)."""
    columns = [
        col.cast(col.type.value_type) if pa.types.is_dictionary(col.type) else col for col in table.columns
    ]
    return pa.table(columns, names=table.column_names)
