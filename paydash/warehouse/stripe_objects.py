"""Raw tables of the Stripe objects the API sync loads besides charges, intents and balance
transactions (those live in raw.py), and the sync's own bookkeeping.

Same style as raw.py: each row is one object's newest known state, its JSON in `data`
plus the columns the transforms need, replaced only by a newer version
(state_ts, state_rank, state_hash). They live in the charge mart's schema too.

Bookkeeping:
- paydash_sync_state: one row per object type: `synced_until` (every object created before
  it has been read), and the window in progress (`window_start`, `window_end`,
  `starting_after`, the last id of the last committed page). Written in the same
  transaction as the page's rows, so a killed sync resumes exactly after its last page.
  The row `marts` holds `transformed_through`: the newest raw `loaded_at` the marts include.
- paydash_sync_runs: one row per `paydash sync` run: running, failed (with the error) or
  complete, and the objects read per type.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Mapping

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from paydash.warehouse.raw import (
    _id_of,
    _newer,
    _now,
    _require,
    _version,
    _version_columns,
    _version_key,
    upsert_rows,
)

# how far along its life a state is; higher wins a same-second tie
CHECKOUT_SESSION_STATUS_RANK = {"open": 0, "complete": 1, "expired": 1}
INVOICE_STATUS_RANK = {"draft": 0, "open": 1, "paid": 2, "void": 2, "uncollectible": 2}
REFUND_STATUS_RANK = {"pending": 0, "requires_action": 0, "succeeded": 1, "failed": 1, "canceled": 1}
DISPUTE_STATUS_RANK = {"warning_needs_response": 0, "needs_response": 0, "warning_under_review": 1, "under_review": 1,
                       "warning_closed": 2, "won": 2, "lost": 2}


@dataclass(frozen=True)
class ObjectTables:
    customers: Table
    refunds: Table
    disputes: Table
    checkout_sessions: Table
    promotion_codes: Table
    coupons: Table
    invoices: Table
    sync_state: Table
    sync_runs: Table

    @property
    def by_kind(self) -> dict[str, Table]:
        """Stripe `object` value -> its raw table."""
        return {
            "customer": self.customers, "refund": self.refunds, "dispute": self.disputes,
            "checkout.session": self.checkout_sessions, "promotion_code": self.promotion_codes,
            "coupon": self.coupons, "invoice": self.invoices,
        }


@lru_cache(maxsize=16)
def object_tables(schema: str | None = None) -> ObjectTables:
    md = MetaData()

    def raw(name: str, *columns: Column) -> Table:
        return Table(name, md, Column("id", Text, primary_key=True), *columns,
                     Column("created", BigInteger, nullable=False), *_version_columns(), schema=schema)

    return ObjectTables(
        customers=raw("stripe_customers", Column("email", Text), Column("name", Text)),
        refunds=raw("stripe_refunds", Column("charge_id", Text), Column("payment_intent_id", Text),
                    Column("status", Text), Column("amount", BigInteger), Column("currency", Text)),
        disputes=raw("stripe_disputes", Column("charge_id", Text), Column("status", Text),
                     Column("amount", BigInteger), Column("currency", Text)),
        checkout_sessions=raw("stripe_checkout_sessions", Column("payment_intent_id", Text), Column("customer_id", Text),
                              Column("status", Text), Column("payment_status", Text)),
        promotion_codes=raw("stripe_promotion_codes", Column("code", Text), Column("coupon_id", Text)),
        coupons=raw("stripe_coupons"),
        invoices=raw("stripe_invoices", Column("customer_id", Text), Column("status", Text),
                     Column("attempt_count", Integer)),
        sync_state=Table(
            "paydash_sync_state", md,
            Column("object_type", Text, primary_key=True),
            Column("synced_until", BigInteger),
            Column("window_start", BigInteger),
            Column("window_end", BigInteger),
            Column("starting_after", Text),
            Column("objects", BigInteger, nullable=False, default=0),
            Column("transformed_through", DateTime),
            Column("updated_at", DateTime, nullable=False),
            schema=schema,
        ),
        sync_runs=Table(
            "paydash_sync_runs", md,
            Column("run_id", Text, primary_key=True),
            Column("status", Text, nullable=False),  # running, complete, failed, interrupted (sync_runs.py)
            Column("started_at", DateTime, nullable=False),
            Column("updated_at", DateTime, nullable=False),
            Column("finished_at", DateTime),
            Column("since_ts", BigInteger),
            Column("until_ts", BigInteger),
            Column("api_base", Text),
            Column("objects", Text),  # JSON: object type -> objects read
            Column("error", Text),
            Column("pid", Integer),
            # reconciliation through the Events API (sources/stripe/reconcile.py)
            Column("reconciled", Boolean),
            Column("events_read", BigInteger),
            Column("events_applied", BigInteger),
            Column("events_missing", BigInteger),
            Column("missing", Text),  # JSON: event type -> events never delivered that reconciliation applied
            schema=schema,
        ),
    )


def object_tables_for(wh) -> ObjectTables:  # noqa: ANN001 - a Warehouse
    return object_tables(wh.marts.payments.schema)


def create_object_tables(conn: Connection, tables: ObjectTables) -> None:
    """Create what is missing (never drops)."""
    if tables.customers.schema:
        conn.execute(CreateSchema(tables.customers.schema, if_not_exists=True))
    tables.customers.metadata.create_all(conn, checkfirst=True)


# -- rows ----------------------------------------------------------------------------------
def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def coupon_of_promotion_code(promo: Mapping[str, Any]) -> str | None:
    """The coupon id of a promotion code: `promotion.coupon` (API 2025-09 on) or `coupon` before."""
    promotion = promo.get("promotion")
    if isinstance(promotion, Mapping) and promotion.get("coupon"):
        return _id_of(promotion.get("coupon"))
    return _id_of(promo.get("coupon"))


def _columns(kind: str, obj: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """(the table's own columns, state rank) of one object."""
    status = obj.get("status")
    if kind == "customer":
        return {"email": obj.get("email"), "name": obj.get("name")}, 0
    if kind == "refund":
        return {"charge_id": _id_of(obj.get("charge")), "payment_intent_id": _id_of(obj.get("payment_intent")),
                "status": status, "amount": _int(obj.get("amount")), "currency": _lower(obj.get("currency"))}, \
            REFUND_STATUS_RANK.get(status, 0)
    if kind == "dispute":
        return {"charge_id": _id_of(obj.get("charge")), "status": status, "amount": _int(obj.get("amount")),
                "currency": _lower(obj.get("currency"))}, DISPUTE_STATUS_RANK.get(status, 0)
    if kind == "checkout.session":
        return {"payment_intent_id": _id_of(obj.get("payment_intent")), "customer_id": _id_of(obj.get("customer")),
                "status": status, "payment_status": obj.get("payment_status")}, \
            CHECKOUT_SESSION_STATUS_RANK.get(status, 0)
    if kind == "promotion_code":
        return {"code": obj.get("code"), "coupon_id": coupon_of_promotion_code(obj)}, 0
    if kind == "coupon":
        return {}, 0
    if kind == "invoice":
        return {"customer_id": _id_of(obj.get("customer")), "status": status,
                "attempt_count": _int(obj.get("attempt_count"))}, INVOICE_STATUS_RANK.get(status, 0)
    raise ValueError(f"cannot store a Stripe {kind!r} object")


KINDS = ("customer", "refund", "dispute", "checkout.session", "promotion_code", "coupon", "invoice")


class ObjectBatch:
    """Objects of the kinds above, collected per table and written with one upsert per table."""

    def __init__(self, tables: ObjectTables, loaded_at: datetime | None = None):
        self.tables = tables
        self.loaded_at = loaded_at or _now()
        self.rows: dict[str, list[dict[str, Any]]] = {kind: [] for kind in KINDS}

    def add(self, obj: Mapping[str, Any], state_ts: int) -> str:
        kind = obj.get("object") if isinstance(obj, Mapping) else None
        if kind not in self.rows:
            raise ValueError(f"cannot store a Stripe {kind!r} object; expected one of {', '.join(KINDS)}")
        _require(obj, kind)
        own, rank = _columns(kind, obj)
        self.rows[kind].append({"id": obj["id"], "created": obj["created"], **own,
                                **_version(obj, state_ts, rank, self.loaded_at)})
        return kind

    def write(self, conn: Connection) -> None:
        by_kind = self.tables.by_kind
        for kind, rows in self.rows.items():
            upsert_rows(conn, by_kind[kind], rows)
            rows.clear()


def upsert_page(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """raw.upsert_rows for a page of the sync, the same rule (newest version wins). On DuckDB the
    rows go in as an Arrow table: a 100-row VALUES statement costs SQLAlchemy more to compile, and
    DuckDB more to run, than the page itself (measured: 100 charges 260 -> 100 ms)."""
    if conn.dialect.name != "duckdb" or not rows:
        upsert_rows(conn, table, rows)
        rows.clear()
        return
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row["id"])
        if held is None or _version_key(row) > _version_key(held):
            best[row["id"]] = row
    rows.clear()
    columns = list(next(iter(best.values())))
    data = pa.Table.from_pylist([best[k] for k in sorted(best)])
    duck = conn.connection.driver_connection
    duck.register("paydash_sync_page", data)
    try:
        source = sa.select(*(sa.column(name) for name in columns)).select_from(sa.table("paydash_sync_page"))
        stmt = pg_insert(table).from_select(columns, source)
        excluded = stmt.excluded
        conn.execute(stmt.on_conflict_do_update(
            index_elements=["id"],
            set_={name: getattr(excluded, name) for name in columns if name != "id"},
            where=_newer(table, excluded),
        ))
    finally:
        duck.unregister("paydash_sync_page")
