"""Charge-mart rows written by hand, for tests (plain functions; conftest turns them into fixtures).

`charge(...)` fills the derived columns (is_successful, created_date, hour_of_day, day_of_week,
failure category and recovery action) the way the data contract defines them, so a test only
writes what it cares about.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import pyarrow as pa
import sqlalchemy as sa

from paydash.decline_codes import classify
from paydash.warehouse.schema import ID_SKETCH_COLUMNS

DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

# The charge mart's columns as Arrow types (the contract's order).
PAYMENT_ARROW_SCHEMA = pa.schema(
    [
        ("charge_id", pa.string()),
        ("payment_intent_id", pa.string()),
        ("customer_id", pa.string()),
        ("profile_id", pa.string()),
        ("status", pa.string()),
        ("is_successful", pa.bool_()),
        ("amount_usd", pa.decimal128(12, 2)),
        ("currency", pa.string()),
        ("failure_code", pa.string()),
        ("failure_category", pa.string()),
        ("recovery_action", pa.string()),
        ("attempt_number", pa.int32()),
        ("created_at", pa.timestamp("us")),
        ("created_date", pa.date32()),
        ("hour_of_day", pa.int32()),
        ("day_of_week", pa.string()),
        ("funnel_name", pa.string()),
        ("card_brand", pa.string()),
        ("card_country", pa.string()),
    ]
)
# the optional card_last4 column, added when a row sets it (charge(..., card_last4="4242")),
# and paydash's id sketches (charge(..., **id_sketches(ids)))
OPTIONAL_ARROW_FIELDS = (pa.field("card_last4", pa.string()),
                         *(pa.field(name, pa.int64()) for name, _ in ID_SKETCH_COLUMNS))


def as_utc(value: datetime | str) -> datetime:
    """A naive UTC datetime from a datetime or 'YYYY-MM-DD HH:MM[:SS]' text."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def charge(
    charge_id: str,
    created_at: datetime | str,
    status: str = "succeeded",
    amount: str | Decimal | int | float = "10.00",
    *,
    payment_intent_id: str | None = None,
    attempt_number: int = 1,
    failure_code: str | None = None,
    customer_id: str = "cus_A",
    profile_id: str = "prof_A",
    currency: str = "usd",
    funnel_name: str = "main_funnel",
    card_brand: str = "visa",
    card_country: str = "US",
    tz: str = "UTC",
    **overrides: Any,
) -> dict[str, Any]:
    """One charge-mart row; derived columns follow the contract (`tz` is the reporting timezone)."""
    created = as_utc(created_at)
    local = created.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    category = action = None
    if status == "failed":
        failure_code, category, action = classify(failure_code or "generic_decline")
    row = {
        "charge_id": charge_id,
        "payment_intent_id": payment_intent_id or "pi_" + charge_id.split("_", 1)[-1],
        "customer_id": customer_id,
        "profile_id": profile_id,
        "status": status,
        "is_successful": status == "succeeded",
        "amount_usd": Decimal(str(amount)).quantize(Decimal("0.01")),
        "currency": currency,
        "failure_code": failure_code if status == "failed" else None,
        "failure_category": category,
        "recovery_action": action,
        "attempt_number": attempt_number,
        "created_at": created,
        "created_date": local.date(),
        "hour_of_day": local.hour,
        "day_of_week": DAY_NAMES[local.weekday()],
        "funnel_name": funnel_name,
        "card_brand": card_brand,
        "card_country": card_country,
    }
    unknown = set(overrides) - set(row) - {f.name for f in OPTIONAL_ARROW_FIELDS}
    if unknown:
        raise TypeError(f"charge() got unknown columns {sorted(unknown)}")
    row.update(overrides)
    return row


def rows_to_arrow(rows: Iterable[dict[str, Any]]) -> pa.Table:
    rows = list(rows)
    schema = PAYMENT_ARROW_SCHEMA
    for optional in OPTIONAL_ARROW_FIELDS:
        if any(optional.name in r for r in rows):
            schema = schema.append(optional)
    return pa.Table.from_pylist(rows, schema=schema)


def pg_execute(url: str, *statements: str) -> None:
    """Run statements on a PostgreSQL database with an autocommit connection of our own."""
    engine = sa.create_engine(sa.make_url(url).set(drivername="postgresql+psycopg"), poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            for statement in statements:
                conn.exec_driver_sql(statement)
    finally:
        engine.dispose()


def not_on_clickhouse(engine_kind: str, reason: str) -> None:
    """A known gap, marked next to the test: what it covers is not offered on ClickHouse
    (`reason` says why and what to use there). Skips the clickhouse run with the reason in the
    summary (-ra shows it); never a silent skip."""
    import pytest

    if engine_kind == "clickhouse":
        pytest.skip(f"not on ClickHouse: {reason}")


# Why a test that runs paydash as a subprocess on the test session's database is a known gap on ClickHouse
SUBPROCESS_ON_CHDB = (
    "a paydash subprocess cannot open the session's chdb directory while this process holds it (chdb: one "
    "process per directory, one path per process); the CLI on chdb is tested in tests/test_clickhouse_cli.py, "
    "with a directory of its own and the answers checked by independent ClickHouse SQL"
)
