"""Raw Stripe objects -> the marts: which marts an object change touches (`refresh_objects`,
called by the sync for what it loaded and by the receiver for what it queued), and the
optional marts `wh.marts.customers`, `.promotion_codes`, `.promotion_usage`, `.refunds` and
`.disputes` (docs/stripe.md); the charge mart itself is transform.py's.

Each refresh rewrites the mart rows of the objects given (the ones the sync changed):

- customers: one row per raw customer (email, name, created);
- promotion codes: one row per raw promotion code, with its coupon's percent_off and
  amount_off converted to USD like a charge's amount (USD as is, else PAYDASH_FX_RATES,
  zero- and three-decimal currencies respected; else empty with a warning);
- promotion usage: action 'applied' for every promotion code among the discounts of a
  completed checkout session and of a paid invoice (Stripe records no validated, cleared
  or failed uses: those come from your own checkout's events). A checkout session's use
  counts once even when the session also created an invoice carrying the same discount;
- refunds and disputes: one row per raw refund / dispute, its payment intent the object's
  own or else its charge's; amount_usd in proportion to the charge's amount_usd in the
  charge mart (the rate the charge was converted at, so a full refund nets the charge to
  zero), else converted like a promotion code's amount; evidence_due_by from
  evidence_details.due_by.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from collections import defaultdict
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from paydash.currencies import minor_unit_divisor
from paydash.sources.stripe.transform import CENT, MART_LOCK_KEY, TransformOptions, amount_usd, refresh_charges
from paydash.warehouse import locks
from paydash.warehouse import load, rollup
from paydash.warehouse.raw import RawTables, id_of
from paydash.warehouse.schema import Marts
from paydash.warehouse.stripe_objects import ObjectTables, coupon_of_promotion_code

log = logging.getLogger("paydash.stripe")
CHUNK = 500


def optional_marts(marts: Marts) -> tuple[sa.Table, ...]:
    return (marts.customers, marts.promotion_codes, marts.promotion_usage, marts.refunds, marts.disputes)


def create_optional_marts(conn: Connection, marts: Marts) -> None:
    for table in optional_marts(marts):
        if table.schema:
            conn.execute(CreateSchema(table.schema, if_not_exists=True))
        table.create(conn, checkfirst=True)


def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _load(conn: Connection, table: sa.Table, ids: Iterable[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    for part in _chunks(sorted({i for i in ids if i})):
        for key, data in conn.execute(sa.select(table.c.id, table.c.data).where(table.c.id.in_(part))):
            found[key] = json.loads(data)
    return found


def _utc(ts: Any) -> datetime | None:
    if not isinstance(ts, int) or isinstance(ts, bool):
        return None
    return datetime.fromtimestamp(ts, timezone.utc).replace(tzinfo=None)


def _delete_in(conn: Connection, table: sa.Table, column: sa.Column, ids: list[str], *extra) -> None:  # noqa: ANN002
    for part in _chunks(ids):
        conn.execute(table.delete().where(column.in_(part), *extra))


def _insert(conn: Connection, table: sa.Table, rows: list[dict]) -> None:
    load.insert_rows(conn, table, rows)


# -- customers -------------------------------------------------------------------------------
def customer_row(customer: Mapping[str, Any]) -> dict[str, Any]:
    return {"customer_id": customer["id"], "email": customer.get("email"), "name": customer.get("name"),
            "created_at": _utc(customer.get("created"))}


def refresh_customers(conn: Connection, marts: Marts, objects: ObjectTables, ids: Iterable[str]) -> int:
    ids = sorted(set(ids))
    m = marts.customers
    _delete_in(conn, m, m.c.customer_id, ids)
    rows = [customer_row(c) for c in _load(conn, objects.customers, ids).values()]
    _insert(conn, m, rows)
    return len(rows)


# -- promotion codes -------------------------------------------------------------------------
def to_usd(amount: Any, currency: Any, options: TransformOptions, what: str) -> Decimal | None:
    """Minor units of `currency` in USD, as a charge without a balance transaction (stripe_transform.amount_usd)."""
    if not isinstance(amount, int) or not isinstance(currency, str) or not currency:
        return None
    usd = amount_usd({"amount": amount, "currency": currency}, None, options.fx_rates)
    if usd is None:
        log.warning("no USD rate for %s (%s): left empty; add it to PAYDASH_FX_RATES", currency.lower(), what)
    return usd


def promotion_code_row(promo: Mapping[str, Any], coupon: Mapping[str, Any] | None,
                       options: TransformOptions) -> dict[str, Any]:
    coupon = coupon or {}
    percent = coupon.get("percent_off")
    return {
        "promotion_code_id": promo["id"],
        "code": promo.get("code"),
        "coupon_id": coupon_of_promotion_code(promo),
        "percent_off": float(percent) if isinstance(percent, (int, float)) and not isinstance(percent, bool) else None,
        "amount_off_usd": to_usd(coupon.get("amount_off"), coupon.get("currency"), options,
                                 f"amount_off of coupon {coupon.get('id')}"),
        "active": promo.get("active") if isinstance(promo.get("active"), bool) else None,
        "max_redemptions": promo.get("max_redemptions"),
        "times_redeemed": promo.get("times_redeemed"),
        "created_at": _utc(promo.get("created")),
        "expires_at": _utc(promo.get("expires_at")),
    }


def coupon_object(promo: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """A coupon embedded in the promotion code itself (older API versions expand it)."""
    for holder in (promo.get("promotion"), promo):
        if isinstance(holder, Mapping) and isinstance(holder.get("coupon"), Mapping):
            return holder["coupon"]
    return None


def refresh_promotion_codes(conn: Connection, marts: Marts, objects: ObjectTables, promo_ids: Iterable[str],
                            coupon_ids: Iterable[str], options: TransformOptions) -> int:
    """Rewrite the given promotion codes and every code of the given coupons."""
    ids = set(promo_ids)
    coupon_ids = sorted(set(coupon_ids))
    p = objects.promotion_codes
    for part in _chunks(coupon_ids):
        ids.update(i for (i,) in conn.execute(sa.select(p.c.id).where(p.c.coupon_id.in_(part))))
    promos = _load(conn, p, ids)
    coupons = _load(conn, objects.coupons, [coupon_of_promotion_code(x) for x in promos.values()])
    m = marts.promotion_codes
    _delete_in(conn, m, m.c.promotion_code_id, sorted(ids))
    rows = [promotion_code_row(x, coupons.get(coupon_of_promotion_code(x) or "") or coupon_object(x), options)
            for x in promos.values()]
    _insert(conn, m, rows)
    return len(rows)


# -- promotion usage ------------------------------------------------------------------------
def _discount_promotion_code(discount: Any) -> str | None:
    """A discount's promotion code: checkout sessions list {coupon, promotion_code}; invoices
    list Discount objects (expanded) carrying promotion_code."""
    if isinstance(discount, Mapping):
        return id_of(discount.get("promotion_code"))
    return None


def session_usage_rows(session: Mapping[str, Any], codes: Mapping[str, str | None], usd_rate: float | None,
                       options: TransformOptions) -> list[dict[str, Any]]:
    """'applied' rows of a completed checkout session (none for another status)."""
    if session.get("status") != "complete":
        return []
    promos = [p for p in (_discount_promotion_code(d) for d in (session.get("discounts") or [])) if p]
    if not promos:
        return []
    total = (session.get("total_details") or {}).get("amount_discount")
    # Checkout applies one code; with several, Stripe's total cannot be split without the breakdown
    amount = total if len(promos) == 1 else None
    discount = _converted(amount, session.get("currency"), usd_rate, options, f"checkout session {session['id']}")
    return [{
        "usage_id": f"{session['id']}:{promo}",
        "promotion_code_id": promo,
        "code": codes.get(promo),
        "customer_id": id_of(session.get("customer")),
        "action": "applied",
        "occurred_at": _utc(session.get("created")),
        "checkout_session_id": session["id"],
        "invoice_id": id_of(session.get("invoice")),
        "discount_usd": discount,
        "failure_reason": None,
    } for promo in dict.fromkeys(promos)]


def invoice_usage_rows(invoice: Mapping[str, Any], codes: Mapping[str, str | None],
                       options: TransformOptions) -> list[dict[str, Any]]:
    """'applied' rows of a paid invoice (its discounts expanded: `expand[]=data.discounts`)."""
    if invoice.get("status") != "paid":
        return []
    amounts: dict[str, int] = {}
    for item in invoice.get("total_discount_amounts") or []:
        if isinstance(item, Mapping) and isinstance(item.get("amount"), int):
            key = id_of(item.get("discount"))
            if key:
                amounts[key] = amounts.get(key, 0) + item["amount"]
    paid_at = (invoice.get("status_transitions") or {}).get("paid_at") or invoice.get("created")
    rows = []
    for discount in invoice.get("discounts") or []:
        promo = _discount_promotion_code(discount)
        if not promo:
            continue
        rows.append({
            "usage_id": f"{invoice['id']}:{discount.get('id') or promo}",
            "promotion_code_id": promo,
            "code": codes.get(promo),
            "customer_id": id_of(invoice.get("customer")),
            "action": "applied",
            "occurred_at": _utc(paid_at),
            "checkout_session_id": None,
            "invoice_id": invoice["id"],
            "discount_usd": _converted(amounts.get(discount.get("id") or ""), invoice.get("currency"), None, options,
                                       f"invoice {invoice['id']}"),
            "failure_reason": None,
        })
    return rows


def _converted(amount: Any, currency: Any, usd_rate: float | None, options: TransformOptions, what: str) -> Decimal | None:
    if not isinstance(amount, int) or not isinstance(currency, str):
        return None
    if currency.lower() != "usd" and usd_rate is not None:
        # the rate Stripe settled the session's payment at (its balance transaction), as for charges
        major = Decimal(amount) / minor_unit_divisor(currency)
        return (major * Decimal(str(usd_rate))).quantize(CENT, ROUND_HALF_UP)
    return to_usd(amount, currency, options, what)


def settlement_rates(conn: Connection, raw: RawTables, intent_ids: Iterable[str]) -> dict[str, float]:
    """payment intent -> exchange rate of its succeeded charge's balance transaction, when it settled in USD."""
    c, b = raw.charges, raw.balance_transactions
    rates: dict[str, float] = {}
    for part in _chunks(sorted({i for i in intent_ids if i})):
        stmt = (sa.select(c.c.payment_intent_id, b.c.data)
                .select_from(c.join(b, b.c.id == c.c.balance_transaction_id))
                .where(c.c.payment_intent_id.in_(part), c.c.status == "succeeded", b.c.currency == "usd"))
        for intent, data in conn.execute(stmt):
            rate = json.loads(data).get("exchange_rate")
            if isinstance(rate, (int, float)) and rate > 0:
                rates[intent] = float(rate)
    return rates


def refresh_promotion_usage(conn: Connection, marts: Marts, raw: RawTables, objects: ObjectTables,
                            session_ids: Iterable[str], invoice_ids: Iterable[str], options: TransformOptions) -> int:
    """Rewrite the usage rows of these checkout sessions and invoices."""
    session_ids, invoice_ids = sorted(set(session_ids)), sorted(set(invoice_ids))
    m = marts.promotion_usage
    _delete_in(conn, m, m.c.checkout_session_id, session_ids)
    _delete_in(conn, m, m.c.invoice_id, invoice_ids, m.c.checkout_session_id.is_(None))
    sessions = _load(conn, objects.checkout_sessions, session_ids)
    invoices = _load(conn, objects.invoices, invoice_ids)
    # invoices a completed checkout session created: that session's row already counts the use
    from_checkout = {id_of(x.get("invoice")) for x in sessions.values()
                     if x.get("status") == "complete" and id_of(x.get("invoice"))}
    # a session arriving after its invoice replaces the invoice's own row
    _delete_in(conn, m, m.c.invoice_id, sorted(from_checkout), m.c.checkout_session_id.is_(None))
    from_checkout.update(_sessions_invoices(conn, marts, invoice_ids))
    promo_ids = set()
    for obj in list(sessions.values()) + list(invoices.values()):
        promo_ids.update(p for p in (_discount_promotion_code(d) for d in (obj.get("discounts") or [])) if p)
    codes = {k: v.get("code") for k, v in _load(conn, objects.promotion_codes, promo_ids).items()}
    rates = settlement_rates(conn, raw, [id_of(x.get("payment_intent")) for x in sessions.values()])
    rows: list[dict] = []
    for session in sessions.values():
        rows += session_usage_rows(session, codes, rates.get(id_of(session.get("payment_intent")) or ""), options)
    for invoice in invoices.values():
        if invoice["id"] not in from_checkout:
            rows += invoice_usage_rows(invoice, codes, options)
    _insert(conn, m, rows)
    return len(rows)


def _sessions_invoices(conn: Connection, marts: Marts, invoice_ids: list[str]) -> set[str]:
    """Invoice ids already counted through a checkout session's usage row."""
    m = marts.promotion_usage
    found: set[str] = set()
    for part in _chunks(invoice_ids):
        found.update(i for (i,) in conn.execute(
            sa.select(m.c.invoice_id).where(m.c.invoice_id.in_(part), m.c.checkout_session_id.is_not(None))))
    return found


# -- refunds and disputes ---------------------------------------------------------------------
def _charge_facts(conn: Connection, marts: Marts, raw: RawTables, charge_ids: Iterable[str]) -> dict[str, dict]:
    """charge id -> {'amount', 'currency', 'payment_intent_id', 'amount_usd'} from the raw charge and the mart."""
    found: dict[str, dict] = {}
    c, p = raw.charges, marts.payments
    for part in _chunks(sorted({i for i in charge_ids if i})):
        for key, pi, data in conn.execute(sa.select(c.c.id, c.c.payment_intent_id, c.c.data).where(c.c.id.in_(part))):
            charge = json.loads(data)
            found[key] = {"amount": charge.get("amount"), "currency": (charge.get("currency") or "").lower(),
                          "payment_intent_id": pi, "amount_usd": None}
        for key, usd in conn.execute(sa.select(p.c.charge_id, p.c.amount_usd).where(p.c.charge_id.in_(part))):
            if key in found:
                found[key]["amount_usd"] = usd
    return found


def share_of_charge_usd(obj: Mapping[str, Any], charge: Mapping[str, Any] | None, options: TransformOptions) -> Decimal | None:
    """A refund's or dispute's amount in USD: the share of its charge's amount_usd when the charge is known in the
    same currency, else converted on its own (USD as is, else PAYDASH_FX_RATES)."""
    amount, currency = obj.get("amount"), (obj.get("currency") or "").lower()
    if not isinstance(amount, int) or isinstance(amount, bool):
        return None
    if (charge and charge.get("amount_usd") is not None and isinstance(charge.get("amount"), int)
            and charge["amount"] > 0 and charge.get("currency") == currency):
        return (Decimal(charge["amount_usd"]) * amount / charge["amount"]).quantize(CENT, ROUND_HALF_UP)
    return to_usd(amount, currency, options, f"{obj.get('object')} {obj.get('id')}")


def refund_row(refund: Mapping[str, Any], charge: Mapping[str, Any] | None, options: TransformOptions) -> dict[str, Any]:
    return {
        "refund_id": refund["id"],
        "charge_id": id_of(refund.get("charge")),
        "payment_intent_id": id_of(refund.get("payment_intent")) or (charge or {}).get("payment_intent_id"),
        "amount_usd": share_of_charge_usd(refund, charge, options),
        "currency": (refund.get("currency") or "").lower() or None,
        "status": refund.get("status"),
        "reason": refund.get("reason"),
        "created_at": _utc(refund.get("created")),
    }


def dispute_row(dispute: Mapping[str, Any], charge: Mapping[str, Any] | None, options: TransformOptions) -> dict[str, Any]:
    evidence = dispute.get("evidence_details") if isinstance(dispute.get("evidence_details"), Mapping) else {}
    return {
        "dispute_id": dispute["id"],
        "charge_id": id_of(dispute.get("charge")),
        "payment_intent_id": id_of(dispute.get("payment_intent")) or (charge or {}).get("payment_intent_id"),
        "amount_usd": share_of_charge_usd(dispute, charge, options),
        "currency": (dispute.get("currency") or "").lower() or None,
        "status": dispute.get("status"),
        "reason": dispute.get("reason"),
        "created_at": _utc(dispute.get("created")),
        "evidence_due_by": _utc(evidence.get("due_by")),
    }


def refresh_refunds_disputes(conn: Connection, marts: Marts, raw: RawTables, objects: ObjectTables,
                             refund_ids: Iterable[str], dispute_ids: Iterable[str], charge_ids: Iterable[str],
                             options: TransformOptions) -> int:
    """Rewrite the rows of these refunds and disputes and of every refund and dispute of these charges
    (a charge's amount_usd may have changed with its balance transaction). Returns rows written."""
    charge_ids = sorted(set(charge_ids))
    written = 0
    earliest = None
    for raw_table, mart, ids, make, key in (
        (objects.refunds, marts.refunds, set(refund_ids), refund_row, "refund_id"),
        (objects.disputes, marts.disputes, set(dispute_ids), dispute_row, "dispute_id"),
    ):
        for part in _chunks(charge_ids):
            ids.update(i for (i,) in conn.execute(sa.select(raw_table.c.id).where(raw_table.c.charge_id.in_(part))))
        if not ids:
            continue
        found = _load(conn, raw_table, ids)
        charges = _charge_facts(conn, marts, raw, [id_of(x.get("charge")) for x in found.values()])
        _delete_in(conn, mart, mart.c[key], sorted(ids))
        rows = [make(x, charges.get(id_of(x.get("charge")) or ""), options) for x in found.values()]
        _insert(conn, mart, rows)
        written += len(rows)
        times = [r["created_at"] for r in rows if r.get("created_at") is not None]
        if times:
            earliest = min(times) if earliest is None else min(earliest, *times)
    if earliest is not None:
        # the Overview's hourly totals count refunds and disputes by the hour they were created
        rollup.refresh_adjustments(conn, marts, earliest)
    return written


# -- what a change touches --------------------------------------------------------------------
MART_SLICE = 10_000  # charges transformed at a time (their JSON is held in memory)


def _slices(ids: Iterable[str]) -> list[list[str]]:
    ordered = sorted(ids)
    return [ordered[i:i + MART_SLICE] for i in range(0, len(ordered), MART_SLICE)]


def refresh_objects(conn: Connection, marts: Marts, raw: RawTables, objects: ObjectTables,
                    changed: Mapping[str, Iterable[str]], options: TransformOptions) -> int:
    """Rewrite every mart row these stored objects feed ({Stripe `object`: ids}): the charge mart
    (and the daily marts) for charges, their payment intents and balance transactions, then the
    customers, promotion codes, refunds and disputes and promotion usage. Returns charge-mart rows written."""
    c = raw.charges.c
    charge_ids = set(changed.get("charge", ()))
    for column, kind in ((c.payment_intent_id, "payment_intent"), (c.balance_transaction_id, "balance_transaction")):
        for part in _chunks(sorted(set(changed.get(kind, ())))):
            charge_ids.update(v for (v,) in conn.execute(sa.select(c.id).where(column.in_(part))))
    written = 0
    if charge_ids:
        # in slices of whole payment intents, so memory stays flat after a large backfill
        intent_of: dict[str, str | None] = {}
        for part in _chunks(sorted(charge_ids)):
            intent_of.update(conn.execute(sa.select(c.id, c.payment_intent_id).where(c.id.in_(part))).all())
        ordered = sorted(charge_ids, key=lambda i: (intent_of.get(i) or "", i))
        for i in range(0, len(ordered), MART_SLICE):
            written += refresh_charges(conn, marts, raw, ordered[i:i + MART_SLICE], options)
    for part in _slices(changed.get("customer", ())):
        refresh_customers(conn, marts, objects, part)
    if changed.get("promotion_code") or changed.get("coupon"):
        refresh_promotion_codes(conn, marts, objects, changed.get("promotion_code", ()), changed.get("coupon", ()),
                                options)
    refunds, disputes = set(changed.get("refund", ())), set(changed.get("dispute", ()))
    for part in _slices(refunds | disputes | charge_ids):
        # ids of the three kinds never collide (re_, dp_, ch_), so one slice serves all
        refresh_refunds_disputes(conn, marts, raw, objects, [i for i in part if i in refunds],
                                 [i for i in part if i in disputes], [i for i in part if i in charge_ids], options)
    for part in _slices(changed.get("checkout.session", ())):
        refresh_promotion_usage(conn, marts, raw, objects, part, (), options)
    for part in _slices(changed.get("invoice", ())):
        refresh_promotion_usage(conn, marts, raw, objects, (), part, options)
    return written


def changed_since(conn: Connection, raw: RawTables, objects: ObjectTables,
                  mark: datetime | None) -> tuple[dict[str, set[str]], datetime | None]:
    """The ids of raw objects loaded after `mark` (all of them when None), by Stripe `object`, and
    the newest loaded_at among all raw objects (the next mark)."""
    tables = {"charge": raw.charges, "payment_intent": raw.payment_intents,
              "balance_transaction": raw.balance_transactions, **objects.by_kind}
    changed: dict[str, set[str]] = {}
    newest: datetime | None = None
    for kind, table in tables.items():
        stmt = sa.select(table.c.id)
        if mark is not None:
            stmt = stmt.where(table.c.loaded_at > mark)
        changed[kind] = {v for (v,) in conn.execute(stmt) if v}
        top = conn.execute(sa.select(sa.func.max(table.c.loaded_at))).scalar()
        if top is not None and (newest is None or top > newest):
            newest = top
    return changed, newest


def refresh_queued(conn: Connection, marts: Marts, raw: RawTables, objects: ObjectTables,
                   options: TransformOptions) -> int:
    """Carry every queued object (stripe_refresh_queue) into the marts and empty the queue, in the
    caller's transaction. Returns the number of charge-mart rows written."""
    # taken before reading the queue, so two receivers never refresh the same entries
    locks.lock_for_transaction(conn, MART_LOCK_KEY)
    q = raw.refresh_queue
    by_kind: dict[str, list[str]] = defaultdict(list)
    for kind, object_id in conn.execute(sa.select(q.c.object_type, q.c.object_id)):
        by_kind[kind].append(object_id)
    if not by_kind:
        return 0
    written = refresh_objects(conn, marts, raw, objects, by_kind, options)
    for kind, ids in by_kind.items():
        for part in _chunks(sorted(ids)):
            conn.execute(q.delete().where(q.c.object_type == kind, q.c.object_id.in_(part)))
    return written
