"""The Payments explorer: pages of matching charges, one payment's detail, filter options, export.

Paging is newest first (created_at, then charge_id, descending). A deep page is found
without OFFSET over the whole result: matches are counted per day (from the daily mart
when the filters allow, which also gives the total), then per hour inside the day where
the page starts, and the page query reads a bounded window below the end of that hour.
With rows stored in time order DuckDB skips everything else through its zone maps;
PostgreSQL walks its (created_at, charge_id) index. The 1000th page costs about what the
first does. Next/previous from a known row can also seek by key (`payments_after`).

Export: `export_selects` cuts the result into sorted time windows and the warehouse
streams each as CSV, so memory stays flat.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Mapping

import sqlalchemy as sa
from sqlalchemy import Date, cast, func, select, tuple_
from sqlalchemy.engine import Connection

from paydash.currencies import minor_unit_divisor
from paydash.errors import InvalidInput
from paydash.queries.dates import local_midnight_utc
from paydash.queries.filters import PaymentFilters, conditions, search_columns
from paydash.warehouse.expressions import formula_safe, iso_utc
from paydash.warehouse.schema import PAYMENT_COLUMNS, Marts

PAGE_SIZE = 50
# Offsets below this are read with a plain ORDER BY ... LIMIT/OFFSET (a top-N heap this big).
DIRECT_OFFSET = 2_000

LIST_COLUMNS = (
    "charge_id",
    "created_at",
    "amount_usd",
    "currency",
    "status",
    "failure_code",
    "failure_category",
    "recovery_action",
    "attempt_number",
    "funnel_name",
    "card_brand",
    "card_country",
    "customer_id",
    "profile_id",
    "payment_intent_id",
)
EXPORT_COLUMNS = tuple(name for name, _ in PAYMENT_COLUMNS)
HISTORY_COLUMNS = ("charge_id", "attempt_number", "created_at", "status", "amount_usd", "failure_code", "failure_category", "recovery_action")


@dataclass(frozen=True)
class PaymentsPage:
    total: int
    page: int
    pages: int
    rows: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"total": self.total, "page": self.page, "pages": self.pages, "page_size": PAGE_SIZE, "rows": self.rows}


def _hour(created_at: sa.ColumnElement) -> sa.ColumnElement:
    # a literal unit, so GROUP BY and SELECT are the same expression to the planner
    return func.date_trunc(sa.literal_column("'hour'"), created_at)


def _order(table: sa.Table) -> list[sa.ColumnElement]:
    return [table.c.created_at.desc(), table.c.charge_id.desc()]


def _daily_mart_count(filters: PaymentFilters, marts: Marts, mart_tz: str | None) -> sa.ColumnElement | None:
    """The daily-mart expression counting these filters' matches, or None if it cannot.

    The daily mart knows attempts per local day, funnel and status; it answers when the
    filters use nothing else and the range is in the timezone its days are in.
    """
    f = filters.normalized()
    if mart_tz is None or f.search or f.card_brand or (f.date_range is not None and f.date_range.tz != mart_tz):
        return None
    d = marts.daily.c
    return {
        None: d.total_attempts,
        "succeeded": d.successful_payments,
        "failed": d.failed_payments,
        "pending": d.total_attempts - d.successful_payments - d.failed_payments,
    }[f.status]


def _day_counts(conn: Connection, marts: Marts, filters: PaymentFilters, mart_tz: str | None) -> list[tuple[datetime, datetime, int]]:
    """Matches per day, newest first: (UTC start, UTC stop, count), days without matches left out.

    From the daily mart when it can answer (cheap on any engine), else counted per UTC
    day in the charge mart.
    """
    f = filters.normalized()
    measure = _daily_mart_count(f, marts, mart_tz)
    if measure is not None:
        d = marts.daily.c
        stmt = select(d.date, func.sum(measure)).group_by(d.date).order_by(d.date.desc())
        if f.date_range is not None:
            stmt = stmt.where(d.date >= f.date_range.start, d.date <= f.date_range.end)
        if f.funnel:
            stmt = stmt.where(d.funnel_name == f.funnel)
        return [
            (local_midnight_utc(day, mart_tz), local_midnight_utc(day + timedelta(days=1), mart_tz), int(n))
            for day, n in conn.execute(stmt)
            if n
        ]
    t = marts.payments
    day = cast(t.c.created_at, Date)
    rows = conn.execute(select(day, func.count()).where(*conditions(f, t)).group_by(day).order_by(day.desc()))
    return [(datetime.combine(d, time.min), datetime.combine(d, time.min) + timedelta(days=1), int(n)) for d, n in rows]


def count_payments(conn: Connection, marts: Marts, filters: PaymentFilters, mart_tz: str | None = None) -> int:
    """How many payments match; from the daily mart when it can answer (`mart_tz` given)."""
    measure = _daily_mart_count(filters, marts, mart_tz)
    if measure is not None:
        return sum(n for _, _, n in _day_counts(conn, marts, filters, mart_tz))
    t = marts.payments
    return int(conn.execute(select(func.count()).select_from(t).where(*conditions(filters, t))).scalar_one())


def resolve_search(conn: Connection, marts: Marts, filters: PaymentFilters) -> PaymentFilters:
    """Narrow an id search to the columns that hold it.

    Text without a Stripe prefix may be any of the four ids; one indexed lookup per
    column finds which (usually one, often none), so the page and count queries compare a
    single column instead of OR-ing four, which no index serves.
    """
    f = filters.normalized()
    if not f.search or f.search_in is not None:
        return f
    columns = search_columns(f.search)
    if len(columns) > 1:
        t = marts.payments
        columns = tuple(
            name for name in columns
            if conn.execute(select(sa.literal(1)).select_from(t).where(t.c[name] == f.search).limit(1)).first()
        )
    return replace(f, search_in=columns)


def _seek(
    conn: Connection, marts: Marts, filters: PaymentFilters, offset: int, page_size: int, mart_tz: str | None
) -> tuple[int, tuple[datetime, datetime | None] | None, int]:
    """(total, (upper, lower) time bounds of the page's rows, offset below `upper`).

    Counts per day (one cheap aggregate, which also gives the total), then per hour inside
    the day where the page starts. The page's rows then lie in [lower, upper): upper is
    the end of the hour where it starts, lower the start of the hour (or day) by which
    `page_size` more rows have been counted, so the page query reads a few thousand rows.
    """
    t = marts.payments
    days = _day_counts(conn, marts, filters, mart_tz)
    total = sum(n for _, _, n in days)
    before = 0
    for index, (day_start, day_stop, n) in enumerate(days):
        if before + n > offset:
            break
        before += n
    else:
        return total, None, 0
    hour = _hour(t.c.created_at)
    hours = conn.execute(
        select(hour, func.count())
        .where(*conditions(filters, t), t.c.created_at >= day_start, t.c.created_at < day_stop)
        .group_by(hour)
        .order_by(hour.desc())
    ).all()
    # newest first: (bucket start, bucket end, rows): the hours of this day, then older days
    buckets = [(h, min(h + timedelta(hours=1), day_stop), n) for h, n in hours]
    buckets += [(start, stop, n) for start, stop, n in days[index + 1 :]]
    upper = None
    needed = offset + page_size
    for bucket_start, bucket_end, n in buckets:
        if upper is None and before + n > offset:
            upper, local_offset = bucket_end, offset - before
        before += n
        if upper is not None and before >= needed:
            return total, (upper, bucket_start), local_offset
    if upper is None:
        return total, None, 0  # rows vanished between the two reads
    return total, (upper, None), local_offset


def _rows(result) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def payments_page(
    conn: Connection, marts: Marts, filters: PaymentFilters, page: int = 1, page_size: int = PAGE_SIZE, mart_tz: str | None = None
) -> PaymentsPage:
    """Page `page` (1-based) of the matching payments, newest first, with the total count.

    `mart_tz`, the timezone the daily mart's days are in, lets counts come from it.
    """
    if page < 1:
        raise InvalidInput(f"page {page} does not exist; pages start at 1")
    t = marts.payments
    filters = resolve_search(conn, marts, filters)
    offset = (page - 1) * page_size
    where = conditions(filters, t)
    if filters.search:
        # an id search matches few rows: fetch them through the index first, then sort;
        # a top-N over the whole table would not use the index
        source = select(t).where(*where).cte("matches").prefix_with("MATERIALIZED")
        where = []
    else:
        source = t
    stmt = select(*(source.c[name] for name in LIST_COLUMNS)).where(*where).order_by(
        source.c.created_at.desc(), source.c.charge_id.desc()
    ).limit(page_size)
    if offset < DIRECT_OFFSET or filters.search:
        # near the top a plain top-N is cheapest, and the count is one aggregate
        total = count_payments(conn, marts, filters, mart_tz)
        rows = _rows(conn.execute(stmt.offset(offset))) if offset < total else []
    else:
        total, bounds, local_offset = _seek(conn, marts, filters, offset, page_size, mart_tz)
        rows = []
        if bounds is not None:
            upper, lower = bounds
            stmt = stmt.where(t.c.created_at < upper)
            if lower is not None:
                stmt = stmt.where(t.c.created_at >= lower)
            rows = _rows(conn.execute(stmt.offset(local_offset)))
    return PaymentsPage(total, page, max(1, math.ceil(total / page_size)), rows)


def payments_after(
    conn: Connection,
    marts: Marts,
    filters: PaymentFilters,
    after: tuple[datetime, str] | None = None,
    page_size: int = PAGE_SIZE,
) -> list[dict[str, Any]]:
    """Keyset page: the `page_size` payments older than the (created_at, charge_id) key `after`."""
    t = marts.payments
    where = conditions(filters, t)
    if after is not None:
        where.append(tuple_(t.c.created_at, t.c.charge_id) < tuple_(sa.literal(after[0]), sa.literal(after[1])))
    stmt = select(*(t.c[name] for name in LIST_COLUMNS)).where(*where).order_by(*_order(t)).limit(page_size)
    return _rows(conn.execute(stmt))


REFUND_DETAIL_COLUMNS = ("refund_id", "charge_id", "amount_usd", "currency", "status", "reason", "created_at")
DISPUTE_DETAIL_COLUMNS = ("dispute_id", "charge_id", "amount_usd", "currency", "status", "reason", "created_at",
                          "evidence_due_by")


def payment_detail(
    conn: Connection,
    marts: Marts,
    charge_id: str,
    with_refunds: bool = False,
    with_disputes: bool = False,
    with_customer: bool = False,
    fx_rates: Mapping[str, float] | None = None,
) -> dict[str, Any] | None:
    """Every contract column of one charge, the retry history of its payment intent, and with
    the optional marts present its refunds and disputes (of every charge of the intent), the
    customer's name and email, and one timeline of attempts, refunds and disputes in time order.

    `original_amount` is the amount in the charge's own currency: amount_usd itself for USD,
    else amount_usd at `fx_rates` (USD per unit, the rates the marts were converted at),
    rounded to the currency's minor unit; None without a rate.
    """
    t = marts.payments
    row = conn.execute(select(t).where(t.c.charge_id == charge_id).limit(1)).first()
    if row is None:
        return None
    detail = dict(row._mapping)
    intent = detail.get("payment_intent_id")
    if intent:
        history_stmt = (
            select(*(t.c[name] for name in HISTORY_COLUMNS))
            .where(t.c.payment_intent_id == intent)
            .order_by(t.c.created_at, t.c.attempt_number, t.c.charge_id)
        )
        history = _rows(conn.execute(history_stmt))
    else:
        history = [{name: detail[name] for name in HISTORY_COLUMNS}]
    detail["retry_history"] = history
    detail["payment_outcome"] = _outcome(history)
    detail["original_amount"] = original_amount(detail.get("amount_usd"), detail.get("currency"), fx_rates or {})

    def of_payment(table: sa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]] | None:
        key = table.c.payment_intent_id == intent if intent else table.c.charge_id == charge_id
        return _rows(conn.execute(select(*(table.c[n] for n in columns)).where(key).order_by(table.c.created_at)))

    detail["refunds"] = of_payment(marts.refunds, REFUND_DETAIL_COLUMNS) if with_refunds else None
    detail["disputes"] = of_payment(marts.disputes, DISPUTE_DETAIL_COLUMNS) if with_disputes else None
    customer = None
    if with_customer and detail.get("customer_id"):
        c = marts.customers.c
        found = conn.execute(select(c.name, c.email).where(c.customer_id == detail["customer_id"]).limit(1)).first()
        customer = dict(found._mapping) if found else None
    detail["customer"] = customer
    detail["timeline"] = timeline(history, detail["refunds"] or [], detail["disputes"] or [])
    return detail


def original_amount(amount_usd: Any, currency: str | None, fx_rates: Mapping[str, float]) -> dict[str, Any] | None:
    """{'amount', 'currency', 'usd_per_unit', 'approximate'}: amount_usd in the charge's currency, or None
    without a rate. Other currencies than USD are converted back from amount_usd (rounded to US cents), so
    they are `approximate`: within a cent's worth of the amount charged."""
    if amount_usd is None or not currency:
        return None
    currency = currency.lower()
    rate = 1.0 if currency == "usd" else fx_rates.get(currency)
    if not rate:
        return None
    places = {1: Decimal("1"), 100: Decimal("0.01"), 1000: Decimal("0.001")}[minor_unit_divisor(currency)]
    amount = (Decimal(amount_usd) / Decimal(str(rate))).quantize(places, ROUND_HALF_UP)
    # the charge mart keeps amount_usd only: converted back, the amount is within a US cent of the charged one
    return {"amount": amount, "currency": currency, "usd_per_unit": rate, "approximate": currency != "usd"}


def timeline(history: list[dict[str, Any]], refunds: list[dict[str, Any]], disputes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts, refunds and disputes of a payment intent as one list in time order."""
    events = [
        {"at": h["created_at"], "kind": "attempt", "id": h["charge_id"], "status": h["status"], "amount_usd": h["amount_usd"],
         "detail": f"attempt {h['attempt_number']}" + (f": {h['failure_code']}" if h.get("failure_code") else "")}
        for h in history
    ]
    events += [
        {"at": r["created_at"], "kind": "refund", "id": r["refund_id"], "status": r["status"], "amount_usd": r["amount_usd"],
         "detail": f"of {r['charge_id']}" + (f": {r['reason']}" if r.get("reason") else "")}
        for r in refunds
    ]
    events += [
        {"at": d["created_at"], "kind": "dispute", "id": d["dispute_id"], "status": d["status"], "amount_usd": d["amount_usd"],
         "detail": f"of {d['charge_id']}" + (f": {d['reason']}" if d.get("reason") else "")
         + (f"; evidence due by {d['evidence_due_by']:%Y-%m-%d %H:%M} UTC" if d.get("evidence_due_by") else "")}
        for d in disputes
    ]
    order = {"attempt": 0, "refund": 1, "dispute": 2}
    return sorted(events, key=lambda e: (e["at"] is None, e["at"] or datetime.min, order[e["kind"]], e["id"]))


def _outcome(history: list[dict[str, Any]]) -> str:
    """How the payment intent stands after all its attempts."""
    statuses = [h["status"] for h in history]
    if "succeeded" in statuses:
        return "recovered" if statuses[0] != "succeeded" else "succeeded"
    if "pending" in statuses:
        return "pending"
    return "failed"


def filter_options(conn: Connection, marts: Marts) -> dict[str, list[str]]:
    """Values the explorer's select boxes offer (statuses and funnels from the daily mart)."""
    t = marts.payments.c
    d = marts.daily.c

    def distinct(col) -> list[str]:  # noqa: ANN001
        return [r[0] for r in conn.execute(select(col).where(col.is_not(None)).distinct().order_by(col))]

    succeeded, failed, total = conn.execute(
        select(func.sum(d.successful_payments), func.sum(d.failed_payments), func.sum(d.total_attempts))
    ).one()
    present = {"succeeded": bool(succeeded), "failed": bool(failed), "pending": (total or 0) > (succeeded or 0) + (failed or 0)}
    return {
        "status": sorted(status for status, seen in present.items() if seen),
        "funnel": distinct(d.funnel_name),
        "card_brand": distinct(t.card_brand),
    }


def export_select(marts: Marts, filters: PaymentFilters, window: tuple[datetime, datetime] | None = None) -> sa.Select:
    """The filtered result in EXPORT_COLUMNS order, newest first, ready for CSV.

    Times become ISO 8601 (UTC, with Z); text a spreadsheet would run as a formula gets a
    leading quote; numbers stay numbers. `window` = [start, stop) limits created_at.
    """
    t = marts.payments
    columns = []
    for name in EXPORT_COLUMNS:
        col = t.c[name]
        if name == "created_at":
            columns.append(iso_utc(col).label(name))
        elif isinstance(col.type, sa.Text):
            columns.append(formula_safe(col).label(name))
        elif isinstance(col.type, sa.Boolean):
            # PostgreSQL's COPY would write t/f, DuckDB true/false: spell it once
            columns.append(
                sa.case((col.is_(True), sa.literal_column("'true'")), (col.is_(False), sa.literal_column("'false'"))).label(name)
            )
        else:
            columns.append(col)
    where = conditions(filters, t)
    if window is not None:
        where += [t.c.created_at >= window[0], t.c.created_at < window[1]]
    return select(*columns).where(*where).order_by(*_order(t))


def export_selects(
    conn: Connection, marts: Marts, filters: PaymentFilters, rows_per_window: int = 50_000, mart_tz: str | None = None
) -> list[sa.Select]:
    """The export as consecutive time windows, newest first, of about `rows_per_window` rows.

    Each window is sorted on its own, so the database never holds more than one window:
    memory stays flat however large the export. Concatenated, they are exactly
    export_select(marts, filters).
    """
    filters = resolve_search(conn, marts, filters)
    windows: list[sa.Select] = []
    stop, rows = None, 0
    days = _day_counts(conn, marts, filters, mart_tz)
    for index, (day_start, day_stop, n) in enumerate(days):
        if stop is None:
            stop, rows = day_stop, 0
        rows += n
        if rows >= rows_per_window or index == len(days) - 1:
            windows.append(export_select(marts, filters, (day_start, stop)))
            stop = None
    return windows or [export_select(marts, filters)]
