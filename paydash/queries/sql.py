"""Small SQL building blocks shared by the query modules; identical SQL on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Date, cast
from zoneinfo import ZoneInfo

from paydash.queries.dates import DateRange
from paydash.warehouse.expressions import count_if, local_timestamp, sum_if  # noqa: F401 - re-exported


def in_range(created_at: sa.ColumnElement, rng: DateRange) -> sa.ColumnElement[bool]:
    """created_at inside the range's whole local days; bounds are bound parameters.

    Comparing the stored UTC timestamp against converted bounds (rather than converting
    every row) keeps the filter sargable: PostgreSQL uses its index, DuckDB its zone maps.
    """
    start, stop = rng.utc_bounds()
    return sa.and_(created_at >= start, created_at < stop)


def local_date(created_at: sa.ColumnElement, tz: str, rng: DateRange | None = None) -> sa.ColumnElement:
    """created_at's calendar day in `tz` (created_at is naive UTC).

    With the range known, the zone's UTC offset is constant between its transitions, so
    the day is `CAST(created_at + offset AS DATE)` chosen by a CASE over those few
    segments: plain arithmetic, far cheaper than a per-row timezone conversion, and the
    same SQL on both engines (offsets and bounds are bound parameters).
    """
    if tz == "UTC":
        return cast(created_at, Date)
    if rng is None:
        # the wall-clock time in the zone (warehouse/expressions.py spells it per engine)
        return cast(local_timestamp(created_at, tz), Date)
    segments = offset_segments(rng)
    whens = [
        (created_at < stop, cast(created_at + offset, Date)) for stop, offset in segments[:-1]
    ]
    last_offset = segments[-1][1]
    if not whens:
        return cast(created_at + last_offset, Date)
    return sa.case(*whens, else_=cast(created_at + last_offset, Date))


def offset_segments(rng: DateRange) -> list[tuple[datetime, timedelta]]:
    """[(UTC stop, UTC offset)] covering the range (plus a day each side), in time order.

    Each entry holds until its stop; the last one until the end. Found by checking the
    offset at every UTC hour, which catches every transition of real zones.
    """
    zone = ZoneInfo(rng.tz)

    def offset_at(utc: datetime) -> timedelta:
        return utc.replace(tzinfo=timezone.utc).astimezone(zone).utcoffset()

    start, stop = rng.utc_bounds()
    t = start - timedelta(days=1)
    end = stop + timedelta(days=1)
    current = offset_at(t)
    segments: list[tuple[datetime, timedelta]] = []
    while t < end:
        t += timedelta(hours=1)
        offset = offset_at(t)
        if offset != current:
            # the transition happened within the last hour: find the minute
            m = t - timedelta(hours=1)
            while offset_at(m) == current:
                m += timedelta(minutes=1)
            segments.append((m, current))
            current = offset
    segments.append((end, current))
    return segments


def money(value: Any) -> Decimal:
    """A database money value as Decimal rounded to cents (None counts as zero)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(value).quantize(Decimal("0.01"))


def ratio(numerator: int | float, denominator: int | float) -> float | None:
    """numerator / denominator as a fraction, or None when there is nothing to divide by."""
    return None if not denominator else float(numerator) / float(denominator)
