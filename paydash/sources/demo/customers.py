"""Demo customers and promotion codes, derived from the demo charges (vectorized, seeded).

From the charge mart the demo generator made (`generate_payments`) this builds the
optional marts of the Customers and Promotions pages, coherent with the charges:

- `customers`: one row per customer id found in the charges, signed up before their
  first charge, with a clearly fake name and an `@example.com` address;
- `promotion_codes`: a few dozen codes (percent or amount off, through coupons), created
  over the demo's months, some expiring, some switched off;
- `promotion_usage`: what customers did with the codes in checkout: `applied` on a
  share of the successful charges (with the `validated` just before it), `validated`
  then `cleared` by customers who paid full price, and `failed` tries (an expired code,
  an ineligible customer, a minimum amount not met). Codes are only used after they were
  created; `times_redeemed` counts the applied rows.

No Python loop runs per charge; the cost is a few array passes over the charge mart.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from paydash.sources.demo.payments import DAY, decimal_cents, stripe_ids

FIRST_NAMES = (
    "Ada", "Alan", "Amara", "Ana", "Arjun", "Ben", "Bianca", "Carlos", "Chen", "Chloe", "Dario", "Dina", "Elena",
    "Emeka", "Emma", "Farah", "Felix", "Grace", "Hana", "Hugo", "Ines", "Ivan", "Jade", "Jonas", "Kai", "Keiko",
    "Lars", "Leila", "Liam", "Lucia", "Malik", "Maya", "Mateo", "Nadia", "Noah", "Nora", "Omar", "Olivia", "Pablo",
    "Priya", "Quinn", "Rafael", "Rosa", "Sam", "Sara", "Sofia", "Tariq", "Tessa", "Uma", "Victor", "Wen", "Yara",
    "Yusuf", "Zoe",
)
LAST_NAMES = (
    "Adams", "Alvarez", "Andersen", "Baker", "Bianchi", "Brown", "Campbell", "Chen", "Costa", "Dubois", "Evans",
    "Fischer", "Garcia", "Gonzalez", "Haddad", "Hansen", "Ito", "Jansen", "Johnson", "Kim", "Kowalski", "Larsen",
    "Lee", "Lopez", "Martin", "Meyer", "Moreau", "Murphy", "Nakamura", "Nguyen", "Novak", "Okafor", "Olsen",
    "Patel", "Pereira", "Petrov", "Rossi", "Sato", "Schmidt", "Silva", "Singh", "Smith", "Suzuki", "Taylor",
    "Tanaka", "Walker", "Weber", "Williams", "Wong", "Yilmaz",
)

# (code, percent off or None, amount off in USD cents or None)
CODES = (
    ("WELCOME10", 10, None), ("WELCOME15", 15, None), ("FIRSTMONTH", 50, None), ("SPRING20", 20, None),
    ("SUMMER25", 25, None), ("AUTUMN15", 15, None), ("WINTER30", 30, None), ("BLACKFRIDAY40", 40, None),
    ("CYBERMONDAY35", 35, None), ("NEWYEAR20", 20, None), ("FRIEND10", 10, None), ("REFERRAL20", 20, None),
    ("PARTNER15", 15, None), ("PODCAST10", 10, None), ("YOUTUBE15", 15, None), ("STUDENT50", 50, None),
    ("TEACHER30", 30, None), ("NONPROFIT25", 25, None), ("COMEBACK20", 20, None), ("LOYALTY10", 10, None),
    ("VIP30", 30, None), ("FLASH45", 45, None), ("SAVE5", None, 500), ("SAVE10", None, 1000),
    ("TAKE20", None, 2000), ("GIFT25", None, 2500), ("LAUNCH5", None, 500), ("BETA10", None, 1000),
    ("APPONLY15", 15, None), ("WEEKEND12", 12, None), ("HOLIDAY25", 25, None), ("THANKYOU5", None, 500),
)
FAILURE_REASONS = ("expired", "customer_not_eligible", "minimum_amount_not_met", "first_time_order_only")

APPLIED_SHARE = 0.03  # of successful charges
CLEARED_SHARE = 0.006  # of successful charges without a code: validated, then removed
FAILED_SHARE = 0.004  # of all charges: a code that did not work


def _strings(values) -> pa.Array:  # noqa: ANN001
    return pa.array(list(values), type=pa.string())


def _epoch_seconds(times: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return pc.cast(times, pa.int64()).to_numpy(zero_copy_only=False) // 1_000_000


def _timestamps(epoch: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    return pa.array(epoch.astype(np.int64) * 1_000_000, type=pa.timestamp("us"), mask=mask)


def _customers(ids: pa.Array, first_t: np.ndarray, rng: np.random.Generator) -> pa.Table:
    """One row per customer: signed up before the first charge (often minutes, sometimes weeks)."""
    n = len(ids)
    lead = np.where(rng.random(n) < 0.45, rng.integers(60, 3600, size=n), rng.integers(3600, 120 * DAY, size=n))
    first_i = rng.integers(0, len(FIRST_NAMES), size=n)
    last_i = rng.integers(0, len(LAST_NAMES), size=n)
    first = _strings(FIRST_NAMES).take(pa.array(first_i))
    last = _strings(LAST_NAMES).take(pa.array(last_i))
    lower_first = _strings(n.lower() for n in FIRST_NAMES).take(pa.array(first_i))
    lower_last = _strings(n.lower() for n in LAST_NAMES).take(pa.array(last_i))
    number = pc.cast(pa.array(np.arange(1, n + 1)), pa.string())
    # the ordinal keeps every address unique; example.com is reserved for examples (RFC 2606)
    email = pc.binary_join_element_wise(lower_first, ".", lower_last, number, "@example.com", "")
    return pa.table(
        {
            "customer_id": ids,
            "email": email,
            "name": pc.binary_join_element_wise(first, last, " "),
            "created_at": _timestamps(first_t - lead),
        }
    )


def _promotion_codes(start: int, end: int, now: int, rng: np.random.Generator) -> tuple[pa.Table, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The codes, sorted by creation; also (created, expires or -1, percent, amount cents) arrays."""
    n = len(CODES)
    span = max(end - start, DAY)
    # a few codes existed before the first charge, the others appear over the months
    created = np.sort(np.where(np.arange(n) < 4, start - rng.integers(10 * DAY, 60 * DAY, size=n),
                               start + (rng.random(n) * 0.9 * span).astype(np.int64)))
    created[0] = start - 90 * DAY  # at least one code is there from the start
    # some of the newer codes run for a few weeks; the oldest (most shared) ones never expire
    expires = np.where((rng.random(n) < 0.35) & (np.arange(n) >= 6), created + rng.integers(7 * DAY, 60 * DAY, size=n), -1)
    percent = np.array([c[1] if c[1] is not None else 0 for c in CODES], dtype=np.int64)
    amount = np.array([c[2] if c[2] is not None else 0 for c in CODES], dtype=np.int64)
    order = rng.permutation(n)  # which code name is created when
    percent, amount = percent[order], amount[order]
    names = [CODES[i][0] for i in order]
    # codes that share a discount share a coupon, as in Stripe
    coupon_keys = sorted({(int(p), int(a)) for p, a in zip(percent, amount)})
    coupon_ids = stripe_ids("", np.arange(len(coupon_keys)), rng, ordered_width=2, random_width=6)
    coupon_of = pa.array([coupon_keys.index((int(p), int(a))) for p, a in zip(percent, amount)])
    inactive = (expires >= 0) & (expires < now)
    inactive[rng.choice(n, size=2, replace=False)] = True  # switched off by hand
    table = pa.table(
        {
            "promotion_code_id": stripe_ids("promo_1", np.arange(n), rng, ordered_width=4, random_width=14),
            "code": _strings(names),
            "coupon_id": coupon_ids.take(coupon_of),
            "percent_off": pa.array(percent.astype(float), mask=percent == 0),
            "amount_off_usd": _masked_decimal(amount, amount == 0),
            "active": pa.array(~inactive),
            "max_redemptions": pa.array(np.zeros(n, dtype=np.int32), mask=np.ones(n, dtype=bool)),  # set by the caller
            "times_redeemed": pa.array(np.zeros(n, dtype=np.int32)),
            "created_at": _timestamps(created),
            "expires_at": _timestamps(expires, mask=expires < 0),
        }
    )
    return table, created, expires, percent, amount


def _masked_decimal(cents: np.ndarray, null: np.ndarray) -> pa.Array:
    values = decimal_cents(cents)
    return pc.if_else(pa.array(null), pa.scalar(None, values.type), values)


def customer_numbers(ids: pa.Array) -> tuple[np.ndarray, int]:
    """(a number per row identifying its customer, how many numbers there can be).

    The demo's customer ids are fixed-width `cus_` + a base62 ordinal + a random tail
    (`demo.stripe_ids`): the ordinal is read straight from the bytes, which is 20 times
    cheaper than hashing the strings. Other ids are dictionary-encoded.
    """
    width = 4 + 6 + 8
    offsets = np.frombuffer(ids.buffers()[1], dtype=np.int32 if ids.type == pa.string() else np.int64)
    offsets = offsets[ids.offset : ids.offset + len(ids) + 1]
    if ids.null_count == 0 and len(ids) and pa.types.is_string(ids.type) and (np.diff(offsets) == width).all():
        raw = np.frombuffer(ids.buffers()[2], dtype=np.uint8)[offsets[0] : offsets[-1]].reshape(-1, width)
        if (raw[:, :4] == np.frombuffer(b"cus_", dtype=np.uint8)).all():
            d = raw[:, 4:10].astype(np.int64)
            d = d - 48 - 7 * (d >= 65) - 6 * (d >= 97)  # '0'-'9', 'A'-'Z', 'a'-'z' -> 0..61
            if ((d >= 0) & (d < 62)).all():
                number = np.zeros(len(ids), dtype=np.int64)
                for k in range(6):
                    number = number * 62 + d[:, k]
                return number, int(number.max()) + 1
    encoded = pc.dictionary_encode(ids)
    return encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64), len(encoded.dictionary)


def _equals(values: pa.Array, wanted: str) -> np.ndarray:
    if pa.types.is_dictionary(values.type):
        hits = np.flatnonzero(np.array(values.dictionary.to_pylist(), dtype=object) == wanted)
        return np.isin(values.indices.to_numpy(zero_copy_only=False), hits)
    return pc.fill_null(pc.equal(values, wanted), False).to_numpy(zero_copy_only=False)


def _cents(amounts: pa.Array) -> np.ndarray:
    """decimal(p, 2) amounts as integer cents (the low 64 bits of each decimal128)."""
    if amounts.type != pa.decimal128(amounts.type.precision, 2) or amounts.null_count:
        amounts = pc.cast(pc.fill_null(amounts, 0), pa.decimal128(18, 2))
    raw = np.frombuffer(amounts.buffers()[1], dtype=np.int64).reshape(-1, 2)
    return raw[amounts.offset : amounts.offset + len(amounts), 0].copy()


def generate_customer_marts(payments: pa.Table, seed: int = 42, now: int | None = None) -> dict[str, pa.Table]:
    """The customers, promotion codes and promotion usage marts for these demo charges.

    `payments` is `generate_payments`' table (sorted by created_at); `now` (epoch seconds)
    decides which codes have expired, default the last charge.
    """
    rng = np.random.default_rng([seed, 6])
    n = payments.num_rows
    ids = payments["customer_id"].combine_chunks()
    customer, n_customers = customer_numbers(ids)
    t = _epoch_seconds(payments["created_at"])
    # a customer's first charge: the smallest row number (rows are in time order)
    first_rows = np.full(n_customers, n, dtype=np.int64)
    np.minimum.at(first_rows, customer, np.arange(n, dtype=np.int64))
    seen = first_rows < n
    first_rows = np.sort(first_rows[seen])  # customers listed by their first charge
    customers = _customers(ids.take(pa.array(first_rows)), t[first_rows], rng)

    start, end = int(t[0]), int(t[-1])
    now = end if now is None else now
    codes, created, expires, percent, amount = _promotion_codes(start, end, now, rng)
    n_codes = codes.num_rows

    succeeded = _equals(payments["status"].combine_chunks(), "succeeded")
    cents = _cents(payments["amount_usd"].combine_chunks())

    def pick_code(at: np.ndarray) -> np.ndarray:
        # any code created by then; the older ones have had time to spread
        available = np.searchsorted(created, at, side="right")
        return np.minimum((available * rng.random(len(at)) ** 1.6).astype(np.int64), np.maximum(available - 1, 0))

    u = rng.random(n)
    applied_rows = np.flatnonzero(succeeded & (u < APPLIED_SHARE))
    cleared_rows = np.flatnonzero(succeeded & (u >= APPLIED_SHARE) & (u < APPLIED_SHARE + CLEARED_SHARE))
    failed_rows = np.flatnonzero(rng.random(n) < FAILED_SHARE)

    applied_code = pick_code(t[applied_rows])
    # an expired code cannot be applied: the try becomes a failure and the customer pays in full
    expired = (expires[applied_code] >= 0) & (expires[applied_code] < t[applied_rows])
    failed_rows = np.concatenate([failed_rows, applied_rows[expired]])
    failed_code = np.concatenate([pick_code(t[failed_rows[: len(failed_rows) - expired.sum()]]), applied_code[expired]])
    failed_reason = np.concatenate([rng.integers(1, len(FAILURE_REASONS), size=len(failed_rows) - expired.sum()),
                                    np.zeros(expired.sum(), dtype=np.int64)])
    applied_rows, applied_code = applied_rows[~expired], applied_code[~expired]
    cleared_code = pick_code(t[cleared_rows])
    # an expired code does not validate, so nobody clears it
    live = ~((expires[cleared_code] >= 0) & (expires[cleared_code] < t[cleared_rows]))
    cleared_rows, cleared_code = cleared_rows[live], cleared_code[live]

    def discount(rows: np.ndarray, code: np.ndarray) -> np.ndarray:
        full = cents[rows]
        return np.where(percent[code] > 0, np.round(full * percent[code] / 100), np.minimum(amount[code], full)).astype(np.int64)

    n_a, n_c, n_f = len(applied_rows), len(cleared_rows), len(failed_rows)
    validated_lead = rng.integers(20, 600, size=n_a + n_c)
    # kinds: 0 validated, 1 applied, 2 cleared, 3 failed
    row = np.concatenate([applied_rows, applied_rows, cleared_rows, cleared_rows, failed_rows])
    code = np.concatenate([applied_code, applied_code, cleared_code, cleared_code, failed_code])
    kind = np.concatenate([np.zeros(n_a, np.int8), np.ones(n_a, np.int8), np.zeros(n_c, np.int8),
                           np.full(n_c, 2, np.int8), np.full(n_f, 3, np.int8)])
    at = np.concatenate([
        t[applied_rows] - validated_lead[:n_a],
        t[applied_rows] - rng.integers(1, 15, size=n_a),
        t[cleared_rows] - validated_lead[n_a:],
        t[cleared_rows] - rng.integers(5, 20, size=n_c),
        t[failed_rows] - rng.integers(10, 900, size=n_f),
    ])
    # a use never precedes the code's creation (the validation lead can reach back over it)
    at = np.maximum(at, created[code] + 1)
    with_discount = kind <= 1
    disc = np.zeros(len(row), dtype=np.int64)
    disc[:n_a] = disc[n_a : 2 * n_a] = discount(applied_rows, applied_code)
    disc[2 * n_a : 2 * n_a + n_c] = discount(cleared_rows, cleared_code)
    reason = np.full(len(row), -1, dtype=np.int64)
    reason[2 * n_a + 2 * n_c :] = failed_reason

    order = np.argsort(at, kind="stable")
    row, code, kind, at, disc, reason, with_discount = (a[order] for a in (row, code, kind, at, disc, reason, with_discount))
    # one checkout session per charge: a validation and the use that follows share it
    charges, session_of = np.unique(row, return_inverse=True)
    sessions = stripe_ids("cs_live_", charges, rng, ordered_width=8, random_width=16).take(pa.array(session_of))
    usage = pa.table(
        {
            "usage_id": stripe_ids("pcu_", np.arange(len(row)), rng, ordered_width=8, random_width=8),
            "promotion_code_id": codes["promotion_code_id"].combine_chunks().take(pa.array(code)),
            "code": codes["code"].combine_chunks().take(pa.array(code)),
            "customer_id": ids.take(pa.array(row)),
            "action": pa.DictionaryArray.from_arrays(pa.array(kind.astype(np.int32)),
                                                     _strings(("validated", "applied", "cleared", "failed"))),
            "occurred_at": _timestamps(at),
            "checkout_session_id": sessions,
            "invoice_id": pa.nulls(len(row), pa.string()),
            "discount_usd": _masked_decimal(disc, ~with_discount),
            "failure_reason": pa.DictionaryArray.from_arrays(pa.array(np.maximum(reason, 0).astype(np.int32), mask=reason < 0),
                                                             _strings(FAILURE_REASONS)),
        }
    )
    redeemed = np.bincount(applied_code, minlength=n_codes).astype(np.int32)
    # some codes are capped, above what they have been used so far
    capped = rng.random(n_codes) < 0.3
    cap = (np.ceil((redeemed + 1) * rng.uniform(1.1, 3.0, size=n_codes) / 10) * 10).astype(np.int32)
    codes = codes.set_column(codes.schema.get_field_index("times_redeemed"), "times_redeemed", pa.array(redeemed))
    codes = codes.set_column(codes.schema.get_field_index("max_redemptions"), "max_redemptions", pa.array(cap, mask=~capped))
    return {"customers": customers, "promotion_codes": codes, "promotion_usage": usage}


def customer_summary_marts(payments: pa.Table) -> dict[str, pa.Table]:
    """The customer-totals and customer-months marts of these charges, computed in numpy.

    The same numbers as `paydash.warehouse.customer_totals`' SQL (tested equal), for the
    demo's speed: the SQL aggregates cost 3 s per million charges on DuckDB (grouping by
    a random string id), these a few array passes.
    """
    n = payments.num_rows
    ids = payments["customer_id"].combine_chunks()
    customer, size = customer_numbers(ids)
    t_us = pc.cast(payments["created_at"], pa.int64()).to_numpy(zero_copy_only=False)
    status = payments["status"].combine_chunks()
    succeeded = _equals(status, "succeeded")
    failed = _equals(status, "failed")
    first_attempt = pc.equal(payments["attempt_number"], 1).to_numpy(zero_copy_only=False)
    cents = _cents(payments["amount_usd"].combine_chunks())
    rows = np.arange(n, dtype=np.int64)
    first = np.full(size, n, dtype=np.int64)
    np.minimum.at(first, customer, rows)
    last = np.full(size, -1, dtype=np.int64)
    np.maximum.at(last, customer, rows)
    first_success = np.full(size, n, dtype=np.int64)
    np.minimum.at(first_success, customer[succeeded], rows[succeeded])
    seen = np.flatnonzero(first < n)

    def count(mask: np.ndarray | None = None) -> pa.Array:
        return pa.array(np.bincount(customer, weights=mask, minlength=size)[seen].astype(np.int64))

    revenue = np.bincount(customer, weights=np.where(succeeded, cents, 0), minlength=size)[seen].astype(np.int64)
    has_success = first_success[seen] < n
    t_times = payments["created_at"].combine_chunks()
    totals = pa.table({
        "customer_id": ids.take(pa.array(first[seen])),
        "payments": count(first_attempt),
        "attempts": count(),
        "successful": count(succeeded),
        "failed": count(failed),
        "revenue_usd": decimal_cents(revenue, 14),
        "first_payment_at": t_times.take(pa.array(first[seen])),
        "last_payment_at": t_times.take(pa.array(last[seen])),
        "first_success_at": t_times.take(pa.array(np.where(has_success, first_success[seen], 0), mask=~has_success)),
    })

    # months of created_date (the reporting timezone's day), counted on a dense
    # (customer, month) grid: a handful of months per customer
    days = payments["created_date"].combine_chunks().cast(pa.int32()).to_numpy(zero_copy_only=False)
    month = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    low = int(month.min())
    span = int(month.max()) - low + 1
    key = customer[succeeded] * span + (month[succeeded] - low)
    per_key = np.bincount(key, minlength=size * span)
    revenue_key = np.bincount(key, weights=cents[succeeded], minlength=size * span)
    pairs = np.flatnonzero(per_key)  # customer-major, so each customer's first pair is its cohort
    pair_customer, pair_month = pairs // span, pairs % span + low
    starts = np.concatenate(([True], pair_customer[1:] != pair_customer[:-1]))
    cohort = pair_month[np.flatnonzero(starts)[np.cumsum(starts) - 1]]

    def month_dates(m: np.ndarray) -> pa.Array:
        return pa.array(m.astype("datetime64[M]").astype("datetime64[D]"), type=pa.date32())

    months = pa.table({
        "customer_id": ids.take(pa.array(first[pair_customer])),
        "month": month_dates(pair_month),
        "cohort_month": month_dates(cohort),
        "successful": pa.array(per_key[pairs].astype(np.int64)),
        "revenue_usd": decimal_cents(revenue_key[pairs].astype(np.int64), 14),
    })
    return {"customer_totals": totals, "customer_months": months}


def load_customer_marts(wh, payments: pa.Table, seed: int) -> dict[str, int]:  # noqa: ANN001
    """Create and fill the customers and promotion marts for the demo charges (before the
    derived marts are built: the customer summaries of an earlier demo are dropped, so
    `rebuild_derived_marts` does not refresh them; `finish_customer_marts` writes them)."""

    from paydash.warehouse import load

    tables = generate_customer_marts(payments, seed)
    with wh.write() as conn:
        load.recreate_tables(conn, (getattr(wh.marts, name) for name in tables))
        wh.marts.customer_totals.drop(conn, checkfirst=True)
        wh.marts.customer_months.drop(conn, checkfirst=True)
    for name, data in tables.items():
        load.load_arrow(wh, getattr(wh.marts, name), data)
    return {name: data.num_rows for name, data in tables.items()}


def finish_customer_marts(wh, payments: pa.Table) -> None:  # noqa: ANN001
    """The customer-totals and customer-months marts (computed here, kept by
    `rebuild_derived_marts` from then on), then the pages' indexes."""
    from paydash.warehouse import customer_totals, load

    summaries = customer_summary_marts(payments)
    with wh.write() as conn:
        customer_totals.create_customer_totals(conn, wh.marts)
    for name, data in summaries.items():
        load.load_arrow(wh, getattr(wh.marts, name), data)
    index_customer_marts(wh)


def index_customer_marts(wh) -> None:  # noqa: ANN001
    """Indexes for the pages' lookups (after the marts are filled), then fresh statistics
    (which, per engine: paydash/warehouse/indexes.py)."""
    from paydash.warehouse import indexes

    indexes.create(wh, indexes.CUSTOMER_INDEXES)
    indexes.refresh_statistics(wh, (getattr(wh.marts, m) for m in indexes.CUSTOMER_MARTS), vacuum=True)
