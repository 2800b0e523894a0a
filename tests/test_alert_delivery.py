"""Delivery to loopback servers standing in for PagerDuty, Slack and Opsgenie: payload shapes,
retries (429 with Retry-After, 500, timeouts), no retry on 400, the durable outbox, the Slack
rate limit, and secrets kept out of logs and of the state store."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

import pytest

from alert_helpers import Reply, Sink, check_opsgenie_close, check_opsgenie_create, check_pagerduty, check_slack
from paydash.alerts.channels import Sender, build_payload, retry_after
from paydash.alerts.evaluate import Notification, dedup_key
from paydash.alerts.rules import load_rules
from paydash.alerts.runner import deliver
from paydash.settings import Settings
from paydash.state import StateStore
from paydash.state.alerts import AlertStore
from state_helpers import state_kind, state_pg, state_url, store  # noqa: F401 - fixtures

RULES = {r.channel + ":" + r.name: r for r in load_rules(Settings())[0]}
PD_RULE = RULES["pagerduty:checkout_success_rate_low"]
SLACK_RULE = RULES["slack:retry_failures_high"]
OG_RULE = RULES["opsgenie:receipt_render_failures_high"]
T0 = datetime(2026, 11, 20, 10, 0)
ROUTING_KEY = "R0UTINGKEYsecret0123456789abcdef"
GENIE_KEY = "GENIEKEY-secret-1111-2222"
SLACK_TOKEN = "XXSLACKSECRETTOKENXX"


def notification(rule, action: str, minutes: int = 13, value: float = 0.9, started: int = 3) -> Notification:  # noqa: ANN001
    start = T0 + timedelta(minutes=started)
    return Notification(rule.name, rule.channel, action, T0 + timedelta(minutes=minutes), dedup_key(rule, start),
                        value, 120, start, {"checkout_succeeded": 108, "checkout_completed": 120})


@pytest.fixture
def sinks():  # noqa: ANN201
    made: list[Sink] = []

    def make(script=()) -> Sink:  # noqa: ANN001
        sink = Sink(script)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.stop()


def settings_for(pd: Sink | None = None, slack: Sink | None = None, og: Sink | None = None) -> Settings:
    values = {"dashboard_url": "https://paydash.example.com/"}
    if pd:
        values |= {"pagerduty_routing_key": ROUTING_KEY, "pagerduty_events_url": pd.url + "/v2/enqueue"}
    if slack:
        values |= {"slack_webhook_url": f"{slack.url}/services/T000/B000/{SLACK_TOKEN}"}
    if og:
        values |= {"opsgenie_api_key": GENIE_KEY, "opsgenie_url": og.url + "/v2/alerts"}
    return Settings(values)


class RecordingSleep:
    def __init__(self, real: bool = True) -> None:
        self.calls: list[float] = []
        self.real = real
        self.now = 0.0

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.now += seconds
        if self.real:
            import time

            time.sleep(seconds)


def alert_store(path) -> AlertStore:  # noqa: ANN001
    """The alert state of a state store kept in the SQLite file `path`."""
    return StateStore(str(path)).alerts


def queue(store: AlertStore, settings: Settings, *items: tuple) -> None:  # noqa: ANN001
    store.save([], [], [(n, build_payload(rule, n, settings)) for rule, n in items])


def test_payloads_each_service_accepts(sinks, tmp_path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.DEBUG)
    pd, slack, og = sinks(), sinks(), sinks()
    settings = settings_for(pd, slack, og)
    store = alert_store(tmp_path / "alerts.sqlite")
    queue(store, settings,
          (PD_RULE, notification(PD_RULE, "trigger")), (SLACK_RULE, notification(SLACK_RULE, "trigger", value=7)),
          (OG_RULE, notification(OG_RULE, "trigger", value=4)), (PD_RULE, notification(PD_RULE, "resolve", 40, 0.99)),
          (SLACK_RULE, notification(SLACK_RULE, "resolve", 40, 2)), (OG_RULE, notification(OG_RULE, "resolve", 40, 0)))
    sender = Sender(timeout=5)
    try:
        assert deliver(store, settings, sender) == {"sent": 6, "failed": 0, "waiting": 0}
    finally:
        sender.close()
    assert deliver(store, settings, Sender()) == {"sent": 0, "failed": 0, "waiting": 0}  # nothing twice

    pd_key = dedup_key(PD_RULE, T0 + timedelta(minutes=3))
    [trigger, resolve] = pd.bodies()
    for body in (trigger, resolve):
        check_pagerduty(body, ROUTING_KEY)
    assert (trigger["event_action"], resolve["event_action"]) == ("trigger", "resolve")
    assert trigger["dedup_key"] == resolve["dedup_key"] == pd_key
    assert trigger["payload"]["severity"] == "critical"
    assert trigger["payload"]["summary"].startswith("Checkout success rate under 97%: 90.0% over the last 15m")
    assert trigger["payload"]["custom_details"]["checkout_completed"] == 120
    assert all(r.path == "/v2/enqueue" for r in pd.received)

    for body in slack.bodies():
        check_slack(body, "https://paydash.example.com/operations")
    assert "Resolved" in slack.bodies()[1]["text"]
    assert all(r.path == f"/services/T000/B000/{SLACK_TOKEN}" for r in slack.received)

    create, close = og.received
    check_opsgenie_create(create, GENIE_KEY)
    check_opsgenie_close(close, GENIE_KEY, create.body["alias"])
    assert create.body["priority"] == "P2" and create.body["alias"] == dedup_key(OG_RULE, T0 + timedelta(minutes=3))

    # secrets: never in a log line, never in the state store (its file and write-ahead log)
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("alerts.sqlite*"))
    for secret in (ROUTING_KEY, GENIE_KEY, SLACK_TOKEN):
        assert secret not in caplog.text
        assert secret.encode() not in stored
    assert [h["delivery"] for h in store.history()] == []  # no transitions were recorded


def test_429_with_retry_after_is_honoured(sinks, tmp_path) -> None:  # noqa: ANN001
    pd = sinks([Reply(429, {"Retry-After": "1"})])
    settings = settings_for(pd)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (PD_RULE, notification(PD_RULE, "trigger")))
    sleep = RecordingSleep()
    assert deliver(store, settings, Sender(sleep=sleep, base_delay=0.05))["sent"] == 1
    assert len(pd.received) == 2 and pd.received[0].body == pd.received[1].body
    assert sleep.calls == [1.0]  # what the server asked for, not the 0.05 s backoff


def test_5xx_is_retried_with_exponential_backoff(sinks, tmp_path) -> None:  # noqa: ANN001
    og = sinks([Reply(500), Reply(503), Reply(502)])
    settings = settings_for(og=og)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (OG_RULE, notification(OG_RULE, "trigger")))
    sleep = RecordingSleep()
    assert deliver(store, settings, Sender(sleep=sleep, base_delay=0.05))["sent"] == 1
    assert len(og.received) == 4
    assert sleep.calls == pytest.approx([0.05, 0.1, 0.2])


def test_a_timeout_is_retried(sinks, tmp_path) -> None:  # noqa: ANN001
    slack = sinks([Reply(200, delay=2.0, body="ok")])
    settings = settings_for(slack=slack)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (SLACK_RULE, notification(SLACK_RULE, "trigger")))
    sender = Sender(timeout=0.3, sleep=RecordingSleep(), base_delay=0.05)
    assert deliver(store, settings, sender)["sent"] == 1
    assert len(slack.received) == 2
    assert store.outbox()[0]["status"] == "sent" and store.outbox()[0]["attempts"] == 1


def test_400_is_not_retried_and_says_so(sinks, tmp_path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    slack = sinks([Reply(400, body="invalid_payload")])
    settings = settings_for(slack=slack)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (SLACK_RULE, notification(SLACK_RULE, "trigger")))
    sleep = RecordingSleep()
    assert deliver(store, settings, Sender(sleep=sleep)) == {"sent": 0, "failed": 1, "waiting": 0}
    assert len(slack.received) == 1 and sleep.calls == []
    [row] = store.outbox()
    assert row["status"] == "failed" and "HTTP 400: invalid_payload" in row["last_error"]
    assert "refused with HTTP 400 (invalid_payload); not retried" in caplog.text
    assert SLACK_TOKEN not in caplog.text


def test_undelivered_notifications_wait_in_order_and_nothing_is_dropped(sinks, tmp_path) -> None:  # noqa: ANN001
    pd = sinks([Reply(500)] * 4)
    settings = settings_for(pd)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (PD_RULE, notification(PD_RULE, "trigger")), (PD_RULE, notification(PD_RULE, "resolve", 40)))
    clock = {"now": T0}
    sender = Sender(attempts=2, sleep=RecordingSleep(real=False), base_delay=0.01)
    assert deliver(store, settings, sender, now=lambda: clock["now"]) == {"sent": 0, "failed": 0, "waiting": 2}
    assert [b["event_action"] for b in pd.bodies()] == ["trigger", "trigger"]  # the resolve never overtakes it
    # the service is back, and the next run sends both, in order
    clock["now"] = T0 + timedelta(minutes=1)
    assert deliver(store, settings, sender, now=lambda: clock["now"])["waiting"] == 2  # 2 more 500s from the script
    clock["now"] = T0 + timedelta(minutes=2)
    assert deliver(store, settings, sender, now=lambda: clock["now"]) == {"sent": 2, "failed": 0, "waiting": 0}
    assert [b["event_action"] for b in pd.bodies()][-2:] == ["trigger", "resolve"]


def test_unconfigured_channel_waits_for_its_setting(sinks, tmp_path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, Settings(), (OG_RULE, notification(OG_RULE, "trigger")))
    assert deliver(store, Settings(), Sender())["waiting"] == 1
    assert "opsgenie is not configured: set PAYDASH_OPSGENIE_API_KEY" in caplog.text
    og = sinks()
    assert deliver(store, settings_for(og=og), Sender())["sent"] == 1
    assert len(og.received) == 1


def test_at_most_one_slack_message_a_second(sinks, tmp_path) -> None:  # noqa: ANN001
    slack = sinks()
    settings = settings_for(slack=slack)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, *[(SLACK_RULE, notification(SLACK_RULE, "trigger", started=i)) for i in range(3)])
    fake = RecordingSleep(real=False)
    sender = Sender(sleep=fake, clock=lambda: fake.now)
    assert deliver(store, settings, sender)["sent"] == 3
    assert fake.calls == [1.0, 1.0]


@pytest.mark.parametrize("header, seconds", [("3", 3.0), ("0", 0.0), ("soon", None), (None, None),
                                             ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after_header(header, seconds) -> None:  # noqa: ANN001
    import httpx

    response = httpx.Response(429, headers={"Retry-After": header} if header else {})
    assert retry_after(response) == seconds


def test_queued_notifications_go_out_even_when_the_warehouse_is_down(sinks, tmp_path) -> None:  # noqa: ANN001
    from paydash.alerts.runner import run_once
    from paydash.errors import DatabaseUnreachable
    from paydash.warehouse.engine import Warehouse

    pd = sinks()
    settings = settings_for(pd)
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (PD_RULE, notification(PD_RULE, "resolve", 40)))
    wh = Warehouse(str(tmp_path / "gone.duckdb"), settings)
    with pytest.raises(DatabaseUnreachable, match="no DuckDB database at"):
        run_once(wh, [PD_RULE], store, settings, Sender())
    assert [b["event_action"] for b in pd.bodies()] == ["resolve"]


def test_dashboard_views_of_the_state_store(store) -> None:  # noqa: ANN001 - SQLite and PostgreSQL
    from paydash.alerts.evaluate import RuleState, Transition

    alerts = store.alerts
    assert alerts.current_states() == [] and alerts.history() == [] and alerts.for_dashboard() == {"rules": [], "history": []}
    n = notification(PD_RULE, "trigger")
    firing = RuleState(PD_RULE.name, "firing", n.at, n.started_at, None, n.dedup_key, 0.9, 120, n.at)
    alerts.save([firing, RuleState("other", "ok", T0, evaluated_at=n.at)],
                [Transition(PD_RULE.name, "pending", "firing", n.at, 0.9, n.dedup_key)],
                [(n, build_payload(PD_RULE, n, Settings()))], {PD_RULE.name: "pagerduty", "other": "slack"})
    assert [(s["rule"], s["state"], s["channel"]) for s in alerts.current_states()] == [
        (PD_RULE.name, "firing", "pagerduty"), ("other", "ok", "slack")]
    assert alerts.for_dashboard()["history"] == [{
        "at": "2026-11-20 10:13:00", "rule": PD_RULE.name, "change": "pending -> firing", "action": "trigger",
        "channel": "pagerduty", "delivery": "pending"}]
    # a later save replaces a rule's state (delete + insert in one transaction) and keeps the others
    alerts.save([RuleState(PD_RULE.name, "resolved", T0 + timedelta(minutes=30), dedup_key=n.dedup_key)], [], [])
    assert {s["rule"]: s["state"] for s in alerts.current_states()} == {PD_RULE.name: "resolved", "other": "ok"}
    [item] = alerts.pending()
    alerts.mark(item.id, "sent", "202", T0 + timedelta(minutes=14))
    [row] = alerts.outbox()
    assert (row["status"], row["attempts"], row["sent_at"], row["last_error"]) == ("sent", 1, "2026-11-20 10:14:00", None)
    assert row["payload"]["dedup_key"] == n.dedup_key and alerts.pending() == []


def test_a_malformed_channel_url_waits_and_says_which_setting(tmp_path, caplog) -> None:  # noqa: ANN001
    caplog.set_level(logging.INFO)
    settings = Settings({"slack_webhook_url": f"hooks.slack.com/services/{SLACK_TOKEN}"})
    store = alert_store(tmp_path / "a.sqlite")
    queue(store, settings, (SLACK_RULE, notification(SLACK_RULE, "trigger")))
    assert deliver(store, settings, Sender(sleep=RecordingSleep(real=False)))["waiting"] == 1
    assert "URL setting is not a valid http(s) URL" in caplog.text and SLACK_TOKEN not in caplog.text


def test_an_unusable_state_store_is_a_clear_error(tmp_path) -> None:  # noqa: ANN001
    from paydash.state import StateUnavailable

    (tmp_path / "file").write_text("")
    with pytest.raises(StateUnavailable, match="cannot be created .*; set PAYDASH_STATE_URL to a writable path"):
        alert_store(tmp_path / "file" / "alerts.sqlite").load()
