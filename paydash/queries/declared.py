"""The declared pages' queries (docs/pages.md): a declaration, a connection and what is asked in; data out.

Pure SQLAlchemy Core, one spelling for every engine: the search is a case-insensitive
substring match with a bound, LIKE-escaped pattern (`expressions.icontains`); filters are
bound equalities, or a date range of whole days in the reporting timezone; paging, counts,
value counts and the filters' choices are computed in the database. `table` is the page's
table as the warehouse described it (paydash/warehouse/reflect.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.declared_pages import DeclaredPage, PageQuery
from paydash.errors import InvalidInput
from paydash.queries.csv import csv_column
from paydash.queries.dates import local_midnight_utc
from paydash.warehouse.expressions import icontains
from paydash.warehouse.reflect import read_columns, table_of  # noqa: F401 - the app's door to them

PAGE_SIZE = 50
STAT_VALUES = 8  # the most frequent values a stats card lists
OPTION_LIMIT = 500  # the most choices a filter offers


@dataclass(frozen=True)
class PageResult:
    total: int
    page: int
    pages: int
    rows: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "pages": self.pages, "rows": self.rows}


def is_date(page: DeclaredPage, table: sa.Table, column: str) -> bool:
    """Whether `column` filters by a date range: a timestamp or date, or seconds since 1970 (format epoch)."""
    return isinstance(table.c[column].type, (sa.DateTime, sa.Date)) or page.format_of(column) == "epoch"


def date_filters(page: DeclaredPage, table: sa.Table) -> set[str]:
    return {c for c in page.filters if is_date(page, table, c)}


def shown_columns(page: DeclaredPage, table: sa.Table) -> list[str]:
    """The columns the page's table shows (and `query page` prints): the declared ones, else all."""
    return [c.name for c in page.columns] if page.columns else [c.name for c in table.c]


def _value(column: sa.Column, value: str) -> Any:
    """A filter's text as the column's type (a bound parameter compares like with like on every engine)."""
    kind = column.type
    text = value.strip()
    try:
        if isinstance(kind, sa.Boolean):
            lowered = text.lower()
            if lowered not in ("true", "false", "1", "0"):
                raise ValueError
            return lowered in ("true", "1")
        if isinstance(kind, sa.Integer):
            return int(text)
        if isinstance(kind, sa.Numeric) and not isinstance(kind, sa.Float):
            return Decimal(text)
        if isinstance(kind, sa.Float):
            return float(text)
    except (ValueError, InvalidOperation):
        raise InvalidInput(f"{column.name} {value!r} is not a value of that column ({kind})") from None
    return value


def _day_bounds(page: DeclaredPage, column: sa.Column, start: date | None, end: date | None,
                tz: str) -> list[sa.ColumnElement[bool]]:
    if isinstance(column.type, sa.Date) and not isinstance(column.type, sa.DateTime):
        return [*([column >= start] if start else []), *([column <= end] if end else [])]
    low = local_midnight_utc(start, tz) if start else None
    high = local_midnight_utc(end + timedelta(days=1), tz) if end else None
    if getattr(column.type, "timezone", False):  # timestamp with time zone: compared as instants
        low, high = (m.replace(tzinfo=timezone.utc) if m else None for m in (low, high))
    if page.format_of(column.name) == "epoch":
        def seconds(moment: datetime) -> int:
            return int(moment.replace(tzinfo=timezone.utc).timestamp())

        return [*([column >= seconds(low)] if low else []), *([column < seconds(high)] if high else [])]
    return [*([column >= low] if low else []), *([column < high] if high else [])]


def conditions(page: DeclaredPage, table: sa.Table, query: PageQuery, tz: str = "UTC") -> list[sa.ColumnElement[bool]]:
    """The WHERE of `query`: the search (any search column contains the text) AND every filter."""
    where: list[sa.ColumnElement[bool]] = []
    if query.search and page.search:
        matches = []
        for name in page.search:
            column = table.c[name]
            text_of = column if isinstance(column.type, (sa.Text, sa.String)) else sa.cast(column, sa.Text)
            matches.append(icontains(text_of, query.search))
        where.append(sa.or_(*matches))
    for name, value in query.filters:
        column = table.c[name]
        if isinstance(value, tuple):
            where += _day_bounds(page, column, value[0], value[1], tz)
        else:
            where.append(column == _value(column, value))
    return where


def _ordering(page: DeclaredPage, table: sa.Table) -> list[sa.ColumnElement]:
    order = []
    for o in page.order_by:
        sort: sa.ColumnElement = table.c[o.column]
        if o.when:  # only the rows the condition picks are ordered by the column; the rest count as empty
            sort = sa.case((table.c[o.when[0]].in_(list(o.when[1])), sort), else_=sa.null())
        term = sort.desc() if o.descending else sort.asc()
        if o.nulls == "last":
            term = term.nulls_last()
        elif o.nulls == "first":
            term = term.nulls_first()
        order.append(term)
    if page.key and page.key not in {o.column for o in page.order_by}:
        order.append(table.c[page.key].asc())  # ties in one order on every page
    return order


def count(conn: Connection, page: DeclaredPage, table: sa.Table, query: PageQuery, tz: str = "UTC") -> int:
    return int(conn.execute(select(func.count()).select_from(table).where(*conditions(page, table, query, tz))).scalar_one())


def page_rows(conn: Connection, page: DeclaredPage, table: sa.Table, query: PageQuery, tz: str = "UTC",
              page_size: int = PAGE_SIZE) -> PageResult:
    """Page `query.page` of the matching rows (LIMIT/OFFSET in the database) with the total and the
    number of pages; a page past the last has no rows."""
    total = count(conn, page, table, query, tz)
    pages = max(1, math.ceil(total / page_size))
    names = shown_columns(page, table)
    if page.key and page.key not in names:
        names.append(page.key)
    rows: list[dict[str, Any]] = []
    if total and query.page <= pages:
        stmt = (select(*(table.c[n] for n in names)).where(*conditions(page, table, query, tz))
                .order_by(*_ordering(page, table)).limit(page_size).offset((query.page - 1) * page_size))
        rows = [dict(r._mapping) for r in conn.execute(stmt)]
    return PageResult(total, query.page, pages, rows)


def value_counts(conn: Connection, page: DeclaredPage, table: sa.Table, query: PageQuery, tz: str = "UTC",
                 limit: int = STAT_VALUES) -> dict[str, list[tuple[Any, int]]]:
    """Each stats column's most frequent values among the matching rows: [(value, rows)], most first."""
    where = conditions(page, table, query, tz)
    found = {}
    for name in page.stats:
        column = table.c[name]
        n = func.count().label("n")
        stmt = select(column, n).where(*where).group_by(column).order_by(n.desc(), column).limit(limit)
        found[name] = [(value, int(rows)) for value, rows in conn.execute(stmt)]
    return found


def filter_options(conn: Connection, page: DeclaredPage, table: sa.Table,
                   limit: int = OPTION_LIMIT) -> dict[str, list[str]]:
    """The choices of each filter that is not a date range: its distinct values (as text), in order."""
    options = {}
    for name in page.filters:
        if is_date(page, table, name):
            continue
        column = table.c[name]
        stmt = select(column).where(column.is_not(None)).distinct().order_by(column).limit(limit)
        options[name] = [str(v).lower() if isinstance(v, bool) else str(v) for v in conn.execute(stmt).scalars()]
    return options


def row_by_key(conn: Connection, page: DeclaredPage, table: sa.Table, key: str) -> dict[str, Any] | None:
    """Every column of the row whose key is `key`, or None."""
    if not page.key:
        return None
    column = table.c[page.key]
    try:
        value = _value(column, key)
    except InvalidInput:
        return None
    found = conn.execute(select(table).where(column == value).limit(1)).first()
    return None if found is None else dict(found._mapping)


def export_select(page: DeclaredPage, table: sa.Table, query: PageQuery, tz: str = "UTC") -> sa.Select:
    """The whole matching result, the shown columns in the page's order, made CSV- and formula-safe
    (queries/csv.py: timestamps ISO UTC, text a spreadsheet would run quoted, numbers as numbers)."""
    names = shown_columns(page, table)
    return (select(*(csv_column(table.c[n], n) for n in names)).where(*conditions(page, table, query, tz))
            .order_by(*_ordering(page, table)))
