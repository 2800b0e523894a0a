"""The Payments explorer: pages of matching charges, one payment's detail, filter options, export.

Paging is newest first (created_at, then charge_id, descending). A page by number is found
without OFFSET over the whole result: one aggregate counts the matches per hour (which also
gives the total), picks the hour where the page starts, and the page query then reads
from the end of that hour with an offset smaller than one hour's payments. With rows
stored in time order DuckDB skips everything older through its zone maps; PostgreSQL walks
its (created_at, charge_id) index. So the 1000th page costs about what the first does.
Next/previous from a known row can also seek by key (`after`).

Export: `export_select` builds the statement, and the warehouse streams it as CSV.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select, tuple_
from sqlalchemy.engine import Connection

from paydash.errors import InvalidInput
from paydash.queries.filters import PaymentFilters, conditions
from paydash.warehouse.expressions import formula_safe, iso_utc
from paydash.warehouse.schema import PAYMENT_COLUMNS, Marts

PAGE_SIZE = 50

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


def count_payments(conn: Connection, marts: Marts, filters: PaymentFilters) -> int:
    t = marts.payments
    return int(conn.execute(select(func.count()).select_from(t).where(*conditions(filters, t))).scalar_one())


def _locate(conn: Connection, marts: Marts, filters: PaymentFilters, offset: int) -> tuple[int, datetime | None, int]:
    """(total, end of the hour where row `offset` lies, rows of that page before it in the hour)."""
    t = marts.payments
    buckets = (
        select(_hour(t.c.created_at).label("hour"), func.count().label("n"))
        .where(*conditions(filters, t))
        .group_by(_hour(t.c.created_at))
        .cte("buckets")
    )
    running = select(
        buckets.c.hour,
        buckets.c.n,
        func.sum(buckets.c.n).over(order_by=buckets.c.hour.desc(), rows=(None, 0)).label("upto"),
    ).cte("running")
    total = select(func.coalesce(func.sum(buckets.c.n), 0)).scalar_subquery()
    stmt = (
        select(total.label("total"), running.c.hour, running.c.n, running.c.upto)
        .select_from(running)
        .where(running.c.upto > offset)
        .order_by(running.c.hour.desc())
        .limit(1)
    )
    row = conn.execute(stmt).first()
    if row is None:
        total_only = conn.execute(select(func.coalesce(func.sum(buckets.c.n), 0))).scalar_one()
        return int(total_only), None, 0
    before_hour = int(row.upto) - int(row.n)
    return int(row.total), row.hour + timedelta(hours=1), offset - before_hour


def _rows(result) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def payments_page(conn: Connection, marts: Marts, filters: PaymentFilters, page: int = 1, page_size: int = PAGE_SIZE) -> PaymentsPage:
    """Page `page` (1-based) of the matching payments, newest first, with the total count."""
    if page < 1:
        raise InvalidInput(f"page {page} does not exist; pages start at 1")
    t = marts.payments
    offset = (page - 1) * page_size
    total, hour_end, local_offset = _locate(conn, marts, filters, offset)
    pages = max(1, math.ceil(total / page_size))
    if hour_end is None:
        return PaymentsPage(total, page, pages, [])
    stmt = (
        select(*(t.c[name] for name in LIST_COLUMNS))
        .where(*conditions(filters, t), t.c.created_at < hour_end)
        .order_by(*_order(t))
        .limit(page_size)
        .offset(local_offset)
    )
    return PaymentsPage(total, page, pages, _rows(conn.execute(stmt)))


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


def payment_detail(conn: Connection, marts: Marts, charge_id: str) -> dict[str, Any] | None:
    """Every contract column of one charge plus the retry history of its payment intent."""
    t = marts.payments
    row = conn.execute(select(t).where(t.c.charge_id == charge_id).limit(1)).first()
    if row is None:
        return None
    detail = dict(row._mapping)
    if detail.get("payment_intent_id"):
        history_stmt = (
            select(*(t.c[name] for name in HISTORY_COLUMNS))
            .where(t.c.payment_intent_id == detail["payment_intent_id"])
            .order_by(t.c.created_at, t.c.attempt_number, t.c.charge_id)
        )
        history = _rows(conn.execute(history_stmt))
    else:
        history = [{name: detail[name] for name in HISTORY_COLUMNS}]
    detail["retry_history"] = history
    detail["payment_outcome"] = _outcome(history)
    return detail


def _outcome(history: list[dict[str, Any]]) -> str:
    """How the payment intent stands after all its attempts."""
    statuses = [h["status"] for h in history]
    if "succeeded" in statuses:
        return "recovered" if statuses[0] != "succeeded" else "succeeded"
    if "pending" in statuses:
        return "pending"
    return "failed"


def filter_options(conn: Connection, marts: Marts) -> dict[str, list[str]]:
    """Values the explorer's select boxes offer."""
    t = marts.payments.c
    d = marts.daily.c

    def distinct(col) -> list[str]:  # noqa: ANN001
        return [r[0] for r in conn.execute(select(col).where(col.is_not(None)).distinct().order_by(col))]

    return {
        "status": distinct(t.status),
        "funnel": distinct(d.funnel_name),
        "card_brand": distinct(t.card_brand),
    }


def export_select(marts: Marts, filters: PaymentFilters) -> sa.Select:
    """The whole filtered result in EXPORT_COLUMNS order, newest first, ready for CSV.

    Times become ISO 8601 (UTC, with Z); text a spreadsheet would run as a formula gets a
    leading quote; numbers stay numbers.
    """
    t = marts.payments
    columns = []
    for name in EXPORT_COLUMNS:
        col = t.c[name]
        if name == "created_at":
            columns.append(iso_utc(col).label(name))
        elif isinstance(col.type, sa.Text):
            columns.append(formula_safe(col).label(name))
        else:
            columns.append(col)
    return select(*columns).where(*conditions(filters, t)).order_by(*_order(t))
