"""The Payments explorer's filters, turned into SQL conditions without touching a database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Mapping

import sqlalchemy as sa

from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange, parse_date, today_in
from paydash.queries.sql import in_range

STATUSES = ("succeeded", "failed", "pending")
EARLIEST = date(2000, 1, 1)
MAX_SEARCH_LENGTH = 200

# Stripe id prefixes tell which column a pasted id belongs to.
_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("ch_", "charge_id"),
    ("py_", "charge_id"),
    ("pi_", "payment_intent_id"),
    ("cus_", "customer_id"),
)
SEARCH_COLUMNS = ("charge_id", "payment_intent_id", "customer_id", "profile_id")


@dataclass(frozen=True)
class PaymentFilters:
    status: str | None = None
    date_range: DateRange | None = None
    funnel: str | None = None
    card_brand: str | None = None
    search: str | None = None
    # the id columns a search is compared with; None: decided from the text (search_columns)
    search_in: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # blank means "no filter" and surrounding spaces go (see normalized), so check what remains
        if self.status is not None and self.status.strip() and self.status.strip() not in STATUSES:
            raise InvalidInput(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        if self.search is not None and len(self.search) > MAX_SEARCH_LENGTH:
            raise InvalidInput(f"search text is longer than {MAX_SEARCH_LENGTH} characters")

    def normalized(self) -> "PaymentFilters":
        """Blank strings mean 'no filter'; search text is trimmed."""
        def clean(v: str | None) -> str | None:
            return v.strip() or None if isinstance(v, str) else v

        return replace(
            self,
            status=clean(self.status),
            funnel=clean(self.funnel),
            card_brand=clean(self.card_brand),
            search=clean(self.search),
        )


def search_columns(text: str) -> tuple[str, ...]:
    """Which id columns a search text can match: one when it carries a Stripe prefix."""
    for prefix, column in _ID_PREFIXES:
        if text.startswith(prefix):
            return (column,)
    return SEARCH_COLUMNS


def conditions(filters: PaymentFilters, table: sa.Table) -> list[sa.ColumnElement[bool]]:
    """AND-ed conditions for the filters; every value is a bound parameter.

    Search is an exact match on the charge, payment intent, customer or profile id (a
    Stripe prefix narrows it to one column), so any text, including quotes, `%`, `_`
    and backslashes, is compared literally.
    """
    f = filters.normalized()
    c = table.c
    out: list[sa.ColumnElement[bool]] = []
    if f.status:
        out.append(c.status == f.status)
    if f.date_range is not None:
        out.append(in_range(c.created_at, f.date_range))
    if f.funnel:
        out.append(c.funnel_name == f.funnel)
    if f.card_brand:
        out.append(c.card_brand == f.card_brand)
    if f.search:
        cols = f.search_in if f.search_in is not None else search_columns(f.search)
        out.append(sa.or_(*(c[name] == f.search for name in cols)) if cols else sa.false())
    return out


def filters_from_params(params: Mapping[str, Any], tz: str) -> PaymentFilters:
    """Filters from URL query parameters or CLI options; invalid values raise InvalidInput."""

    def get(key: str) -> str | None:
        value = params.get(key)
        if isinstance(value, (list, tuple)):
            value = value[0] if value else None
        return str(value) if value not in (None, "") else None

    start, end = get("from"), get("to")
    rng = None
    if start or end:
        # an open end means "until today"; an open start "since the beginning"
        s = parse_date(start, "from") if start else EARLIEST
        e = parse_date(end, "to") if end else max(s, today_in(tz))
        rng = DateRange(s, e, tz)
    return PaymentFilters(
        status=get("status"),
        date_range=rng,
        funnel=get("funnel"),
        card_brand=get("card_brand"),
        search=get("search"),
    ).normalized()


def filters_to_params(filters: PaymentFilters) -> dict[str, str]:
    """The inverse of filters_from_params, for shareable links."""
    out: dict[str, str] = {}
    f = filters.normalized()
    if f.status:
        out["status"] = f.status
    if f.date_range:
        out["from"] = f.date_range.start.isoformat()
        out["to"] = f.date_range.end.isoformat()
    if f.funnel:
        out["funnel"] = f.funnel
    if f.card_brand:
        out["card_brand"] = f.card_brand
    if f.search:
        out["search"] = f.search
    return out
