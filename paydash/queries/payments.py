"""The Payments explorer: pages of matching charges, one payment's detail, filter options, export.

Order: newest first by default (created_at, then charge_id, descending), or oldest first,
or by amount (amount_usd, then created_at and charge_id, the same way; unknown amounts
last either way) over the whole result. A page near either end is a plain ORDER BY ...
LIMIT/OFFSET (from the far end: the reverse order, read backwards). A deep page is found
without OFFSET over the whole result:

- by time: matches are counted per day (from the daily mart when the filters allow, which
  also gives the total), then per hour inside the day where the page starts, and the page
  query reads a bounded time window. With rows stored in time order DuckDB skips
  everything else through its zone maps; PostgreSQL walks its (created_at, charge_id) index.
- by amount: matches are counted per amount (from the amount-counts mart when the filters
  allow, else one aggregate of the charge mart; a running sum in the database returns only
  the amounts the page spans); the page query reads those amounts, and a page deep inside
  one amount (a popular price), or any page when the mart gives each amount's days, seeks
  by time inside it as above.

The 1000th page costs about what the first does. Next/previous from a known row can also
seek by key (`payments_after`). A search reads its (few) matches once, one select per id
column (after the id sketches where the mart has them), sorts and counts them.

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
from sqlalchemy import Date, cast, func, select
from sqlalchemy.engine import Connection

from paydash.currencies import minor_unit_divisor
from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.errors import InvalidInput
from paydash.queries.dates import local_midnight_utc
from paydash.queries.sql import hour_split
from paydash.queries.filters import PaymentFilters, PaymentSort, conditions, profile_matches, search_columns, text_arms
from paydash.queries.search import MIN_FRAGMENT
from paydash.warehouse.expressions import formula_safe, indexed_distinct_values, iso_utc, keyset_before
from paydash.warehouse.schema import PAYMENT_COLUMNS, Marts, display_name

PAGE_SIZE = 50
# Offsets below this (from either end) are read with a plain ORDER BY ... LIMIT/OFFSET.
DIRECT_OFFSET = 2_000
# An email or name start naming more customers than this is compared as a subquery.
MAX_PROFILE_IDS = 1_000

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
class SearchScope:
    """What the warehouse has that a search can use: the customers mart (emails and names)
    and the charge mart's optional card_last4 column. The caller asks the warehouse."""

    customers: bool = False
    card_last4: bool = False
    # the charge mart's id sketches, tested before the text of a search for part of an id
    # (paydash/warehouse/id_sketch.py; Warehouse.has_id_sketches)
    id_sketches: bool = False
    # the amount-counts mart (paydash's own, beside the daily mart): the amount order counts
    # matches per amount there when the filters allow
    amount_counts: bool = False
    # the rollup mart (paydash's own, warehouse/rollup.py): counts of filters on its dimensions
    # over whole UTC hours are summed there
    rollup: bool = False


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


def _order(c, sort: PaymentSort = PaymentSort(), reverse: bool = False) -> list[sa.ColumnElement]:  # noqa: ANN001
    """ORDER BY keys of `sort` over columns `c`; `reverse` is the exact opposite order."""
    ascending = sort.ascending != reverse

    def way(col):  # noqa: ANN001, ANN202
        return col.asc() if ascending else col.desc()

    keys = []
    if sort.key == "amount":
        keys.append(way(c.amount_usd).nulls_first() if reverse else way(c.amount_usd).nulls_last())
    return keys + [way(c.created_at), way(c.charge_id)]


def _where(filters: PaymentFilters, marts: Marts, scope: SearchScope | None) -> list[sa.ColumnElement[bool]]:
    scope = scope or SearchScope()
    return conditions(filters, marts.payments, marts.customers if scope.customers else None, scope.id_sketches)


def _daily_mart_count(filters: PaymentFilters, marts: Marts, mart_tz: str | None) -> sa.ColumnElement | None:
    """The daily-mart expression counting these filters' matches, or None if it cannot.

    The daily mart knows attempts per local day, funnel and status; it answers when the
    filters use nothing else and the range is in the timezone its days are in. (Its
    per-category counts are paydash's own, not the contract's: a dbt mart may lack them.)
    """
    f = filters.normalized()
    others = (f.search, f.card_brand, f.failure_category, f.failure_code, f.currency, f.card_country, f.min_amount,
              f.max_amount)
    if mart_tz is None or any(v is not None for v in others) or (f.date_range is not None and f.date_range.tz != mart_tz):
        return None
    d = marts.daily.c
    return {
        None: d.total_attempts,
        "succeeded": d.successful_payments,
        "failed": d.failed_payments,
        "pending": d.total_attempts - d.successful_payments - d.failed_payments,
    }[f.status]


# PaymentFilters field -> the rollup's column (every filter the rollup can answer)
_ROLLUP_FILTERS = {"status": "status", "funnel": "funnel_name", "card_brand": "card_brand",
                   "failure_category": "failure_category", "failure_code": "failure_code", "currency": "currency",
                   "card_country": "card_country"}


def _rollup_where(filters: PaymentFilters | None, marts: Marts, scope: SearchScope | None) -> list | None:
    """The rollup-mart conditions matching these filters, or None when it cannot answer: it can
    when every filter is one of its dimensions and the range is whole UTC hours."""
    if filters is None or scope is None or not scope.rollup or marts.rollup is None:
        return None
    f = filters.normalized()
    if f.search or f.min_amount is not None or f.max_amount is not None:
        return None
    r = marts.rollup.c
    out = [r[column] == getattr(f, field) for field, column in _ROLLUP_FILTERS.items() if getattr(f, field)]
    if f.date_range is not None:
        split = hour_split(f.date_range)
        if split is None or split[1] != split[2]:
            return None
        out += [r.hour >= split[0], r.hour < split[2]]
    return out


def _day_counts(conn: Connection, marts: Marts, filters: PaymentFilters, mart_tz: str | None,
                where: list[sa.ColumnElement[bool]], ascending: bool = False,
                scope: SearchScope | None = None) -> list[tuple[datetime, datetime, int]]:
    """Matches of `where` per day in walk order: (UTC start, UTC stop, count), days without matches left out.

    From the daily mart when it can answer for `filters` (cheap on any engine; pass
    filters=None when `where` adds more), else from the rollup mart when it can (per UTC
    day), else counted per UTC day in the charge mart.
    """
    measure = _daily_mart_count(filters, marts, mart_tz) if filters is not None else None
    if measure is not None:
        f = filters.normalized()
        d = marts.daily.c
        stmt = select(d.date, func.sum(measure)).group_by(d.date).order_by(d.date.asc() if ascending else d.date.desc())
        if f.date_range is not None:
            stmt = stmt.where(d.date >= f.date_range.start, d.date <= f.date_range.end)
        if f.funnel:
            stmt = stmt.where(d.funnel_name == f.funnel)
        return [
            (local_midnight_utc(day, mart_tz), local_midnight_utc(day + timedelta(days=1), mart_tz), int(n))
            for day, n in conn.execute(stmt)
            if n
        ]
    rolled = _rollup_where(filters, marts, scope)
    if rolled is not None:
        r = marts.rollup.c
        day = cast(r.hour, Date)
        rows = conn.execute(select(day, func.sum(r.payments)).where(*rolled).group_by(day)
                            .order_by(day.asc() if ascending else day.desc()))
    else:
        t = marts.payments
        day = cast(t.c.created_at, Date)
        rows = conn.execute(select(day, func.count()).where(*where).group_by(day)
                            .order_by(day.asc() if ascending else day.desc()))
    return [(datetime.combine(d, time.min), datetime.combine(d, time.min) + timedelta(days=1), int(n))
            for d, n in rows if n]


def count_payments(conn: Connection, marts: Marts, filters: PaymentFilters, mart_tz: str | None = None,
                   scope: SearchScope | None = None) -> int:
    """How many payments match; from the daily mart when it can answer (`mart_tz` given), else
    from the rollup mart when it can (`scope.rollup`), else from the charge mart."""
    filters = resolve_search(conn, marts, filters, scope)
    where = _where(filters, marts, scope)
    if _daily_mart_count(filters, marts, mart_tz) is not None:
        return sum(n for _, _, n in _day_counts(conn, marts, filters, mart_tz, where))
    rolled = _rollup_where(filters, marts, scope)
    if rolled is not None:
        r = marts.rollup.c
        return int(conn.execute(select(func.coalesce(func.sum(r.payments), 0)).where(*rolled)).scalar_one())
    t = marts.payments
    return int(conn.execute(select(func.count()).select_from(t).where(*where)).scalar_one())


def resolve_search(conn: Connection, marts: Marts, filters: PaymentFilters, scope: SearchScope | None = None) -> PaymentFilters:
    """Check the search against what the warehouse has, and narrow it where that is cheap.

    - a term the warehouse cannot answer (`last4:` without card_last4, `email:` without the
      customers mart) is refused with what to add;
    - an id equal to the text is looked for first, one indexed lookup per id column (one
      column with a Stripe prefix): found, the search is that exact id (a pasted id reads
      its few rows through the index, never the whole mart); else, from MIN_FRAGMENT
      characters, every id containing the text, ignoring case (a scan on DuckDB, the
      trigram indexes on PostgreSQL);
    - the customers whose email or name starts with the text are looked up once
      (up to MAX_PROFILE_IDS; more stay a subquery).
    """
    f = filters.normalized()
    if not f.search:
        return f
    search = f.parsed_search()
    scope = scope or SearchScope()
    fields = {term.field for term in search.fields()}
    if "last4" in fields and not scope.card_last4:
        raise InvalidInput(
            f"last4: cannot search: {display_name(marts.payments)} has no card_last4 column. paydash's own marts "
            "have it (`paydash rebuild-marts` fills it for a Stripe sync); a dbt mart can add it from "
            "payment_method_details.card.last4 (docs/data-contract.md)"
        )
    if "email" in fields and not scope.customers:
        raise InvalidInput(
            f"email: cannot search: there is no customers mart ({display_name(marts.customers)}); "
            "add it as docs/data-contract.md describes, or search by customer id"
        )
    text = search.text
    if text is None:
        return f
    columns, match = f.search_in, f.search_match
    t = marts.payments
    if columns is None or match is None:
        columns = search_columns(text)
        exact = tuple(
            name for name in columns
            if conn.execute(select(sa.literal(1)).select_from(t).where(t.c[name] == text).limit(1)).first()
        )
        if exact or len(text) < MIN_FRAGMENT:
            columns, match = exact, "exact"
        else:
            match = "fragment"
    customers = f.search_customers
    if customers is None and scope.customers and not text.lower().startswith(("ch_", "py_", "pi_", "cus_")):
        found = [r[0] for r in conn.execute(profile_matches(marts.customers, text).limit(MAX_PROFILE_IDS + 1))]
        customers = tuple(found) if len(found) <= MAX_PROFILE_IDS else None
    return replace(f, search_in=columns, search_match=match, search_customers=customers)


def _rows(result) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in result]


def _select_page(c, where, sort: PaymentSort, offset: int, limit: int, reverse: bool = False) -> sa.Select:  # noqa: ANN001
    stmt = select(*(c[name] for name in LIST_COLUMNS)).where(*where).order_by(*_order(c, sort, reverse)).limit(limit)
    return stmt.offset(offset) if offset else stmt


def payments_page(
    conn: Connection, marts: Marts, filters: PaymentFilters, page: int = 1, page_size: int = PAGE_SIZE,
    mart_tz: str | None = None, sort: PaymentSort = PaymentSort(), scope: SearchScope | None = None,
) -> PaymentsPage:
    """Page `page` (1-based) of the matching payments in `sort` order, with the total count.

    `mart_tz`, the timezone the daily mart's days are in, lets counts come from it;
    `scope` says which optional data the search may use.
    """
    if page < 1:
        raise InvalidInput(f"page {page} does not exist; pages start at 1")
    t = marts.payments
    filters = resolve_search(conn, marts, filters, scope)
    where = _where(filters, marts, scope)
    offset = (page - 1) * page_size
    if filters.search and filters.parsed_search().text is not None:
        # an id, part of one, an email or a name: few matches (field terms alone are filters)
        scope = scope or SearchScope()
        customers = marts.customers if scope.customers else None
        others = conditions(filters, t, customers, scope.id_sketches, with_text=False)
        arms = text_arms(filters.normalized(), t.c, customers, scope.id_sketches)
        total, rows = _search_page(conn, t, others, arms, sort, offset, page_size)
    elif sort.key == "amount":
        counts = _amount_mart_where(filters, marts, mart_tz, scope)
        total, rows = _amount_page(conn, marts, where, offset, page_size, sort, counts, mart_tz)
    elif offset < DIRECT_OFFSET:
        # near the top a plain top-N is cheapest, and the count is one aggregate
        total = count_payments(conn, marts, filters, mart_tz, scope)
        rows = _rows(conn.execute(_select_page(t.c, where, sort, offset, page_size))) if offset < total else []
    else:
        days = _day_counts(conn, marts, filters, mart_tz, where, sort.ascending, scope)
        total = sum(n for _, _, n in days)
        if offset >= total:
            rows = []
        elif total - offset <= DIRECT_OFFSET:
            # near the far end: the reverse order's first rows, read backwards
            end = min(offset + page_size, total)
            rows = _rows(conn.execute(_select_page(t.c, where, sort, total - end, end - offset, reverse=True)))[::-1]
        else:
            rows = _time_seek(conn, t, where, days, offset, page_size, sort)
    return PaymentsPage(total, page, max(1, math.ceil(total / page_size)), rows)


def _search_page(conn: Connection, t: sa.Table, where, arms, sort: PaymentSort, offset: int,  # noqa: ANN001
                 page_size: int) -> tuple[int, list]:
    """A search matches few rows: read them once, then sort, page and count them together.

    One select per alternative of the text (`arms`: this id column, that one, the customers
    whose email or name starts with it), joined by UNION: each reads one id column (and its
    sketch), so DuckDB applies it inside the scan and fetches the other columns only for the
    rows it keeps, and PostgreSQL uses the index of that column. An OR of them read every
    listed column of every row on DuckDB (10M payments: see docs/performance.md).
    """
    if not arms:
        return 0, []
    selects = [select(*(t.c[name] for name in LIST_COLUMNS)).where(*where, arm) for arm in arms]
    found = sa.union(*selects) if len(selects) > 1 else selects[0]
    matches = found.cte("matches").prefix_with("MATERIALIZED")
    stmt = _select_page(matches.c, [], sort, offset, page_size).add_columns(func.count().over().label("matches_total"))
    rows = _rows(conn.execute(stmt))
    if rows:
        total = int(rows[0]["matches_total"])
        for row in rows:
            del row["matches_total"]
        return total, rows
    return int(conn.execute(select(func.count()).select_from(matches)).scalar_one()), []


def _time_seek(conn: Connection, t: sa.Table, where, days, offset: int, page_size: int, sort: PaymentSort,  # noqa: ANN001
               limit: int | None = None) -> list[dict[str, Any]]:
    """The rows at `offset` in time order (sort's direction), from per-day counts `days` (in
    that order): counts per hour inside the day where the page starts, then reads the time
    window by which `page_size` more rows have been counted, so only a few thousand rows."""
    ascending = sort.ascending
    limit = page_size if limit is None else limit
    before = 0
    for index, (day_start, day_stop, n) in enumerate(days):
        if before + n > offset:
            break
        before += n
    else:
        return []
    hour = _hour(t.c.created_at)
    hours = conn.execute(
        select(hour, func.count())
        .where(*where, t.c.created_at >= day_start, t.c.created_at < day_stop)
        .group_by(hour)
        .order_by(hour.asc() if ascending else hour.desc())
    ).all()
    # in walk order: (bucket start, bucket end, rows): the hours of this day, then the next days
    buckets = [(h, min(h + timedelta(hours=1), day_stop), n) for h, n in hours]
    buckets += [(start, stop, n) for start, stop, n in days[index + 1 :]]
    first = last = None
    needed = offset + page_size
    for bucket in buckets:
        if first is None and before + bucket[2] > offset:
            first, local_offset = bucket, offset - before
        before += bucket[2]
        if first is not None and before >= needed:
            last = bucket
            break
    if first is None:
        return []  # rows vanished between the two reads
    window = []
    if ascending:
        window.append(t.c.created_at >= first[0])
        if last is not None:
            window.append(t.c.created_at < last[1])
    else:
        window.append(t.c.created_at < first[1])
        if last is not None:
            window.append(t.c.created_at >= last[0])
    time_sort = PaymentSort("created", ascending)
    return _rows(conn.execute(_select_page(t.c, [*where, *window], time_sort, local_offset, limit)))


def _amount_mart_where(filters: PaymentFilters, marts: Marts, mart_tz: str | None,
                       scope: SearchScope | None) -> list[sa.ColumnElement[bool]] | None:
    """Conditions on the amount-counts mart that select what `filters` select, or None when it
    cannot answer (it is missing, or the filters use more than status, funnel, amount and a
    range of days in the timezone its days are in)."""
    if scope is None or not scope.amount_counts or mart_tz is None or marts.amount_counts is None:
        return None
    f = filters.normalized()
    others = (f.search, f.card_brand, f.failure_category, f.failure_code, f.currency, f.card_country)
    if any(v is not None for v in others) or (f.date_range is not None and f.date_range.tz != mart_tz):
        return None
    a = marts.amount_counts.c
    out = []
    if f.status:
        out.append(a.status == f.status)
    if f.funnel:
        out.append(a.funnel_name == f.funnel)
    if f.date_range is not None:
        out += [a.date >= f.date_range.start, a.date <= f.date_range.end]
    if f.min_amount is not None:
        out.append(a.amount_usd >= f.min_amount)
    if f.max_amount is not None:
        out.append(a.amount_usd <= f.max_amount)
    return out


def _amount_page(conn: Connection, marts: Marts, where, offset: int, page_size: int,  # noqa: ANN001
                 sort: PaymentSort, counts: list[sa.ColumnElement[bool]] | None = None,
                 mart_tz: str | None = None) -> tuple[int, list[dict[str, Any]]]:
    """(total, the rows at `offset` in amount order).

    Matches are counted per amount in one aggregate (over the amount-counts mart when
    `counts`, its conditions, are given: a few thousand rows instead of the charge mart); a
    running sum in the database returns the total and only the amounts the page spans. The
    page query then reads just those amounts (a small sort instead of ordering every match);
    a page that starts deep inside one amount (a popular price) reads it by time as the time
    order does. With the mart every amount the page spans is read that way, its days counted
    there: a popular price's 20,000 matches are never sorted (10M: 50-90 -> 11-21 ms).
    """
    t = marts.payments
    if counts is not None:
        a = marts.amount_counts.c
        groups = (select(a.amount_usd.label("amount"), func.sum(a.payments).label("n")).where(*counts)
                  .group_by(a.amount_usd).subquery())
    else:
        groups = select(t.c.amount_usd.label("amount"), func.count().label("n")).where(*where).group_by(t.c.amount_usd).subquery()
    amount_key = (groups.c.amount.asc() if sort.ascending else groups.c.amount.desc()).nulls_last()
    running = select(groups.c.amount, groups.c.n, func.sum(groups.c.n).over(order_by=amount_key).label("upto"),
                     func.sum(groups.c.n).over().label("total")).subquery()
    spanned = conn.execute(
        select(running.c.amount, running.c.n, running.c.upto, running.c.total)
        .where(sa.or_(running.c.upto > offset, running.c.upto == running.c.total),
               running.c.upto - running.c.n < offset + page_size)
        .order_by(running.c.upto)
    ).all()
    if not spanned:
        return 0, []
    total = int(spanned[0].total)
    spanned = [g for g in spanned if g.upto > offset]
    if not spanned:
        return total, []
    first = spanned[0]
    local_offset = offset - (int(first.upto) - int(first.n))
    amount = t.c.amount_usd

    def within(values: list) -> sa.ColumnElement[bool]:  # noqa: ANN001
        known = [v for v in values if v is not None]
        spans = [amount.between(min(known), max(known))] if known else []
        return sa.or_(*spans, *([amount.is_(None)] if None in values else []))

    if counts is not None:
        # the mart knows each amount's matches per day: every amount the page spans is read by
        # time inside it (a day's row groups, then an hour), never by sorting all its matches
        a = marts.amount_counts.c
        rows: list[dict[str, Any]] = []
        for g in spanned:
            start = local_offset if g is first else 0
            take = min(page_size - len(rows), int(g.n) - start)
            if take <= 0:
                break
            one = a.amount_usd.is_(None) if g.amount is None else a.amount_usd == g.amount
            per_day = conn.execute(select(a.date, func.sum(a.payments)).where(*counts, one).group_by(a.date)
                                   .order_by(a.date.asc() if sort.ascending else a.date.desc()))
            days = [(local_midnight_utc(day, mart_tz), local_midnight_utc(day + timedelta(days=1), mart_tz), int(n))
                    for day, n in per_day if n]
            rows += _time_seek(conn, t, [*where, within([g.amount])], days, start, take, sort)
        return total, rows
    if local_offset < DIRECT_OFFSET:
        stmt = _select_page(t.c, [*where, within([g.amount for g in spanned])], sort, local_offset, page_size)
        return total, _rows(conn.execute(stmt))
    # deep inside one amount: its rows at local_offset by time, then the next amounts from their start
    inside = [*where, within([first.amount])]
    take = min(page_size, int(first.n) - local_offset)
    if int(first.n) - local_offset - take < DIRECT_OFFSET:
        # near the end of this amount: its last rows, read backwards
        stmt = _select_page(t.c, inside, sort, int(first.n) - local_offset - take, take, reverse=True)
        rows = _rows(conn.execute(stmt))[::-1]
    else:
        days = _day_counts(conn, marts, None, None, inside, sort.ascending)
        rows = _time_seek(conn, t, inside, days, local_offset, take, sort)
    if len(rows) < page_size and len(spanned) > 1:
        rest = [*where, within([g.amount for g in spanned[1:]])]
        rows += _rows(conn.execute(_select_page(t.c, rest, sort, 0, page_size - len(rows))))
    return total, rows


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
        where.append(keyset_before((t.c.created_at, t.c.charge_id), after))
    stmt = select(*(t.c[name] for name in LIST_COLUMNS)).where(*where).order_by(*_order(t.c)).limit(page_size)
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
    card_last4: bool = False,
) -> dict[str, Any] | None:
    """Every contract column of one charge (and card_last4 when the mart has it, say so), the retry history of its payment intent, and with
    the optional marts present its refunds and disputes (of every charge of the intent), the
    customer's name and email, and one timeline of attempts, refunds and disputes in time order.

    `original_amount` is the amount in the charge's own currency: amount_usd itself for USD,
    else amount_usd at `fx_rates` (USD per unit, the rates the marts were converted at),
    rounded to the currency's minor unit; None without a rate.
    """
    t = marts.payments
    columns = [t.c[name] for name in (*EXPORT_COLUMNS, *(("card_last4",) if card_last4 else ()))]
    row = conn.execute(select(*columns).where(t.c.charge_id == charge_id).limit(1)).first()
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
    detail["payment_outcome"] = payment_outcome(history)
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


def payment_outcome(history: list[dict[str, Any]]) -> str:
    """How the payment intent stands after all its attempts."""
    statuses = [h["status"] for h in history]
    if "succeeded" in statuses:
        return "recovered" if statuses[0] != "succeeded" else "succeeded"
    if "pending" in statuses:
        return "pending"
    return "failed"


def filter_options(conn: Connection, marts: Marts, rollup: bool = False) -> dict[str, list[str]]:
    """Values the explorer's select boxes offer (statuses and funnels from the daily mart,
    failure categories from paydash.decline_codes, the rest from the rollup mart when it is
    there (`rollup`), else from the charge mart)."""
    t = marts.rollup.c if rollup else marts.payments.c
    d = marts.daily.c

    def distinct(col) -> list[str]:  # noqa: ANN001
        if rollup:  # PostgreSQL walks the rollup's index on the column instead of reading every row
            return [r[0] for r in conn.execute(indexed_distinct_values(col))]
        return [r[0] for r in conn.execute(select(col).where(col.is_not(None)).distinct().order_by(col))]

    succeeded, failed, total = conn.execute(
        select(func.sum(d.successful_payments), func.sum(d.failed_payments), func.sum(d.total_attempts))
    ).one()
    present = {"succeeded": bool(succeeded), "failed": bool(failed), "pending": (total or 0) > (succeeded or 0) + (failed or 0)}
    return {
        "status": sorted(status for status, seen in present.items() if seen),
        "funnel": distinct(d.funnel_name),
        "card_brand": distinct(t.card_brand),
        "failure_category": list(FAILURE_CATEGORIES),
        "failure_code": distinct(t.failure_code),
        "currency": distinct(t.currency),
        "card_country": distinct(t.card_country),
    }


def export_select(marts: Marts, filters: PaymentFilters, window: tuple[datetime, datetime] | None = None,
                  scope: SearchScope | None = None) -> sa.Select:
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
    where = _where(filters, marts, scope)
    if window is not None:
        where += [t.c.created_at >= window[0], t.c.created_at < window[1]]
    return select(*columns).where(*where).order_by(*_order(t.c))


def export_selects(
    conn: Connection, marts: Marts, filters: PaymentFilters, rows_per_window: int = 50_000, mart_tz: str | None = None,
    scope: SearchScope | None = None,
) -> list[sa.Select]:
    """The export as consecutive time windows, newest first, of about `rows_per_window` rows.

    Each window is sorted on its own, so the database never holds more than one window:
    memory stays flat however large the export. Concatenated, they are exactly
    export_select(marts, filters).
    """
    filters = resolve_search(conn, marts, filters, scope)
    windows: list[sa.Select] = []
    stop, rows = None, 0
    days = _day_counts(conn, marts, filters, mart_tz, _where(filters, marts, scope), scope=scope)
    for index, (day_start, day_stop, n) in enumerate(days):
        if stop is None:
            stop, rows = day_stop, 0
        rows += n
        if rows >= rows_per_window or index == len(days) - 1:
            windows.append(export_select(marts, filters, (day_start, stop), scope))
            stop = None
    return windows or [export_select(marts, filters, scope=scope)]
