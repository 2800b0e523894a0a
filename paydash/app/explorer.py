"""The Payments explorer's state and its URL (pure: no Streamlit, no database).

The URL is the shareable form of the explorer: its filters (validated by
`filters_from_params`), the page number and the selected charge. A link someone pastes
is untrusted input, so every value is checked and an invalid one is dropped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any, Mapping
from urllib.parse import urlencode

from paydash.app.file_names import csv_file_name
from paydash.errors import InvalidInput  # noqa: F401 - also for the page (a bad amount range)
from paydash.queries.dates import DateRange
from paydash.queries.filters import (  # noqa: F401 - re-exported for the page
    MAX_SEARCH_LENGTH,
    PARAM_KEYS,
    STATUSES,
    PaymentFilters,
    PaymentSort,
    filters_from_params,
    filters_to_params,
    sort_from_params,
    sort_to_params,
)
from paydash.queries.search import FIELDS

FILTER_KEYS = PARAM_KEYS
URL_KEYS = (*FILTER_KEYS, "sort", "asc", "page", "charge")
MAX_ID_LENGTH = 200

ANY_STATUS = "Any status"
ALL_FUNNELS = "All funnels"
ALL_BRANDS = "All card brands"
ALL_CATEGORIES = "All failure categories"
ALL_CODES = "All failure codes"
ALL_CURRENCIES = "All currencies"
ALL_COUNTRIES = "All card countries"
# the select boxes: widget key -> (filter field, the "no filter" choice)
SELECTS = {"status": ("status", ANY_STATUS), "funnel": ("funnel", ALL_FUNNELS), "card_brand": ("card_brand", ALL_BRANDS),
           "failure_category": ("failure_category", ALL_CATEGORIES), "failure_code": ("failure_code", ALL_CODES),
           "currency": ("currency", ALL_CURRENCIES), "card_country": ("card_country", ALL_COUNTRIES)}
# the sort control's choices, in the order shown
SORT_CHOICES = {"Newest first": PaymentSort(), "Oldest first": PaymentSort("created", True),
                "Largest amount first": PaymentSort("amount"), "Smallest amount first": PaymentSort("amount", True)}
SEARCH_HELP = (
    "An id or any part of one (4+ characters, any case): charge, payment intent, customer or profile; "
    "the start of a customer's email or name; and field terms, all combined: "
    + "; ".join(f"`{field}:` {meaning}" for field, meaning in FIELDS.items()) + "."
)


@dataclass(frozen=True)
class ExplorerState:
    filters: PaymentFilters = PaymentFilters()
    page: int = 1
    charge: str | None = None
    sort: PaymentSort = PaymentSort()

    def with_filters(self, filters: PaymentFilters) -> "ExplorerState":
        """New filters start again at page 1."""
        return self if filters == self.filters else replace(self, filters=filters, page=1)

    def with_sort(self, sort: PaymentSort) -> "ExplorerState":
        """Another order starts again at page 1."""
        return self if sort == self.sort else replace(self, sort=sort, page=1)


def _one(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


def state_from_params(params: Mapping[str, Any], tz: str) -> tuple[ExplorerState, list[str]]:
    """The explorer state a URL asks for, and a note for each value that had to be dropped."""
    notes: list[str] = []
    good: dict[str, str] = {}
    pairs = [("from", "to"), ("min_amount", "max_amount")]  # checked together: an end before the start
    groups = [(key,) for key in FILTER_KEYS if not any(key in pair for pair in pairs)] + pairs
    for keys in groups:
        part = {k: _one(params.get(k)) for k in keys if _one(params.get(k)) is not None}
        if not part:
            continue
        try:
            filters_from_params(part, tz)
        except InvalidInput as exc:
            notes.append(f"ignored the link's {' and '.join(part)}: {exc}")
            continue
        good.update(part)
    filters = filters_from_params(good, tz)
    sort = PaymentSort()
    sort_params = {k: _one(params.get(k)) for k in ("sort", "asc") if _one(params.get(k)) is not None}
    if sort_params:
        try:
            sort = sort_from_params(sort_params)
        except InvalidInput as exc:
            notes.append(f"ignored the link's {' and '.join(sort_params)}: {exc}")

    page = 1
    raw_page = _one(params.get("page"))
    if raw_page is not None:
        if raw_page.isdigit() and 0 < int(raw_page) < 10**9:
            page = int(raw_page)
        else:
            notes.append(f"ignored the link's page {raw_page!r}: not a page number")

    charge = _one(params.get("charge"))
    if charge is not None:
        charge = charge.strip()
        if not charge or len(charge) > MAX_ID_LENGTH:
            notes.append("ignored the link's charge: not a charge id")
            charge = None
    return ExplorerState(filters, page, charge, sort), notes


def state_to_params(state: ExplorerState) -> dict[str, str]:
    params = filters_to_params(state.filters) | sort_to_params(state.sort)
    if state.page > 1:
        params["page"] = str(state.page)
    if state.charge:
        params["charge"] = state.charge
    return params


def link(base_url: str, params: Mapping[str, str]) -> str:
    """An absolute link to the explorer with these parameters, every value URL-encoded."""
    return f"{base_url.rstrip('/')}?{urlencode(params)}" if params else base_url


# -- widgets <-> filters -----------------------------------------------------------------------
def widget_values(filters: PaymentFilters) -> dict[str, Any]:
    """What each filter widget shows for these filters."""
    rng = filters.date_range
    values: dict[str, Any] = {key: getattr(filters, field) or everything for key, (field, everything) in SELECTS.items()}
    return values | {
        "dates": (rng.start, rng.end) if rng else (),
        "search": filters.search or "",
        "min_amount": None if filters.min_amount is None else float(filters.min_amount),
        "max_amount": None if filters.max_amount is None else float(filters.max_amount),
    }


def filters_from_widgets(values: Mapping[str, Any], tz: str) -> PaymentFilters:
    """The filters the widgets describe; a half-picked date range means that one day.

    Raises InvalidInput when they contradict each other (a minimum above the maximum)."""
    picked = [d for d in (values.get("dates") or ()) if isinstance(d, date)]
    rng = DateRange(min(picked), max(picked), tz) if picked else None
    search = (values.get("search") or "").strip()[:MAX_SEARCH_LENGTH] or None

    def chosen(value: Any, everything: str) -> str | None:
        return None if value in (None, "", everything) else str(value)

    def amount(value: Any) -> Decimal | None:
        return None if value is None else Decimal(str(value)).quantize(Decimal("0.01"))

    return PaymentFilters(
        date_range=rng,
        search=search,
        min_amount=amount(values.get("min_amount")),
        max_amount=amount(values.get("max_amount")),
        **{field: chosen(values.get(key), everything) for key, (field, everything) in SELECTS.items()},
    ).normalized()


def export_file_name(filters: PaymentFilters, today: date) -> str:
    """The file the payments under these filters download as, named after the filters."""
    return csv_file_name("payments", filters_to_params(filters), today)


def sort_label(sort: PaymentSort) -> str:
    return next(label for label, s in SORT_CHOICES.items() if s == sort)


def export_command(filters: PaymentFilters, today: date) -> str:
    """The CLI command that exports the same result (for exports too big for the browser)."""
    import shlex

    args = ["paydash", "export", "payments", "--out", export_file_name(filters, today)]
    for key, value in filters_to_params(filters).items():
        args += ["--" + key.replace("_", "-"), value]
    return shlex.join(args)


def failures_link(rng: DateRange, funnel: str | None, failure_category: str | None = None,
                  failure_code: str | None = None) -> str | None:
    """The explorer (a relative link) showing the failed payments of a range behind a failure
    category or code: what the Overview's failure reasons and donut lead to. None for a
    category the explorer cannot filter by (not one of paydash's, e.g. from a dbt mart)."""
    try:
        filters = PaymentFilters(status="failed", date_range=rng, funnel=funnel, failure_category=failure_category,
                                 failure_code=failure_code)
    except InvalidInput:
        return None
    return link("/payments", filters_to_params(filters))
