"""Raw Stripe objects -> the charge mart (`mart_stripe_payments`) and the daily mart.

The mapping of one charge is a pure function (`mart_row`); `refresh_charges` applies it to
the charges a sync page or a webhook touched, together with every other charge of their
payment intents (attempt numbers depend on all of them), then rebuilds the daily mart from
the earliest day touched with the demo generator's SQL (`rebuild_derived_marts`: the daily
mart, and the first-failures mart when it exists).

Rules (docs/stripe.md):
- is_successful: status == 'succeeded' (not `paid`, true for uncaptured authorisations too);
- failure_code: outcome.reason when outcome.type == 'issuer_declined', else failure_code,
  then failure_category / recovery_action from paydash.decline_codes.classify;
- attempt_number: rank by (created, id) among the charges of the payment intent;
- amount_usd: the amount itself for USD charges; else the balance transaction's amount
  when it settled in USD; else the PAYDASH_FX_RATES rate; else empty (with a warning);
  zero-decimal currencies are not divided by 100, three-decimal ones by 1000;
- funnel_name / profile_id: the configured metadata keys, charge metadata first, then
  its payment intent's; card brand, country and last4 from payment_method_details.card;
- created_date, hour_of_day, day_of_week: in the reporting timezone.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Iterable, Mapping
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from paydash.currencies import minor_unit_divisor
from paydash.decline_codes import classify
from paydash.errors import PaydashError
from paydash.settings import parse_fx_rates
from paydash.warehouse import customer_totals, load, locks, rollup, transforms
from paydash.warehouse.id_sketch import id_sketches
from paydash.warehouse.migrations import add_column, migrate
from paydash.warehouse.raw import RawTables, utc_now, create_raw_tables, raw_tables_for
from paydash.warehouse.schema import ID_SKETCH_COLUMNS, Marts, display_name

log = logging.getLogger("paydash.stripe")

BUILT_BY = "paydash stripe"
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CENT = Decimal("0.01")
CHUNK = 500
# one key for PostgreSQL's advisory lock that serialises mart refreshes (any constant)
MART_LOCK_KEY = 0x70617964  # "payd"


@dataclass(frozen=True)
class TransformOptions:
    timezone: str = "UTC"
    fx_rates: Mapping[str, float] = field(default_factory=dict)
    funnel_key: str = "funnel_name"
    profile_key: str = "profile_id"

    @classmethod
    def from_settings(cls, settings) -> "TransformOptions":  # noqa: ANN001
        return cls(settings.timezone, parse_fx_rates(settings.fx_rates or ""),
                   settings.metadata_funnel_key, settings.metadata_profile_key)


def amount_usd(charge: Mapping[str, Any], bt: Mapping[str, Any] | None, fx_rates: Mapping[str, float]) -> Decimal | None:
    """The charge's amount in USD (see the module docstring), or None when no rate is known."""
    currency = (charge.get("currency") or "").lower()
    amount = charge.get("amount")
    if not isinstance(amount, int):
        return None
    if currency == "usd":
        return (Decimal(amount) / 100).quantize(CENT, ROUND_HALF_UP)
    if bt is not None and (bt.get("currency") or "").lower() == "usd" and isinstance(bt.get("amount"), int):
        return (Decimal(bt["amount"]) / 100).quantize(CENT, ROUND_HALF_UP)
    rate = fx_rates.get(currency)
    if rate is None:
        return None
    major = Decimal(amount) / minor_unit_divisor(currency)
    return (major * Decimal(str(rate))).quantize(CENT, ROUND_HALF_UP)


def _metadata(obj: Mapping[str, Any] | None, key: str) -> str | None:
    if not obj:
        return None
    value = (obj.get("metadata") or {}).get(key)
    return str(value) if value not in (None, "") else None


def _id(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value or None


_WARNED_NO_RATE: set[str] = set()


def mart_row(charge: Mapping[str, Any], attempt_number: int = 1, bt: Mapping[str, Any] | None = None,
             intent: Mapping[str, Any] | None = None, options: TransformOptions = TransformOptions()) -> dict[str, Any]:
    """One charge-mart row from a Stripe charge (and its balance transaction and payment intent)."""
    status = charge.get("status")
    created = datetime.fromtimestamp(charge["created"], timezone.utc)
    local = created.astimezone(ZoneInfo(options.timezone))
    code = category = action = None
    if status == "failed":
        outcome = charge.get("outcome") or {}
        code, category, action = classify(charge.get("failure_code"), outcome.get("type"), outcome.get("reason"))
    card = (charge.get("payment_method_details") or {}).get("card") or {}
    currency = (charge.get("currency") or "").lower() or None
    usd = amount_usd(charge, bt, options.fx_rates)
    if usd is None and currency and currency not in _WARNED_NO_RATE:
        _WARNED_NO_RATE.add(currency)  # once per currency and process, not once per charge and refresh
        log.warning("no USD rate for %s (first seen on charge %s): amount_usd left empty for such charges; "
                    "add it to PAYDASH_FX_RATES", currency, charge.get("id"))
    ids = {
        "charge_id": charge["id"],
        "payment_intent_id": _id(charge.get("payment_intent")),
        "customer_id": _id(charge.get("customer")) or _id((intent or {}).get("customer")),
        "profile_id": _metadata(charge, options.profile_key) or _metadata(intent, options.profile_key),
    }
    return {
        **ids,
        "status": status,
        "is_successful": status == "succeeded",
        "amount_usd": usd,
        "currency": currency,
        "failure_code": code,
        "failure_category": category,
        "recovery_action": action,
        "attempt_number": attempt_number,
        "created_at": created.replace(tzinfo=None),
        "created_date": local.date(),
        "hour_of_day": local.hour,
        "day_of_week": DAY_NAMES[local.weekday()],
        "funnel_name": _metadata(charge, options.funnel_key) or _metadata(intent, options.funnel_key),
        "card_brand": card.get("brand"),
        "card_country": card.get("country"),
        "card_last4": card.get("last4"),
        **id_sketches(ids),
    }


MAX_MART_AMOUNT = Decimal("9999999999.99")  # numeric(12,2)


def check_transformable(obj: Mapping[str, Any], options: TransformOptions) -> None:
    """Raise ValueError when a charge could not become a mart row (checked before it is stored)."""
    if obj.get("object") != "charge":
        return
    row = mart_row(obj, 1, None, None, options)
    if row["amount_usd"] is not None and abs(row["amount_usd"]) > MAX_MART_AMOUNT:
        raise ValueError(f"charge {obj.get('id')}: amount {row['amount_usd']} USD does not fit the charge mart")


def attempt_numbers(charges: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """charge id -> rank by (created, id) within its payment intent; 1 without an intent."""
    by_intent: dict[str, list[tuple[int, str]]] = defaultdict(list)
    ranks: dict[str, int] = {}
    for ch in charges:
        pi = _id(ch.get("payment_intent"))
        if pi is None:
            ranks[ch["id"]] = 1
        else:
            by_intent[pi].append((ch["created"], ch["id"]))
    for attempts in by_intent.values():
        for n, (_, charge_id) in enumerate(sorted(attempts), start=1):
            ranks[charge_id] = n
    return ranks


# -- in the database ---------------------------------------------------------------------
def _chunks(values: list, size: int = CHUNK) -> Iterable[list]:
    for i in range(0, len(values), size):
        yield values[i:i + size]


def _load_json(conn: Connection, table: sa.Table, column: sa.Column, keys: Iterable[str]) -> dict[str, dict]:
    found: dict[str, dict] = {}
    keys = sorted({k for k in keys if k})
    for part in _chunks(keys):
        for key, data in conn.execute(sa.select(column, table.c.data).where(column.in_(part))):
            found[key] = json.loads(data)
    return found


def refresh_charges(conn: Connection, marts: Marts, raw: RawTables, charge_ids: Iterable[str],
                    options: TransformOptions) -> int:
    """Rewrite the mart rows of these charges and of their intents' other charges; then the daily mart.

    Returns the number of charge-mart rows written.
    """
    ids = sorted(set(charge_ids))
    if not ids:
        return 0
    # concurrent receivers would otherwise both delete-then-insert the same rows
    locks.lock_for_transaction(conn, MART_LOCK_KEY)
    c = raw.charges.c
    intents: set[str] = set()
    for part in _chunks(ids):
        intents.update(pi for (pi,) in conn.execute(sa.select(c.payment_intent_id).where(c.id.in_(part))) if pi)
    charges = _load_json(conn, raw.charges, c.id, ids)
    for part in _chunks(sorted(intents)):
        for key, data in conn.execute(sa.select(c.id, c.data).where(c.payment_intent_id.in_(part))):
            charges[key] = json.loads(data)
    return _write_rows(conn, marts, raw, list(charges.values()), options, replace_all=False)


def queue_refresh(conn: Connection, raw: RawTables, touched: Mapping[str, Iterable[str]]) -> None:
    """Note objects ({'charge': ids, 'payment_intent': ids, ...}) whose mart rows must be refreshed.

    Written in the transaction that stores the objects; `marts.refresh_queued` empties it.
    """
    q = raw.refresh_queue
    now = utc_now()
    rows = sorted({(kind, object_id) for kind, ids in touched.items() for object_id in ids if object_id})
    if rows:
        load.insert_rows(conn, q, [{"object_type": k, "object_id": i, "queued_at": now} for k, i in rows],
                         on_conflict=lambda insert: insert.on_conflict_do_nothing(index_elements=["object_type", "object_id"]))


def rebuild_from_raw(conn: Connection, marts: Marts, raw: RawTables, options: TransformOptions) -> int:
    """Recompute both marts entirely from the raw tables."""
    locks.lock_for_transaction(conn, MART_LOCK_KEY)
    charges = [json.loads(data) for (data,) in conn.execute(sa.select(raw.charges.c.data))]
    written = _write_rows(conn, marts, raw, charges, options, replace_all=True)
    conn.execute(raw.refresh_queue.delete())  # everything queued is now in the marts
    return written


def _write_rows(conn: Connection, marts: Marts, raw: RawTables, charges: list[dict], options: TransformOptions,
                replace_all: bool) -> int:
    bt_ids = [_id(ch.get("balance_transaction")) for ch in charges]
    bts = _load_json(conn, raw.balance_transactions, raw.balance_transactions.c.id, bt_ids)
    pis = _load_json(conn, raw.payment_intents, raw.payment_intents.c.id, [_id(ch.get("payment_intent")) for ch in charges])
    ranks = attempt_numbers(charges)
    rows = [
        mart_row(ch, ranks[ch["id"]], bts.get(_id(ch.get("balance_transaction")) or ""),
                 pis.get(_id(ch.get("payment_intent")) or ""), options)
        for ch in charges
    ]
    p = marts.payments
    if replace_all:
        conn.execute(p.delete())
    else:
        for part in _chunks([r["charge_id"] for r in rows]):
            conn.execute(p.delete().where(p.c.charge_id.in_(part)))
    load.insert_rows(conn, p, rows)
    since: date | None = None if replace_all else min((r["created_date"] for r in rows), default=None)
    if replace_all or since is not None:
        # since covers every charge of the intents rewritten, so their first attempts too
        transforms.rebuild_derived_marts(conn, marts, since)
    return len(rows)


# -- setting a database up ------------------------------------------------------------------
def prepare_database(wh) -> RawTables:  # noqa: ANN001 - a writable Warehouse
    """Create the raw tables and the marts when missing; refuse marts something else built."""
    raw = raw_tables_for(wh)
    present = wh.table_names()
    # the contract's two marts and the first-failures mart: rebuild_derived_marts keeps it current
    marts = wh.marts.built
    existing = [t for t in marts if display_name(t) in present]
    built_by = load.read_meta(wh).get("built_by") if existing else None
    if existing and built_by != BUILT_BY:
        names = ", ".join(display_name(t) for t in existing)
        origin = "`paydash demo`" if built_by == "paydash demo" else "something other than paydash"
        raise PaydashError(
            f"{names} in {wh.display_url} was built by {origin}; the Stripe sync and webhook receiver will not "
            "mix their data into it. Point PAYDASH_DATABASE_URL / --db at another database, or drop the marts yourself."
        )
    migrate(wh, raw)  # the raw tables, at this paydash's version (refuses a newer database)
    with wh.write() as conn:
        create_raw_tables(conn, raw)
        for table in marts:
            if table.schema:
                conn.execute(CreateSchema(table.schema, if_not_exists=True))
            table.create(conn, checkfirst=True)
        # marts this paydash built before card_last4 existed gain it (empty until rebuild-marts)
        add_column(conn, wh.marts.payments, wh.marts.payments.c.card_last4)
        # ... and the id sketches (empty until rebuild-marts; a search compares those rows' text)
        for name, _ in ID_SKETCH_COLUMNS:
            add_column(conn, wh.marts.payments, wh.marts.payments.c[name])
        # the explorer's counts per amount: made once, filled, then kept current like the daily mart
        transforms.create_amount_counts(conn, wh.marts)
        # the rollups (hour grain, every filter dimension; the Overview's hourly totals): the same
        rollup.create_rollup(conn, wh.marts)
        # the Customers page's summaries (one row per customer, per customer-month): made once,
        # filled from the charge mart, then kept current by rebuild_derived_marts
        for table, rebuild in ((wh.marts.customer_totals, customer_totals.rebuild_customer_totals),
                               (wh.marts.customer_months, customer_totals.rebuild_customer_months)):
            if not sa.inspect(conn).has_table(table.name, schema=table.schema):
                table.create(conn)
                rebuild(conn, wh.marts)
    if not existing:
        load.write_meta(wh, {"built_by": BUILT_BY})
        load.create_indexes(wh)
    return raw
