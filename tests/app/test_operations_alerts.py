"""The Operations page's alert section (AppTest): the alert runner's state and history, read
from the state store (PAYDASH_STATE_URL) through data.alert_state."""

from __future__ import annotations

from datetime import datetime

from paydash.alerts.channels import build_payload
from paydash.alerts.evaluate import Notification, RuleState, Transition
from paydash.alerts.rules import load_rules
from paydash.settings import Settings, load_settings
from paydash.state import open_state
from test_operations_page import ops_db, ops_page  # noqa: F401 - fixtures shared with the page's tests

AT = datetime(2026, 11, 11, 14, 12)


def test_alert_state_and_history_are_shown(env, ops_page, tmp_path) -> None:  # noqa: ANN001, F811
    rules = {r.name: r for r in load_rules(Settings())[0]}
    rule = rules["checkout_success_rate_low"]
    key = "paydash-checkout_success_rate_low-20261111T140200Z"
    n = Notification(rule.name, rule.channel, "trigger", AT, key, 0.2, 40, datetime(2026, 11, 11, 14, 2))
    open_state(load_settings()).alerts.save(  # the default store in the test's working directory
        [RuleState(rule.name, "firing", AT, n.started_at, None, key, 0.2, 40, AT),
         RuleState("retry_failures_high", "ok", AT, evaluated_at=AT)],
        [Transition(rule.name, "ok", "pending", n.started_at, 0.5, None),
         Transition(rule.name, "pending", "firing", AT, 0.2, key)],
        [(n, build_payload(rule, n, Settings()))],
        {rule.name: "pagerduty", "retry_failures_high": "slack"},
    )
    at = ops_page.run()
    assert not at.exception, at.exception
    tables = [d.value for d in at.dataframe]
    states = next(t for t in tables if "state" in t.columns and "rule" in t.columns)
    assert dict(zip(states["rule"], states["state"])) == {"checkout_success_rate_low": "firing", "retry_failures_high": "ok"}
    assert dict(zip(states["rule"], states["channel"])) == {"checkout_success_rate_low": "pagerduty",
                                                           "retry_failures_high": "slack"}
    history = next(t for t in tables if "change" in t.columns)
    assert list(history["change"]) == ["pending -> firing", "ok -> pending"]
    assert list(history["action"].fillna("")) == ["trigger", ""]


def test_without_a_runner_the_page_says_how_to_start_one(env, ops_page, tmp_path) -> None:  # noqa: ANN001, F811
    at = ops_page.run()
    assert not at.exception
    assert any("paydash alerts watch" in c.value for c in at.caption)
