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

Today so far: given `now`, a range that holds today stops at now and its previous period
at the same local time of the matching day (`DateRange.so_far`, `previous`). The daily
mart has whole days only, so the two partial days come from the charge mart (one day
each, a narrow created_at range) and every other day from the daily mart.
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
from paydash.queries.sql import count_if, in_range, local_date, money, ratio, sum_if
from paydash.warehouse.schema import Marts


# refunds that moved or are moving money back; failed and canceled ones did not
REFUND_COUNTED_STATUSES = ("succeeded", "pending", "requires_action")


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
                with_refunds: bool = False, with_disputes: bool = False) -> Adjustments:
    """Refunds (not failed or canceled) and disputes created in the range, by their own created_at."""
    return adjustments_of(conn, marts, [rng], funnel, with_refunds, with_disputes)[0]


def adjustments_of(conn: Connection, marts: Marts, ranges: Sequence[DateRange], funnel: str | None = None,
                   with_refunds: bool = False, with_disputes: bool = False) -> list[Adjustments]:
    """`adjustments` of several ranges in one statement: the refunds and disputes of the span they
    cover are read once (a range of created_at each mart keeps in time order), then counted per range.

    Refunds and disputes carry no funnel: with one, they count when their charge is in it, which
    means a scan of the charge mart's funnel column; one statement makes it one scan, not four.
    """
    kinds = (["refund"] if with_refunds else []) + (["dispute"] if with_disputes else [])
    if not ranges or not kinds:
        return [Adjustments() for _ in ranges]
    bounds = [r.utc_bounds() for r in ranges]
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
    out = []
    for _ in ranges:
        found = {kind: (int(next(values)), money(next(values))) for kind in kinds}
        refunds, refunded = found.get("refund", (None, None))
        disputes, disputed = found.get("dispute", (None, None))
        out.append(Adjustments(refunds, refunded, disputes, disputed))
    return out


def uses_daily_mart(rng: DateRange, mart_tz: str) -> bool:
    """The daily mart's dates are days in the reporting timezone; only then can it answer."""
    return rng.tz == mart_tz


def _daily_rows(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None, mart_tz: str):
    """(day, attempts, successful, failed, revenue, failed_amount) per day present."""
    if not uses_daily_mart(rng, mart_tz):
        return conn.execute(_charge_days(marts, rng, funnel)).all()
    partial = rng.partial_day
    if partial is None:
        return conn.execute(_mart_days(marts, rng.start, rng.end, funnel)).all()
    # whole days from the daily mart and the partial day from the charge mart, in one statement
    day = DateRange(partial, partial, rng.tz, rng.until)
    return conn.execute(union_all(_mart_days(marts, rng.start, partial - timedelta(days=1), funnel),
                                  _charge_day(marts, day, funnel))).all()


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
                  with_refunds: bool = False, with_disputes: bool = False) -> PeriodTotals:
    """Totals of a range: the sum of its days (at most a few hundred rows), with its refunds and
    disputes when those marts are there (`with_refunds`, `with_disputes`)."""
    rows = _daily_rows(conn, marts, rng, funnel, mart_tz)
    sums = [sum((row[i] or 0) for row in rows) for i in range(1, 6)]
    attempts, successful, failed, revenue, failed_amount = sums
    return PeriodTotals(rng.start, rng.end, int(attempts), int(successful), int(failed), money(revenue), money(failed_amount),
                        adjustments(conn, marts, rng, funnel, with_refunds, with_disputes))


def overview(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None, mart_tz: str = "UTC",
             with_refunds: bool = False, with_disputes: bool = False, now: datetime | None = None) -> dict[str, Any]:
    """Totals of the range and of its previous period (same length, ending the day before).

    With `now` (aware, or naive UTC) inside the range, the range is today so far and the
    previous period is cut at the same local time; `as_of` is then that moment in UTC
    (ISO 8601), else None (whole days on both sides). Refunds and disputes use the same bounds.
    """
    if now is not None:
        rng = rng.so_far(now)
    current = period_totals(conn, marts, rng, funnel, mart_tz)
    previous = period_totals(conn, marts, rng.previous(), funnel, mart_tz)
    # refunds and disputes of both periods in one read
    these, those = adjustments_of(conn, marts, [rng, rng.previous()], funnel, with_refunds, with_disputes)
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


def daily_series(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None, mart_tz: str = "UTC") -> list[dict[str, Any]]:
    """One row per day of the range (days without payments included, as zeros)."""
    found = {row[0]: row for row in _daily_rows(conn, marts, rng, funnel, mart_tz)}
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
