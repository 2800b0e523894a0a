"""The Customers page: the customer list, one customer's deep dive, monthly retention cohorts.

Definitions (docs/metrics.md, shown on the page):

- a customer is a `customer_id` of the charge mart (charges without one are left out);
- **payments** are payment intents, counted by their first attempt (`attempt_number = 1`);
  **attempts** are charges (retries included);
- **revenue** is the amount of successful attempts; **failure rate** is failed attempts /
  all attempts (the attempt-level success rate's complement, pending attempts counted);
- **first / last payment** is the customer's earliest / latest attempt, whatever its outcome;
- a **retention cohort** is the customers whose first successful payment fell in a month;
  a cohort is *active* in a later month when it has at least one successful attempt in
  it; the share is active customers / the cohort's size. Months are calendar months in the
  reporting timezone.

The list is read from the customer-totals mart when paydash built it (the demo, the Stripe
sync), else aggregated from the charge mart (`customer_totals_select`: the same numbers).
It is paged by key (seek), never by OFFSET: a page is the `page_size` customers after the
last one shown in the chosen order (revenue or last payment, then customer id, descending),
so page 1000 costs what page 1 does. Search matches an exact customer id, or, when the
customers mart exists, the start of an email address or a name (case-insensitive, the text
taken literally). Every value is a bound parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Double, Integer, cast, func, select, tuple_
from sqlalchemy.engine import Connection

from paydash.errors import InvalidInput
from paydash.queries.csv import for_csv
from paydash.queries.payments import payment_outcome
from paydash.queries.sql import local_date, money, ratio
from paydash.warehouse.customer_totals import customer_totals_select, month_of
from paydash.warehouse.schema import Marts

PAGE_SIZE = 50
MAX_SEARCH_LENGTH = 200
# The deep dive shows the customer's latest attempts (a customer with more says so).
TIMELINE_LIMIT = 500
USAGE_LIMIT = 100
SORTS = {"revenue": "revenue_usd", "last_payment": "last_payment_at"}
LIST_COLUMNS = ("customer_id", "payments", "attempts", "successful", "failed", "revenue_usd", "first_payment_at", "last_payment_at")
TIMELINE_COLUMNS = ("charge_id", "payment_intent_id", "attempt_number", "created_at", "status", "amount_usd", "currency",
                    "failure_code", "failure_category", "recovery_action", "funnel_name", "card_brand", "card_country")


@dataclass(frozen=True)
class CustomerSearch:
    """What the list shows: search text (None: everyone) and the order."""

    text: str | None = None
    sort: str = "revenue"

    def __post_init__(self) -> None:
        if self.sort not in SORTS:
            raise InvalidInput(f"sort {self.sort!r} is not one of {', '.join(SORTS)}")
        if self.text is not None and len(self.text) > MAX_SEARCH_LENGTH:
            raise InvalidInput(f"search text is longer than {MAX_SEARCH_LENGTH} characters")

    def normalized(self) -> "CustomerSearch":
        text = self.text.strip() if isinstance(self.text, str) else None
        return CustomerSearch(text or None, self.sort)


@dataclass(frozen=True)
class CustomersPage:
    total: int
    rows: list[dict[str, Any]]
    # the key to pass as `after` for the next page; None on the last page
    next_key: tuple[Any, str] | None

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / PAGE_SIZE))


def like_prefix(text: str) -> str:
    """A LIKE pattern matching values that start with `text` literally (escape character '/')."""
    return "".join("/" + ch if ch in "/%_" else ch for ch in text) + "%"


def matching_ids(marts: Marts, text: str, with_profiles: bool) -> sa.Select:
    """Customer ids the search text names: the exact id, and (with the customers mart) the
    customers whose email or name starts with it, ignoring case."""
    exact = select(sa.literal(text, sa.Text).label("customer_id"))
    if not with_profiles or text.startswith("cus_"):
        return exact
    c = marts.customers.c
    pattern = like_prefix(text.lower())
    # one select per column: an OR of the two LIKEs is 30 times slower on DuckDB
    by_email = select(c.customer_id).where(func.lower(c.email).like(pattern, escape="/"))
    by_name = select(c.customer_id).where(func.lower(c.name).like(pattern, escape="/"))
    return sa.union(exact, by_email, by_name)


def _source(marts: Marts, search: CustomerSearch, precomputed: bool, with_profiles: bool) -> sa.FromClause:
    """Per-customer totals, only the searched customers' when there is a search."""
    ids = matching_ids(marts, search.text, with_profiles) if search.text else None
    if precomputed:
        t = marts.customer_totals
        stmt = select(*(t.c[name] for name in (*LIST_COLUMNS, "first_success_at")))
        if ids is not None:
            stmt = stmt.where(t.c.customer_id.in_(ids))
        return stmt.subquery("totals")
    return customer_totals_select(marts, ids).subquery("totals")


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    row["revenue_usd"] = money(row["revenue_usd"])
    row["failure_rate"] = ratio(row["failed"], row["attempts"])
    return row


def profiles(conn: Connection, marts: Marts, customer_ids: list[str]) -> dict[str, dict[str, Any]]:
    """customer id -> {email, name, created_at} from the customers mart (the first row of each)."""
    if not customer_ids:
        return {}
    c = marts.customers.c
    found: dict[str, dict[str, Any]] = {}
    stmt = select(c.customer_id, c.email, c.name, c.created_at).where(c.customer_id.in_(customer_ids))
    for row in conn.execute(stmt):
        found.setdefault(row.customer_id, {"email": row.email, "name": row.name, "created_at": row.created_at})
    return found


def customers_page(
    conn: Connection,
    marts: Marts,
    search: CustomerSearch = CustomerSearch(),
    after: tuple[Any, str] | None = None,
    page_size: int = PAGE_SIZE,
    precomputed: bool = False,
    with_profiles: bool = False,
) -> CustomersPage:
    """The `page_size` customers after the key `after` (None: the first page), with the total.

    `precomputed`: read the customer-totals mart; `with_profiles`: the customers mart
    exists (names and emails, and search by them).
    """
    search = search.normalized()
    src = _source(marts, search, precomputed, with_profiles)
    key = src.c[SORTS[search.sort]]
    stmt = select(*(src.c[name] for name in LIST_COLUMNS)).order_by(key.desc(), src.c.customer_id.desc()).limit(page_size + 1)
    if after is not None:
        stmt = stmt.where(tuple_(key, src.c.customer_id) < tuple_(sa.literal(after[0], key.type), sa.literal(after[1], sa.Text)))
    rows = [_shape(dict(r._mapping)) for r in conn.execute(stmt)]
    more = len(rows) > page_size
    rows = rows[:page_size]
    total = int(conn.execute(select(func.count()).select_from(src)).scalar_one())
    if with_profiles:
        found = profiles(conn, marts, [r["customer_id"] for r in rows])
        for r in rows:
            r.update(found.get(r["customer_id"], {"email": None, "name": None, "created_at": None}))
    last = rows[-1] if rows and more else None
    next_key = (last[SORTS[search.sort]], last["customer_id"]) if last else None
    return CustomersPage(total, rows, next_key)


def customers_export_select(marts: Marts, search: CustomerSearch, precomputed: bool = False,
                            with_profiles: bool = False) -> sa.Select:
    """The whole list (every matching customer) in the page's order, CSV-safe."""
    search = search.normalized()
    src = _source(marts, search, precomputed, with_profiles)
    failure_rate = cast(src.c.failed, Double) / func.nullif(src.c.attempts, 0)
    columns = [src.c.customer_id]
    joined: sa.FromClause = src
    if with_profiles:
        # the customers mart may hold a customer twice: take one row per customer
        c = marts.customers
        one = select(c.c.customer_id, func.min(c.c.email).label("email"), func.min(c.c.name).label("name")) \
            .where(c.c.customer_id.in_(select(src.c.customer_id))).group_by(c.c.customer_id).subquery("profile")
        joined = src.outerjoin(one, one.c.customer_id == src.c.customer_id)
        columns += [one.c.email, one.c.name]
    columns += [src.c[name] for name in LIST_COLUMNS[1:]] + [failure_rate.label("failure_rate")]
    inner = select(*columns).select_from(joined)
    return for_csv(inner, ["-" + SORTS[search.sort], "-customer_id"])


# -- one customer -------------------------------------------------------------------------------
def customer_detail(conn: Connection, marts: Marts, customer_id: str, with_profile: bool = False,
                    with_usage: bool = False, limit: int = TIMELINE_LIMIT) -> dict[str, Any] | None:
    """Totals, profile, and a timeline of the customer's payments (each with its attempts).

    None when the id has no charge (and no customers-mart row). The timeline holds the
    latest `limit` attempts, newest payment first; `truncated` says when there are more.
    """
    p = marts.payments
    totals_stmt = customer_totals_select(marts).where(p.c.customer_id == customer_id)
    totals = conn.execute(totals_stmt).first()
    profile = profiles(conn, marts, [customer_id]).get(customer_id) if with_profile else None
    if totals is None and profile is None:
        return None
    detail: dict[str, Any] = {"customer_id": customer_id, "profile": profile}
    if totals is None:
        detail["totals"] = {"payments": 0, "attempts": 0, "successful": 0, "failed": 0, "revenue_usd": Decimal("0.00"),
                            "failure_rate": None, "first_payment_at": None, "last_payment_at": None, "first_success_at": None}
    else:
        detail["totals"] = _shape(dict(totals._mapping))
    failed_amount = conn.execute(
        select(func.coalesce(func.sum(p.c.amount_usd), 0)).where(p.c.customer_id == customer_id, p.c.status == "failed")
    ).scalar_one()
    detail["totals"]["failed_amount_usd"] = money(failed_amount)
    attempts = [dict(r._mapping) for r in conn.execute(
        select(*(p.c[name] for name in TIMELINE_COLUMNS)).where(p.c.customer_id == customer_id)
        .order_by(p.c.created_at.desc(), p.c.charge_id.desc()).limit(limit + 1)
    )]
    detail["truncated"] = len(attempts) > limit
    detail["timeline"] = timeline(attempts[:limit])
    detail["promotion_usage"] = usage_of(conn, marts, customer_id) if with_usage else None
    return detail


def timeline(attempts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Attempts (newest first) grouped into payments, newest payment first, attempts oldest first."""
    payments: dict[str, dict[str, Any]] = {}
    for a in attempts:
        key = a["payment_intent_id"] or a["charge_id"]  # a charge without an intent is its own payment
        payment = payments.setdefault(key, {"payment_intent_id": a["payment_intent_id"], "attempts": []})
        payment["attempts"].append(a)
    out = []
    for payment in payments.values():
        history = sorted(payment["attempts"], key=lambda a: (a["created_at"], a["attempt_number"] or 0, a["charge_id"]))
        won = [a for a in history if a["status"] == "succeeded"]
        out.append({
            "payment_intent_id": payment["payment_intent_id"],
            "started_at": history[0]["created_at"],
            "last_attempt_at": history[-1]["created_at"],
            "amount_usd": money(history[0]["amount_usd"]),
            "outcome": payment_outcome(history),
            "attempts": history,
            "paid_usd": money(sum((a["amount_usd"] for a in won), Decimal(0))),
        })
    out.sort(key=lambda p: p["last_attempt_at"], reverse=True)
    return out


def _usage_of_select(marts: Marts, customer_id: str) -> sa.Select:
    u = marts.promotion_usage.c
    return (select(u.occurred_at, u.code, u.promotion_code_id, u.action, u.discount_usd, u.failure_reason, u.checkout_session_id,
                   u.usage_id).where(u.customer_id == customer_id))


def usage_of(conn: Connection, marts: Marts, customer_id: str, limit: int = USAGE_LIMIT) -> list[dict[str, Any]]:
    """The customer's latest promotion-code uses (the promotion usage mart must exist)."""
    u = marts.promotion_usage.c
    stmt = _usage_of_select(marts, customer_id).order_by(u.occurred_at.desc(), u.usage_id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def usage_of_export_select(marts: Marts, customer_id: str) -> sa.Select:
    """Every promotion-code use of the customer, newest first, CSV-safe."""
    return for_csv(_usage_of_select(marts, customer_id), ["-occurred_at", "-usage_id"])


def timeline_export_select(marts: Marts, customer_id: str) -> sa.Select:
    """Every attempt of the customer, newest first, CSV-safe."""
    p = marts.payments
    inner = select(*(p.c[name] for name in TIMELINE_COLUMNS)).where(p.c.customer_id == customer_id)
    return for_csv(inner, ["-created_at", "-charge_id"])


# -- retention cohorts ----------------------------------------------------------------------------
_month = month_of


def _months_between(start: sa.ColumnElement, stop: sa.ColumnElement) -> sa.ColumnElement:
    def part(what: str, col: sa.ColumnElement) -> sa.ColumnElement:
        return cast(sa.extract(what, col), Integer)

    return (part("year", stop) - part("year", start)) * 12 + part("month", stop) - part("month", start)


def cohorts_select(marts: Marts, tz: str, mart_tz: str | None = None, since: date | None = None,
                   precomputed: bool = False) -> sa.Select:
    """Rows (cohort_month, months_since, active_customers, cohort_customers, share).

    A customer's cohort is the month of their first successful attempt (over all history);
    they are active in a month with at least one successful attempt. Months are local to
    `tz`: from created_date when the charge mart's dates are in `tz` (`mart_tz`), else
    converted per charge. `since`: only cohorts from that month on. `precomputed`: read
    the customer-months mart (paydash's own build, months of created_date) when `tz` is
    the mart's timezone: one GROUP BY over it instead of two over the charges.
    """
    if precomputed and mart_tz == tz:
        m = marts.customer_months.c
        months_since = _months_between(m.cohort_month, m.month)
        grid = select(m.cohort_month.label("cohort_month"), months_since.label("months_since"),
                      func.count().label("active_customers")).group_by(m.cohort_month, months_since)
        if since is not None:
            grid = grid.where(m.cohort_month >= date(since.year, since.month, 1))
        return _shares(grid.subquery("grid"))
    p = marts.payments.c
    day = p.created_date if mart_tz == tz else local_date(p.created_at, tz)
    month = _month(day)
    active = (select(p.customer_id, month.label("month"))
              .where(p.status == "succeeded", p.customer_id.is_not(None))
              .group_by(p.customer_id, month).subquery("active"))
    firsts = select(active.c.customer_id, func.min(active.c.month).label("cohort")).group_by(active.c.customer_id)
    if since is not None:
        firsts = firsts.having(func.min(active.c.month) >= date(since.year, since.month, 1))
    firsts = firsts.subquery("firsts")
    since_expr = _months_between(firsts.c.cohort, active.c.month)
    grid = (select(firsts.c.cohort.label("cohort_month"), since_expr.label("months_since"), func.count().label("active_customers"))
            .select_from(active.join(firsts, firsts.c.customer_id == active.c.customer_id))
            .group_by(firsts.c.cohort, since_expr).subquery("grid"))
    return _shares(grid)


def _shares(grid: sa.Subquery) -> sa.Select:
    size = func.sum(sa.case((grid.c.months_since == 0, grid.c.active_customers), else_=0)).over(partition_by=grid.c.cohort_month)
    return select(
        grid.c.cohort_month,
        grid.c.months_since,
        grid.c.active_customers,
        cast(size, Integer).label("cohort_customers"),
        (cast(grid.c.active_customers, Double) / cast(size, Double)).label("share"),
    )


def retention_cohorts(conn: Connection, marts: Marts, tz: str, mart_tz: str | None = None, since: date | None = None,
                      precomputed: bool = False, today: date | None = None) -> list[dict[str, Any]]:
    """The cohort grid, oldest cohort first, months since in order.

    `partial` marks the cells of the month `today` falls in (in `tz`): that month is not
    over, so its share counts only the days so far and reads low against whole months.
    """
    inner = cohorts_select(marts, tz, mart_tz, since, precomputed).subquery("cohorts")
    stmt = select(inner).order_by(inner.c.cohort_month, inner.c.months_since)
    out = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        cohort = row["cohort_month"]
        row["cohort_month"] = cohort.date() if isinstance(cohort, datetime) else cohort
        row["months_since"] = int(row["months_since"])
        months = row["cohort_month"].year * 12 + row["cohort_month"].month - 1 + row["months_since"]
        row["partial"] = today is not None and months == today.year * 12 + today.month - 1
        out.append(row)
    return out


def cohorts_export_select(marts: Marts, tz: str, mart_tz: str | None = None, since: date | None = None,
                          precomputed: bool = False) -> sa.Select:
    return for_csv(cohorts_select(marts, tz, mart_tz, since, precomputed), ["cohort_month", "months_since"])
