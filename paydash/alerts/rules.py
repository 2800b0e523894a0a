"""Alert rules as configuration: a TOML file of `[[rules]]`, validated into `Rule`s.

The defaults (PRODUCT.md's rules) ship in `default_rules.toml` beside this module; a team
points PAYDASH_ALERT_RULES_FILE at its own file. Every mistake is reported with the rule and
field it is in and how to fix it (docs/alerts.md).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from paydash.errors import ConfigError
from paydash.queries.alert_metrics import DEFAULT_BASELINE, METRICS, MetricQuery

DEFAULT_RULES_FILE = Path(__file__).with_name("default_rules.toml")

COMPARISONS = {
    "<": lambda value, threshold: value < threshold,
    "<=": lambda value, threshold: value <= threshold,
    ">": lambda value, threshold: value > threshold,
    ">=": lambda value, threshold: value >= threshold,
}
SEVERITIES = ("critical", "error", "warning", "info")
CHANNELS = ("pagerduty", "slack", "opsgenie")
FIELDS = {"name", "description", "metric", "comparison", "threshold", "window", "for", "severity", "channel",
          "min_volume", "baseline"}
REQUIRED = ("name", "metric", "comparison", "threshold", "window", "severity", "channel")

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,79}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: Any) -> timedelta:
    """'90s', '10m', '1h30m', '2d' (or a whole number of seconds) -> timedelta."""
    if isinstance(text, bool):
        raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 10m, 1h or 1h30m")
    try:
        if isinstance(text, int):
            if text < 0:
                raise ValueError("a duration cannot be negative")
            return timedelta(seconds=text)
        match = _DURATION.match(str(text).strip().lower()) if isinstance(text, str) else None
        if not match or not str(text).strip() or not any(match.groups()):
            raise ValueError(f"{text!r} is not a duration; write e.g. 30s, 10m, 1h or 1h30m")
        days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
        return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)
    except OverflowError:
        raise ValueError(f"{text!r} is longer than any duration paydash handles") from None


def format_duration(value: timedelta) -> str:
    """timedelta -> the shortest spelling parse_duration reads back ('1h30m', '0s')."""
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


@dataclass(frozen=True)
class Rule:
    name: str
    metric: str
    comparison: str
    threshold: float
    window: timedelta
    for_: timedelta
    severity: str
    channel: str
    min_volume: int = 0
    baseline: timedelta = DEFAULT_BASELINE
    description: str = ""

    @property
    def query(self) -> MetricQuery:
        return MetricQuery(self.metric, self.window, self.baseline)

    @property
    def title(self) -> str:
        return self.description or f"{self.metric} {self.comparison} {format_threshold(self, self.threshold)}"

    def breached(self, value: float | None, volume: int) -> bool:
        """Whether the condition holds: no value, or too few events behind it, never breaches."""
        if value is None or volume < self.min_volume:
            return False
        return COMPARISONS[self.comparison](value, self.threshold)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "description": self.description,
            "metric": self.metric,
            "comparison": self.comparison,
            "threshold": self.threshold,
            "window": format_duration(self.window),
            "for": format_duration(self.for_),
            "severity": self.severity,
            "channel": self.channel,
            "min_volume": self.min_volume,
        }
        if METRICS[self.metric].kind == "spike":
            data["baseline"] = format_duration(self.baseline)
        return data


def format_threshold(rule: Rule, value: float | None) -> str:
    """A value in the rule's unit, for people: 96.2%, +12.5 points, 140 s, 2,300 ms, 12."""
    if value is None:
        return "no data"
    unit = METRICS[rule.metric].unit
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "points":
        return f"{value * 100:+.1f} points"
    if unit == "seconds":
        return f"{value:,.0f} s"
    if unit == "ms":
        return f"{value:,.0f} ms"
    if unit == "minutes":
        return f"{value:,.0f} min"
    return f"{value:,.0f}"


def _rule(raw: Any, index: int, where: str) -> Rule:
    label = f"{where}: rule #{index + 1}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{label} is not a table; write each rule as a [[rules]] table")
    if isinstance(raw.get("name"), str):
        label = f"{where}: rule {raw['name']!r}"
    unknown = sorted(set(raw) - FIELDS)
    if unknown:
        raise ConfigError(f"{label} has unknown field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(FIELDS))}")
    metric_kind = METRICS[raw["metric"]].kind if raw.get("metric") in METRICS else None
    # an age (stripe_data_age_minutes) is measured at t, over no window
    missing = [f for f in REQUIRED if f not in raw and not (f == "window" and metric_kind == "age")]
    if missing:
        raise ConfigError(f"{label} is missing {', '.join(missing)}")

    def fail(field: str, problem: str) -> ConfigError:
        return ConfigError(f"{label}: {field} {problem}")

    name = raw["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise fail("name", f"{name!r} is not valid; use lower-case letters, digits, _ and - (up to 80)")
    metric = raw["metric"]
    if metric not in METRICS:
        raise fail("metric", f"{metric!r} is unknown; use one of {', '.join(METRICS)}")
    spec = METRICS[metric]
    comparison = raw["comparison"]
    if comparison not in COMPARISONS:
        raise fail("comparison", f"{comparison!r} is not one of {' '.join(COMPARISONS)}")
    threshold = raw["threshold"]
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise fail("threshold", f"{threshold!r} is not a number")
    threshold = float(threshold)
    if spec.unit == "ratio" and not 0 <= threshold <= 1:
        raise fail("threshold", f"{threshold:g} is not a fraction between 0 and 1; write 0.97 for 97%")
    if spec.unit == "points" and not -1 <= threshold <= 1:
        raise fail("threshold", f"{threshold:g} is not a fraction; write 0.10 for 10 points")
    durations = {}
    for field, default in (("window", spec.default_window), ("for", timedelta(0)), ("baseline", DEFAULT_BASELINE)):
        if field not in raw:
            durations[field] = default
            continue
        try:
            durations[field] = parse_duration(raw[field])
        except ValueError as exc:
            raise fail(field, str(exc)) from None
    if durations["window"] <= timedelta(0):
        raise fail("window", "must be longer than 0s")
    if spec.kind == "spike" and durations["baseline"] <= timedelta(0):
        raise fail("baseline", "must be longer than 0s")
    if "baseline" in raw and spec.kind != "spike":
        raise fail("baseline", f"only applies to the spike metric, not {metric}")
    severity = raw["severity"]
    if severity not in SEVERITIES:
        raise fail("severity", f"{severity!r} is not one of {', '.join(SEVERITIES)}")
    channel = raw["channel"]
    if channel not in CHANNELS:
        raise fail("channel", f"{channel!r} is not one of {', '.join(CHANNELS)}")
    min_volume = raw.get("min_volume", 0)
    if isinstance(min_volume, bool) or not isinstance(min_volume, int) or min_volume < 0:
        raise fail("min_volume", f"{min_volume!r} is not a whole number of events (0 or more)")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be text")
    return Rule(name, metric, comparison, threshold, durations["window"], durations["for"], severity, channel,
                min_volume, durations["baseline"], description.strip())


def parse_rules(text: str, where: str = "rules") -> list[Rule]:
    """Rules from TOML text; ConfigError naming the rule, the field and the fix."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML ({exc})") from None
    unknown = sorted(set(data) - {"rules"})
    if unknown:
        raise ConfigError(f"{where}: unknown top-level key(s) {', '.join(unknown)}; write rules as [[rules]] tables")
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ConfigError(f"{where}: `rules` must be a list of [[rules]] tables")
    rules = [_rule(raw, i, where) for i, raw in enumerate(raw_rules)]
    seen: set[str] = set()
    for rule in rules:
        if rule.name in seen:
            raise ConfigError(f"{where}: two rules are named {rule.name!r}; names must be unique (they key the alert state)")
        seen.add(rule.name)
    return rules


def load_rules(settings) -> tuple[list[Rule], str]:  # noqa: ANN001
    """(the effective rules, where they came from): PAYDASH_ALERT_RULES_FILE, else the defaults."""
    configured = getattr(settings, "alert_rules_file", "") or ""
    path = Path(configured).expanduser() if configured else DEFAULT_RULES_FILE
    if not path.is_file():
        raise ConfigError(
            f"alert rules file {path} not found; fix PAYDASH_ALERT_RULES_FILE, or unset it to use the defaults"
        )
    return parse_rules(path.read_text(), str(path)), str(path)
