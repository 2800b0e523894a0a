"""The Overview's numbers: period totals with the previous period, and the daily series.

Definitions (docs/metrics.md): revenue is the sum of amount_usd over successful attempts;
success rate is successful attempts / all attempts; failed payments are attempts with
status 'failed' and their amount.

When the requested timezone is the reporting timezone the daily mart was built in, the
totals come from the daily mart (one row per day and funnel); otherwise from the charge
mart, grouping by the local day of created_at. Both give the same numbers when the daily
mart is built from the charge mart (a test holds them together).

Refunds and disputes (optional marts) are counted by their own created_at in the range;
refunds that failed or were canceled are left out. Net revenue is revenue minus refunds
created in the range; the dispute rate is disputes created / successful attempts.
Without a mart its fields are None (the page says which mart to add).

With the rollups (paydash's own marts, `rollup=True`: warehouse/rollup.py) a range in
another timezone whose offsets are whole hours sums the hourly totals by local day (the
local day of an hour is the hour plus the zone's offset, per DST segment), and so do the
refunds and disputes; half-hour zones and warehouses without them read the charge mart.
The same functions decide; tests hold every source's answers equal.

Today so far: given `now`, a range that holds today stops at now and its previous period
at the same local time of the matching day (`DateRange.so_far`, `previous`). The daily
mart has whole days only, so the two partial days come from the charge mart (one day
each, a narrow created_at range) and every other day from the daily mart; with the
rollups, the partial days' whole hours come from the hourly totals and only the last,
partial hour from the charge mart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Sequence

import sqlalchemy as sa
from sqlalchemy import Date, Select, func, literal, select, union_all
from sqlalchemy.engine import Connection

from paydash.queries.dates import DateRange
from paydash.queries.sql import count_if, hour_split, in_range, local_date, money, ratio, sum_if
from paydash.warehouse.rollup import REFUND_COUNTED_STATUSES  # noqa: F401 - refunds counted (re-exported)
from paydash.warehouse.schema import Marts




@dataclass(frozen=True)
class Adjustments:
    """Refunds and disputes created in a period; None where the mart is missing."""

    refunds: int | None = None
    refunded_usd: Decimal | None = None
    disputes: int | None = None
    disputed_usd: Decimal | None = None


@dataclass(frozen=True)
class PeriodTotals:
    start: date
    end: date
    attempts: int
    successful: int
    failed: int
    revenue_usd: Decimal
    failed_amount_usd: Decimal
    adjustments: Adjustments = Adjustments()

    @property
    def success_rate(self) -> float | None:
        return ratio(self.successful, self.attempts)

    @property
    def net_revenue_usd(self) -> Decimal | None:
        refunded = self.adjustments.refunded_usd
        return None if refunded is None else self.revenue_usd - refunded

    @property
    def dispute_rate(self) -> float | None:
        return None if self.adjustments.disputes is None else ratio(self.adjustments.disputes, self.successful)

    def as_dict(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            "attempts": self.attempts,
            "successful": self.successful,
            "failed": self.failed,
            "revenue_usd": self.revenue_usd,
            "failed_amount_usd": self.failed_amount_usd,
            "success_rate": self.success_rate,
            "refunds": self.adjustments.refunds,
            "refunded_usd": self.adjustments.refunded_usd,
            "net_revenue_usd": self.net_revenue_usd,
            "disputes": self.adjustments.disputes,
            "disputed_usd": self.adjustments.disputed_usd,
            "dispute_rate": self.dispute_rate,
        }


def adjustments(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None,
                with_refunds: bool = False, with_disputes: bool = False, rollup: bool = False) -> Adjustments:
    """Refunds (not failed or canceled) and disputes created in the range, by their own created_at."""
    return adjustments_of(conn, marts, [rng], funnel, with_refunds, with_disputes, rollup)[0]


def adjustments_of(conn: Connection, marts: Marts, ranges: Sequence[DateRange], funnel: str | None = None,
                   with_refunds: bool = False, with_disputes: bool = False, rollup: bool = False) -> list[Adjustments]:
    """`adjustments` of several ranges in one statement: the refunds and disputes of the span they
    cover are read once (a range of created_at each mart keeps in time order), then counted per range.

    Refunds and disputes carry no funnel: with one, they count when their charge is in it, which
    means a scan of the charge mart's funnel column; one statement makes it one scan, not four.

    With the rollups (`rollup`) and ranges of whole UTC hours, the hourly totals answer for the
    whole hours (they hold each hour's refunds and disputes in their charge's funnel) and the
    refunds and disputes marts only for a range's last, partial hour.
    """
    kinds = (["refund"] if with_refunds else []) + (["dispute"] if with_disputes else [])
    if not ranges or not kinds:
        return [Adjustments() for _ in ranges]
    splits = [hour_split(r) for r in ranges] if rollup else []
    if rollup and all(splits):
        found = _hourly_adjustments(conn, marts, [(a, b) for a, b, _ in splits], kinds, funnel)
        rest = [(b, c) for _, b, c in splits]
        if any(b < c for b, c in rest):
            more = _mart_adjustments(conn, marts, rest, kinds, funnel)
            found = [{k: (x[k][0] + y[k][0], x[k][1] + y[k][1]) for k in kinds} for x, y in zip(found, more)]
    else:
        found = _mart_adjustments(conn, marts, [r.utc_bounds() for r in ranges], kinds, funnel)
    out = []
    for counts in found:
        refunds, refunded = counts.get("refund", (None, None))
        disputes, disputed = counts.get("dispute", (None, None))
        out.append(Adjustments(refunds, refunded, disputes, disputed))
    return out


def _mart_adjustments(conn: Connection, marts: Marts, bounds: Sequence[tuple[datetime, datetime]], kinds: list[str],
                      funnel: str | None) -> list[dict[str, tuple[int, Decimal]]]:
    """{kind: (count, usd)} per [start, stop) from the refunds and disputes marts, in one statement."""
    low, high = min(b[0] for b in bounds), max(b[1] for b in bounds)
    parts = []
    for kind in kinds:
        t = marts.refunds if kind == "refund" else marts.disputes
        counted = [t.c.status.in_(REFUND_COUNTED_STATUSES)] if kind == "refund" else []
        parts.append(select(sa.literal_column(f"'{kind}'", sa.Text).label("kind"), t.c.charge_id, t.c.amount_usd,
                            t.c.created_at).where(t.c.created_at >= low, t.c.created_at < high, *counted))
    rows = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).cte("adjustments").prefix_with("MATERIALIZED")
    where = []
    if funnel:
        p = marts.payments.c
        where.append(rows.c.charge_id.in_(
            select(p.charge_id).where(p.funnel_name == funnel, p.charge_id.in_(select(rows.c.charge_id)))))
    columns = []
    for start, stop in bounds:
        for kind in kinds:
            hit = sa.and_(rows.c.kind == kind, rows.c.created_at >= start, rows.c.created_at < stop)
            columns += [count_if(hit), sum_if(rows.c.amount_usd, hit)]
    values = iter(conn.execute(select(*columns).select_from(rows).where(*where)).one())
    return [{kind: (int(next(values)), money(next(values))) for kind in kinds} for _ in bounds]


_HOURLY_ADJUSTMENTS = {"refund": ("refunds", "refunded_usd"), "dispute": ("disputes", "disputed_usd")}


def _hourly_adjustments(conn: Connection, marts: Marts, bounds: Sequence[tuple[datetime, datetime]], kinds: list[str],
                        funnel: str | None) -> list[dict[str, tuple[int, Decimal]]]:
    """The same from the hourly totals, for bounds on whole UTC hours."""
    h = marts.hourly.c
    columns = []
    for start, stop in bounds:
        hit = sa.and_(h.hour >= start, h.hour < stop)
        for kind in kinds:
            count, usd = _HOURLY_ADJUSTMENTS[kind]
            columns += [sum_if(h[count], hit), sum_if(h[usd], hit)]
    where = [h.hour >= min(b[0] for b in bounds), h.hour < max(b[1] for b in bounds)]
    if funnel:
        where.append(h.funnel_name == funnel)
    values = iter(conn.execute(select(*columns).where(*where)).one())
    return [{kind: (int(next(values)), money(next(values))) for kind in kinds} for _ in bounds]


def uses_daily_mart(rng: DateRange, mart_tz: str) -> bool:
    """The daily mart's dates are days in the reporting timezone; only then can it answer."""
    return rng.tz == mart_tz


def _daily_rows(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None, mart_tz: str,
                rollup: bool = False) -> list[tuple]:
    """(day, attempts, successful, failed, revenue, failed_amount) per day present, one row a day.

    Whole days in the reporting timezone from the daily mart; other timezones (with `rollup`,
    whole-hour zones) from the hourly totals; a day cut "so far" from the hourly totals up to its
    last whole hour and the charge mart for the rest (or all from the charge mart); anything the
    marts cannot answer from the charge mart.
    """
    split = hour_split(rng) if rollup else None
    if not uses_daily_mart(rng, mart_tz):
        if split is None:
            return conn.execute(_charge_days(marts, rng, funnel)).all()
        parts = [_hourly_days(marts, rng, split[0], split[1], funnel)] + _partial_hour(marts, rng, split, funnel)
        return _by_day(conn.execute(parts[0] if len(parts) == 1 else union_all(*parts)).all())
    partial = rng.partial_day
    if partial is None:
        return conn.execute(_mart_days(marts, rng.start, rng.end, funnel)).all()
    # whole days from the daily mart and the partial day from the charge mart, in one statement
    day = DateRange(partial, partial, rng.tz, rng.until)
    whole = _mart_days(marts, rng.start, partial - timedelta(days=1), funnel)
    day_split = hour_split(day) if rollup else None
    if day_split is None:
        return _by_day(conn.execute(union_all(whole, _charge_day(marts, day, funnel))).all())
    parts = [whole, _hourly_days(marts, day, day_split[0], day_split[1], funnel)] + _partial_hour(marts, day, day_split, funnel)
    return _by_day(conn.execute(union_all(*parts)).all())


def _by_day(rows) -> list[tuple]:  # noqa: ANN001
    """Rows of the same day (whole hours from one mart, the last hour from another) added up."""
    days: dict[date, list] = {}
    for row in rows:
        found = days.setdefault(row[0], [row[0], 0, 0, 0, 0, 0])
        for i in range(1, 6):
            found[i] += row[i] or 0
    return [tuple(v) for v in days.values()]


def _hourly_days(marts: Marts, rng: DateRange, start: datetime, stop: datetime, funnel: str | None) -> Select:
    """Per local day of `rng.tz` from the hourly totals, hours [start, stop): an hour's local day is
    the hour plus the zone's (whole-hour) offset in its DST segment."""
    h = marts.hourly.c
    where = [h.hour >= start, h.hour < stop] + ([h.funnel_name == funnel] if funnel else [])
    rows = select(local_date(h.hour, rng.tz, rng).label("day"), h.attempts, h.successful, h.failed, h.revenue_usd,
                  h.failed_amount_usd).where(*where).subquery()
    return select(rows.c.day, *(func.coalesce(func.sum(rows.c[name]), 0) for name in
                                ("attempts", "successful", "failed", "revenue_usd", "failed_amount_usd"))
                  ).group_by(rows.c.day)


def _partial_hour(marts: Marts, rng: DateRange, split: tuple[datetime, datetime, datetime],
                  funnel: str | None) -> list[Select]:
    """A cut range's last, partial hour from the charge mart ([] when the range ends on an hour)."""
    _, hour_stop, stop = split
    if hour_stop >= stop:
        return []
    p = marts.payments.c
    where = [p.created_at >= hour_stop, p.created_at < stop] + ([p.funnel_name == funnel] if funnel else [])
    return [select(
        literal(rng.partial_day, Date).label("day"),
        func.count(),
        count_if(p.status == "succeeded"),
        count_if(p.status == "failed"),
        sum_if(p.amount_usd, p.status == "succeeded"),
        sum_if(p.amount_usd, p.status == "failed"),
    ).where(*where)]


def _mart_days(marts: Marts, start: date, end: date, funnel: str | None) -> Select:
    """Whole days from the daily mart (its dates are days in the reporting timezone)."""
    d = marts.daily.c
    stmt = (
        select(
            d.date.label("day"),
            func.coalesce(func.sum(d.total_attempts), 0),
            func.coalesce(func.sum(d.successful_payments), 0),
            func.coalesce(func.sum(d.failed_payments), 0),
            func.coalesce(func.sum(d.gross_revenue_usd), 0),
            func.coalesce(func.sum(d.failed_revenue_usd), 0),
        )
        .where(d.date >= start, d.date <= end)
        .group_by(d.date)
    )
    return stmt.where(d.funnel_name == funnel) if funnel else stmt


def _charge_days(marts: Marts, rng: DateRange, funnel: str | None) -> Select:
    """The same per local day from the charge mart (any timezone)."""
    p = marts.payments.c
    where = [in_range(p.created_at, rng)] + ([p.funnel_name == funnel] if funnel else [])
    # the local day is computed once in a subquery, so its timezone is bound once
    rows = select(local_date(p.created_at, rng.tz, rng).label("day"), p.status, p.amount_usd).where(*where).subquery()
    return select(
        rows.c.day,
        func.count(),
        count_if(rows.c.status == "succeeded"),
        count_if(rows.c.status == "failed"),
        sum_if(rows.c.amount_usd, rows.c.status == "succeeded"),
        sum_if(rows.c.amount_usd, rows.c.status == "failed"),
    ).group_by(rows.c.day)


def _charge_day(marts: Marts, day: DateRange, funnel: str | None) -> Select:
    """One (partial) day from the charge mart: a narrow created_at range, no grouping."""
    p = marts.payments.c
    where = [in_range(p.created_at, day)] + ([p.funnel_name == funnel] if funnel else [])
    return select(
        literal(day.start, Date).label("day"),
        func.count(),
        count_if(p.status == "succeeded"),
        count_if(p.status == "failed"),
        sum_if(p.amount_usd, p.status == "succeeded"),
        sum_if(p.amount_usd, p.status == "failed"),
    ).where(*where)


def period_totals(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None, mart_tz: str = "UTC",
                  with_refunds: bool = False, with_disputes: bool = False, rollup: bool = False) -> PeriodTotals:
    """Totals of a range: the sum of its days (at most a few hundred rows), with its refunds and
    disputes when those marts are there (`with_refunds`, `with_disputes`); `rollup`: the rollup
    marts are there (warehouse/rollup.py)."""
    rows = _daily_rows(conn, marts, rng, funnel, mart_tz, rollup)
    sums = [sum((row[i] or 0) for row in rows) for i in range(1, 6)]
    attempts, successful, failed, revenue, failed_amount = sums
    return PeriodTotals(rng.start, rng.end, int(attempts), int(successful), int(failed), money(revenue), money(failed_amount),
                        adjustments(conn, marts, rng, funnel, with_refunds, with_disputes, rollup))


def overview(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None, mart_tz: str = "UTC",
             with_refunds: bool = False, with_disputes: bool = False, now: datetime | None = None,
             rollup: bool = False) -> dict[str, Any]:
    """Totals of the range and of its previous period (same length, ending the day before).

    With `now` (aware, or naive UTC) inside the range, the range is today so far and the
    previous period is cut at the same local time; `as_of` is then that moment in UTC
    (ISO 8601), else None (whole days on both sides). Refunds and disputes use the same bounds.
    """
    if now is not None:
        rng = rng.so_far(now)
    current = period_totals(conn, marts, rng, funnel, mart_tz, rollup=rollup)
    previous = period_totals(conn, marts, rng.previous(), funnel, mart_tz, rollup=rollup)
    # refunds and disputes of both periods in one read
    these, those = adjustments_of(conn, marts, [rng, rng.previous()], funnel, with_refunds, with_disputes, rollup)
    current, previous = replace(current, adjustments=these), replace(previous, adjustments=those)
    return {
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "tz": rng.tz,
        "funnel": funnel,
        "as_of": utc_iso(rng.until),
        "current": current.as_dict(),
        "previous": previous.as_dict(),
        "change": changes(current, previous),
    }


def changes(current: PeriodTotals, previous: PeriodTotals) -> dict[str, float | None]:
    """Relative change of counts and money; absolute change (in points of a fraction) of rates."""

    def rel(a, b) -> float | None:
        return None if not b or a is None else (float(a) - float(b)) / float(b)

    rate_change = (
        None
        if current.success_rate is None or previous.success_rate is None
        else current.success_rate - previous.success_rate
    )
    return {
        "attempts": rel(current.attempts, previous.attempts),
        "successful": rel(current.successful, previous.successful),
        "failed": rel(current.failed, previous.failed),
        "revenue_usd": rel(current.revenue_usd, previous.revenue_usd),
        "failed_amount_usd": rel(current.failed_amount_usd, previous.failed_amount_usd),
        "success_rate": rate_change,
        "refunds": rel(current.adjustments.refunds, previous.adjustments.refunds),
        "refunded_usd": rel(current.adjustments.refunded_usd, previous.adjustments.refunded_usd),
        "net_revenue_usd": rel(current.net_revenue_usd, previous.net_revenue_usd),
        "disputes": rel(current.adjustments.disputes, previous.adjustments.disputes),
        "disputed_usd": rel(current.adjustments.disputed_usd, previous.adjustments.disputed_usd),
        "dispute_rate": None if current.dispute_rate is None or previous.dispute_rate is None
        else current.dispute_rate - previous.dispute_rate,
    }


def daily_series(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None, mart_tz: str = "UTC",
                 rollup: bool = False) -> list[dict[str, Any]]:
    """One row per day of the range (days without payments included, as zeros)."""
    found = {row[0]: row for row in _daily_rows(conn, marts, rng, funnel, mart_tz, rollup)}
    series = []
    for day in rng.dates():
        row = found.get(day)
        attempts, successful, failed, revenue, failed_amount = (row[1:] if row else (0, 0, 0, 0, 0))
        series.append(
            {
                "date": day.isoformat(),
                "attempts": int(attempts),
                "successful": int(successful),
                "failed": int(failed),
                "revenue_usd": money(revenue),
                "failed_amount_usd": money(failed_amount),
                "success_rate": ratio(successful, attempts),
            }
        )
    return series


def funnels(conn: Connection, marts: Marts) -> list[str]:
    d = marts.daily.c
    rows = conn.execute(select(d.funnel_name).where(d.funnel_name.is_not(None)).distinct().order_by(d.funnel_name))
    return [r[0] for r in rows]



def utc_iso(moment: datetime | None) -> str | None:
    """A naive UTC moment as ISO 8601 with its zone ("2026-03-10T16:00:00Z"), None stays None."""
    return None if moment is None else moment.isoformat(timespec="seconds") + "Z"
