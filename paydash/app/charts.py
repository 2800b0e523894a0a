"""The Overview's charts as Vega-Lite specs, built from query results (pure, no Streamlit).

Vega-Lite, not plotly: Streamlit's plotly bundle is 4.7 MB of JavaScript that every new
browser session parses and runs before the page shows (about 1.5 s on a 2-CPU machine);
Streamlit's Vega-Lite bundle is a sixth of that. Vega draws labels as text, never as HTML.
"""

from __future__ import annotations

from typing import Any, Callable

REVENUE = "#4C78A8"
SUCCESS = "#54A24B"
RECOVERY = "#F58518"
HEIGHT = 320


def daily_revenue(series: list[dict[str, Any]]) -> dict[str, Any]:
    """Revenue per day as bars, success rate as a line on a second axis."""
    values = [{"date": r["date"], "revenue_usd": float(r["revenue_usd"]), "success_rate": r["success_rate"]} for r in series]
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
                    "y": {"field": "revenue_usd", "type": "quantitative", "title": "Revenue (USD)", "axis": {"format": "$~s"}},
                    "tooltip": [{"field": "date", "type": "temporal", "title": "Day"},
                                {"field": "revenue_usd", "type": "quantitative", "title": "Revenue", "format": "$,.2f"}],
                },
            },
            {
                "mark": {"type": "line", "point": {"color": SUCCESS}},
                "encoding": {
                    "color": {"value": SUCCESS},
                    "y": {"field": "success_rate", "type": "quantitative", "title": "Success rate",
                          "axis": {"format": ".0%", "orient": "right"}, "scale": {"domain": [0, 1]}},
                    "tooltip": [{"field": "date", "type": "temporal", "title": "Day"},
                                {"field": "success_rate", "type": "quantitative", "title": "Success rate", "format": ".1%"}],
                },
            },
        ],
        "resolve": {"scale": {"y": "independent"}},
    }


def failure_donut(by_category: list[dict[str, Any]], link: Callable[[str], str | None] | None = None) -> dict[str, Any]:
    """Failed attempts by failure category; with `link(category)`, each arc links to its payments."""
    values = [{"category": str(c["failure_category"]), "failures": c["failures"], "share": c["share"],
               **({"href": link(c["failure_category"])} if link is not None else {})} for c in by_category]
    return {
        "height": HEIGHT,
        "data": {"values": values},
        "mark": {"type": "arc", "innerRadius": 55, **({"cursor": "pointer"} if link is not None else {})},
        "encoding": {
            "theta": {"field": "failures", "type": "quantitative", "stack": True},
            "color": {"field": "category", "type": "nominal", "title": "Category", "sort": None,
                      "legend": {"orient": "bottom", "columns": 2, "labelLimit": 180}},
            "order": {"field": "failures", "type": "quantitative", "sort": "descending"},
            **({"href": {"field": "href", "type": "nominal"}} if link is not None else {}),
            "tooltip": [{"field": "category", "title": "Category"},
                        {"field": "failures", "type": "quantitative", "title": "Failures", "format": ","},
                        {"field": "share", "type": "quantitative", "title": "Share", "format": ".1%"}],
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
                  "axis": {"format": ".0%"}},
            "tooltip": [{"field": "date", "type": "temporal", "title": "First failure"},
                        {"field": "recovery_rate", "type": "quantitative", "title": "Recovery rate", "format": ".1%"},
                        {"field": "recovered", "type": "quantitative", "title": "Recovered"},
                        {"field": "first_failed", "type": "quantitative", "title": "First attempt failed"}],
        },
    }
