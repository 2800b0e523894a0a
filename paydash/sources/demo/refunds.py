"""Demo refunds and disputes, derived from the demo charges (vectorized, seeded).

Coherent with the charge mart `generate_payments` made:

- refunds: about 3% of successful charges, a third of them partial (a share of the
  charge, never more); created after the charge (hours to weeks), never after `now`;
  mostly succeeded, some still pending in the last day, a few failed or canceled;
- disputes: about 0.4% of successful charges not refunded in full, for the whole amount,
  3 to 60 days after the charge; evidence due 7 to 10 days after the dispute. The status
  follows its age: needs_response (warning_needs_response for inquiries) until the
  evidence is due, then under_review (warning_under_review), then after about a month
  won or lost (warning_closed for inquiries).

Rows are in created_at order (DuckDB's zone maps serve the Overview's ranges); ids sort
with time like the charges'. No Python loop runs per row.
"""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from paydash.sources.demo.payments import DAY, decimal_cents, labels, stripe_ids

REFUND_SHARE = 0.03  # of successful charges
PARTIAL_SHARE = 0.33  # of refunds
DISPUTE_SHARE = 0.004  # of successful charges not fully refunded
INQUIRY_SHARE = 0.12  # of disputes: an inquiry (warning_*) before a chargeback
REFUND_REASONS = (("requested_by_customer", 0.72), ("duplicate", 0.12), ("fraudulent", 0.08), (None, 0.08))
DISPUTE_REASONS = (
    ("fraudulent", 0.42), ("product_not_received", 0.18), ("subscription_canceled", 0.12),
    ("unrecognized", 0.1), ("duplicate", 0.06), ("product_unacceptable", 0.06), ("general", 0.06),
)
DISPUTE_STATUS_NAMES = ("needs_response", "under_review", "won", "lost",
                        "warning_needs_response", "warning_under_review", "warning_closed")
REFUND_STATUS_NAMES = ("succeeded", "pending", "failed", "canceled")


def _pick(rng: np.random.Generator, options, n: int) -> np.ndarray:
    w = np.array([o[1] for o in options], dtype=float)
    return rng.choice(len(options), size=n, p=w / w.sum())


def _micros(array: pa.ChunkedArray) -> np.ndarray:
    return pc.cast(array, pa.int64()).to_numpy()


def generate_refunds_disputes(payments: pa.Table, now: datetime, seed: int) -> dict[str, pa.Table]:
    """{'refunds': table, 'disputes': table} in the marts' column order, sorted by created_at."""
    rng = np.random.default_rng(seed + 7)
    now_us = int(now.replace(tzinfo=timezone.utc).timestamp()) * 1_000_000
    ok = np.flatnonzero(pc.equal(payments["status"].cast(pa.string()), "succeeded").to_numpy(zero_copy_only=False))
    created = _micros(payments["created_at"])[ok]
    cents = np.round(pc.cast(payments["amount_usd"], pa.float64()).to_numpy() * 100).astype(np.int64)[ok]

    # -- refunds
    chosen = rng.random(len(ok)) < REFUND_SHARE
    r = np.flatnonzero(chosen)
    n = len(r)
    delay = (rng.exponential(4.0, size=n) * DAY + rng.integers(600, 6 * 3600, size=n)).astype(np.int64) * 1_000_000
    r_created = created[r] + delay
    alive = r_created < now_us
    r, r_created = r[alive], r_created[alive]
    n = len(r)
    partial = rng.random(n) < PARTIAL_SHARE
    share = rng.uniform(0.1, 0.9, size=n)
    r_cents = np.where(partial, np.maximum(1, np.floor(cents[r] * share)), cents[r]).astype(np.int64)
    recent = r_created > now_us - DAY * 1_000_000
    roll = rng.random(n)
    r_status = np.where(recent & (roll < 0.3), 1, np.where(roll > 0.99, 2, np.where(roll > 0.985, 3, 0)))
    fully_refunded = np.zeros(len(ok), dtype=bool)
    fully_refunded[r[(~partial) & (r_status == 0)]] = True
    order = np.argsort(r_created, kind="stable")
    r, r_created, r_cents, r_status = r[order], r_created[order], r_cents[order], r_status[order]
    rows = ok[r]
    refunds = pa.table({
        "refund_id": stripe_ids("re_3", np.arange(n), rng, ordered_width=8, random_width=15),
        "charge_id": payments["charge_id"].take(pa.array(rows)),
        "payment_intent_id": payments["payment_intent_id"].take(pa.array(rows)),
        "amount_usd": decimal_cents(r_cents),
        "currency": payments["currency"].take(pa.array(rows)).cast(pa.string()),
        "status": labels(r_status, REFUND_STATUS_NAMES),
        "reason": _reason_labels(_pick(rng, REFUND_REASONS, n), REFUND_REASONS),
        "created_at": pa.array(r_created, type=pa.timestamp("us")),
    })

    # -- disputes
    d = np.flatnonzero((rng.random(len(ok)) < DISPUTE_SHARE) & ~fully_refunded)
    m = len(d)
    d_created = created[d] + rng.integers(3 * DAY, 60 * DAY, size=m) * 1_000_000
    alive = d_created < now_us
    d, d_created = d[alive], d_created[alive]
    m = len(d)
    due = d_created + rng.integers(7 * DAY, 10 * DAY, size=m) * 1_000_000
    closes = due + rng.integers(14 * DAY, 40 * DAY, size=m) * 1_000_000
    inquiry = rng.random(m) < INQUIRY_SHARE
    won = rng.random(m) < 0.38
    stage = np.where(now_us < due, 0, np.where(now_us < closes, 1, np.where(won, 2, 3)))
    status = np.where(inquiry, np.minimum(stage, 2) + 4, stage)
    order = np.argsort(d_created, kind="stable")
    d, d_created, due, status = d[order], d_created[order], due[order], status[order]
    rows = ok[d]
    disputes = pa.table({
        "dispute_id": stripe_ids("dp_1", np.arange(m), rng, ordered_width=8, random_width=15),
        "charge_id": payments["charge_id"].take(pa.array(rows)),
        "payment_intent_id": payments["payment_intent_id"].take(pa.array(rows)),
        "amount_usd": decimal_cents(cents[d]),
        "currency": payments["currency"].take(pa.array(rows)).cast(pa.string()),
        "status": labels(status, DISPUTE_STATUS_NAMES),
        "reason": _reason_labels(_pick(rng, DISPUTE_REASONS, m), DISPUTE_REASONS),
        "created_at": pa.array(d_created, type=pa.timestamp("us")),
        "evidence_due_by": pa.array(due, type=pa.timestamp("us")),
    })
    return {"refunds": refunds, "disputes": disputes}


def _reason_labels(index: np.ndarray, options) -> pa.DictionaryArray:  # noqa: ANN001
    names = [name or "" for name, _ in options]
    empty = np.array([name is None for name, _ in options])[index] if len(index) else None
    return labels(index, names, null=empty)


def load_refund_disputes(wh, payments: pa.Table, now: datetime, seed: int) -> dict[str, int]:  # noqa: ANN001
    """Create, fill and index the refunds and disputes marts for the demo charges."""
    from paydash.warehouse import indexes, load

    tables = generate_refunds_disputes(payments, now, seed)
    with wh.write() as conn:
        load.recreate_tables(conn, (getattr(wh.marts, name) for name in tables))
    for name, data in tables.items():
        load.load_arrow(wh, getattr(wh.marts, name), data)
    # a payment's detail looks its refunds and disputes up by payment intent; the Overview
    # reads ranges of created_at (per engine: paydash/warehouse/indexes.py)
    indexes.create(wh, indexes.REFUND_INDEXES)
    return {name: data.num_rows for name, data in tables.items()}
