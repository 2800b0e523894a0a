"""The Operations page's charts (Vega-Lite specs), tables and definitions, from query results (pure).

Times arrive as naive UTC and leave as naive wall-clock text in the reporting timezone:
Vega-Lite reads a timestamp without offset as local wall time and shows it unchanged, so
the axes show the reporting timezone whatever the browser's.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pandas as pd

from paydash.app import format as fmt

HEIGHT = 260
GOOD = "#54A24B"
BAD = "#E45756"
BLUE = "#4C78A8"
ORANGE = "#F58518"
GREY = "#9D9D9D"
COUNT_AXIS = {"format": "d", "tickMinStep": 1}  # counts: whole numbers on the axis

SUCCESS_RATE = ("Among checkout_completed events in each 15-minute window [t - 15 min, t), the share with outcome "
                "succeeded. Target 97%. No point when no checkout completed in the window.")
ACTIVE = "Open sessions (started, neither completed nor expired) started in the last 30 minutes."
PENDING = "Open sessions started 30 minutes to 24 hours ago: extended windows, asynchronous payments, expiries not received yet."
EXPIRED = "checkout_expired events per hour; the marks are manual overrides (checkout_manual_override)."
SLO = ("Sessions that expired without any retry of their payment (no retry_initiated / retry_completed for the "
       "payment intent), over the sessions started in the last 24 hours. Goal: under 5%.")
RETRIES = "retry_completed events per hour (bars) and the share that succeeded (line)."
BACKLOG = "Retries initiated in the last 24 hours with no retry_completed (same payment intent and retry number) yet."
HEATMAP = "Completed retries by retry number (1 = the first retry; 3 includes later ones) and outcome."
RECEIPT_P95 = "95th percentile of receipt_generated duration_ms per hour, against the 2,000 ms threshold."
RECEIPT_ERRORS = "receipt_generated events with outcome failed per hour, and their errors."
LAG = ("Webhook processing lag: the largest received_at - occurred_at of the Stripe events received in each "
       "5-minute bucket. The current value is over the last 5 minutes; alert over 2 minutes.")
REASONS = "Errors of failed checkouts, expired sessions and failed retries in the last 24 hours, most frequent first."


def local(utc_naive: datetime | None, tz: str) -> str | None:
    """Naive UTC -> 'YYYY-MM-DDTHH:MM:SS' wall time in tz (for Vega-Lite)."""
    if utc_naive is None:
        return None
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz)).strftime("%Y-%m-%dT%H:%M:%S")


def _x(title: str | None = None) -> dict[str, Any]:
    return {"field": "at", "type": "temporal", "title": title, "axis": {"format": "%b %d %H:%M", "labelAngle": 0}}


def success_rate(series: list[dict[str, Any]], tz: str, target: float) -> dict[str, Any]:
    values = [{"at": local(p["at"], tz), "rate": p["success_rate"], "completed": p["completed"]} for p in series]
    return {
        "height": HEIGHT,
        "layer": [
            {"data": {"values": values}, "mark": {"type": "line", "point": False, "color": BLUE},
             "encoding": {"x": _x(), "y": {"field": "rate", "type": "quantitative", "title": "Success rate (15 min)",
                                           "axis": {"format": fmt.VEGA_PERCENT}, "scale": {"zero": False, "domainMax": 1}},
                          "tooltip": [{"field": "at", "type": "temporal", "title": "Window ending", "format": "%b %d %H:%M"},
                                      {"field": "rate", "type": "quantitative", "title": "Success rate", "format": fmt.VEGA_PERCENT},
                                      {"field": "completed", "type": "quantitative", "title": "Completed checkouts"}]}},
            {"data": {"values": [{"target": target}]}, "mark": {"type": "rule", "color": BAD, "strokeDash": [6, 4]},
             "encoding": {"y": {"field": "target", "type": "quantitative"}}},
        ],
    }


def expired_with_overrides(hours: list[dict[str, Any]], overrides: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    bars = [{"at": local(h["hour"], tz), "expired": h["expired"]} for h in hours]
    marks = [{"at": local(o["occurred_at"], tz), "reason": fmt.text(o.get("reason")), "session": fmt.text(o["checkout_session_id"])}
             for o in overrides]
    layers: list[dict[str, Any]] = [
        {"data": {"values": bars}, "mark": {"type": "bar", "color": ORANGE},
         "encoding": {"x": {**_x(), "timeUnit": "yearmonthdatehours"},
                      "y": {"field": "expired", "type": "quantitative", "title": "Expired sessions per hour", "axis": COUNT_AXIS},
                      "tooltip": [{"field": "at", "type": "temporal", "title": "Hour", "format": "%b %d %H:00"},
                                  {"field": "expired", "type": "quantitative", "title": "Expired"}]}},
    ]
    if marks:
        layers.append({"data": {"values": marks}, "mark": {"type": "rule", "color": GOOD, "strokeDash": [2, 2]},
                       "encoding": {"x": _x(), "tooltip": [
                           {"field": "at", "type": "temporal", "title": "Manual override", "format": "%b %d %H:%M"},
                           {"field": "reason", "type": "nominal", "title": "Reason"},
                           {"field": "session", "type": "nominal", "title": "Session"}]}})
    return {"height": HEIGHT, "layer": layers}


def extensions_and_overrides(hours: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    values = []
    for h in hours:
        values.append({"at": local(h["hour"], tz), "kind": "Window extended", "events": h["extended"]})
        values.append({"at": local(h["hour"], tz), "kind": "Manual override", "events": h["overrides"]})
    return {
        "height": HEIGHT, "data": {"values": values}, "mark": {"type": "bar"},
        "encoding": {"x": {**_x(), "timeUnit": "yearmonthdatehours"},
                     "y": {"field": "events", "type": "quantitative", "stack": True, "title": "Events per hour", "axis": COUNT_AXIS},
                     "color": {"field": "kind", "type": "nominal", "title": None,
                               "scale": {"range": [BLUE, GOOD]}, "legend": {"orient": "top"}},
                     "tooltip": [{"field": "at", "type": "temporal", "title": "Hour", "format": "%b %d %H:00"},
                                 {"field": "kind", "type": "nominal", "title": "Event"},
                                 {"field": "events", "type": "quantitative", "title": "Events"}]},
    }


def retries(hours: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    values = [{"at": local(h["hour"], tz), "attempts": h["retries_completed"], "rate": h["retry_success_rate"]} for h in hours]
    x = {**_x(), "timeUnit": "yearmonthdatehours"}
    return {
        "height": HEIGHT, "data": {"values": values},
        "layer": [
            {"mark": {"type": "bar", "color": BLUE},
             "encoding": {"x": x, "y": {"field": "attempts", "type": "quantitative", "title": "Retries per hour", "axis": COUNT_AXIS}}},
            {"mark": {"type": "line", "color": GOOD, "point": True},
             "encoding": {"x": x, "y": {"field": "rate", "type": "quantitative", "title": "Retry success rate",
                                        "axis": {"format": fmt.VEGA_PERCENT_AXIS, "orient": "right"}, "scale": {"domain": [0, 1]}},
                          "tooltip": [{"field": "at", "type": "temporal", "title": "Hour", "format": "%b %d %H:00"},
                                      {"field": "attempts", "type": "quantitative", "title": "Retries"},
                                      {"field": "rate", "type": "quantitative", "title": "Success rate", "format": fmt.VEGA_PERCENT}]}},
        ],
        "resolve": {"scale": {"y": "independent"}},
    }


def retry_heatmap(cells: list[dict[str, Any]]) -> dict[str, Any]:
    values = [{"attempt": "3+" if c["attempt"] >= 3 else str(c["attempt"]), "outcome": fmt.text(c["outcome"]),
               "retries": c["retries"]} for c in cells]
    return {
        "height": 160, "data": {"values": values},
        "encoding": {"x": {"field": "outcome", "type": "nominal", "title": "Outcome", "axis": {"labelAngle": 0}},
                     "y": {"field": "attempt", "type": "ordinal", "title": "Retry number", "sort": ["1", "2", "3+"]}},
        "layer": [
            {"mark": {"type": "rect"},
             "encoding": {"color": {"field": "retries", "type": "quantitative", "title": "Retries",
                                    "scale": {"scheme": "blues"}},
                          "tooltip": [{"field": "attempt", "title": "Retry number"}, {"field": "outcome", "title": "Outcome"},
                                      {"field": "retries", "type": "quantitative", "title": "Retries"}]}},
            {"mark": {"type": "text", "color": "black"}, "encoding": {"text": {"field": "retries", "type": "quantitative"}}},
        ],
    }


def receipt_p95(hours: list[dict[str, Any]], tz: str, threshold: int) -> dict[str, Any]:
    values = [{"at": local(h["hour"], tz), "p95": h["receipt_p95_ms"]} for h in hours if h["receipt_p95_ms"] is not None]
    return {
        "height": HEIGHT,
        "layer": [
            {"data": {"values": values}, "mark": {"type": "line", "point": True, "color": BLUE},
             "encoding": {"x": {**_x(), "timeUnit": "yearmonthdatehours"},
                          "y": {"field": "p95", "type": "quantitative", "title": "Receipt render p95 (ms)"},
                          "tooltip": [{"field": "at", "type": "temporal", "title": "Hour", "format": "%b %d %H:00"},
                                      {"field": "p95", "type": "quantitative", "title": "p95 (ms)", "format": ",.0f"}]}},
            {"data": {"values": [{"threshold": threshold}]}, "mark": {"type": "rule", "color": BAD, "strokeDash": [6, 4]},
             "encoding": {"y": {"field": "threshold", "type": "quantitative"}}},
        ],
    }


def receipt_failures(hours: list[dict[str, Any]], tz: str) -> dict[str, Any]:
    values = [{"at": local(h["hour"], tz), "failed": h["receipt_failures"]} for h in hours]
    return {"height": 200, "data": {"values": values}, "mark": {"type": "bar", "color": BAD},
            "encoding": {"x": {**_x(), "timeUnit": "yearmonthdatehours"},
                         "y": {"field": "failed", "type": "quantitative", "title": "Failed receipts per hour", "axis": COUNT_AXIS},
                         "tooltip": [{"field": "at", "type": "temporal", "title": "Hour", "format": "%b %d %H:00"},
                                     {"field": "failed", "type": "quantitative", "title": "Failed"}]}}


def webhook_lag(series: list[dict[str, Any]], tz: str, limit_seconds: int = 120) -> dict[str, Any]:
    values = [{"at": local(p["at"], tz), "lag": p["lag_seconds"], "events": p["events"]} for p in series]
    return {
        "height": 200,
        "layer": [
            {"data": {"values": values}, "mark": {"type": "line", "point": True, "color": BLUE},
             "encoding": {"x": _x(), "y": {"field": "lag", "type": "quantitative", "title": "Largest lag (s)"},
                          "tooltip": [{"field": "at", "type": "temporal", "title": "Received from", "format": "%b %d %H:%M"},
                                      {"field": "lag", "type": "quantitative", "title": "Lag (s)", "format": ",.1f"},
                                      {"field": "events", "type": "quantitative", "title": "Stripe events"}]}},
            {"data": {"values": [{"limit": limit_seconds}]}, "mark": {"type": "rule", "color": BAD, "strokeDash": [6, 4]},
             "encoding": {"y": {"field": "limit", "type": "quantitative"}}},
        ],
    }


# -- tables ------------------------------------------------------------------------------------
def reasons_table(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Reason": fmt.text(r["reason"]), "Events": int(r["events"]), "Failed checkouts": int(r["failed_checkouts"]),
          "Expired sessions": int(r["expired_sessions"]), "Failed retries": int(r["failed_retries"]),
          "Last seen": fmt.local_time(r["last_seen"], tz)} for r in rows],
        columns=["Reason", "Events", "Failed checkouts", "Expired sessions", "Failed retries", "Last seen"],
    )


def receipt_errors_table(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Error": fmt.text(r["reason"]), "Failed receipts": int(r["events"]), "Last seen": fmt.local_time(r["last_seen"], tz)}
         for r in rows],
        columns=["Error", "Failed receipts", "Last seen"],
    )


def receipts_table(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Time": fmt.local_time(r["occurred_at"], tz), "Receipt": fmt.text(r["receipt_id"]),
          "Payment intent": fmt.text(r["payment_intent_id"]), "Outcome": fmt.text(r["outcome"]),
          "Render (ms)": r["duration_ms"], "Download status": fmt.text(r["download_status"]),
          "Edge location": fmt.text(r["edge_location"]), "Error": fmt.text(r["error"])} for r in rows],
        columns=["Time", "Receipt", "Payment intent", "Outcome", "Render (ms)", "Download status", "Edge location", "Error"],
    )


def overrides_table(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Time": fmt.local_time(r["occurred_at"], tz), "Session": fmt.text(r["checkout_session_id"]),
          "Payment intent": fmt.text(r["payment_intent_id"]), "Reason": fmt.text(r["reason"]),
          "Original failure": fmt.text(r["error"])} for r in rows],
        columns=["Time", "Session", "Payment intent", "Reason", "Original failure"],
    )


def seconds(value: float | None) -> str:
    if value is None:
        return fmt.EMPTY
    return f"{value:,.1f} s" if value < 120 else f"{value / 60:,.1f} min"


def milliseconds(value: float | None) -> str:
    return fmt.EMPTY if value is None else f"{value:,.0f} ms"
