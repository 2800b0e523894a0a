"""Delivery to PagerDuty (Events API v2), Slack (incoming webhook) and Opsgenie (Alert API).

`build_payload` turns a notification into the exact JSON body the service accepts; it is
stored in the outbox when the alert changes state and shown by `paydash alerts replay`.
Secrets never enter it: PagerDuty's routing key is a placeholder filled in at send time, the
Slack URL and the Opsgenie key live only in the request line and headers, and none of them is
ever logged.

`Dispatcher` sends the outbox in order: retries with exponential backoff on 429, 5xx,
timeouts and connection errors (honouring Retry-After), no retry on other 4xx (recorded as
failed, with a log line saying why), at most one Slack message per second per webhook URL,
and a notification whose channel is not configured waits in the outbox until it is.
"""

from __future__ import annotations

import email.utils
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable
from urllib.parse import quote

import httpx

from paydash.alerts.evaluate import Notification
from paydash.alerts.rules import Rule, format_duration, format_threshold
from paydash.queries.alert_metrics import METRICS

log = logging.getLogger("paydash.alerts")
# httpx logs every request's URL at INFO, and a Slack webhook URL is a secret: keep its
# (and httpcore's) chatter out of any log this process configures.
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).setLevel(logging.WARNING)

ROUTING_KEY_PLACEHOLDER = "<PAYDASH_PAGERDUTY_ROUTING_KEY>"
OPSGENIE_PRIORITY = {"critical": "P1", "error": "P2", "warning": "P3", "info": "P5"}
OPSGENIE_MESSAGE_MAX = 130
PAGERDUTY_SUMMARY_MAX = 1024
SETTING_OF_CHANNEL = {
    "pagerduty": "PAYDASH_PAGERDUTY_ROUTING_KEY",
    "slack": "PAYDASH_SLACK_WEBHOOK_URL",
    "opsgenie": "PAYDASH_OPSGENIE_API_KEY",
}


def iso(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


def operations_url(settings) -> str:  # noqa: ANN001
    return f"{(settings.dashboard_url or 'http://localhost:8501').rstrip('/')}/operations"


def summary(rule: Rule, n: Notification) -> str:
    """One line for people: what broke, by how much, against what."""
    measured = format_threshold(rule, n.value)
    limit = f"{rule.comparison} {format_threshold(rule, rule.threshold)}"
    window = format_duration(rule.window)
    if n.action == "resolve":
        return f"Resolved: {rule.title} (now {measured} over {window}; rule {limit})"
    return f"{rule.title}: {measured} over the last {window} (rule {limit} for {format_duration(rule.for_)})"


def _details(rule: Rule, n: Notification) -> dict[str, Any]:
    return {
        "rule": rule.name,
        "metric": rule.metric,
        "metric_description": METRICS[rule.metric].description,
        "value": n.value,
        "volume": n.volume,
        "comparison": rule.comparison,
        "threshold": rule.threshold,
        "window": format_duration(rule.window),
        "for": format_duration(rule.for_),
        "started_at": iso(n.started_at),
        **({k: v for k, v in n.details.items()}),
    }


def pagerduty_payload(rule: Rule, n: Notification, settings) -> dict[str, Any]:  # noqa: ANN001
    if n.action == "resolve":
        return {"routing_key": ROUTING_KEY_PLACEHOLDER, "event_action": "resolve", "dedup_key": n.dedup_key}
    return {
        "routing_key": ROUTING_KEY_PLACEHOLDER,
        "event_action": "trigger",
        "dedup_key": n.dedup_key,
        "payload": {
            "summary": summary(rule, n)[:PAGERDUTY_SUMMARY_MAX],
            "source": "paydash",
            "severity": rule.severity,
            "timestamp": iso(n.at),
            "component": "payments",
            "group": METRICS[rule.metric].source,
            "class": rule.metric,
            "custom_details": _details(rule, n),
        },
        "client": "paydash",
        "client_url": operations_url(settings),
        "links": [{"href": operations_url(settings), "text": "paydash Operations"}],
    }


def slack_escape(text: str) -> str:
    """Slack mrkdwn treats &, < and > as markup."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(rule: Rule, n: Notification, settings) -> dict[str, Any]:  # noqa: ANN001
    icon = ":white_check_mark:" if n.action == "resolve" else {"critical": ":rotating_light:", "error": ":red_circle:"}.get(
        rule.severity, ":warning:")
    text = summary(rule, n)
    link = operations_url(settings)
    context = (
        f"rule `{rule.name}` · severity {rule.severity} · started {iso(n.started_at)} · "
        f"{'resolved' if n.action == 'resolve' else 'fired'} {iso(n.at)} · `{n.dedup_key}`"
    )
    return {
        "text": f"{icon} {slack_escape(text)}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn",
                                         "text": f"{icon} *{slack_escape(text)}*\n<{link}|Open the Operations view>"}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": slack_escape(context)}]},
        ],
    }


def opsgenie_payload(rule: Rule, n: Notification, settings) -> dict[str, Any]:  # noqa: ANN001
    if n.action == "resolve":
        return {"source": "paydash", "user": "paydash", "note": summary(rule, n)}
    message = summary(rule, n)
    if len(message) > OPSGENIE_MESSAGE_MAX:
        message = message[: OPSGENIE_MESSAGE_MAX - 1] + "…"
    return {
        "message": message,
        "alias": n.dedup_key,
        "description": f"{summary(rule, n)}\n\nOperations view: {operations_url(settings)}",
        "priority": OPSGENIE_PRIORITY[rule.severity],
        "source": "paydash",
        "entity": "paydash",
        "tags": ["paydash", rule.metric, rule.severity],
        "details": {k: "" if v is None else str(v) for k, v in _details(rule, n).items()},
    }


BUILDERS = {"pagerduty": pagerduty_payload, "slack": slack_payload, "opsgenie": opsgenie_payload}


def build_payload(rule: Rule, n: Notification, settings) -> dict[str, Any]:  # noqa: ANN001
    return BUILDERS[rule.channel](rule, n, settings)


# -- sending --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Request:
    url: str
    json: dict[str, Any]
    headers: dict[str, str]
    rate_key: str | None = None  # requests sharing a key are spaced by at least a second


def channel_configured(channel: str, settings) -> bool:  # noqa: ANN001
    return bool({"pagerduty": settings.pagerduty_routing_key, "slack": settings.slack_webhook_url,
                 "opsgenie": settings.opsgenie_api_key}[channel])


def request_for(channel: str, action: str, dedup: str, payload: dict[str, Any], settings) -> Request:  # noqa: ANN001
    """The HTTP request that delivers a stored payload (secrets filled in here, never stored)."""
    headers = {"Content-Type": "application/json", "User-Agent": "paydash-alerts"}
    if channel == "pagerduty":
        body = dict(payload, routing_key=settings.pagerduty_routing_key)
        return Request(settings.pagerduty_events_url, body, headers)
    if channel == "slack":
        return Request(settings.slack_webhook_url, payload, headers, rate_key=settings.slack_webhook_url)
    base = settings.opsgenie_url.rstrip("/")
    headers["Authorization"] = f"GenieKey {settings.opsgenie_api_key}"
    url = f"{base}/{quote(dedup, safe='')}/close?identifierType=alias" if action == "resolve" else base
    return Request(url, payload, headers)


def retry_after(response: httpx.Response) -> float | None:
    """Seconds from a Retry-After header (seconds or an HTTP date), None when absent or unreadable."""
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


@dataclass(frozen=True)
class Outcome:
    status: str  # sent | retry | failed
    detail: str
    wait: float = 0.0  # retry: seconds before the next attempt


class Sender:
    """Sends one request with retries; spaces requests per rate key (one Slack message a second)."""

    def __init__(self, timeout: float = 10.0, attempts: int = 5, base_delay: float = 1.0, max_delay: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic,
                 client: httpx.Client | None = None) -> None:
        self.attempts = attempts
        self.base_delay = base_delay
        self.max_delay = max_delay
        self.sleep = sleep
        self.clock = clock
        self.client = client or httpx.Client(timeout=timeout, follow_redirects=False)
        self._last_sent: dict[str, float] = {}

    def close(self) -> None:
        self.client.close()

    def _space(self, rate_key: str | None) -> None:
        if rate_key is None:
            return
        last = self._last_sent.get(rate_key)
        if last is not None:
            wait = 1.0 - (self.clock() - last)
            if wait > 0:
                self.sleep(wait)
        self._last_sent[rate_key] = self.clock()

    def send(self, request: Request, label: str) -> Outcome:
        """Up to `attempts` tries; 'retry' (with the wait asked for) when they all failed for a passing reason."""
        wait = 0.0
        for attempt in range(1, self.attempts + 1):
            if wait:
                self.sleep(wait)
            self._space(request.rate_key)
            try:
                response = self.client.post(request.url, json=request.json, headers=request.headers)
            except (httpx.InvalidURL, httpx.UnsupportedProtocol):
                # a configuration mistake, not a passing failure: wait for the setting to be fixed
                log.error("alerts: %s: the channel's URL setting is not a valid http(s) URL; fix it (the "
                          "notification waits in the outbox)", label)
                return Outcome("retry", "invalid URL setting", 60.0)
            except httpx.TimeoutException:
                problem, asked = "timed out", None
            except httpx.TransportError as exc:
                # the exception's text may hold the URL (a Slack URL is a secret): name its kind only
                problem, asked = f"connection failed ({type(exc).__name__})", None
            else:
                if response.status_code < 300:
                    return Outcome("sent", f"HTTP {response.status_code}")
                body = response.text[:200].replace("\n", " ")
                if response.status_code != 429 and response.status_code < 500:
                    log.error("alerts: %s refused with HTTP %s (%s); not retried: check the payload and the "
                              "channel's settings", label, response.status_code, body)
                    return Outcome("failed", f"HTTP {response.status_code}: {body}")
                problem, asked = f"HTTP {response.status_code}", retry_after(response)
            wait = asked if asked is not None else min(self.max_delay, self.base_delay * 2 ** (attempt - 1))
            if wait > self.max_delay or attempt == self.attempts:
                return Outcome("retry", problem, wait)
            log.warning("alerts: %s attempt %d %s; retrying in %.1f s", label, attempt, problem, wait)
        return Outcome("retry", "no attempt made", 0.0)
