"""Versions of the tables paydash writes itself (the Stripe sync and webhook receiver), and
the steps that bring an existing database up to the running version without losing data.

The version lives in `paydash_meta` (key `schema_version`). A database made before
versions were recorded, but holding the raw tables, is version 1. `migrate` runs the
missing steps in order, each in its own transaction together with the new version number,
so a step that fails leaves the database at the previous version, unchanged; on
PostgreSQL an advisory lock keeps two processes starting at once from both migrating.
A database migrated by a newer paydash is refused: an older one must not write into it.

Adding a step: append a Migration with the next number and a function of a connection;
use `add_column` for new columns (never drop or rewrite what users have); new tables need
no step, `create_raw_tables` and the mart creation create what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateSchema

from paydash.errors import PaydashError
from paydash.warehouse.engine import Warehouse
from paydash.warehouse.load import meta_table
from paydash.warehouse.raw import RawTables, create_raw_tables
from paydash.warehouse.stripe_objects import object_tables

VERSION_KEY = "schema_version"
_LOCK_KEY = 0x6D696772  # "migr": any constant, distinct from the mart-refresh lock


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: Callable[[Connection, RawTables], None]


def column_names(conn: Connection, table: sa.Table) -> set[str]:
    """The table's columns as the database has them (information_schema: reflection is broken on duckdb-engine)."""
    schema = sa.bindparam("schema", table.schema) if table.schema else sa.func.current_schema()
    query = sa.select(sa.column("column_name")).select_from(sa.table("columns", schema="information_schema")).where(
        sa.column("table_name") == table.name, sa.column("table_schema") == schema)
    return {name for (name,) in conn.execute(query)}


def add_column(conn: Connection, table: sa.Table, column: sa.Column) -> None:
    """ALTER TABLE ... ADD COLUMN when it is not there yet (rows keep their data; the new column is null)."""
    if column.name in column_names(conn, table):
        return
    name = f'"{table.schema}"."{table.name}"' if table.schema else f'"{table.name}"'
    type_sql = column.type.compile(dialect=conn.dialect)
    conn.execute(sa.text(f'ALTER TABLE {name} ADD COLUMN "{column.name}" {type_sql}'))


def _create_missing_raw_tables(conn: Connection, raw: RawTables) -> None:
    create_raw_tables(conn, raw)


def table_exists(conn: Connection, table: sa.Table) -> bool:
    return sa.inspect(conn).has_table(table.name, schema=table.schema)


RECONCILE_COLUMNS = ("reconciled", "events_read", "events_applied", "events_missing", "missing")


def _sync_health_columns(conn: Connection, raw: RawTables) -> None:
    """stripe_events.source and delivered_at (the rows before are webhook deliveries: marked so),
    and the reconcile pass's columns of paydash_sync_runs when the sync has made that table (when
    it has not, `create_object_tables` makes it whole later)."""
    create_raw_tables(conn, raw)
    events = raw.events
    had = column_names(conn, events)
    for name in ("source", "delivered_at"):
        add_column(conn, events, events.c[name])
    if "source" not in had:
        conn.execute(events.update().where(events.c.source.is_(None))
                     .values(source="webhook", delivered_at=events.c.received_at))
    if conn.dialect.name == "postgresql":
        # sync status and the stale-data alert (every minute) read the newest delivery and the
        # undelivered events: without these, each is a scan of every event. DuckDB scans a column
        # fast and an ART index would slow the receiver's inserts.
        quote = conn.dialect.identifier_preparer
        name = quote.format_table(events)
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_stripe_events_delivered_at ON {name} (delivered_at)"))
        conn.execute(sa.text(f"CREATE INDEX IF NOT EXISTS ix_stripe_events_undelivered ON {name} (created) "
                             "WHERE delivered_at IS NULL"))
    runs = object_tables(raw.charges.schema).sync_runs
    if table_exists(conn, runs):
        for name in RECONCILE_COLUMNS:
            add_column(conn, runs, runs.c[name])


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "raw Stripe tables, events and invalid deliveries (first release)", _create_missing_raw_tables),
    Migration(2, "stripe_refresh_queue: stored objects waiting for the marts", _create_missing_raw_tables),
    Migration(3, "sync health: stripe_events.source and delivered_at, the reconcile counts of paydash_sync_runs",
              _sync_health_columns),
)
SCHEMA_VERSION = MIGRATIONS[-1].version


def current_version(conn: Connection, wh: Warehouse, raw: RawTables) -> int:
    """The database's version: recorded, else 1 when the raw tables exist, else 0 (empty)."""
    meta = meta_table(wh)
    inspector = sa.inspect(conn)
    if inspector.has_table(meta.name, schema=meta.schema):
        value = conn.execute(sa.select(meta.c.value).where(meta.c.key == VERSION_KEY)).scalar()
        if value is not None:
            try:
                return int(value)
            except ValueError:
                raise PaydashError(
                    f"{VERSION_KEY} in {meta.name} of {wh.display_url} is {value!r}, not a number; "
                    "restore the table from a backup or set it to the last version that was applied"
                ) from None
    return 1 if inspector.has_table(raw.charges.name, schema=raw.charges.schema) else 0


def migrate(wh: Warehouse, raw: RawTables, migrations: Sequence[Migration] = MIGRATIONS) -> list[Migration]:
    """Bring the database to the newest version; returns the steps applied (none when current)."""
    target = migrations[-1].version
    applied: list[Migration] = []
    meta = meta_table(wh)
    with wh.write() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
        version = current_version(conn, wh, raw)
        if version > target:
            raise PaydashError(
                f"{wh.display_url} was set up by a newer paydash (table version {version}, this paydash knows "
                f"up to {target}); upgrade paydash before running the sync or the webhook receiver on it"
            )
        if meta.schema:
            conn.execute(CreateSchema(meta.schema, if_not_exists=True))
        meta.create(conn, checkfirst=True)
    for step in migrations:
        if step.version <= version:
            continue
        with wh.write() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_KEY)))
                if current_version(conn, wh, raw) >= step.version:  # another process got there first
                    continue
            step.apply(conn, raw)
            conn.execute(meta.delete().where(meta.c.key == VERSION_KEY))
            conn.execute(meta.insert().values(key=VERSION_KEY, value=str(step.version)))
        applied.append(step)
    return applied
