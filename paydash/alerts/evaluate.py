"""The state machine of one rule, as a pure function: (rule, state, measurement, time) -> (new state, notifications).

    ok ──condition true──> pending ──held for `for`──> firing (one trigger)
     ^                       │                           │ clear for `for`
     │<──condition false─────┘                           v
     └───────────────next evaluation──────────────── resolved (one resolve)

A condition that flickers inside the `for` duration changes nothing: pending falls back to ok
without a word, and a firing alert stays firing until it has been clear for the whole `for`
duration (so a value hovering around the threshold cannot page, resolve and page again).
With `for = 0s` the alert fires at the first breach and resolves at the first clear evaluation.
The dedup key names the rule and the moment the incident began, so it is stable from trigger
to resolve, across restarts of the runner, and the same in a replay.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from paydash.alerts.rules import Rule
from paydash.queries.alert_metrics import MetricValue

STATES = ("ok", "pending", "firing", "resolved")


@dataclass(frozen=True)
class RuleState:
    rule: str
    state: str = "ok"
    since: datetime | None = None  # when the current state began
    breach_since: datetime | None = None  # when the condition became true (pending, firing)
    clear_since: datetime | None = None  # firing: when the condition became false
    dedup_key: str | None = None  # firing, resolved: the incident's key
    value: float | None = None  # last measurement
    volume: int = 0
    evaluated_at: datetime | None = None


@dataclass(frozen=True)
class Transition:
    rule: str
    from_state: str
    to_state: str
    at: datetime
    value: float | None
    dedup_key: str | None


@dataclass(frozen=True)
class Notification:
    """Something to tell a channel: a trigger when an alert fires, a resolve when it ends."""

    rule: str
    channel: str
    action: str  # trigger | resolve
    at: datetime
    dedup_key: str
    value: float | None
    volume: int
    started_at: datetime
    details: dict[str, Any] = field(default_factory=dict)


def dedup_key(rule: Rule, started_at: datetime) -> str:
    """Stable key of one incident of a rule (PagerDuty dedup_key, Opsgenie alias)."""
    return f"paydash-{rule.name}-{started_at:%Y%m%dT%H%M%SZ}"


def step(rule: Rule, current: RuleState, measured: MetricValue,
         at: datetime) -> tuple[RuleState, list[Transition], list[Notification]]:
    """Advance one rule by one evaluation at time `at`."""
    breached = rule.breached(measured.value, measured.volume)
    state = replace(current, value=measured.value, volume=measured.volume, evaluated_at=at)
    transitions: list[Transition] = []
    notifications: list[Notification] = []

    def move(to: str, **changes: Any) -> None:
        nonlocal state
        transitions.append(Transition(rule.name, state.state, to, at, measured.value, changes.get("dedup_key", state.dedup_key)))
        state = replace(state, state=to, since=at, **changes)

    def notify(action: str) -> None:
        assert state.dedup_key is not None and state.breach_since is not None
        notifications.append(Notification(rule.name, rule.channel, action, at, state.dedup_key, measured.value,
                                          measured.volume, state.breach_since, dict(measured.details)))

    if state.state == "resolved":  # the resolve went out at the previous evaluation
        move("ok", breach_since=None, clear_since=None, dedup_key=None)
    if state.state == "ok":
        if breached:
            move("pending", breach_since=at, clear_since=None, dedup_key=None)
    if state.state == "pending":
        if not breached:
            move("ok", breach_since=None)
        elif at - state.breach_since >= rule.for_:
            move("firing", dedup_key=dedup_key(rule, state.breach_since), clear_since=None)
            notify("trigger")
        return state, transitions, notifications
    if state.state == "firing":
        if breached:
            state = replace(state, clear_since=None)
        else:
            clear_since = state.clear_since or at
            state = replace(state, clear_since=clear_since)
            if at - clear_since >= rule.for_:
                move("resolved")
                notify("resolve")
    return state, transitions, notifications
