"""Small SQL building blocks shared by the query modules; identical SQL on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from functools import lru_cache
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
    offset every three hours (no real zone changes twice in three hours), then the minute
    of each change by bisection; remembered per zone and bounds (the Overview asks for the
    same range several times).
    """
    start, stop = rng.utc_bounds()
    return list(_offset_segments(rng.tz, start, stop))


@lru_cache(maxsize=512)
def _offset_segments(tz: str, start: datetime, stop: datetime) -> tuple[tuple[datetime, timedelta], ...]:
    zone = ZoneInfo(tz)

    def offset_at(utc: datetime) -> timedelta:
        return utc.replace(tzinfo=timezone.utc).astimezone(zone).utcoffset()

    t = start - timedelta(days=1)
    end = stop + timedelta(days=1)
    current = offset_at(t)
    segments: list[tuple[datetime, timedelta]] = []
    while t < end:
        later = min(t + timedelta(hours=3), end)
        offset = offset_at(later)
        if offset != current:
            # the change happened in (t, later]: find its first minute
            low, high = t, later
            while high - low > timedelta(minutes=1):
                middle = low + timedelta(minutes=(high - low) // timedelta(minutes=1) // 2)
                if offset_at(middle) == current:
                    low = middle
                else:
                    high = middle
            segments.append((high, current))
            current = offset
        t = later
    segments.append((end, current))
    return tuple(segments)


def money(value: Any) -> Decimal:
    """A database money value as Decimal rounded to cents (None counts as zero)."""
    if value is None:
        return Decimal("0.00")
    return Decimal(value).quantize(Decimal("0.01"))


def ratio(numerator: int | float, denominator: int | float) -> float | None:
    """numerator / denominator as a fraction, or None when there is nothing to divide by."""
    return None if not denominator else float(numerator) / float(denominator)


def hour_split(rng: DateRange) -> tuple[datetime, datetime, datetime] | None:
    """(start, whole_hours_stop, stop): the range's UTC bounds and the last whole UTC hour
    before its stop, when the hour-grain rollups can answer for its local days; else None.

    They can when every local day of the range is a run of whole UTC hours: the zone's
    offsets over the range are whole hours and its DST transitions fall on whole hours
    (America/New_York, Europe/Berlin); half- and quarter-hour zones (Asia/Kolkata,
    Asia/Kathmandu) are read from the charge mart. A range cut "so far" (`until`) has a
    partial last hour, [whole_hours_stop, stop), that the charge mart answers.
    """
    start, stop = rng.utc_bounds()
    if start != _floor_hour(start):
        return None
    if rng.tz == "UTC":
        return start, max(start, _floor_hour(stop)), stop
    segments = offset_segments(rng)
    if any(offset.total_seconds() % 3600 for _, offset in segments):
        return None
    if any(transition != _floor_hour(transition) for transition, _ in segments[:-1]):
        return None
    return start, max(start, _floor_hour(stop)), stop


def _floor_hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)
