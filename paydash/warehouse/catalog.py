"""What the database says about itself (server version, the planner's row estimates): the
two questions whose SQL differs between DuckDB and PostgreSQL, kept here with the engine
so the query layer and the app stay dialect-neutral."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from paydash.warehouse.schema import display_name


def server_version(conn: Connection) -> str:
    """The database server's own version string (DuckDB: the library's)."""
    if conn.dialect.name == "postgresql":
        return str(conn.execute(sa.text("SHOW server_version")).scalar_one())
    return str(conn.execute(sa.text("SELECT version()")).scalar_one())


def planner_row_estimates(conn: Connection, tables: list[sa.Table]) -> dict[str, int | None]:
    """PostgreSQL's planner estimate of each table's rows (pg_class.reltuples, set by ANALYZE),
    by display name: reads no table, constant time at any size; None where the table was
    never analyzed. Empty on DuckDB, which keeps no such estimate (and counts fast)."""
    if conn.dialect.name != "postgresql":
        return {}
    out: dict[str, int | None] = {}
    stmt = sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:name)")
    for t in tables:
        name = display_name(t)
        value = conn.execute(stmt, {"name": name}).scalar()
        out[name] = None if value is None or value < 0 else int(value)
    return out
