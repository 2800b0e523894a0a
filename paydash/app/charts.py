"""The Overview's charts as Vega-Lite specs, built from query results (pure, no Streamlit).

Vega-Lite, not plotly: Streamlit's plotly bundle is 4.7 MB of JavaScript that every new
browser session parses and runs before the page shows (about 1.5 s on a 2-CPU machine);
Streamlit's Vega-Lite bundle is a sixth of that. Vega draws labels as text, never as HTML.
"""

from __future__ import annotations

from typing import Any, Callable

from paydash.app import format as fmt

REVENUE = "#4C78A8"
SUCCESS = "#54A24B"
RECOVERY = "#F58518"
HEIGHT = 320


def daily_revenue(series: list[dict[str, Any]], partial_day: str | None = None) -> dict[str, Any]:
    """Revenue per day as bars, success rate as a line on a second axis.

    `partial_day` (ISO date): the day that is not over (today so far), drawn paler and said
    so in its tooltip.
    """
    values = [{"date": r["date"], "revenue_usd": float(r["revenue_usd"]), "success_rate": r["success_rate"],
               "so_far": r["date"] == partial_day, "day": "today so far" if r["date"] == partial_day else "whole day"}
              for r in series]
    x = {"field": "date", "type": "temporal", "title": None, "axis": {"format": "%b %d"}}
    return {
        "height": HEIGHT,
        "data": {"values": values},
        "encoding": {"x": x},
        "layer": [
            {
                "mark": {"type": "bar"},
                "encoding": {
                    "color": {"value": REVENUE},
                    "opacity": {"condition": {"test": "datum.so_far", "value": 0.45}, "value": 1},
                    "y": {"field": "revenue_usd", "type": "quantitative", "title": "Revenue (USD)", "axis": fmt.VEGA_MONEY_AXIS},
                    "tooltip": [{"field": "date", "type": "temporal", "title": "Day"},
                                {"field": "revenue_usd", "type": "quantitative", "title": "Revenue", "format": "$,.2f"},
                                {"field": "day", "title": "Counted"}],
                },
            },
            {
                "mark": {"type": "line", "point": {"color": SUCCESS}},
                "encoding": {
                    "color": {"value": SUCCESS},
                    "y": {"field": "success_rate", "type": "quantitative", "title": "Success rate",
                          "axis": {"format": fmt.VEGA_PERCENT_AXIS, "orient": "right"}, "scale": {"domain": [0, 1]}},
                    "tooltip": [{"field": "date", "type": "temporal", "title": "Day"},
                                {"field": "success_rate", "type": "quantitative", "title": "Success rate", "format": fmt.VEGA_PERCENT}],
                },
            },
        ],
        "resolve": {"scale": {"y": "independent"}},
    }


def failure_donut(by_category: list[dict[str, Any]], link: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """Failed attempts by failure category (the legend in words; `category` keeps the value itself); with
    `link(category)`, each arc links to its payments."""
    values = [{"category": str(c["failure_category"]), "label": fmt.words(c["failure_category"]), "failures": c["failures"],
               "share": c["share"], **({"href": link(c["failure_category"])} if link is not None else {})}
              for c in by_category]
    return {
        "height": HEIGHT,
        "data": {"values": values},
        "mark": {"type": "arc", "innerRadius": 55, **({"cursor": "pointer"} if link is not None else {})},
        "encoding": {
            "theta": {"field": "failures", "type": "quantitative", "stack": True},
            "color": {"field": "label", "type": "nominal", "title": "Category", "sort": None,
                      "legend": {"orient": "bottom", "columns": 2, "labelLimit": 180}},
            "order": {"field": "failures", "type": "quantitative", "sort": "descending"},
            **({"href": {"field": "href", "type": "nominal"}} if link is not None else {}),
            "tooltip": [{"field": "label", "title": "Category"},
                        {"field": "failures", "type": "quantitative", "title": "Failures", "format": ","},
                        {"field": "share", "type": "quantitative", "title": "Share", "format": fmt.VEGA_PERCENT}],
        },
    }


def recovery_trend(by_day: list[dict[str, Any]]) -> dict[str, Any]:
    """Recovery rate by the day of the first failure."""
    values = [{"date": d["date"], "recovery_rate": d["recovery_rate"], "recovered": d["recovered"], "first_failed": d["first_failed"]}
              for d in by_day]
    return {
        "height": 260,
        "data": {"values": values},
        "mark": {"type": "line", "point": {"color": RECOVERY}},
        "encoding": {
            "color": {"value": RECOVERY},
            "x": {"field": "date", "type": "temporal", "title": None, "axis": {"format": "%b %d"}},
            "y": {"field": "recovery_rate", "type": "quantitative", "title": "Recovered / first attempt failed",
                  "axis": {"format": fmt.VEGA_PERCENT_AXIS}},
            "tooltip": [{"field": "date", "type": "temporal", "title": "First failure"},
                        {"field": "recovery_rate", "type": "quantitative", "title": "Recovery rate", "format": fmt.VEGA_PERCENT},
                        {"field": "recovered", "type": "quantitative", "title": "Recovered"},
                        {"field": "first_failed", "type": "quantitative", "title": "First attempt failed"}],
        },
    }
