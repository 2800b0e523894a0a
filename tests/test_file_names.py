"""Downloaded files are named after what they hold (paydash/app/file_names.py), in safe characters."""

from __future__ import annotations

import re
from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paydash.app import explorer
from paydash.app.file_names import MAX_STEM, csv_file_name
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters, filters_to_params

TODAY = date(2026, 12, 4)
SAFE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*\.csv")

NAMES = {
    "no filters": ({}, "payments-until-2026-12-04.csv"),
    "the example": ({"status": "failed", "from": "2026-11-01", "to": "2026-11-30", "card_brand": "visa"},
                    "payments-failed-visa-2026-11-01-to-2026-11-30.csv"),
    "funnel": ({"funnel": "main_funnel"}, "payments-main_funnel-until-2026-12-04.csv"),
    "search is labelled": ({"search": "cus_00000CXhNHTJVv"}, "payments-search-cus_00000CXhNHTJVv-until-2026-12-04.csv"),
    # filters this module has never heard of name themselves as key-value
    "new filters": ({"failure_category": "card_declined", "currency": "eur", "min_amount": "10.5", "max_amount": "99"},
                    "payments-failure-category-card_declined-currency-eur-min-amount-10.5-max-amount-99-until-2026-12-04.csv"),
    "where the view is, not what the file holds": ({"status": "pending", "page": "7", "charge": "ch_1"},
                                                   "payments-pending-until-2026-12-04.csv"),
    "empty values": ({"status": "", "funnel": None}, "payments-until-2026-12-04.csv"),
    "one open end": ({"from": "2026-11-01"}, "payments-2026-11-01-to-2026-12-04.csv"),
    "path and shell characters": ({"search": "../../etc/passwd; rm -rf $HOME"},
                                  "payments-search-etc-passwd-rm-rf-HOME-until-2026-12-04.csv"),
    "quotes, percent, backslash": ({"search": "O'Brien 100% \\x"}, "payments-search-O-Brien-100-x-until-2026-12-04.csv"),
    "accents and other scripts": ({"search": "Zoë Ünal 東京"}, "payments-search-Zoe-Unal-until-2026-12-04.csv"),
    "nothing safe left": ({"search": "%%%"}, "payments-search-until-2026-12-04.csv"),
    "a list of values": ({"status": ["failed", "pending"]}, "payments-failed-pending-until-2026-12-04.csv"),
}


@pytest.mark.parametrize("params, name", NAMES.values(), ids=NAMES.keys())
def test_names(params, name) -> None:  # noqa: ANN001
    assert csv_file_name("payments", params, TODAY) == name


def test_a_long_search_is_cut_and_the_dates_stay() -> None:
    name = csv_file_name("payments", {"status": "failed", "search": "x" * 200, "from": "2026-01-01", "to": "2026-01-31"},
                         TODAY)
    assert name == f"payments-failed-search-{'x' * 40}-2026-01-01-to-2026-01-31.csv"
    many = {f"filter_{i}": "y" * 40 for i in range(10)} | {"from": "2026-01-01", "to": "2026-01-31"}
    name = csv_file_name("payments", many, TODAY)
    assert len(name) <= MAX_STEM + len(".csv") and name.endswith("-2026-01-01-to-2026-01-31.csv") and SAFE.fullmatch(name)


def test_the_explorer_names_its_filters() -> None:
    filters = PaymentFilters(status="failed", card_brand="visa", date_range=DateRange(date(2026, 11, 1), date(2026, 11, 30)))
    assert explorer.export_file_name(filters, TODAY) == "payments-failed-visa-2026-11-01-to-2026-11-30.csv"
    assert explorer.export_command(filters, TODAY).startswith(
        "paydash export payments --out payments-failed-visa-2026-11-01-to-2026-11-30.csv --status failed ")


@given(st.dictionaries(st.sampled_from(["status", "funnel", "card_brand", "search", "currency", "from", "to", "odd key/é"]),
                       st.text(max_size=300)))
def test_any_parameters_give_a_safe_short_name(params) -> None:  # noqa: ANN001
    name = csv_file_name("payments", params, TODAY)
    assert SAFE.fullmatch(name), name
    assert name.startswith("payments") and len(name) <= MAX_STEM + len(".csv")


@given(st.text(max_size=200).filter(lambda s: s.strip()))
def test_any_search_from_the_explorer_gives_a_safe_name(text) -> None:  # noqa: ANN001
    filters = PaymentFilters(search=text.strip()[:200])
    assert SAFE.fullmatch(explorer.export_file_name(filters, TODAY))
    assert filters_to_params(filters)  # the name came from the URL parameters
