"""Any table or view the warehouse user can read, as a SQLAlchemy table: for the declared pages.

What the database says a table has (information_schema, as `Warehouse.columns_of` reads it:
SQLAlchemy's reflection is broken on duckdb-engine) becomes column types the query layer can
compare, order and export with. The type names differ per engine (DuckDB `TIMESTAMP`,
PostgreSQL `timestamp without time zone`, ClickHouse `Nullable(DateTime64(6))`); they are
mapped here, once, by what they are.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from paydash.warehouse.schema import split_table_name

# (pattern on the lower-cased type name, SQLAlchemy type), first match wins
_TYPES: tuple[tuple[re.Pattern, sa.types.TypeEngine], ...] = (
    (re.compile(r"with time zone|timestamptz"), sa.DateTime(timezone=True)),
    (re.compile(r"timestamp|datetime"), sa.DateTime()),
    (re.compile(r"\bdate\b|^date|\(date\)"), sa.Date()),
    (re.compile(r"decimal|numeric"), sa.Numeric()),
    (re.compile(r"bool"), sa.Boolean()),
    (re.compile(r"\b(u?int\d*|bigint|integer|smallint|tinyint|hugeint|ubigint)\b|\((u?int\d*)\)"), sa.BigInteger()),
    (re.compile(r"double|float|real"), sa.Float()),
    (re.compile(r"char|text|string|clob"), sa.Text()),
)


def column_type(data_type: str) -> sa.types.TypeEngine:
    """The SQLAlchemy type of a column whose information_schema data_type is `data_type`; NullType for
    anything else (uuid, json, enums): read as the driver gives it, searched as its text."""
    lowered = data_type.lower()
    scale = re.search(r"(?:decimal|numeric)\((\d+),\s*(\d+)\)", lowered)
    if scale:  # its scale kept: 30.00 stays 30.00 (not 30.0000000000)
        return sa.Numeric(int(scale.group(1)), int(scale.group(2)))
    for pattern, kind in _TYPES:
        if pattern.search(lowered):
            return kind
    return sa.types.NullType()


def read_columns(wh, name: str) -> dict[str, str] | None:  # noqa: ANN001 - a Warehouse
    """Column name -> data type of table or view `name` (optionally schema.name), in order; None when
    it does not exist (or the warehouse user cannot see it)."""
    schema, table = split_table_name(name)
    found = wh.columns_of(sa.Table(table, sa.MetaData(), schema=schema))
    return found or None


def table_of(name: str, columns: dict[str, str]) -> sa.Table:
    """A SQLAlchemy table `name` with `columns` (name -> data type, as read_columns returns them)."""
    schema, table = split_table_name(name)
    return sa.Table(table, sa.MetaData(), *(sa.Column(c, column_type(t)) for c, t in columns.items()), schema=schema)
