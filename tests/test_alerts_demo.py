"""The issue's done-when: `paydash alerts replay` over the demo data fires exactly the rules each
demo incident breaks, each once, with payloads each service accepts, and resolves each once
after it; outside the incidents it stays quiet. On both engines, through the CLI."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from datetime import date, datetime, timedelta

import pytest

from alert_helpers import Received, check_opsgenie_close, check_opsgenie_create, check_pagerduty, check_slack
from paydash.settings import Settings
from test_cli import run
from builders import SUBPROCESS_ON_CHDB, not_on_clickhouse

# what each demo incident breaks (docs/alerts.md, "The demo's incidents")
BREAKS = {
    "issuer outage": {"checkout_success_rate_low", "retry_failures_high", "payment_failure_rate_spike"},
    "fraud wave": {"expired_sessions_high"},
    "receipt renderer outage": {"receipt_render_failures_high"},
}
END = date(2026, 11, 21)
NOW = datetime(2026, 11, 22)  # the demo's last day complete, whatever the clock says
DAYS = 30
PAYMENTS = 110_000  # the default demo's density (300,000 in 90 days): the spike rule's minimum volume depends on it


@pytest.fixture(scope="module")
def demo(module_databases, tmp_path_factory):  # noqa: ANN001, ANN201
    from paydash.sources.demo import operations as demo_operations
    from paydash.sources.demo import DemoSpec, build_demo_database

    db = module_databases.isolated()
    not_on_clickhouse(db.kind, SUBPROCESS_ON_CHDB)  # `paydash alerts replay` runs as a subprocess
    # building the demo's marts on PostgreSQL takes more than the default 30 s a statement on a busy machine
    writer = db.warehouse(read_only=False, statement_timeout=300)
    spec = DemoSpec(payments=PAYMENTS, days=DAYS, seed=42, end=END, now=NOW)
    try:
        build_demo_database(writer, spec, show_progress=False)
        present = writer.has_table(writer.marts.operations_events, max_age=0)
    finally:
        writer.dispose()
    assert present, "the demo built no operations events mart (mart_operations_events): nothing to replay"
    windows = {name: bounds for name, bounds in demo_operations.incident_windows(spec).items() if name in BREAKS}
    assert set(windows) == set(BREAKS), f"the demo's incidents changed: {sorted(windows)}"
    return db, windows


def test_replay_over_the_demo_fires_what_each_incident_breaks_once(demo, tmp_path, monkeypatch) -> None:  # noqa: ANN001
    db, windows = demo
    for name in [n for n in os.environ if n.startswith("PAYDASH_") and n != "PAYDASH_TEST_PG"]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("PAYDASH_ALERT_STATE_FILE", str(tmp_path / "live.sqlite"))
    start = (END - timedelta(days=DAYS - 1)).isoformat() + "T00:00"
    stop = END.isoformat() + "T23:59"
    code, out, err = run("alerts", "replay", "--from", start, "--to", stop, "--step", "1m", "--dry-run", "--json",
                         "--db", db.url, cwd=tmp_path)
    assert code == 0, err
    notifications = json.loads(out)
    assert not (tmp_path / "live.sqlite").exists()

    seen: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for n in notifications:
        at = n["at"].removesuffix("Z")
        incident = next((name for name, (s, e) in windows.items()
                         if s.isoformat() <= at < (e + timedelta(hours=3)).isoformat()), None)
        assert incident is not None, f"{n['rule']} {n['action']} at {n['at']} is outside every incident"
        seen[incident].append((n["rule"], n["action"]))
        if n["action"] == "trigger":
            assert at < windows[incident][1].isoformat(), n  # fired while the incident lasted
        check_payload(n)
    for incident, rules in BREAKS.items():
        assert sorted(seen[incident]) == sorted((r, a) for r in rules for a in ("resolve", "trigger")), incident
        for rule in rules:  # each resolve after its trigger, with the same key
            pair = [n for n in notifications if n["rule"] == rule and windows[incident][0].isoformat() <= n["at"][:-1]
                    < (windows[incident][1] + timedelta(hours=3)).isoformat()]
            assert [p["action"] for p in pair] == ["trigger", "resolve"]
            assert pair[0]["dedup_key"] == pair[1]["dedup_key"]


def check_payload(n: dict) -> None:
    settings = Settings()
    if n["channel"] == "pagerduty":
        check_pagerduty(n["payload"], "<PAYDASH_PAGERDUTY_ROUTING_KEY>")
    elif n["channel"] == "slack":
        check_slack(n["payload"], f"{settings.dashboard_url}/operations")
    elif n["action"] == "trigger":
        check_opsgenie_create(Received("POST", "/v2/alerts", {}, {"Authorization": "GenieKey k"}, n["payload"], 0), "k")
    else:
        check_opsgenie_close(Received("POST", f"/v2/alerts/{n['dedup_key']}/close", {"identifierType": ["alias"]},
                                      {"Authorization": "GenieKey k"}, n["payload"], 0), "k", n["dedup_key"])
