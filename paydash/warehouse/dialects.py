"""How the shared query layer's SQL is spelled on ClickHouse: compile hooks, as data.

The query modules build one SQLAlchemy Core statement for every engine; what ClickHouse
spells differently from DuckDB and PostgreSQL is translated here, at compile time, for
clickhouse-connect's dialect ("clickhousedb") only. DuckDB and PostgreSQL compile exactly as
before (each hook hands every other dialect back to SQLAlchemy's own visitor).

- Intervals. ClickHouse has no interval values; SQLAlchemy's emulation of `Interval` on
  such dialects (a timestamp `epoch + delta`, the bind and result processors it already
  applies) is the representation here too: `ts - ts` is `toDateTime64(ts - ts, 6, 'UTC')`
  (seconds since the epoch as a timestamp), `ts + interval` adds the interval's microseconds,
  `extract(epoch from interval)` reads them back. Results come out as timedelta, as on the
  other engines.
- LIKE / ILIKE with `ESCAPE '\\'`: backslash is ClickHouse's LIKE escape character already,
  so the clause is left out (ClickHouse before 26.6 refuses ESCAPE; clickhouse-connect's
  compiler refuses it too); another escape character is spelled out.
- `a & b` (the id sketches' bit test): `bitAnd(a, b)`.
- `percentile_cont(f) WITHIN GROUP (ORDER BY x)`: `quantileExactInclusiveOrNull(f)(x)`, the
  same linear interpolation between the two nearest values (NULL without rows, as in SQL).
- `generate_series(a, b)` as a table with a named column: ClickHouse's generate_series
  table function names its column `generate_series` and takes no column alias list, so
  `(SELECT generate_series AS n FROM generate_series(a, b)) AS g`.
- A JOIN ON with no equality between its two sides (the Operations page's rolling windows,
  `minute >= at - window AND minute < at`): ClickHouse needs a join key, so the condition gets
  `ignore(left) = ignore(right)` (always 0 = 0) beside it; the session's
  allow_experimental_join_condition (warehouse/clickhouse.py) evaluates the rest.
- Timezones: expressions.local_timestamp (a validated zone, compiled as a constant) is
  `toTimeZone(ts, 'zone')` there.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import operators
from sqlalchemy.sql.elements import BinaryExpression, Extract, WithinGroup
from sqlalchemy.sql.functions import Function
from sqlalchemy.sql.selectable import Join, TableValuedAlias
from sqlalchemy.sql.visitors import iterate

CLICKHOUSE = "clickhousedb"  # clickhouse-connect's SQLAlchemy dialect name

# LIKE-family operators -> (ClickHouse keyword, its negation)
_LIKE_OPERATORS = {
    operators.like_op: "LIKE",
    operators.not_like_op: "NOT LIKE",
    operators.ilike_op: "ILIKE",
    operators.not_ilike_op: "NOT ILIKE",
}
# custom operators (`.op("&")`) -> ClickHouse function
_OPERATOR_FUNCTIONS = {"&": "bitAnd", "|": "bitOr"}
# an ordered-set aggregate -> ClickHouse's parametric aggregate of the same meaning
_WITHIN_GROUP_FUNCTIONS = {"percentile_cont": "quantileExactInclusiveOrNull",
                           "percentile_disc": "quantileExactLowOrNull"}


def _is_time(element: sa.ColumnElement) -> bool:
    return isinstance(element.type, (sa.DateTime, sa.Date)) and not isinstance(element.type, sa.Interval)


def _is_interval(element: sa.ColumnElement) -> bool:
    return isinstance(element.type, sa.Interval)


def _interval_micros(sql: str) -> str:
    """Microseconds of an emulated interval (a timestamp epoch + delta, or its text)."""
    return f"toUnixTimestamp64Micro(toDateTime64({sql}, 6, 'UTC'))"


@compiles(BinaryExpression, CLICKHOUSE)
def _binary(element, compiler, **kw):  # noqa: ANN001, ANN202
    op = element.operator
    if op in _LIKE_OPERATORS:
        left, right = compiler.process(element.left, **kw), compiler.process(element.right, **kw)
        escape = element.modifiers.get("escape")
        text = f"{left} {_LIKE_OPERATORS[op]} {right}"
        if escape is not None and escape != "\\":
            text += " ESCAPE " + compiler.render_literal_value(escape, sa.String())
        return text
    opstring = getattr(op, "opstring", None)
    if opstring in _OPERATOR_FUNCTIONS:
        left, right = compiler.process(element.left, **kw), compiler.process(element.right, **kw)
        return f"{_OPERATOR_FUNCTIONS[opstring]}({left}, {right})"
    if op is operators.sub and _is_time(element.left) and _is_time(element.right):
        left, right = compiler.process(element.left, **kw), compiler.process(element.right, **kw)
        return f"toDateTime64(toDateTime64({left}, 6, 'UTC') - toDateTime64({right}, 6, 'UTC'), 6, 'UTC')"
    if op in (operators.add, operators.sub) and _is_time(element.left) and _is_interval(element.right):
        left, right = compiler.process(element.left, **kw), compiler.process(element.right, **kw)
        sign = "" if op is operators.add else "-"
        return f"addMicroseconds({left}, {sign}{_interval_micros(right)})"
    return compiler.visit_binary(element, **kw)


@compiles(Extract, CLICKHOUSE)
def _extract(element, compiler, **kw):  # noqa: ANN001, ANN202
    if element.field.lower() == "epoch":
        return f"({_interval_micros(compiler.process(element.expr, **kw))} / 1000000.0)"
    return compiler.visit_extract(element, **kw)


@compiles(Function, CLICKHOUSE)
def _function(element, compiler, **kw):  # noqa: ANN001, ANN202
    if element.name.lower() == "extract":  # func.extract('epoch', x), the function-call form
        field, expr = list(element.clauses)
        value = getattr(field, "value", None)
        if isinstance(value, str) and value.lower() == "epoch":
            return f"({_interval_micros(compiler.process(expr, **kw))} / 1000000.0)"
    return compiler.visit_function(element, **kw)


@compiles(WithinGroup, CLICKHOUSE)
def _within_group(element, compiler, **kw):  # noqa: ANN001, ANN202
    name = _WITHIN_GROUP_FUNCTIONS.get(element.element.name.lower())
    if name is None:
        return compiler.visit_within_group(element, **kw)
    params = ", ".join(compiler.process(c, **kw) for c in element.element.clauses)
    (order,) = element.order_by.clauses if element.order_by is not None else (None,)
    return f"{name}({params})({compiler.process(order, **kw)})"


@compiles(TableValuedAlias, CLICKHOUSE)
def _table_valued(element, compiler, **kw):  # noqa: ANN001, ANN202
    fn = element.element
    if getattr(fn, "name", "").lower() != "generate_series" or not element._render_derived:
        return compiler.visit_table_valued_alias(element, **kw)
    kw.pop("asfrom", None)
    args = ", ".join(compiler.process(c, **kw) for c in fn.clauses)
    (column,) = list(element.c)
    name = compiler.preparer.quote(column.name)
    alias = compiler.preparer.format_alias(element, element.name)
    return f"(SELECT generate_series AS {name} FROM generate_series({args})) AS {alias}"


def _has_equi_key(onclause: sa.ColumnElement) -> bool:
    """Whether the ON condition compares a column of one side equal to one of the other."""
    for element in iterate(onclause):
        if isinstance(element, BinaryExpression) and element.operator is operators.eq:
            left, right = set(element.left._from_objects), set(element.right._from_objects)
            if left and right and left != right:
                return True
    return False


@compiles(Join, CLICKHOUSE)
def _join(element, compiler, **kw):  # noqa: ANN001, ANN202
    if element.onclause is None or _has_equi_key(element.onclause):
        return compiler.visit_join(element, **kw)
    key = sa.func.ignore(next(iter(element.left.c))) == sa.func.ignore(next(iter(element.right.c)))
    keyed = Join(element.left, element.right, sa.and_(key, element.onclause), isouter=element.isouter,
                 full=element.full)
    return compiler.visit_join(keyed, **kw)
