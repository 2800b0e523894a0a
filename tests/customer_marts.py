"""Test databases with the optional customer and promotion marts, written by hand (both engines)."""

from __future__ import annotations

from typing import Any, Iterable

import pyarrow as pa

from builders import rows_to_arrow
from paydash.warehouse import customer_totals, load, transforms
from paydash.warehouse.engine import Warehouse

CUSTOMER_SCHEMA = pa.schema([("customer_id", pa.string()), ("email", pa.string()), ("name", pa.string()),
                             ("created_at", pa.timestamp("us"))])
CODE_SCHEMA = pa.schema([
    ("promotion_code_id", pa.string()), ("code", pa.string()), ("coupon_id", pa.string()), ("percent_off", pa.float64()),
    ("amount_off_usd", pa.decimal128(12, 2)), ("active", pa.bool_()), ("max_redemptions", pa.int32()),
    ("times_redeemed", pa.int32()), ("created_at", pa.timestamp("us")), ("expires_at", pa.timestamp("us")),
])
USAGE_SCHEMA = pa.schema([
    ("usage_id", pa.string()), ("promotion_code_id", pa.string()), ("code", pa.string()), ("customer_id", pa.string()),
    ("action", pa.string()), ("occurred_at", pa.timestamp("us")), ("checkout_session_id", pa.string()),
    ("invoice_id", pa.string()), ("discount_usd", pa.decimal128(12, 2)), ("failure_reason", pa.string()),
])


def build(databases, payments: Iterable[dict[str, Any]], customers: list[dict] | None = None,  # noqa: ANN001
          codes: list[dict] | None = None, usage: list[dict] | None = None, totals: bool = False, settings=None) -> Warehouse:  # noqa: ANN001
    """A read-only warehouse with the charge mart and whichever optional marts are given."""
    db = databases.new(settings)
    writer = db.warehouse(read_only=False)
    try:
        load.recreate_marts(writer)
        table = rows_to_arrow(payments)
        if table.num_rows:
            load.load_arrow(writer, writer.marts.payments, table)
        marts = writer.marts
        present = [(marts.customers, customers, CUSTOMER_SCHEMA), (marts.promotion_codes, codes, CODE_SCHEMA),
                   (marts.promotion_usage, usage, USAGE_SCHEMA)]
        with writer.write() as conn:
            for mart, rows, _ in present:
                if rows is not None:
                    mart.create(conn)
            if totals:
                customer_totals.create_customer_totals(conn, marts)
        for mart, rows, schema in present:
            if rows:
                load.load_arrow(writer, mart, pa.Table.from_pylist(rows, schema=schema))
        with writer.write() as conn:
            transforms.rebuild_derived_marts(conn, marts)
    finally:
        writer.dispose()
    return databases.track(db.warehouse())
