"""The Payments explorer's filters, turned into SQL conditions without touching a database."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Mapping

import sqlalchemy as sa

from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange, parse_date, today_in
from paydash.queries.search import MIN_FRAGMENT, STATUSES, Search, Term, parse_amount, parse_search
from paydash.queries.sql import in_range
from paydash.warehouse.expressions import icontains, istarts_with, sketch_holds
from paydash.warehouse.id_sketch import SKETCH_COLUMNS, search_mask

EARLIEST = date(2000, 1, 1)
MAX_SEARCH_LENGTH = 200
SORTS = ("created", "amount")

# Stripe id prefixes tell which column a pasted id belongs to.
_ID_PREFIXES: tuple[tuple[str, str], ...] = (
    ("ch_", "charge_id"),
    ("py_", "charge_id"),
    ("pi_", "payment_intent_id"),
    ("cus_", "customer_id"),
)
SEARCH_COLUMNS = ("charge_id", "payment_intent_id", "customer_id", "profile_id")
# search field -> the charge-mart column it compares (email and amount are special)
FIELD_COLUMNS = {"last4": "card_last4", "currency": "currency", "country": "card_country", "code": "failure_code",
                 "category": "failure_category", "status": "status"}
_AMOUNT_OPS = {"=": "__eq__", ">": "__gt__", ">=": "__ge__", "<": "__lt__", "<=": "__le__"}


@dataclass(frozen=True)
class PaymentFilters:
    status: str | None = None
    date_range: DateRange | None = None
    funnel: str | None = None
    card_brand: str | None = None
    search: str | None = None
    failure_category: str | None = None
    failure_code: str | None = None
    currency: str | None = None
    card_country: str | None = None
    min_amount: Decimal | None = None  # USD, included
    max_amount: Decimal | None = None  # USD, included
    # the id columns the free text is compared with; None: decided from the text (search_columns)
    search_in: tuple[str, ...] | None = None
    # how (resolve_search): "exact" (an id equal to the text exists), "fragment" (ids containing
    # it, any case); None: exact below MIN_FRAGMENT characters, else ids equal to or containing it
    search_match: str | None = None
    # customer ids whose email or name starts with the free text (resolve_search); None: not looked up
    search_customers: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # blank means "no filter" and surrounding spaces go (see normalized), so check what remains
        if self.status is not None and self.status.strip() and self.status.strip() not in STATUSES:
            raise InvalidInput(f"status {self.status!r} is not one of {', '.join(STATUSES)}")
        category = (self.failure_category or "").strip()
        if category and category not in FAILURE_CATEGORIES:
            raise InvalidInput(f"failure category {category!r} is not one of {', '.join(FAILURE_CATEGORIES)}")
        if self.search is not None and len(self.search) > MAX_SEARCH_LENGTH:
            raise InvalidInput(f"search text is longer than {MAX_SEARCH_LENGTH} characters")
        if self.min_amount is not None and self.max_amount is not None and self.min_amount > self.max_amount:
            raise InvalidInput(f"the minimum amount {self.min_amount} is above the maximum {self.max_amount}")

    def normalized(self) -> "PaymentFilters":
        """Blank strings mean 'no filter'; text is trimmed, currencies lower-case, countries upper-case."""
        def clean(v: str | None) -> str | None:
            return v.strip() or None if isinstance(v, str) else v

        currency, country = clean(self.currency), clean(self.card_country)
        return replace(
            self,
            status=clean(self.status),
            funnel=clean(self.funnel),
            card_brand=clean(self.card_brand),
            search=clean(self.search),
            failure_category=clean(self.failure_category),
            failure_code=clean(self.failure_code),
            currency=currency.lower() if currency else None,
            card_country=country.upper() if country else None,
        )

    def parsed_search(self) -> Search:
        """The search text as terms (InvalidInput for an unknown field or a bad value)."""
        return parse_search(self.search)


@dataclass(frozen=True)
class PaymentSort:
    """The explorer's order over the whole result: by time or by amount (then time), either way."""

    key: str = "created"
    ascending: bool = False

    def __post_init__(self) -> None:
        if self.key not in SORTS:
            raise InvalidInput(f"sort {self.key!r} is not one of {', '.join(SORTS)}")


def search_columns(text: str) -> tuple[str, ...]:
    """Which id columns a search text can match: one when it carries a Stripe prefix."""
    lowered = text.lower()
    for prefix, column in _ID_PREFIXES:
        if lowered.startswith(prefix):
            return (column,)
    return SEARCH_COLUMNS


def text_arms(f: PaymentFilters, c, customers: sa.Table | None = None,  # noqa: ANN001
              sketches: bool = False) -> list[sa.ColumnElement[bool]]:
    """The free text's alternatives (OR-ed by text_condition): an exact id; from MIN_FRAGMENT
    characters any part of an id, ignoring case; or (with `customers`, or ids resolved by
    resolve_search) the start of a customer's email or name. Each reads one column (two with
    its sketch), so a database can apply it inside its scan of the charge mart.

    With `sketches`, a part of an id is looked for only in rows whose id sketch has every bit
    of the text's (paydash/warehouse/id_sketch.py): an integer test that skips most rows."""
    text = f.parsed_search().text
    cols = f.search_in if f.search_in is not None else search_columns(text)
    fragment = f.search_match == "fragment" or (f.search_match is None and len(text) >= MIN_FRAGMENT)
    if fragment:
        mask = search_mask(text) if sketches else 0
        matches = [sa.and_(sketch_holds(c[SKETCH_COLUMNS[name]], mask), icontains(c[name], text)) if mask
                   else icontains(c[name], text) for name in cols]
    else:
        matches = [c[name] == text for name in cols]
    if f.search_customers is not None:
        if f.search_customers:
            matches.append(c.customer_id.in_(f.search_customers))
    elif customers is not None:
        matches.append(c.customer_id.in_(profile_matches(customers, text)))
    return matches


def text_condition(f: PaymentFilters, c, customers: sa.Table | None = None,  # noqa: ANN001
                   sketches: bool = False) -> sa.ColumnElement[bool]:
    """The free text (text_arms) as one condition."""
    matches = text_arms(f, c, customers, sketches)
    return sa.or_(*matches) if matches else sa.false()


def profile_matches(customers: sa.Table, text: str) -> sa.Select:
    """Customer ids whose email or name starts with `text`, ignoring case, literally."""
    k = customers.c
    # one select with an OR: on DuckDB each side is an ILIKE (3.5M customers: 75 ms, a UNION of
    # two selects 93-110 ms; an OR of lower() LIKEs was 30 times slower than their UNION, since
    # it lost the prefix rewrite ILIKE never has); PostgreSQL ORs its two lower() indexes
    return sa.select(k.customer_id).where(sa.or_(istarts_with(k.email, text), istarts_with(k.name, text)))


def _field_condition(term: Term, c, customers: sa.Table | None) -> sa.ColumnElement[bool]:  # noqa: ANN001
    if term.field == "amount":
        return getattr(c.amount_usd, _AMOUNT_OPS[term.op])(Decimal(term.value))
    if term.field == "email":
        if customers is None:
            raise InvalidInput("email: searches the customers mart, which this warehouse does not have "
                               "(docs/data-contract.md: mart_stripe_customers, PAYDASH_CUSTOMERS_TABLE)")
        k = customers.c
        emails = sa.select(k.customer_id).where(istarts_with(k.email, term.value))
        return c.customer_id.in_(emails)
    return c[FIELD_COLUMNS[term.field]] == term.value


def conditions(filters: PaymentFilters, table: sa.Table, customers: sa.Table | None = None,
               sketches: bool = False, with_text: bool = True) -> list[sa.ColumnElement[bool]]:
    """AND-ed conditions for the filters; every value is a bound parameter.

    The search's free text and field terms (paydash/queries/search.py) are AND-ed with the
    rest; any text, including quotes, `%`, `_` and backslashes, is compared literally.
    `customers`, the customers mart when it exists, lets the search find emails and names;
    `sketches`, the charge mart's id sketches, narrow a search for part of an id.
    `with_text=False` leaves the free text out (the caller applies text_arms itself).
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
    if f.failure_category:
        out.append(c.failure_category == f.failure_category)
    if f.failure_code:
        out.append(c.failure_code == f.failure_code)
    if f.currency:
        out.append(c.currency == f.currency)
    if f.card_country:
        out.append(c.card_country == f.card_country)
    if f.min_amount is not None:
        out.append(c.amount_usd >= f.min_amount)
    if f.max_amount is not None:
        out.append(c.amount_usd <= f.max_amount)
    if f.search:
        search = f.parsed_search()
        if search.text and with_text:
            out.append(text_condition(f, c, customers, sketches))
        out += [_field_condition(term, c, customers) for term in search.fields()]
    return out


# -- URL query parameters and CLI options ----------------------------------------------------
# parameter -> PaymentFilters field, for the plain text filters
_TEXT_PARAMS = {"status": "status", "funnel": "funnel", "card_brand": "card_brand", "search": "search",
                "failure_category": "failure_category", "failure_code": "failure_code", "currency": "currency",
                "card_country": "card_country"}
PARAM_KEYS = ("status", "from", "to", "funnel", "card_brand", "search", "failure_category", "failure_code",
              "currency", "card_country", "min_amount", "max_amount")


def _get(params: Mapping[str, Any], key: str) -> str | None:
    value = params.get(key)
    if isinstance(value, (list, tuple)):
        value = value[0] if value else None
    return str(value) if value not in (None, "") else None


def filters_from_params(params: Mapping[str, Any], tz: str) -> PaymentFilters:
    """Filters from URL query parameters or CLI options; invalid values raise InvalidInput."""
    start, end = _get(params, "from"), _get(params, "to")
    rng = None
    if start or end:
        # an open end means "until today"; an open start "since the beginning"
        s = parse_date(start, "from") if start else EARLIEST
        e = parse_date(end, "to") if end else max(s, today_in(tz))
        rng = DateRange(s, e, tz)
    amounts = {}
    for key in ("min_amount", "max_amount"):
        text = _get(params, key)
        if text is not None and text.strip():
            amounts[key] = parse_amount(text, f"{key.replace('_', ' ')} {text!r}")
    filters = PaymentFilters(
        date_range=rng, **{field: _get(params, key) for key, field in _TEXT_PARAMS.items()}, **amounts
    ).normalized()
    filters.parsed_search()  # an unknown field or a bad value is said now
    return filters


def filters_to_params(filters: PaymentFilters) -> dict[str, str]:
    """The inverse of filters_from_params, for shareable links."""
    out: dict[str, str] = {}
    f = filters.normalized()
    for key in PARAM_KEYS:
        if key == "from" and f.date_range:
            out["from"] = f.date_range.start.isoformat()
        elif key == "to" and f.date_range:
            out["to"] = f.date_range.end.isoformat()
        elif key in ("min_amount", "max_amount"):
            value = getattr(f, key)
            if value is not None:
                out[key] = str(value)
        elif key in _TEXT_PARAMS and getattr(f, _TEXT_PARAMS[key]):
            out[key] = getattr(f, _TEXT_PARAMS[key])
    return out


def sort_from_params(params: Mapping[str, Any]) -> PaymentSort:
    """`sort` (created or amount) and `asc` (1 for ascending) from a URL or the CLI."""
    asc = (_get(params, "asc") or "").lower()
    if asc not in ("", "0", "1", "true", "false"):
        raise InvalidInput(f"asc {asc!r} is not 1 or 0")
    return PaymentSort(_get(params, "sort") or "created", asc in ("1", "true"))


def sort_to_params(sort: PaymentSort) -> dict[str, str]:
    out = {"sort": sort.key} if sort.key != "created" else {}
    if sort.ascending:
        out["asc"] = "1"
    return out
