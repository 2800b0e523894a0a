"""`GET /metrics` on the receiver: the operations snapshot in the Prometheus text format (0.0.4).

The numbers come from `paydash.queries.operations.snapshot` (definitions in
docs/operations.md), evaluated at the real current time; a value with nothing to measure
(no completed checkout in the window, no receipt, no Stripe event) is NaN.
"""

from __future__ import annotations

import math
from typing import Any

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (metric name, snapshot key, labels, help)
METRICS: tuple[tuple[str, str, str, str], ...] = (
    ("paydash_checkout_success_rate", "checkout_success_rate_15m", 'window="15m"',
     "Share of checkout_completed events with outcome succeeded in the last 15 minutes (target 0.97)."),
    ("paydash_checkouts_completed", "checkouts_completed_15m", 'window="15m"',
     "checkout_completed events in the last 15 minutes."),
    ("paydash_checkout_sessions_active", "active_sessions", "",
     "Open checkout sessions started in the last 30 minutes."),
    ("paydash_checkout_sessions_pending", "pending_sessions", "",
     "Open checkout sessions started 30 minutes to 24 hours ago, neither completed nor expired."),
    ("paydash_checkout_sessions_expired", "expired_sessions_1h", 'window="1h"',
     "checkout_expired events in the last hour."),
    ("paydash_retry_attempts", "retry_attempts_1h", 'window="1h"', "retry_initiated events in the last hour."),
    ("paydash_retry_successes", "retry_successes_1h", 'window="1h"',
     "retry_completed events with outcome succeeded in the last hour."),
    ("paydash_retry_failures", "retry_failures_15m", 'window="15m"',
     "retry_completed events with outcome failed in the last 15 minutes."),
    ("paydash_retry_backlog", "retry_backlog", "",
     "Retries initiated in the last 24 hours without a retry_completed yet."),
    ("paydash_receipt_render_p95_milliseconds", "receipt_p95_ms_1h", 'window="1h"',
     "95th percentile of receipt_generated duration_ms in the last hour (threshold 2000)."),
    ("paydash_receipt_render_failures", "receipt_failures_5m", 'window="5m"',
     "receipt_generated events with outcome failed in the last 5 minutes."),
    ("paydash_webhook_lag_seconds", "webhook_lag_seconds", 'window="5m"',
     "Largest received_at - occurred_at of Stripe events received in the last 5 minutes."),
)


def _number(value: Any) -> str:
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def prometheus_text(snapshot: dict[str, Any]) -> str:
    """Every metric of METRICS from a snapshot, as gauges."""
    lines = []
    for name, key, labels, help_text in METRICS:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        lines.append(f"{name}{{{labels}}} {_number(snapshot.get(key))}" if labels else f"{name} {_number(snapshot.get(key))}")
    return "\n".join(lines) + "\n"
