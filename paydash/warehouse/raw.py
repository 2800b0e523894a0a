"""Raw Stripe objects as received (API sync or webhooks), before the transform into the marts.

Each table keeps the object's JSON (`data`) and the columns the transform and the upserts
need. A row is one object's newest known state: an upsert replaces it only when the new
state is newer by its version key (state_ts, state_rank, state_hash):

- state_ts: unix seconds the state was observed (a webhook event's `created`, or the
  moment a sync read the object);
- state_rank: for two states of the same second, the one further along the object's life
  wins (a charge's `succeeded`/`failed` beats `pending`);
- state_hash: sha256 of the canonical JSON, so any remaining tie resolves the same way
  whatever order the states arrive in.

The raw tables live in the charge mart's schema (PostgreSQL), beside the marts they feed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any, Iterable, Mapping

import sqlalchemy as sa
from sqlalchemy import BigInteger, Boolean, Column, DateTime, Integer, MetaData, Table, Text
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from paydash.warehouse import load

# how far along its life a state is; higher wins a same-second tie
CHARGE_STATUS_RANK = {"pending": 0, "failed": 1, "succeeded": 1}
PAYMENT_INTENT_STATUS_RANK = {
    "requires_payment_method": 0,
    "requires_confirmation": 1,
    "requires_action": 2,
    "processing": 3,
    "requires_capture": 4,
    "canceled": 5,
    "succeeded": 5,
}


def _version_columns() -> list[Column]:
    return [
        Column("state_ts", BigInteger, nullable=False),
        Column("state_rank", Integer, nullable=False),
        Column("state_hash", Text, nullable=False),
        Column("loaded_at", DateTime, nullable=False),
        Column("data", Text, nullable=False),
    ]


@dataclass(frozen=True)
class RawTables:
    charges: Table
    payment_intents: Table
    balance_transactions: Table
    events: Table
    invalid_deliveries: Table
    refresh_queue: Table

    @property
    def all(self) -> tuple[Table, ...]:
        return (self.charges, self.payment_intents, self.balance_transactions, self.events, self.invalid_deliveries,
                self.refresh_queue)


@lru_cache(maxsize=16)
def raw_tables(schema: str | None = None) -> RawTables:
    md = MetaData()
    charges = Table(
        "stripe_charges", md,
        Column("id", Text, primary_key=True),
        Column("payment_intent_id", Text, index=True),
        Column("customer_id", Text),
        Column("status", Text),
        Column("created", BigInteger, nullable=False),
        Column("balance_transaction_id", Text),
        *_version_columns(),
        schema=schema,
    )
    payment_intents = Table(
        "stripe_payment_intents", md,
        Column("id", Text, primary_key=True),
        Column("customer_id", Text),
        Column("status", Text),
        Column("created", BigInteger, nullable=False),
        *_version_columns(),
        schema=schema,
    )
    balance_transactions = Table(
        "stripe_balance_transactions", md,
        Column("id", Text, primary_key=True),
        Column("source_id", Text, index=True),
        Column("currency", Text),
        Column("amount", BigInteger),
        Column("created", BigInteger, nullable=False),
        *_version_columns(),
        schema=schema,
    )
    events = Table(
        "stripe_events", md,
        Column("id", Text, primary_key=True),
        Column("type", Text, nullable=False),
        Column("created", BigInteger, nullable=False),
        Column("object_type", Text),
        Column("object_id", Text),
        Column("livemode", Boolean),
        Column("received_at", DateTime, nullable=False),
        Column("data", Text, nullable=False),
        Column("source", Text),  # 'webhook' or 'api' (found by reconciliation); NULL on older rows: webhook
        Column("delivered_at", DateTime),  # when a webhook delivered it; NULL: never delivered
        schema=schema,
    )
    # deliveries refused with 400 (bad signature or payload): kept for diagnosis only,
    # never read by the transform
    invalid_deliveries = Table(
        "stripe_invalid_deliveries", md,
        Column("id", Text, primary_key=True),
        Column("received_at", DateTime, nullable=False),
        Column("reason", Text, nullable=False),
        Column("body_bytes", Integer, nullable=False),
        Column("body_prefix", Text),
        schema=schema,
    )
    # objects stored but not yet carried into the marts: written in the same transaction as
    # the objects, emptied by the transaction that refreshes the marts (so a crash in
    # between leaves them queued, and the next refresh picks them up)
    refresh_queue = Table(
        "stripe_refresh_queue", md,
        Column("object_type", Text, primary_key=True),
        Column("object_id", Text, primary_key=True),
        Column("queued_at", DateTime, nullable=False),
        schema=schema,
    )
    return RawTables(charges, payment_intents, balance_transactions, events, invalid_deliveries, refresh_queue)


def raw_tables_for(wh) -> RawTables:  # noqa: ANN001 - a Warehouse
    return raw_tables(wh.marts.payments.schema)


def create_raw_tables(conn: Connection, tables: RawTables) -> None:
    """Create what is missing (never drops: raw data is the source of truth)."""
    schema = tables.charges.schema
    if schema:
        conn.execute(CreateSchema(schema, if_not_exists=True))
    tables.charges.metadata.create_all(conn, checkfirst=True)


# -- versions ------------------------------------------------------------------------------
def canonical_json(obj: Mapping[str, Any]) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def _id_of(value: Any) -> str | None:
    """An expandable field: an id string, an expanded object, or null."""
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def _newer(table: Table, excluded) -> sa.ColumnElement[bool]:  # noqa: ANN001
    c = table.c
    return sa.or_(
        excluded.state_ts > c.state_ts,
        sa.and_(excluded.state_ts == c.state_ts, excluded.state_rank > c.state_rank),
        sa.and_(excluded.state_ts == c.state_ts, excluded.state_rank == c.state_rank, excluded.state_hash > c.state_hash),
    )


def _version_key(row: Mapping[str, Any]) -> tuple[int, int, str]:
    return (row["state_ts"], row["state_rank"], row["state_hash"])


def upsert_rows(conn: Connection, table: Table, rows: Iterable[dict[str, Any]]) -> None:
    """One multi-row upsert; of several states of one id, only the newest is sent (a statement
    may not touch a row twice), and it replaces the stored row only when newer."""
    best: dict[str, dict[str, Any]] = {}
    for row in rows:
        held = best.get(row["id"])
        if held is None or _version_key(row) > _version_key(held):
            best[row["id"]] = row
    if not best:
        return
    values = [best[k] for k in sorted(best)]  # a stable order: concurrent writers lock rows alike
    columns = tuple(values[0])
    # PostgreSQL: one statement run with many parameter sets (compiling a fresh multi-row VALUES
    # statement per batch cost more than the database work, profiled in the webhook receiver);
    # DuckDB: the rows as one Arrow table (its executemany runs a statement per row)
    load.insert_rows(conn, table, values, on_conflict=lambda insert: _when_newer(insert, table, columns))


def _when_newer(stmt: sa.Insert, table: Table, columns: tuple[str, ...]) -> sa.Insert:
    """INSERT ... ON CONFLICT (id) DO UPDATE ... WHERE the row is newer than the stored one."""
    excluded = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={name: getattr(excluded, name) for name in columns if name != "id"},
        where=_newer(table, excluded),
    )


def _require(obj: Any, kind: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping) or obj.get("object") != kind or not isinstance(obj.get("id"), str):
        raise ValueError(f"not a Stripe {kind} object (needs object={kind!r} and an id)")
    if not isinstance(obj.get("created"), int):
        raise ValueError(f"{kind} {obj.get('id')} has no integer `created`")
    return obj


def _version(obj: Mapping[str, Any], state_ts: int, rank: int, loaded_at: datetime | None) -> dict[str, Any]:
    text = canonical_json(obj)
    return {
        "state_ts": int(state_ts),
        "state_rank": rank,
        "state_hash": hashlib.sha256(text.encode()).hexdigest(),
        "loaded_at": loaded_at or _now(),
        "data": text,
    }


class RawBatch:
    """Objects to store, collected as rows per table and written with one upsert per table."""

    def __init__(self, tables: RawTables, loaded_at: datetime | None = None):
        self.tables = tables
        self.loaded_at = loaded_at or _now()
        self.rows: dict[str, list[dict[str, Any]]] = {"charges": [], "payment_intents": [], "balance_transactions": []}

    def add(self, obj: Mapping[str, Any], state_ts: int) -> str:
        """Queue one object (a kind in UPSERTS); returns its kind."""
        kind = obj.get("object") if isinstance(obj, Mapping) else None
        if kind not in UPSERTS:
            raise ValueError(f"cannot store a Stripe {kind!r} object; expected one of {', '.join(UPSERTS)}")
        getattr(self, f"_add_{kind}")(obj, state_ts)
        return kind

    def _add_charge(self, charge: Mapping[str, Any], state_ts: int) -> None:
        _require(charge, "charge")
        bt = charge.get("balance_transaction")
        if isinstance(bt, Mapping):
            self._add_balance_transaction(bt, state_ts)
        self.rows["charges"].append({
            "id": charge["id"],
            "payment_intent_id": _id_of(charge.get("payment_intent")),
            "customer_id": _id_of(charge.get("customer")),
            "status": charge.get("status"),
            "created": charge["created"],
            "balance_transaction_id": _id_of(bt),
            **_version(charge, state_ts, CHARGE_STATUS_RANK.get(charge.get("status"), 0), self.loaded_at),
        })

    def _add_payment_intent(self, intent: Mapping[str, Any], state_ts: int) -> None:
        _require(intent, "payment_intent")
        self.rows["payment_intents"].append({
            "id": intent["id"],
            "customer_id": _id_of(intent.get("customer")),
            "status": intent.get("status"),
            "created": intent["created"],
            **_version(intent, state_ts, PAYMENT_INTENT_STATUS_RANK.get(intent.get("status"), 0), self.loaded_at),
        })

    def _add_balance_transaction(self, bt: Mapping[str, Any], state_ts: int) -> None:
        _require(bt, "balance_transaction")
        amount = bt.get("amount")
        self.rows["balance_transactions"].append({
            "id": bt["id"],
            "source_id": _id_of(bt.get("source")),
            "currency": (bt.get("currency") or "").lower() or None,
            "amount": amount if isinstance(amount, int) else None,
            "created": bt["created"],
            # `pending` becomes `available`; nothing else about the amount changes
            **_version(bt, state_ts, 1 if bt.get("status") == "available" else 0, self.loaded_at),
        })

    def write(self, conn: Connection) -> None:
        for name, rows in self.rows.items():
            upsert_rows(conn, getattr(self.tables, name), rows)
            rows.clear()


def _one(conn: Connection, tables: RawTables, obj: Mapping[str, Any], state_ts: int, loaded_at: datetime | None,
         kind: str) -> str:
    _require(obj, kind)
    batch = RawBatch(tables, loaded_at)
    batch.add(obj, state_ts)
    batch.write(conn)
    return obj["id"]


def upsert_charge(conn: Connection, tables: RawTables, charge: Mapping[str, Any], state_ts: int,
                  loaded_at: datetime | None = None) -> str:
    """Store a charge unless a newer state of it is stored; an expanded balance transaction too."""
    return _one(conn, tables, charge, state_ts, loaded_at, "charge")


def upsert_payment_intent(conn: Connection, tables: RawTables, intent: Mapping[str, Any], state_ts: int,
                          loaded_at: datetime | None = None) -> str:
    return _one(conn, tables, intent, state_ts, loaded_at, "payment_intent")


def upsert_balance_transaction(conn: Connection, tables: RawTables, bt: Mapping[str, Any], state_ts: int,
                               loaded_at: datetime | None = None) -> str:
    return _one(conn, tables, bt, state_ts, loaded_at, "balance_transaction")


UPSERTS = {
    "charge": upsert_charge,
    "payment_intent": upsert_payment_intent,
    "balance_transaction": upsert_balance_transaction,
}


def upsert_objects(conn: Connection, tables: RawTables, objects: Iterable[Mapping[str, Any]], state_ts: int) -> list[str]:
    """Store objects of the kinds above (a sync page); returns the charge ids touched."""
    batch = RawBatch(tables)
    charges = [obj["id"] for obj in objects if batch.add(obj, state_ts) == "charge"]
    batch.write(conn)
    return charges
