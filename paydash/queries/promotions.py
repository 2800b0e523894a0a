"""The Promotions page: promotion codes with their use, and one code's customers and usage history.

Reads the optional promotion marts (docs/data-contract.md): `promotion_codes` and
`promotion_usage`. Definitions (docs/metrics.md, shown on the page):

- **uses** of a code: its `applied` rows (a discount granted on a checkout or invoice);
- **customers** of a code: distinct customers with at least one `applied` row;
- validated, cleared and failed are counted beside them (a customer's checkout events).

Lists are paged in the database (LIMIT/OFFSET over one code's rows, which stay few
compared with the charge mart). Every filter value is a bound parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.errors import InvalidInput
from paydash.queries.csv import for_csv
from paydash.queries.dates import DateRange
from paydash.queries.sql import count_if, in_range, money
from paydash.warehouse.schema import PROMOTION_USAGE_ACTIONS, Marts

PAGE_SIZE = 50
MAX_TEXT = 200
CODE_COLUMNS = ("promotion_code_id", "code", "coupon_id", "percent_off", "amount_off_usd", "active", "max_redemptions",
                "times_redeemed", "created_at", "expires_at")
USAGE_COLUMNS = ("occurred_at", "action", "customer_id", "discount_usd", "failure_reason", "checkout_session_id", "invoice_id",
                 "usage_id")


@dataclass(frozen=True)
class UsageFilters:
    """One code's usage history, narrowed by customer, action and date range (AND)."""

    promotion_code_id: str
    customer_id: str | None = None
    action: str | None = None
    date_range: DateRange | None = None

    def __post_init__(self) -> None:
        if self.action is not None and self.action not in PROMOTION_USAGE_ACTIONS:
            raise InvalidInput(f"action {self.action!r} is not one of {', '.join(PROMOTION_USAGE_ACTIONS)}")
        for what, value in (("promotion code id", self.promotion_code_id), ("customer", self.customer_id)):
            if value is not None and len(value) > MAX_TEXT:
                raise InvalidInput(f"the {what} is longer than {MAX_TEXT} characters")


@dataclass(frozen=True)
class Page:
    total: int
    page: int
    rows: list[dict[str, Any]]
    page_size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


def _check_page(page: int) -> int:
    if page < 1:
        raise InvalidInput(f"page {page} does not exist; pages start at 1")
    return (page - 1) * PAGE_SIZE


def _per_code(marts: Marts) -> sa.Subquery:
    u = marts.promotion_usage.c
    applied = u.action == "applied"
    return select(
        u.promotion_code_id,
        count_if(applied).label("uses"),
        func.count(sa.distinct(sa.case((applied, u.customer_id)))).label("customers"),
        count_if(u.action == "validated").label("validated"),
        count_if(u.action == "cleared").label("cleared"),
        count_if(u.action == "failed").label("failed"),
        func.coalesce(func.sum(sa.case((applied, u.discount_usd))), 0).label("discount_usd"),
        func.max(u.occurred_at).label("last_used_at"),
    ).group_by(u.promotion_code_id).subquery("per_code")


def codes_select(marts: Marts) -> sa.Select:
    """Every code with its use, newest code first."""
    c = marts.promotion_codes
    per = _per_code(marts)
    zero = sa.literal(0)
    return select(
        c.c.code, c.c.promotion_code_id, c.c.coupon_id, c.c.percent_off, c.c.amount_off_usd, c.c.active,
        func.coalesce(per.c.customers, zero).label("customers"),
        func.coalesce(per.c.uses, zero).label("uses"),
        func.coalesce(per.c.validated, zero).label("validated"),
        func.coalesce(per.c.cleared, zero).label("cleared"),
        func.coalesce(per.c.failed, zero).label("failed"),
        func.coalesce(per.c.discount_usd, zero).label("discount_usd"),
        c.c.times_redeemed, c.c.max_redemptions, c.c.created_at, c.c.expires_at, per.c.last_used_at,
    ).select_from(c.outerjoin(per, per.c.promotion_code_id == c.c.promotion_code_id))


def promotion_codes(conn: Connection, marts: Marts, page: int = 1) -> Page:
    """A page of codes, newest first, with customers and uses."""
    offset = _check_page(page)
    inner = codes_select(marts).subquery("codes")
    stmt = select(inner).order_by(inner.c.created_at.desc(), inner.c.promotion_code_id.desc()).limit(PAGE_SIZE).offset(offset)
    rows = [_money(dict(r._mapping), "amount_off_usd", "discount_usd") for r in conn.execute(stmt)]
    total = int(conn.execute(select(func.count()).select_from(marts.promotion_codes)).scalar_one())
    return Page(total, page, rows, PAGE_SIZE)


def codes_export_select(marts: Marts) -> sa.Select:
    return for_csv(codes_select(marts), ["-created_at", "-promotion_code_id"])


def _money(row: dict[str, Any], *names: str) -> dict[str, Any]:
    for name in names:
        if row.get(name) is not None:
            row[name] = money(row[name])
    return row


def code_detail(conn: Connection, marts: Marts, promotion_code_id: str) -> dict[str, Any] | None:
    """One code's row with its use (None when there is no such code)."""
    inner = codes_select(marts).subquery("codes")
    row = conn.execute(select(inner).where(inner.c.promotion_code_id == promotion_code_id).limit(1)).first()
    return None if row is None else _money(dict(row._mapping), "amount_off_usd", "discount_usd")


def code_customers_select(marts: Marts, promotion_code_id: str) -> sa.Select:
    """The code's customers: uses per action, discount, first and last time, most uses first."""
    u = marts.promotion_usage.c
    return select(
        u.customer_id,
        count_if(u.action == "applied").label("uses"),
        count_if(u.action == "validated").label("validated"),
        count_if(u.action == "cleared").label("cleared"),
        count_if(u.action == "failed").label("failed"),
        func.coalesce(func.sum(sa.case((u.action == "applied", u.discount_usd))), 0).label("discount_usd"),
        func.min(u.occurred_at).label("first_at"),
        func.max(u.occurred_at).label("last_at"),
    ).where(u.promotion_code_id == promotion_code_id).group_by(u.customer_id)


def code_customers(conn: Connection, marts: Marts, promotion_code_id: str, page: int = 1, with_profiles: bool = False) -> Page:
    offset = _check_page(page)
    inner = code_customers_select(marts, promotion_code_id).subquery("customers")
    stmt = select(inner).order_by(inner.c.uses.desc(), inner.c.last_at.desc(), inner.c.customer_id).limit(PAGE_SIZE).offset(offset)
    rows = [_money(dict(r._mapping), "discount_usd") for r in conn.execute(stmt)]
    total = int(conn.execute(select(func.count()).select_from(inner)).scalar_one())
    if with_profiles and rows:
        from paydash.queries.customers import profiles

        found = profiles(conn, marts, [r["customer_id"] for r in rows])
        for r in rows:
            r.update({k: found.get(r["customer_id"], {}).get(k) for k in ("email", "name")})
    return Page(total, page, rows, PAGE_SIZE)


def code_customers_export_select(marts: Marts, promotion_code_id: str) -> sa.Select:
    return for_csv(code_customers_select(marts, promotion_code_id), ["-uses", "-last_at", "customer_id"])


def _usage_conditions(marts: Marts, f: UsageFilters) -> list[sa.ColumnElement[bool]]:
    u = marts.promotion_usage.c
    out = [u.promotion_code_id == f.promotion_code_id]
    if f.customer_id:
        out.append(u.customer_id == f.customer_id)
    if f.action:
        out.append(u.action == f.action)
    if f.date_range is not None:
        out.append(in_range(u.occurred_at, f.date_range))
    return out


def usage_select(marts: Marts, f: UsageFilters) -> sa.Select:
    u = marts.promotion_usage
    return select(*(u.c[name] for name in USAGE_COLUMNS)).where(*_usage_conditions(marts, f))


def usage_history(conn: Connection, marts: Marts, f: UsageFilters, page: int = 1) -> Page:
    """A page of the code's uses matching the filters, newest first, with the total."""
    offset = _check_page(page)
    u = marts.promotion_usage
    stmt = usage_select(marts, f).order_by(u.c.occurred_at.desc(), u.c.usage_id.desc()).limit(PAGE_SIZE).offset(offset)
    rows = [_money(dict(r._mapping), "discount_usd") for r in conn.execute(stmt)]
    total = int(conn.execute(select(func.count()).select_from(u).where(*_usage_conditions(marts, f))).scalar_one())
    return Page(total, page, rows, PAGE_SIZE)


def usage_export_select(marts: Marts, f: UsageFilters) -> sa.Select:
    return for_csv(usage_select(marts, f), ["-occurred_at", "-usage_id"])


def usage_filters(promotion_code_id: str, customer: str | None, action: str | None, start: date | None, end: date | None,
                  tz: str) -> UsageFilters:
    """Filters from the page's widgets (blank means no filter; one picked day means that day)."""
    picked = [d for d in (start, end) if d is not None]
    rng = DateRange(min(picked), max(picked), tz) if picked else None
    return UsageFilters(promotion_code_id, (customer or "").strip() or None, action or None, rng)
