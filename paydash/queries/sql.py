"""Small SQL building blocks shared by the query modules; identical SQL on DuckDB and PostgreSQL."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Date, cast, func

from paydash.queries.dates import DateRange
from paydash.warehouse.expressions import count_if, sum_if  # noqa: F401 - re-exported


def in_range(created_at: sa.ColumnElement, rng: DateRange) -> sa.ColumnElement[bool]:
    """created_at inside the range's whole local days; bounds are bound parameters.

    Comparing the stored UTC timestamp against converted bounds (rather than converting
    every row) keeps the filter sargable: PostgreSQL uses its index, DuckDB its zone maps.
    """
    start, stop = rng.utc_bounds()
    return sa.and_(created_at >= start, created_at < stop)


def local_date(created_at: sa.ColumnElement, tz: str) -> sa.ColumnElement:
    """created_at's calendar day in `tz` (created_at is naive UTC).

    `timezone(zone, ts)` means the same on both engines: applied to a naive timestamp it
    reads it as local time in `zone`, applied to a timestamptz it gives local wall time.
    """
    if tz == "UTC":
        return cast(created_at, Date)
    return cast(func.timezone(tz, func.timezone("UTC", created_at)), Date)


def money(value: Any) -> Decimal:
    """A database money value as Decimal rounded to cents (None counts as zero)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(value).quantize(Decimal("0.01"))


def ratio(numerator: int | float, denominator: int | float) -> float | None:
    """numerator / denominator as a fraction, or None when there is nothing to divide by."""
    return None if not denominator else float(numerator) / float(denominator)
