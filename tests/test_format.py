"""The dashboard's formatting rules (paydash/app/format.py) and the charts that follow them (pure)."""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal

import pytest

from paydash.app import charts, customer_views, tables
from paydash.app import format as fmt

EMPTY = "—"


# -- nothing is shown one way --------------------------------------------------------------------
@pytest.mark.parametrize("write", [fmt.money, fmt.money_compact, fmt.count, fmt.percent, fmt.text, fmt.words,
                                   lambda v: fmt.local_time(v, "UTC")])
def test_nothing_is_one_dash_everywhere(write) -> None:  # noqa: ANN001
    assert write(None) == EMPTY == fmt.EMPTY
    if write in (fmt.text, fmt.words):
        assert write("") == EMPTY


def test_tables_show_nothing_the_same_way() -> None:
    row = {"charge_id": "ch_1", "created_at": None, "amount_usd": None, "status": "pending", "customer_id": None}
    shown = tables.payment_rows([row], "UTC").iloc[0]
    assert shown["Time"] == shown["Card"] == shown["Customer"] == shown["Failure"] == shown["Funnel"] == EMPTY
    assert customer_views.discount_text({}) == EMPTY


# -- percentages: one decimal ----------------------------------------------------------------------
@pytest.mark.parametrize("fraction, shown", [(0.8623, "86.2%"), (1.0, "100.0%"), (0.0, "0.0%"), (0.0005, "0.1%"),
                                             (0.22333, "22.3%")])
def test_percent_has_one_decimal(fraction: float, shown: str) -> None:
    assert fmt.percent(fraction) == shown


def test_every_percent_format_has_the_same_decimals() -> None:
    # Streamlit's "percent" shows (decimals of the step - 2) decimals: 0.001 -> one, like fmt.percent
    assert fmt.PERCENT_COLUMN == {"format": "percent", "step": 0.001}
    assert fmt.VEGA_PERCENT == ".1%"
    specs = [charts.daily_revenue([{"date": "2026-03-01", "revenue_usd": Decimal("1"), "success_rate": 0.5}]),
             charts.failure_donut([{"failure_category": "card_declined", "failures": 3, "share": 1.0}]),
             charts.recovery_trend([{"date": "2026-03-01", "recovery_rate": 0.3, "recovered": 1, "first_failed": 3}]),
             customer_views.cohort_heatmap([{"cohort_month": date(2026, 3, 1), "months_since": 0, "share": 1.0,
                                             "active_customers": 2, "cohort_customers": 2}])]
    formats = set(re.findall(r"'format': '([^']*%)'", repr(specs)))
    assert formats <= {fmt.VEGA_PERCENT, fmt.VEGA_PERCENT_AXIS}  # tooltips one decimal, axis ticks whole
    assert fmt.VEGA_PERCENT in formats


# -- money: the same units on cards and axes -------------------------------------------------------------
@pytest.mark.parametrize("amount, shown", [
    (Decimal("9999.99"), "$9,999.99"),
    (Decimal("10000"), "$10.00K"),
    (Decimal("164250"), "$164.25K"),
    (Decimal("1086437.75"), "$1.09M"),
    (Decimal("3570000000"), "$3.57B"),
    (Decimal("0"), "$0.00"),
])
def test_money_compact(amount: Decimal, shown: str) -> None:
    assert fmt.money_compact(amount) == shown


def test_axes_use_the_cards_units() -> None:
    expression = fmt.VEGA_MONEY_AXIS["labelExpr"]
    units = [suffix for _, suffix in fmt.MONEY_UNITS]
    assert units == ["B", "M", "K"]
    assert re.findall(r"\+ '([A-Z])'", expression) == units  # largest unit tested first
    for size, suffix in fmt.MONEY_UNITS:
        assert f">= {size:g} ? '$' + format(datum.value / {size:g}, '~g') + '{suffix}'" in expression
        assert fmt.money_compact(Decimal(size) * 12).endswith(suffix)
    assert "k'" not in expression  # no lower-case SI prefix ("$50k") beside cards' "$50.00K"
    bars = charts.daily_revenue([])["layer"][0]["encoding"]["y"]
    assert bars["axis"] == fmt.VEGA_MONEY_AXIS


# -- nouns in the right number ---------------------------------------------------------------------------
@pytest.mark.parametrize("n, singular, plural_form, shown", [
    (0, "payment", None, "0 payments"),
    (1, "payment", None, "1 payment"),
    (2, "payment", None, "2 payments"),
    (1, "matching payment", None, "1 matching payment"),
    (1234, "matching payment", None, "1,234 matching payments"),
    (1, "customer", None, "1 customer"),
    (1, "table or view", "tables and views", "1 table or view"),
    (3, "table or view", "tables and views", "3 tables and views"),
    (None, "payment", None, "— payments"),
])
def test_quantity(n, singular: str, plural_form, shown: str) -> None:  # noqa: ANN001
    assert fmt.quantity(n, singular, plural_form) == shown
    assert fmt.plural(n, singular, plural_form) == shown.split(" ", 1)[1]


# -- legend labels in words -------------------------------------------------------------------------------
@pytest.mark.parametrize("identifier, shown", [
    ("card_declined", "Card declined"),
    ("authentication_required", "Authentication required"),
    ("other", "Other"),
    ("fraud_block", "Fraud block"),
    ("<script>alert(1)</script>", "<script>alert(1)</script>"),  # text stays text
    ("already words", "Already words"),
])
def test_words(identifier: str, shown: str) -> None:
    assert fmt.words(identifier) == shown


def test_the_donut_legend_is_in_words_and_keeps_the_category() -> None:
    spec = charts.failure_donut([
        {"failure_category": "card_declined", "failures": 5, "share": 0.5},
        {"failure_category": "insufficient_funds", "failures": 5, "share": 0.5},
    ])
    assert spec["encoding"]["color"]["field"] == "label"
    values = spec["data"]["values"]
    assert [v["label"] for v in values] == ["Card declined", "Insufficient funds"]
    assert [v["category"] for v in values] == ["card_declined", "insufficient_funds"]
    assert not any("_" in v["label"] for v in values)


# -- the cohort heatmap ------------------------------------------------------------------------------------
def test_the_heatmap_is_tall_enough_and_marks_the_month_so_far() -> None:
    grid = [{"cohort_month": date(2026, m, 1), "months_since": s, "share": 0.5, "active_customers": 1, "cohort_customers": 2,
             "partial": m + s == 3} for m in (1, 2, 3) for s in range(4 - m)]
    spec = customer_views.cohort_heatmap(grid)
    assert spec["height"] >= 240
    assert customer_views.cohort_heatmap(grid * 4 + [dict(grid[0], cohort_month=date(2025, m, 1)) for m in range(1, 13)])["height"] >= 15 * 44
    labels = {(v["cohort"], v["months_since"]): v["label"] for v in spec["data"]["values"]}
    assert labels[("2026-03", 0)] == "50.0%*" and labels[("2026-01", 2)] == "50.0%*" and labels[("2026-01", 0)] == "50.0%"
    note = customer_views.partial_note(grid)
    assert note.startswith("* March 2026 is not over")
    assert customer_views.partial_note([dict(r, partial=False) for r in grid]) is None


def test_local_time_is_unchanged() -> None:
    assert fmt.local_time(datetime(2026, 3, 10, 16, 0), "America/New_York") == "2026-03-10 12:00:00"


def test_the_daily_chart_marks_today_so_far() -> None:
    series = [{"date": d, "revenue_usd": Decimal("1"), "success_rate": 0.5} for d in ("2026-03-09", "2026-03-10")]
    spec = charts.daily_revenue(series, "2026-03-10")
    assert [(v["so_far"], v["day"]) for v in spec["data"]["values"]] == [(False, "whole day"), (True, "today so far")]
    assert spec["layer"][0]["encoding"]["opacity"]["condition"]["test"] == "datum.so_far"
    assert not any(v["so_far"] for v in charts.daily_revenue(series)["data"]["values"])


@pytest.mark.parametrize("fraction, text, style", [
    (0.052, "+5.2%", {"delta_color": "normal"}),
    (-0.3, "-30.0%", {"delta_color": "normal"}),
    (0.0, "0.0%", {"delta_color": "off", "delta_arrow": "off"}),
    (0.0004, "0.0%", {"delta_color": "off", "delta_arrow": "off"}),  # rounds to none: no rise drawn
    (-0.0004, "0.0%", {"delta_color": "off", "delta_arrow": "off"}),
    (0.0005, "+0.1%", {"delta_color": "normal"}),
    (None, None, {"delta_color": "normal"}),
])
def test_a_change_that_rounds_to_none_is_flat(fraction, text, style) -> None:  # noqa: ANN001
    assert fmt.relative_change(fraction) == text
    assert fmt.delta_style(text) == style


@pytest.mark.parametrize("fraction, digits, text", [
    (0.004, 1, "+0.4 pp"), (-0.00004, 1, "0.0 pp"), (0.0, 2, "0.00 pp"), (0.0003, 2, "+0.03 pp"), (-0.00004, 2, "0.00 pp"),
])
def test_points_change_rounds_to_flat_without_a_sign(fraction, digits, text) -> None:  # noqa: ANN001
    assert fmt.points_change(fraction, digits) == text
    flat = text.startswith("0")
    assert fmt.delta_style(text, "inverse") == ({"delta_color": "off", "delta_arrow": "off"} if flat else {"delta_color": "inverse"})
