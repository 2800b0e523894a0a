"""The alert runner end to end, on both engines: an injected incident evaluated minute by minute
with the default rules fires exactly the rules it breaks, once each, and resolves each once,
delivered to loopback PagerDuty, Slack and Opsgenie; a runner restarted in the middle (even
between queueing a trigger and sending it) neither pages twice nor forgets the resolve; the
replay prints the same notifications as JSON without touching the state file."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timedelta

import pytest

from alert_helpers import Sink, build_ops_warehouse, check_opsgenie_close, check_opsgenie_create, check_pagerduty, check_slack, ops_event
from builders import charge
from paydash.alerts.channels import Sender
from paydash.alerts.rules import load_rules
from paydash.alerts.runner import evaluate, replay, run_once
from paydash.settings import Settings
from paydash.state import StateStore
from test_cli import run

DAY = datetime(2026, 11, 20)
START, INCIDENT, RECOVERY, END = DAY.replace(hour=8), DAY.replace(hour=10), DAY.replace(hour=10, minute=30), DAY.replace(hour=12)
BROKEN = {"checkout_success_rate_low", "retry_failures_high", "receipt_render_failures_high", "payment_failure_rate_spike"}
ROUTING_KEY, GENIE_KEY = "pd-routing-key-0001", "genie-key-0001"


def incident_events() -> tuple[list[dict], list[dict]]:
    """Steady traffic from 08:00 to 12:00 with an incident from 10:00 to 10:30: a quarter of checkouts
    fail, a retry and a receipt fail every minute, half the payments fail. Expired sessions and
    webhook lag stay normal."""
    events, payments = [], []
    t, n = START, 0
    while t < END:
        bad = INCIDENT <= t < RECOVERY
        events.append(ops_event("checkout_completed", t, "failed" if bad and n % 4 == 0 else "succeeded"))
        payments.append(charge(f"ch_{n}", t, "failed" if (n % 2 == 0 if bad else n % 10 == 0) else "succeeded"))
        if n % 3 == 0:  # once a minute
            events.append(ops_event("retry_completed", t, "failed" if bad else "succeeded", attempt_number=2))
            events.append(ops_event("receipt_generated", t, "failed" if bad and t >= INCIDENT + timedelta(minutes=5)
                                    else "succeeded", duration_ms=800))
            events.append(ops_event("checkout_started", t, source="stripe", received_at=t + timedelta(seconds=3)))
        if n % 90 == 0:  # two an hour
            events.append(ops_event("checkout_expired", t, "expired"))
        t += timedelta(seconds=20)
        n += 1
    return events, payments


@pytest.fixture
def incident(databases):  # noqa: ANN001, ANN201
    events, payments = incident_events()
    return build_ops_warehouse(databases, events, payments)


@pytest.fixture
def services():  # noqa: ANN201
    sinks = {"pagerduty": Sink(), "slack": Sink(), "opsgenie": Sink()}
    yield sinks
    for sink in sinks.values():
        sink.stop()


def alerts_of(url):  # noqa: ANN001, ANN201
    """The alert state of the state store at `url`, as a process opening it afresh sees it."""
    return StateStore(str(url)).alerts


def settings_for(services, state_url) -> Settings:  # noqa: ANN001
    return Settings({
        "pagerduty_routing_key": ROUTING_KEY, "pagerduty_events_url": services["pagerduty"].url + "/v2/enqueue",
        "slack_webhook_url": services["slack"].url + "/services/T/B/x", "opsgenie_api_key": GENIE_KEY,
        "opsgenie_url": services["opsgenie"].url + "/v2/alerts", "state_url": str(state_url),
    })


def minutes(start: datetime, stop: datetime) -> list[datetime]:
    return [start + timedelta(minutes=i) for i in range(int((stop - start) / timedelta(minutes=1)) + 1)]


def received(services) -> list[tuple[str, str, str]]:  # noqa: ANN001
    """(channel, action, key) of everything the three services got."""
    out = []
    for body in services["pagerduty"].bodies():
        out.append(("pagerduty", body["event_action"], body["dedup_key"]))
    for body in services["slack"].bodies():
        out.append(("slack", "resolve" if body["text"].startswith(":white_check_mark:") else "trigger",
                    body["blocks"][1]["elements"][0]["text"].split("`")[-2]))
    for r in services["opsgenie"].received:
        out.append(("opsgenie", "resolve" if r.path.endswith("/close") else "trigger",
                    r.path.split("/")[3] if r.path.endswith("/close") else r.body["alias"]))
    return out


def test_incident_fires_each_broken_rule_once_and_resolves_it_once_across_a_restart(incident, services, tmp_path) -> None:  # noqa: ANN001
    settings = settings_for(services, tmp_path / "state.sqlite")
    rules, _ = load_rules(settings)
    store, sender = alerts_of(settings.state_url), Sender(timeout=5)
    crashed = False
    notified = []
    for t in minutes(DAY.replace(hour=9, minute=30), DAY.replace(hour=11, minute=30)):
        if not crashed:
            result = evaluate(incident, rules, store, settings, t)
            if any(n.action == "trigger" for n in result.notifications):
                # the runner dies after queueing its first trigger, before sending it
                notified += result.notifications
                crashed = True
                sender.close()
                store, sender = alerts_of(settings.state_url), Sender(timeout=5)
                assert not services["pagerduty"].received
                continue
        else:
            result = run_once(incident, rules, store, settings, sender, at=t)
        notified += result.notifications
        if t == DAY.replace(hour=10, minute=28):  # and again, in the middle of the incident
            assert {s["rule"] for s in alerts_of(settings.state_url).current_states() if s["state"] == "firing"} == BROKEN
            sender.close()
            store, sender = alerts_of(settings.state_url), Sender(timeout=5)
    sender.close()
    assert crashed

    got = received(services)
    assert Counter((channel, action) for channel, action, _ in got) == {
        ("pagerduty", "trigger"): 1, ("pagerduty", "resolve"): 1, ("slack", "trigger"): 2, ("slack", "resolve"): 2,
        ("opsgenie", "trigger"): 1, ("opsgenie", "resolve"): 1,
    }
    by_rule = Counter((n.rule, n.action) for n in notified)
    assert by_rule == {(rule, action): 1 for rule in BROKEN for action in ("trigger", "resolve")}
    keys = {n.dedup_key for n in notified}
    assert {key for _, _, key in got} == keys and len(keys) == len(BROKEN)
    for n in notified:
        assert INCIDENT < n.at < END
        assert (n.at >= RECOVERY) == (n.action == "resolve")
    for body in services["pagerduty"].bodies():
        check_pagerduty(body, ROUTING_KEY)
    for body in services["slack"].bodies():
        check_slack(body, "http://localhost:8501/operations")
    create, close = services["opsgenie"].received
    check_opsgenie_create(create, GENIE_KEY)
    check_opsgenie_close(close, GENIE_KEY, create.body["alias"])

    states = {s["rule"]: s["state"] for s in alerts_of(settings.state_url).current_states()}
    assert set(states) == {r.name for r in rules} and set(states.values()) == {"ok"}
    view = alerts_of(settings.state_url).for_dashboard(200)
    assert {(r["rule"], r["channel"]) for r in view["rules"]} == {(r.name, r.channel) for r in rules}
    assert Counter(h["action"] for h in view["history"] if h["action"]) == {"trigger": 4, "resolve": 4}
    assert {h["delivery"] for h in view["history"] if h["action"]} == {"sent"}
    assert view["history"][0]["at"] >= view["history"][-1]["at"]
    changes = alerts_of(settings.state_url).history(1000)
    fired = [h for h in changes if h["to_state"] == "firing"]
    assert {h["rule"] for h in fired} == BROKEN and all(h["delivery"] == "sent" for h in fired)
    assert all(h["delivery"] == "sent" for h in changes if h["to_state"] == "resolved")

    # the replay of the same span says exactly what was sent, at the same times, with the same keys
    replayed, problems = replay(incident, rules, settings, DAY.replace(hour=9, minute=30), DAY.replace(hour=11, minute=30),
                                timedelta(minutes=1))
    assert problems == []
    assert sorted((r["rule"], r["action"], r["at"], r["dedup_key"]) for r in replayed) == sorted(
        (n.rule, n.action, n.at, n.dedup_key) for n in notified)


def test_replay_cli_prints_json_and_leaves_the_state_store_alone(incident, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    db = incident.test_database
    monkeypatch.setenv("PAYDASH_PAYMENTS_TABLE", incident.settings.payments_table)
    monkeypatch.setenv("PAYDASH_DAILY_TABLE", incident.settings.daily_table)
    monkeypatch.setenv("PAYDASH_STATE_URL", str(tmp_path / "live.sqlite"))
    monkeypatch.setenv("PAYDASH_PAGERDUTY_ROUTING_KEY", ROUTING_KEY)
    code, out, err = run("alerts", "replay", "--from", "2026-11-20T09:30", "--to", "2026-11-20T11:30Z", "--step", "1m",
                         "--dry-run", "--json", "--db", db.url, cwd=tmp_path)
    assert code == 0, err
    notifications = json.loads(out)
    assert Counter((n["rule"], n["action"]) for n in notifications) == {
        (rule, action): 1 for rule in BROKEN for action in ("trigger", "resolve")}
    for n in notifications:
        assert set(n) == {"rule", "channel", "action", "at", "dedup_key", "payload"}
        assert n["at"].endswith("Z")
        if n["channel"] == "pagerduty":
            assert n["payload"]["dedup_key"] == n["dedup_key"]
            assert n["payload"]["routing_key"] == "<PAYDASH_PAGERDUTY_ROUTING_KEY>"  # never the secret
        if n["channel"] == "opsgenie" and n["action"] == "trigger":
            assert n["payload"]["alias"] == n["dedup_key"]
    assert [n["at"] for n in notifications] == sorted(n["at"] for n in notifications)
    assert ROUTING_KEY not in out
    assert not (tmp_path / "live.sqlite").exists()

    code, out, err = run("alerts", "replay", "--from", "2026-11-20T10:00", "--to", "2026-11-20T09:00", "--db", db.url,
                         cwd=tmp_path)
    assert code == 1 and "--to is before --from" in err
    code, out, err = run("alerts", "replay", "--from", "yesterday", "--to", "2026-11-20T09:00", "--db", db.url, cwd=tmp_path)
    assert code == 1 and "--from 'yesterday' is not a time" in err
    code, out, err = run("alerts", "replay", "--from", "2026-11-20", "--to", "2026-11-21", "--step", "1 min",
                         "--db", db.url, cwd=tmp_path)
    assert code == 1 and "--step: '1 min' is not a duration" in err


def test_run_once_cli_and_a_bad_rules_file(incident, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    db = incident.test_database
    monkeypatch.setenv("PAYDASH_PAYMENTS_TABLE", incident.settings.payments_table)
    monkeypatch.setenv("PAYDASH_DAILY_TABLE", incident.settings.daily_table)
    monkeypatch.setenv("PAYDASH_STATE_URL", str(tmp_path / "state" / "state.sqlite"))
    code, out, err = run("alerts", "run", "--once", "--json", "--db", db.url, cwd=tmp_path)
    assert code == 0, err
    result = json.loads(out)
    assert set(result["values"]) == {r.name for r in load_rules(Settings())[0]}
    assert result["notifications"] == []  # "now" is long after the incident
    assert {s["state"] for s in alerts_of(tmp_path / "state" / "state.sqlite").current_states()} == {"ok"}
    code, out, err = run("alerts", "status", "--json", cwd=tmp_path)
    assert code == 0, err
    assert {s["rule"] for s in json.loads(out)["states"]} == set(result["values"])
    code, out, err = run("alerts", "status", cwd=tmp_path)
    assert code == 0 and "ok        checkout_success_rate_low" in out

    code, out, err = run("alerts", "run", "--db", db.url, cwd=tmp_path)
    assert code == 1 and "needs --once" in err
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nname = "x"\nmetric = "nope"\n')
    monkeypatch.setenv("PAYDASH_ALERT_RULES_FILE", str(rules))
    code, out, err = run("alerts", "rules", cwd=tmp_path)
    assert code == 1 and "rule 'x' is missing comparison, threshold, window, severity, channel" in err
    assert "Traceback" not in err


def test_without_the_operations_mart_only_the_payment_rule_runs(databases, tmp_path) -> None:  # noqa: ANN001
    _events, payments = incident_events()
    wh = build_ops_warehouse(databases, [], payments)
    writer = wh.test_database.warehouse(read_only=False)
    with writer.write() as conn:
        writer.marts.operations_events.drop(conn)
    writer.dispose()
    rules, _ = load_rules(Settings())
    replayed, problems = replay(wh, rules, Settings(), INCIDENT, END, timedelta(minutes=1))
    assert {n["rule"] for n in replayed} == {"payment_failure_rate_spike"}
    [problem] = problems
    assert "mart_operations_events not found" in problem and "checkout_success_rate_low" in problem
    store = alerts_of(tmp_path / "a.sqlite")
    result = evaluate(wh, rules, store, Settings(), INCIDENT + timedelta(minutes=15))
    # (and the stale-Stripe-data rule, which has no value without the sync's tables)
    assert set(result.values) == {"payment_failure_rate_spike", "stripe_data_stale"} and result.problems == problems
    assert result.values["stripe_data_stale"].value is None


def test_watch_evaluates_on_its_interval_and_survives_a_failing_evaluation(incident, tmp_path, caplog) -> None:  # noqa: ANN001
    import logging

    from paydash.alerts.runner import watch
    from paydash.warehouse.engine import Warehouse

    caplog.set_level(logging.INFO)
    settings = Settings({"state_url": str(tmp_path / "a.sqlite")})
    rules, _ = load_rules(settings)
    store = alerts_of(settings.state_url)
    reports = []
    watch(incident, rules, store, settings, Sender(), interval=0.01, report=reports.append, iterations=3)
    assert len(reports) == 3 and all(set(r.values) == {x.name for x in rules} for r in reports)
    gone = Warehouse(str(tmp_path / "gone.duckdb"), settings)
    watch(gone, rules, store, settings, Sender(), interval=0.01, report=reports.append, iterations=2)
    assert len(reports) == 3
    assert caplog.text.count("evaluation failed: no DuckDB database at") == 2
