"""The Payments explorer's state and its URL (pure: no Streamlit, no database).

The URL is the shareable form of the explorer: its filters (validated by
`filters_from_params`), the page number and the selected charge. A link someone pastes
is untrusted input, so every value is checked and an invalid one is dropped with a note.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from typing import Any, Mapping
from urllib.parse import urlencode

from paydash.app.file_names import csv_file_name
from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange
from paydash.queries.filters import MAX_SEARCH_LENGTH, STATUSES, PaymentFilters, filters_from_params, filters_to_params  # noqa: F401

FILTER_KEYS = ("status", "from", "to", "funnel", "card_brand", "search")
URL_KEYS = (*FILTER_KEYS, "page", "charge")
MAX_ID_LENGTH = 200

ANY_STATUS = "Any status"
ALL_FUNNELS = "All funnels"
ALL_BRANDS = "All card brands"


@dataclass(frozen=True)
class ExplorerState:
    filters: PaymentFilters = PaymentFilters()
    page: int = 1
    charge: str | None = None

    def with_filters(self, filters: PaymentFilters) -> "ExplorerState":
        """New filters start again at page 1."""
        return self if filters == self.filters else replace(self, filters=filters, page=1)


def _one(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


def state_from_params(params: Mapping[str, Any], tz: str) -> tuple[ExplorerState, list[str]]:
    """The explorer state a URL asks for, and a note for each value that had to be dropped."""
    notes: list[str] = []
    good: dict[str, str] = {}
    groups = (("status",), ("from", "to"), ("funnel",), ("card_brand",), ("search",))
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
    return ExplorerState(filters, page, charge), notes


def state_to_params(state: ExplorerState) -> dict[str, str]:
    params = filters_to_params(state.filters)
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
    return {
        "status": filters.status or ANY_STATUS,
        "dates": (rng.start, rng.end) if rng else (),
        "funnel": filters.funnel or ALL_FUNNELS,
        "card_brand": filters.card_brand or ALL_BRANDS,
        "search": filters.search or "",
    }


def filters_from_widgets(values: Mapping[str, Any], tz: str) -> PaymentFilters:
    """The filters the widgets describe; a half-picked date range means that one day."""
    picked = [d for d in (values.get("dates") or ()) if isinstance(d, date)]
    rng = DateRange(min(picked), max(picked), tz) if picked else None
    search = (values.get("search") or "").strip()[:MAX_SEARCH_LENGTH] or None

    def chosen(value: Any, everything: str) -> str | None:
        return None if value in (None, "", everything) else str(value)

    return PaymentFilters(
        status=chosen(values.get("status"), ANY_STATUS),
        date_range=rng,
        funnel=chosen(values.get("funnel"), ALL_FUNNELS),
        card_brand=chosen(values.get("card_brand"), ALL_BRANDS),
        search=search,
    ).normalized()


def export_file_name(filters: PaymentFilters, today: date) -> str:
    """The file the payments under these filters download as, named after the filters."""
    return csv_file_name("payments", filters_to_params(filters), today)


def export_command(filters: PaymentFilters, today: date) -> str:
    """The CLI command that exports the same result (for exports too big for the browser)."""
    import shlex

    args = ["paydash", "export", "payments", "--out", export_file_name(filters, today)]
    for key, value in filters_to_params(filters).items():
        option = {"from": "--from", "to": "--to", "card_brand": "--card-brand"}.get(key, f"--{key}")
        args += [option, value]
    return shlex.join(args)
