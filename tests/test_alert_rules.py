"""Alert rules as configuration (parsing, validation, defaults) and the per-rule state machine."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from paydash.alerts.evaluate import RuleState, dedup_key, step
from paydash.alerts.rules import DEFAULT_RULES_FILE, format_duration, load_rules, parse_duration, parse_rules
from paydash.errors import ConfigError
from paydash.queries.alert_metrics import MetricValue
from paydash.settings import Settings

GOOD = """
[[rules]]
name = "checkout_low"
metric = "checkout_success_rate"
comparison = "<"
threshold = 0.97
window = "15m"
for = "10m"
min_volume = 20
severity = "critical"
channel = "pagerduty"
"""


@pytest.mark.parametrize("text, seconds", [
    ("30s", 30), ("10m", 600), ("1h", 3600), ("1h30m", 5400), ("2d", 172_800), ("0s", 0), (90, 90), (" 5M ", 300),
])
def test_durations(text, seconds) -> None:  # noqa: ANN001
    assert parse_duration(text) == timedelta(seconds=seconds)
    assert parse_duration(format_duration(timedelta(seconds=seconds))) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "10", "ten minutes", "1.5h", "-5m", "m", True, 1.5, "5m1h"])
def test_bad_durations(text) -> None:  # noqa: ANN001
    with pytest.raises(ValueError, match="not a duration|negative"):
        parse_duration(text)


def test_good_rule() -> None:
    [rule] = parse_rules(GOOD)
    assert (rule.name, rule.metric, rule.comparison, rule.threshold) == ("checkout_low", "checkout_success_rate", "<", 0.97)
    assert (rule.window, rule.for_, rule.min_volume) == (timedelta(minutes=15), timedelta(minutes=10), 20)
    assert (rule.severity, rule.channel) == ("critical", "pagerduty")


@pytest.mark.parametrize("change, message", [
    (('metric = "checkout_success_rate"', 'metric = "checkout_rate"'), "rule 'checkout_low': metric 'checkout_rate' is unknown; use one of"),
    (('window = "15m"', 'window = "15 minutes"'), "window '15 minutes' is not a duration; write e.g. 30s"),
    (('window = "15m"', 'window = "0s"'), "window must be longer than 0s"),
    (('for = "10m"', 'for = "soon"'), "for 'soon' is not a duration"),
    (('comparison = "<"', 'comparison = "=<"'), "comparison '=<' is not one of < <= > >="),
    (("threshold = 0.97", "threshold = 97"), "threshold 97 is not a fraction between 0 and 1; write 0.97 for 97%"),
    (("threshold = 0.97", 'threshold = "high"'), "threshold 'high' is not a number"),
    (('severity = "critical"', 'severity = "sev1"'), "severity 'sev1' is not one of critical, error, warning, info"),
    (('channel = "pagerduty"', 'channel = "email"'), "channel 'email' is not one of pagerduty, slack, opsgenie"),
    (("min_volume = 20", "min_volume = -1"), "min_volume -1 is not a whole number"),
    (('name = "checkout_low"', 'name = "Checkout Low"'), "name 'Checkout Low' is not valid"),
    (('channel = "pagerduty"', 'channel = "pagerduty"\nthreshhold = 1'), "unknown field(s) threshhold"),
    (('channel = "pagerduty"', 'channel = "pagerduty"\nbaseline = "1h"'), "baseline only applies to the spike metric"),
    (('severity = "critical"\n', ""), "is missing severity"),
    (("[[rules]]", "[rules]"), "`rules` must be a list of [[rules]] tables"),
    (("[[rules]]", "[[rule]]"), "unknown top-level key(s) rule"),
    (('window = "15m"', 'window = "15m'), "is not valid TOML"),
])
def test_invalid_rules_say_what_and_how(change, message) -> None:  # noqa: ANN001
    old, new = change
    with pytest.raises(ConfigError) as info:
        parse_rules(GOOD.replace(old, new), "my-rules.toml")
    assert message in str(info.value)
    assert str(info.value).startswith("my-rules.toml")


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(ConfigError, match="two rules are named 'checkout_low'"):
        parse_rules(GOOD + GOOD)


def test_default_rules_are_products_rules() -> None:
    rules, source = load_rules(Settings())
    assert source == str(DEFAULT_RULES_FILE)
    got = {(r.metric, r.comparison, r.threshold, format_duration(r.window), r.channel) for r in rules}
    assert got == {
        ("checkout_success_rate", "<", 0.97, "15m", "pagerduty"),
        ("webhook_lag_seconds", ">", 120, "5m", "pagerduty"),
        ("expired_sessions", ">", 10, "1h", "slack"),
        ("retry_failures", ">", 5, "15m", "slack"),
        ("receipt_render_failures", ">", 3, "5m", "opsgenie"),
        ("payment_failure_rate_spike", ">=", 0.10, "15m", "slack"),
        ("stripe_data_age_minutes", ">", 1560, "1m", "slack"),  # an age has no window: its default
    }
    spike = next(r for r in rules if r.metric == "payment_failure_rate_spike")
    assert spike.min_volume == 30 and spike.baseline == timedelta(hours=24)
    assert all(r.for_ > timedelta(0) for r in rules)


def test_rules_file_setting(tmp_path) -> None:  # noqa: ANN001
    path = tmp_path / "rules.toml"
    path.write_text(GOOD)
    rules, source = load_rules(Settings({"alert_rules_file": str(path)}))
    assert [r.name for r in rules] == ["checkout_low"] and source == str(path)
    with pytest.raises(ConfigError, match="alert rules file .*missing.toml not found; fix PAYDASH_ALERT_RULES_FILE"):
        load_rules(Settings({"alert_rules_file": str(tmp_path / "missing.toml")}))


# -- the state machine ----------------------------------------------------------------------
T0 = datetime(2026, 11, 20, 10, 0)
RULE = parse_rules(GOOD)[0]  # checkout success rate < 97% for 10 minutes, min volume 20


def run(values: list[float | None], rule=RULE, volume: int = 100, every: timedelta = timedelta(minutes=1)):  # noqa: ANN001, ANN201
    """Step the rule through one value per minute; the notifications and the states visited."""
    state = RuleState(rule.name)
    notes, states = [], []
    for i, v in enumerate(values):
        state, _transitions, notifications = step(rule, state, MetricValue(v, volume), T0 + every * i)
        notes += [(n.action, (n.at - T0) / every, n.dedup_key) for n in notifications]
        states.append(state.state)
    return notes, states


def test_fires_once_after_holding_for_its_duration_and_resolves_once() -> None:
    bad, good = 0.90, 0.99
    notes, states = run([good] * 3 + [bad] * 30 + [good] * 15)
    key = dedup_key(RULE, T0 + timedelta(minutes=3))
    assert notes == [("trigger", 13, key), ("resolve", 43, key)]
    assert states[3:13] == ["pending"] * 10 and states[13] == "firing"
    assert states[43] == "resolved" and states[44] == "ok"


def test_a_breach_shorter_than_its_duration_never_fires() -> None:
    notes, states = run([0.9] * 9 + [0.99] + [0.9] * 9 + [0.99] * 5)
    assert notes == [] and "firing" not in states


def test_no_flapping_around_the_threshold_while_firing() -> None:
    # fires, then hovers: clear for less than 10 minutes at a time never resolves it
    values = [0.9] * 11 + ([0.99] * 4 + [0.9]) * 6 + [0.99] * 11  # clear at 0, 1, ... 10 minutes
    notes, _ = run(values)
    assert [n[0] for n in notes] == ["trigger", "resolve"]
    assert notes[1][1] == len(values) - 1


def test_too_little_volume_or_no_data_is_not_a_breach() -> None:
    assert run([0.5] * 30, volume=5) == ([], ["ok"] * 30)
    assert run([None] * 30) == ([], ["ok"] * 30)


def test_for_zero_fires_and_resolves_at_once() -> None:
    rule = parse_rules(GOOD.replace('for = "10m"', 'for = "0s"'))[0]
    notes, _ = run([0.99, 0.9, 0.9, 0.99, 0.9, 0.99], rule=rule)
    assert [(a, at) for a, at, _ in notes] == [("trigger", 1), ("resolve", 3), ("trigger", 4), ("resolve", 5)]
    assert notes[0][2] != notes[2][2]  # a new incident, a new dedup key


def test_a_new_incident_after_a_resolve_has_a_new_key() -> None:
    notes, _ = run([0.9] * 12 + [0.99] * 11 + [0.9] * 12)
    assert [n[0] for n in notes] == ["trigger", "resolve", "trigger"]
    assert notes[0][2] == notes[1][2] != notes[2][2]
