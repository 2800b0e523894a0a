"""The Overview's view and its URL, and what its comparison caption says (pure)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from paydash.app.ranges import OverviewView, comparison_caption, view_from_params, view_to_params, view_from_widgets
from paydash.queries.dates import DateRange

VIEWS = {
    "default": (OverviewView(), {}),
    "7 days": (OverviewView("Last 7 days"), {"range": "7d"}),
    "90 days, a funnel": (OverviewView("Last 90 days", funnel="mobile_app"), {"range": "90d", "funnel": "mobile_app"}),
    "custom": (OverviewView("Custom", (date(2026, 3, 1), date(2026, 3, 10))), {"from": "2026-03-01", "to": "2026-03-10"}),
    "custom, not picked yet": (OverviewView("Custom"), {"range": "custom"}),
    "hostile funnel": (OverviewView(funnel="a&b=c?<script>"), {"funnel": "a&b=c?<script>"}),
}


@pytest.mark.parametrize("view, params", VIEWS.values(), ids=VIEWS.keys())
def test_views_round_trip_through_the_url(view: OverviewView, params: dict) -> None:
    assert view_to_params(view) == params
    assert view_from_params(params, "UTC") == (view, [])


BAD = {
    "unknown range": ({"range": "forever"}, "range"),
    "one end": ({"from": "2026-03-01"}, "both"),
    "not a date": ({"from": "yesterday", "to": "2026-03-01"}, "YYYY-MM-DD"),
    "swapped": ({"from": "2026-03-10", "to": "2026-03-01"}, "swap"),
    "long funnel": ({"funnel": "x" * 201}, "funnel"),
}


@pytest.mark.parametrize("params, said", BAD.values(), ids=BAD.keys())
def test_a_bad_link_falls_back_with_a_note(params: dict, said: str) -> None:
    view, notes = view_from_params(params, "UTC")
    assert (view.preset, view.custom) == ("Last 30 days", ())
    assert len(notes) == 1 and said in notes[0]


def test_view_from_widgets() -> None:
    assert view_from_widgets(None, None, "All funnels") == OverviewView()
    assert view_from_widgets("Custom", (date(2026, 3, 5),), None) == OverviewView("Custom")
    assert view_from_widgets("Custom", (date(2026, 3, 5), date(2026, 3, 1)), "x") == OverviewView("Custom", (date(2026, 3, 1), date(2026, 3, 5)), "x")
    assert view_from_widgets("Last 7 days", (date(2026, 3, 5), date(2026, 3, 6)), None) == OverviewView("Last 7 days")


def test_the_caption_says_where_today_is_cut_in_local_time() -> None:
    rng = DateRange(date(2026, 3, 4), date(2026, 3, 10), "America/New_York")
    text = comparison_caption(rng, datetime(2026, 3, 10, 16, 5))  # 12:05 EDT
    assert text == ("Mar 04, 2026 to Mar 10, 2026 (7 days, America/New_York), compared with Feb 25 to Mar 03, 2026: "
                    "today so far, compared up to 12:05 on Mar 03")
    assert "today so far" not in comparison_caption(rng, datetime(2026, 3, 11, 16, 5))
    assert "(1 day, UTC)" in comparison_caption(DateRange(date(2026, 3, 10), date(2026, 3, 10)), datetime(2026, 3, 10, 9))
