"""SQL expressions that mean the same on DuckDB, PostgreSQL and ClickHouse (shared by transforms and queries).

Where the engines spell one of them differently, the spellings are compile hooks here (and in
warehouse/dialects.py, for what SQLAlchemy itself builds): data, chosen by dialect name.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.ext.compiler import compiles


def count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement:
    return func.coalesce(func.sum(sa.case((condition, 1), else_=0)), 0)


def sum_if(value: sa.ColumnElement, condition: sa.ColumnElement[bool]) -> sa.ColumnElement:
    return func.coalesce(func.sum(sa.case((condition, value), else_=None)), 0)


class iso_utc(sa.sql.expression.FunctionElement):
    """A naive UTC timestamp as ISO 8601 text ending in Z (dialects spell it differently)."""

    type = sa.Text()
    inherit_cache = True
    name = "iso_utc"


@compiles(iso_utc, "duckdb")
def _iso_utc_duckdb(element, compiler, **kw):  # noqa: ANN001, ANN202
    return "strftime(%s, '%%Y-%%m-%%dT%%H:%%M:%%SZ')" % compiler.process(element.clauses, **kw)


@compiles(iso_utc, "postgresql")
def _iso_utc_postgresql(element, compiler, **kw):  # noqa: ANN001, ANN202
    return "to_char(%s, 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')" % compiler.process(element.clauses, **kw)


@compiles(iso_utc, "clickhousedb")
def _iso_utc_clickhouse(element, compiler, **kw):  # noqa: ANN001, ANN202
    # no % in the text: clickhouse-connect's pyformat binding would have to double it
    return "concat(replaceOne(toString(toDateTime(%s, 'UTC')), ' ', 'T'), 'Z')" % compiler.process(element.clauses, **kw)


# An IANA zone name as paydash accepts it (settings validate it against the zone database too)
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+)*")


class _local_timestamp(sa.sql.expression.FunctionElement):
    """(naive UTC timestamp, zone constant): see local_timestamp."""

    type = sa.DateTime()
    inherit_cache = True
    name = "local_timestamp"


def local_timestamp(ts: sa.ColumnElement, tz: str) -> sa.ColumnElement:
    """The naive UTC timestamp `ts` as wall-clock time in the zone `tz`.

    The zone is compiled as a constant: ClickHouse's `toTimeZone(ts, zone)` takes no
    parameter there. So it is checked here (a real IANA zone, nothing but a zone name's
    characters) before it becomes SQL text; user text never reaches it unchecked.
    """
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from paydash.errors import ConfigError

    if not isinstance(tz, str) or not _ZONE_NAME.fullmatch(tz):
        raise ConfigError(f"{tz!r} is not a timezone name; use an IANA zone such as Europe/Berlin or UTC")
    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"unknown timezone {tz!r}; use an IANA zone such as Europe/Berlin or UTC") from None
    return _local_timestamp(ts, sa.literal_column(f"'{tz}'", sa.Text))


@compiles(_local_timestamp)
def _local_timestamp_sql(element, compiler, **kw):  # noqa: ANN001, ANN202
    ts, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"timezone({zone}, timezone('UTC', {ts}))"  # the same on DuckDB and PostgreSQL


@compiles(_local_timestamp, "clickhousedb")
def _local_timestamp_clickhouse(element, compiler, **kw):  # noqa: ANN001, ANN202
    ts, zone = (compiler.process(c, **kw) for c in element.clauses)
    return f"toTimeZone({ts}, {zone})"  # timestamps are DateTime64(6, 'UTC') there


# A cell starting with one of these is a formula to Excel, LibreOffice or Google Sheets.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\n")


def formula_safe(text: sa.ColumnElement) -> sa.ColumnElement:
    """Text a spreadsheet will show, not run: a leading formula character gets a quote."""
    first = func.substr(text, 1, 1)
    return sa.case(
        (first.in_([_sql_string(c) for c in FORMULA_STARTS]), sa.literal_column("''''") + text),
        else_=text,
    )


def _sql_string(char: str) -> sa.ColumnElement:
    # constants of ours, not user text: spelled as SQL literals so COPY needs no parameters
    if char in ("\t", "\r", "\n"):
        return _chr(sa.literal_column(str(ord(char))))
    return sa.literal_column("'" + char.replace("'", "''") + "'")


class _chr(sa.sql.expression.FunctionElement):
    """The character with a code (a constant): chr(n), ClickHouse's char(n)."""

    type = sa.Text()
    inherit_cache = True
    name = "chr"


@compiles(_chr)
def _chr_sql(element, compiler, **kw):  # noqa: ANN001, ANN202
    return "chr(%s)" % compiler.process(element.clauses, **kw)


@compiles(_chr, "clickhousedb")
def _chr_clickhouse(element, compiler, **kw):  # noqa: ANN001, ANN202
    return "char(%s)" % compiler.process(element.clauses, **kw)


def icontains(column: sa.ColumnElement, text: str) -> sa.ColumnElement[bool]:
    """`column` contains `text`, ignoring case, `text` taken literally (a bound LIKE pattern
    with % _ and backslash escaped).

    ILIKE on both engines: DuckDB's is its fastest case-insensitive contains (10M charge
    ids: ILIKE 637 ms, lower() LIKE 884 ms, contains(lower()) 882 ms, under load), and
    PostgreSQL serves it from a pg_trgm GIN index (FRAGMENT_INDEX_DDL in load.py).
    """
    if not any(ch in text for ch in ("%", "_", "\\")):
        # nothing to escape: no ESCAPE clause, which halves DuckDB's ILIKE (10M charge ids
        # 133 vs 255 ms); without a backslash in the pattern both engines read it the same
        return column.ilike(f"%{text}%")
    escaped = "".join("\\" + ch if ch in ("%", "_", "\\") else ch for ch in text)
    return column.ilike(f"%{escaped}%", escape="\\")


def sketch_holds(sketch: sa.ColumnElement, mask: int) -> sa.ColumnElement[bool]:
    """Every bit of `mask` is set in `sketch` (paydash/warehouse/id_sketch.py); an empty
    sketch (NULL: a row written without one) holds every bit, so its text is compared."""
    bits = sa.literal(mask, sa.BigInteger)
    return func.coalesce(sketch, sa.literal_column("-1", sa.BigInteger)).op("&")(bits) == bits


class _istarts_with(sa.sql.expression.FunctionElement):
    """(column, lower-cased LIKE pattern ending in %): see istarts_with."""

    type = sa.Boolean()
    inherit_cache = True
    name = "istarts_with"
    escaped = False


class _istarts_with_escaped(_istarts_with):
    inherit_cache = True
    escaped = True


def _istarts_with_sql(operator: str, lower: bool):  # noqa: ANN202
    def compile_(element, compiler, **kw):  # noqa: ANN001, ANN202
        column, pattern = (compiler.process(c, **kw) for c in element.clauses)
        left = f"lower({column})" if lower else column
        return f"({left} {operator} {pattern}" + (" ESCAPE '\\')" if element.escaped else ")")
    return compile_


# PostgreSQL: lower(column) LIKE, which its lower(...) text_pattern_ops indexes serve; DuckDB:
# ILIKE, 3 times faster than lower() LIKE (3.5M customers' emails: 19 vs 55 ms)
compiles(_istarts_with)(_istarts_with_sql("LIKE", lower=True))
compiles(_istarts_with, "duckdb")(_istarts_with_sql("ILIKE", lower=False))


def _istarts_with_clickhouse(element, compiler, **kw):  # noqa: ANN001, ANN202
    # ILIKE; backslash is ClickHouse's LIKE escape character already, so no ESCAPE clause
    # (refused before ClickHouse 26.6)
    column, pattern = (compiler.process(c, **kw) for c in element.clauses)
    return f"({column} ILIKE {pattern})"


compiles(_istarts_with, "clickhousedb")(_istarts_with_clickhouse)


def istarts_with(column: sa.ColumnElement, text: str) -> sa.ColumnElement[bool]:
    """`column` starts with `text`, ignoring case, literally (a bound pattern; ESCAPE only when
    `text` has something to escape: DuckDB's LIKE with ESCAPE costs about twice as much)."""
    lowered = text.lower()
    if not any(ch in lowered for ch in ("%", "_", "\\")):
        return _istarts_with(column, sa.literal(lowered + "%", sa.Text))
    escaped = "".join("\\" + ch if ch in ("%", "_", "\\") else ch for ch in lowered)
    return _istarts_with_escaped(column, sa.literal(escaped + "%", sa.Text))


class hour_start(sa.sql.expression.FunctionElement):
    """A naive timestamp truncated to the start of its hour (the rollup's grain)."""

    type = sa.DateTime()
    inherit_cache = True
    name = "hour_start"


@compiles(hour_start)
def _hour_start(element, compiler, **kw):  # noqa: ANN001, ANN202
    # a literal unit, so GROUP BY and SELECT are the same expression to the planner
    return "date_trunc('hour', %s)" % compiler.process(element.clauses, **kw)


class indexed_distinct_values(sa.sql.expression.Executable, sa.sql.expression.ClauseElement):
    """SELECT the distinct non-NULL values of `column`, in order (the explorer's filter options),
    for a column a B-tree index leads with on PostgreSQL (the rollup's: load.create_indexes).

    PostgreSQL has no skip scan for DISTINCT: it reads every row (the rollup at 1M payments:
    60-70 ms a column). There it is a walk over the column's B-tree, one index probe per value
    (the smallest value above the last), a recursive CTE; elsewhere a plain DISTINCT, which a
    column store answers from the column alone.
    """

    inherit_cache = False

    def __init__(self, column: sa.ColumnElement) -> None:
        self.column = column


@compiles(indexed_distinct_values)
def _distinct_values(element, compiler, **kw):  # noqa: ANN001, ANN202
    col = element.column
    return compiler.process(sa.select(col).where(col.is_not(None)).distinct().order_by(col), **kw)


@compiles(indexed_distinct_values, "postgresql")
def _distinct_values_postgresql(element, compiler, **kw):  # noqa: ANN001, ANN202
    col = element.column
    walk = sa.select(func.min(col).label("value")).cte("distinct_walk", recursive=True)
    step = sa.select(sa.select(func.min(col)).where(col > walk.c.value).scalar_subquery()).where(walk.c.value.is_not(None))
    walk = walk.union_all(step)
    return compiler.process(sa.select(walk.c.value).where(walk.c.value.is_not(None)).order_by(walk.c.value), **kw)
def keyset_before(columns: tuple[sa.ColumnElement, ...], key: tuple) -> sa.ColumnElement[bool]:
    """Rows before `key` in the order of `columns` (a keyset seek, descending pages): the row
    value comparison, plus the redundant bound on the leading column (`created_at <= ...`),
    which ClickHouse's primary key (and DuckDB's zone maps) prune with; a tuple comparison
    alone does not narrow the range there."""
    values = [sa.literal(v, c.type) for c, v in zip(columns, key)]
    return sa.and_(columns[0] <= values[0], sa.tuple_(*columns) < sa.tuple_(*values))
