"""Evaluating the rules: once (live, with state and delivery), on a schedule, or over history (replay).

The runner only reads the warehouse, through one short read-only session per evaluation
(on a DuckDB file it never holds the file between evaluations, so the webhook receiver can
write in between). Its own state lives in the state store (`paydash.state.alerts`, PAYDASH_STATE_URL).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Sequence

from paydash.alerts.channels import SETTING_OF_CHANNEL, Sender, build_payload, channel_configured, request_for
from paydash.alerts.evaluate import Notification, RuleState, Transition, step
from paydash.alerts.rules import Rule
from paydash.errors import InvalidInput, PaydashError
from paydash.queries.alert_metrics import METRICS, MetricValue, StripeSync, metric_series, metrics_at
from paydash.state.alerts import AlertStore
from paydash.warehouse.schema import display_name

log = logging.getLogger("paydash.alerts")

MAX_REPLAY_STEPS = 200_000


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def _sources_present(wh, rules: Sequence[Rule]) -> tuple[list[Rule], list[str]]:  # noqa: ANN001
    """The rules whose mart exists, and a message per missing mart."""
    usable, problems = [], []
    ops = wh.marts.operations_events
    needs_ops = [r.name for r in rules if METRICS[r.metric].source == "operations_events"]
    ops_present = not needs_ops or wh.has_table(ops)
    if not ops_present:
        problems.append(
            f"table {display_name(ops)} not found in {wh.display_url}: rules {', '.join(needs_ops)} are not "
            "evaluated; fill it with the webhook receiver, `POST /events` or `paydash demo`, or set "
            "PAYDASH_OPERATIONS_EVENTS_TABLE"
        )
    for rule in rules:
        if METRICS[rule.metric].source == "operations_events" and not ops_present:
            continue
        usable.append(rule)
    return usable, problems


def _stripe_sync(wh, rules: Sequence[Rule]) -> StripeSync:  # noqa: ANN001
    """The Stripe sync's tables for the rules that watch them (stripe_data_age_minutes). Without
    them (no sync nor receiver writes this database) those rules measure nothing and never fire."""
    if not any(METRICS[r.metric].source == "stripe_sync" for r in rules):
        return StripeSync()
    from paydash.warehouse.raw import raw_tables
    from paydash.warehouse.stripe_objects import object_tables

    schema = wh.marts.payments.schema
    runs, events = object_tables(schema).sync_runs, raw_tables(schema).events
    events_there = wh.has_table(events)
    return StripeSync(
        runs=runs if wh.has_table(runs) else None, events=events if events_there else None,
        delivered="delivered_at" if events_there and wh.has_column(events, "delivered_at") else "received_at")


@dataclass
class RunResult:
    at: datetime
    values: dict[str, MetricValue] = field(default_factory=dict)
    transitions: list[Transition] = field(default_factory=list)
    notifications: list[Notification] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    delivered: dict[str, int] = field(default_factory=dict)


def evaluate(wh, rules: Sequence[Rule], store: AlertStore, settings, at: datetime) -> RunResult:  # noqa: ANN001
    """Measure every rule as of `at`, advance its state and queue its notifications (one transaction)."""
    result = RunResult(at)
    usable, result.problems = _sources_present(wh, rules)
    stripe = _stripe_sync(wh, usable)
    with wh.read() as conn:
        measured = metrics_at(conn, wh.marts, [r.query for r in usable], at, stripe)
    result.values = {rule.name: measured[rule.query] for rule in usable}
    previous = store.load()
    states: list[RuleState] = []
    queued: list[tuple[Notification, dict[str, Any]]] = []
    by_name = {r.name: r for r in rules}
    for name, state in previous.items():
        if name not in by_name and state.state in ("pending", "firing"):
            log.warning("alerts: rule %s is %s but no longer in the rules file; it is not evaluated any more "
                        "(close incident %s by hand if it was sent)", name, state.state, state.dedup_key)
    for rule in usable:
        current = previous.get(rule.name, RuleState(rule.name))
        if current.evaluated_at is not None and at <= current.evaluated_at:
            continue  # a clock that went back (or a second runner) must not replay time
        new, transitions, notifications = step(rule, current, result.values[rule.name], at)
        states.append(new)
        result.transitions += transitions
        result.notifications += notifications
        queued += [(n, build_payload(by_name[n.rule], n, settings)) for n in notifications]
    store.save(states, result.transitions, queued, {r.name: r.channel for r in rules})
    return result


def deliver(store: AlertStore, settings, sender: Sender, now: Callable[[], datetime] = utcnow) -> dict[str, int]:  # noqa: ANN001
    """Send what waits in the outbox, oldest first; a channel that must wait holds back its later messages.

    Returns counts by outcome (sent, failed, waiting).
    """
    counts = {"sent": 0, "failed": 0, "waiting": 0}
    blocked: set[str] = set()
    warned: set[str] = set()
    for item in store.pending():
        label = f"{item.channel} {item.action} of {item.rule} ({item.dedup_key})"
        if item.channel in blocked or not store.due(item.id, now()):
            blocked.add(item.channel)  # keep each channel's messages in order (a resolve after its trigger)
            counts["waiting"] += 1
            continue
        if not channel_configured(item.channel, settings):
            if item.channel not in warned:
                log.warning("alerts: %s is not configured: set %s; its notifications wait in %s", item.channel,
                            SETTING_OF_CHANNEL[item.channel], store.where)
                warned.add(item.channel)
            blocked.add(item.channel)
            counts["waiting"] += 1
            continue
        outcome = sender.send(request_for(item.channel, item.action, item.dedup_key, item.payload, settings), label)
        if outcome.status == "sent":
            store.mark(item.id, "sent", outcome.detail, now())
            log.info("alerts: sent %s", label)
            counts["sent"] += 1
        elif outcome.status == "failed":
            store.mark(item.id, "failed", outcome.detail, now())
            counts["failed"] += 1
        else:
            store.mark(item.id, "pending", outcome.detail, now(), now() + timedelta(seconds=outcome.wait))
            log.warning("alerts: %s still undelivered (%s); kept in the outbox for the next run", label, outcome.detail)
            blocked.add(item.channel)
            counts["waiting"] += 1
    return counts


def run_once(wh, rules: Sequence[Rule], store: AlertStore, settings, sender: Sender,  # noqa: ANN001
             at: datetime | None = None) -> RunResult:
    """One evaluation and one delivery pass (which also sends anything an earlier run left behind,
    even when this evaluation failed: a queued resolve must not wait for the warehouse)."""
    try:
        result = evaluate(wh, rules, store, settings, at or utcnow())
    except PaydashError:
        deliver(store, settings, sender)
        raise
    for problem in result.problems:
        log.warning("alerts: %s", problem)
    result.delivered = deliver(store, settings, sender)
    return result


def watch(wh, rules: Sequence[Rule], store: AlertStore, settings, sender: Sender, interval: float,  # noqa: ANN001
          report: Callable[[RunResult], None] = lambda _r: None, iterations: int | None = None,
          stop: threading.Event | None = None) -> None:
    """Evaluate every `interval` seconds until interrupted (or `stop` is set: `paydash serve --alerts` runs it
    in a thread); an evaluation that fails is logged and retried next time."""
    stop = stop or threading.Event()
    done = 0
    while (iterations is None or done < iterations) and not stop.is_set():
        started = time.monotonic()
        try:
            report(run_once(wh, rules, store, settings, sender))
        except PaydashError as exc:
            log.error("alerts: evaluation failed: %s; trying again in %s s", exc, interval)
        except Exception as exc:  # noqa: BLE001 - the runner outlives one bad evaluation; the next may work
            log.error("alerts: evaluation failed with an unexpected %s: %s; trying again in %s s",
                      type(exc).__name__, exc, interval)
        done += 1
        if iterations is not None and done >= iterations:
            break
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


# -- replay -------------------------------------------------------------------------------------
def replay_times(start: datetime, stop: datetime, every: timedelta) -> list[datetime]:
    if every <= timedelta(0):
        raise InvalidInput("--step must be longer than 0s")
    if stop < start:
        raise InvalidInput("--to is before --from; give the earlier time first")
    count = int((stop - start) / every) + 1
    if count > MAX_REPLAY_STEPS:
        raise InvalidInput(f"{count:,} steps between --from and --to; use a larger --step or a shorter range "
                           f"(at most {MAX_REPLAY_STEPS:,})")
    return [start + every * i for i in range(count)]


def replay(wh, rules: Sequence[Rule], settings, start: datetime, stop: datetime,  # noqa: ANN001
           every: timedelta) -> tuple[list[dict[str, Any]], list[str]]:
    """Every notification the rules would have sent, evaluated at each step from `start` to `stop`
    (both included) starting from ok, without state or delivery: ([{rule, channel, action, at,
    dedup_key, payload}], problems)."""
    times = replay_times(start, stop, every)
    usable, problems = _sources_present(wh, rules)
    stripe = _stripe_sync(wh, usable)
    with wh.read() as conn:
        series = metric_series(conn, wh.marts, [r.query for r in usable], times, stripe)
    out: list[tuple[datetime, int, dict[str, Any]]] = []
    for order, rule in enumerate(usable):
        state = RuleState(rule.name)
        for t, measured in zip(times, series[rule.query]):
            state, _transitions, notifications = step(rule, state, measured, t)
            for n in notifications:
                out.append((n.at, order, {
                    "rule": n.rule, "channel": n.channel, "action": n.action, "at": n.at,
                    "dedup_key": n.dedup_key, "payload": build_payload(rule, n, settings),
                }))
    out.sort(key=lambda item: (item[0], item[1]))
    return [item[2] for item in out], problems


class WatchThread:
    """`paydash alerts watch` inside another process: the same loop in a daemon thread.

    `paydash serve --alerts` runs it beside the dashboard, so on an embedded DuckDB file that
    the served receiver holds (no other process may open it then) the rules still read the
    warehouse, through the same in-process DuckDB instance. The rule state goes to the state
    store as with `paydash alerts watch`; run one of the two, not both, per state store.
    """

    def __init__(self, settings, interval: float) -> None:  # noqa: ANN001
        from paydash.alerts.rules import load_rules
        from paydash.state import open_state
        from paydash.warehouse.engine import Warehouse

        if interval <= 0:
            raise InvalidInput("the alert interval must be a positive number of seconds")
        self.settings = settings
        self.interval = float(interval)
        self.rules, _source = load_rules(settings)
        self.store = open_state(settings).alerts
        self.warehouse = Warehouse(settings.database_url, settings, read_only=True)
        self.sender = Sender(timeout=float(settings.alert_http_timeout))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paydash-alerts", daemon=True)

    def start(self) -> None:
        for channel in sorted({r.channel for r in self.rules}):
            if not channel_configured(channel, self.settings):
                log.warning("alerts: rules route to %s but %s is not set; their notifications will wait in the outbox",
                            channel, SETTING_OF_CHANNEL[channel])
        log.info("alerts: watching %d rules every %g s", len(self.rules), self.interval)
        self._thread.start()

    def _run(self) -> None:
        watch(self.warehouse, self.rules, self.store, self.settings, self.sender, self.interval,
              report=lambda r: [log.info("alerts: %s %s -> %s", t.rule, t.from_state, t.to_state)
                                for t in r.transitions],
              stop=self._stop)

    def close(self) -> None:
        """Stop after the evaluation under way (if any); then let the warehouse go."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=60)
        self.sender.close()
        self.warehouse.dispose()
