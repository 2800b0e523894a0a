"""The Overview's charts as plotly figures, built from query results (pure, no Streamlit).

Plotly reads a few HTML-like tags in labels (<b>, <br>, <a href>); text that came from
the data is entity-escaped first, which plotly shows as the literal characters.
"""

from __future__ import annotations

import html
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

REVENUE = "#4C78A8"
SUCCESS = "#54A24B"
RECOVERY = "#F58518"
CATEGORY_COLORS = ("#E45756", "#F58518", "#EECA3B", "#B279A2", "#FF9DA6", "#9D755D", "#BAB0AC", "#72B7B2", "#4C78A8")


def plot_text(value: Any) -> str:
    return html.escape(str(value if value is not None else "-"), quote=False)


def _layout(fig: go.Figure, height: int = 340) -> go.Figure:
    fig.update_layout(
        height=height,
        margin=dict(l=10, r=10, t=30, b=10),
        legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0),
        hovermode="x unified",
    )
    return fig


def daily_revenue(series: list[dict[str, Any]]) -> go.Figure:
    """Revenue per day as bars, success rate as a line on a second axis."""
    days = [row["date"] for row in series]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(
        go.Bar(x=days, y=[float(r["revenue_usd"]) for r in series], name="Revenue (USD)", marker_color=REVENUE,
               hovertemplate="$%{y:,.2f}<extra>Revenue</extra>"),
        secondary_y=False,
    )
    fig.add_trace(
        go.Scatter(x=days, y=[r["success_rate"] for r in series], name="Success rate", mode="lines+markers",
                   line=dict(color=SUCCESS, width=2), connectgaps=False,
                   hovertemplate="%{y:.1%}<extra>Success rate</extra>"),
        secondary_y=True,
    )
    fig.update_yaxes(title_text="Revenue (USD)", tickprefix="$", secondary_y=False)
    fig.update_yaxes(title_text="Success rate", tickformat=".0%", rangemode="tozero", range=[0, 1.02], secondary_y=True,
                     showgrid=False)
    return _layout(fig)


def failure_donut(by_category: list[dict[str, Any]]) -> go.Figure:
    """Failed attempts by failure category."""
    fig = go.Figure(
        go.Pie(
            labels=[plot_text(c["failure_category"]) for c in by_category],
            values=[c["failures"] for c in by_category],
            hole=0.55,
            sort=False,
            marker=dict(colors=list(CATEGORY_COLORS)),
            textinfo="percent",
            hovertemplate="%{label}: %{value:,} failures (%{percent})<extra></extra>",
        )
    )
    fig.update_layout(hovermode="closest")
    return _layout(fig)


def recovery_trend(by_day: list[dict[str, Any]]) -> go.Figure:
    """Recovery rate by the day of the first failure."""
    fig = go.Figure(
        go.Scatter(
            x=[d["date"] for d in by_day],
            y=[d["recovery_rate"] for d in by_day],
            mode="lines+markers",
            name="Recovery rate",
            line=dict(color=RECOVERY, width=2),
            customdata=[[d["recovered"], d["first_failed"]] for d in by_day],
            hovertemplate="%{y:.1%} (%{customdata[0]:,} of %{customdata[1]:,})<extra>Recovery rate</extra>",
        )
    )
    fig.update_yaxes(tickformat=".0%", rangemode="tozero", title_text="Recovered / first attempt failed")
    return _layout(fig, height=300)
