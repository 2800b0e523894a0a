"""Any query's result made ready for a CSV export, in SQL (so the warehouse can stream it).

The same rules as the Payments export (`payments.export_select`): timestamps become ISO
8601 UTC text ending in Z, text a spreadsheet would run as a formula gets a leading quote,
booleans are spelled `true`/`false` on both engines, numbers stay numbers.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import select

from paydash.warehouse.expressions import formula_safe, iso_utc


def csv_column(col: sa.ColumnElement, name: str) -> sa.ColumnElement:
    kind = col.type
    if isinstance(kind, sa.DateTime):
        return iso_utc(col).label(name)
    if isinstance(kind, (sa.Text, sa.String)):
        return formula_safe(col).label(name)
    if isinstance(kind, sa.Boolean):
        return sa.case((col.is_(True), sa.literal_column("'true'")), (col.is_(False), sa.literal_column("'false'"))).label(name)
    if isinstance(kind, sa.Date):
        return sa.cast(col, sa.Text).label(name)
    return col.label(name)


def for_csv(stmt: sa.Select, order_by: list[str] | None = None) -> sa.Select:
    """`stmt`'s rows with every column made CSV-safe, in `order_by` (names of its columns)."""
    inner = stmt.subquery("export")
    out = select(*(csv_column(c, c.name) for c in inner.c))
    for name in order_by or []:
        descending = name.startswith("-")
        col = inner.c[name.lstrip("-")]
        out = out.order_by(col.desc() if descending else col)
    return out
