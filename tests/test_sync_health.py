"""Sync health (`paydash sync status`, the System page's section) on states built row by row:
a complete run, a failed one, a `running` one left behind by a dead process, events the
receiver never delivered, object types never populated; an old-shaped database migrated
without losing rows; no sync tables at all (and ClickHouse, where the sync does not run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from builders import SUBPROCESS_ON_CHDB, not_on_clickhouse
from paydash.queries.sync_health import SyncTables, Thresholds, scope_of, sync_health
from paydash.warehouse.migrations import SCHEMA_VERSION, column_names, current_version, migrate
from paydash.warehouse.stripe_objects import create_object_tables
from sync_states import NOW, event_row, fill_troubled, raw_row, run_row, state_row, sync_database
NOT_ON_CH = "the Stripe sync and webhook receiver do not write to ClickHouse (they refuse its URL); its status says so"


def health_of(wh, now: datetime = NOW, **thresholds) -> dict:  # noqa: ANN001, ANN003
    tables = SyncTables.of(wh)
    with wh.read() as conn:
        return sync_health(conn, tables, scope_of(wh, tables), now, Thresholds(**thresholds))


@pytest.fixture
def troubled(new_database, engine_kind):  # noqa: ANN001, ANN201
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    wh, _ = sync_database(new_database())
    fill_troubled(wh)
    yield wh
    wh.dispose()


def test_a_troubled_sync_shows_every_problem_most_severe_first(troubled) -> None:  # noqa: ANN001
    h = health_of(troubled)
    assert h["present"] and h["message"] is None
    assert [r["run_id"] for r in h["runs"]] == ["run_dead", "run_failed", "run_complete"]
    complete = h["runs"][2]
    assert complete["objects"] == {"charges": 2, "refunds": 1} and complete["reconciled"] is True
    assert (complete["events_read"], complete["events_applied"], complete["events_missing"]) == (40, 3, 3)
    assert complete["missing"] == {"charge.dispute.closed": 2, "charge.refunded": 1}
    assert h["last_complete_at"] == NOW - timedelta(hours=3, minutes=50)
    assert h["data_complete_at"] == NOW - timedelta(minutes=5) + timedelta(seconds=4)

    objects = {o["object_type"]: o for o in h["objects"]}
    assert list(objects) == ["customers", "coupons", "promotion_codes", "payment_intents", "charges", "refunds",
                             "disputes", "checkout_sessions", "invoices"]
    assert objects["charges"]["stored"] == 2 and objects["charges"]["synced_until"] == "2026-12-04T08:00:00Z"
    assert objects["refunds"]["window"] == {"start": "2026-12-02T12:00:00Z", "end": "2026-12-03T12:00:00Z",
                                            "starting_after": "re_9"}
    assert objects["customers"] == {**objects["customers"], "stored": 0, "synced_until": None, "window": None}
    assert h["never_populated"] == ["customers", "coupons", "promotion_codes", "payment_intents", "disputes",
                                    "checkout_sessions", "invoices"]
    assert h["reconcile"] == {"synced_until": "2026-12-04T08:00:00Z", "starting_after": "evt_api_3", "events": 40,
                              "updated_at": NOW - timedelta(hours=3, minutes=51)}

    w = h["webhooks"]
    assert w["newest"] == {"id": "evt_2", "type": "charge.failed", "created": "2026-12-04T11:55:00Z",
                           "received_at": NOW - timedelta(minutes=5) + timedelta(seconds=4)}
    assert w["lag_seconds"] == 4.0 and w["median_lag_seconds_last_hour"] == 3.0
    # the late delivery (3 h ago) counts among the day's deliveries; the 30-hour-old one does not
    assert (w["events_last_hour"], w["events_last_24h"]) == (2, 3)
    u = h["undelivered"]
    assert u["count"] == 3 and u["by_type"] == {"charge.dispute.closed": 2, "charge.refunded": 1}
    assert [e["id"] for e in u["newest"]] == ["evt_api_3", "evt_api_1", "evt_api_2"]

    problems = h["problems"]
    assert [p["severity"] for p in problems] == ["error", "warning", "warning", "info"]
    assert "the last sync (run_failed, started 2026-12-04 09:00 UTC) failed: Stripe answered 500 five times" in problems[0]["problem"]
    assert "second line" not in problems[0]["problem"] and "paydash sync" in problems[0]["fix"]
    assert "run_dead is recorded as running but has made no progress for 100 min" in problems[1]["problem"]
    assert "3 events were read through the Events API but never delivered" in problems[2]["problem"]
    assert "webhook endpoint" in problems[2]["fix"]
    assert problems[3]["problem"].startswith("never populated: customers, coupons")
    assert all(p["fix"] for p in problems)


def test_stale_data_no_complete_run_and_marts_behind(new_database, engine_kind) -> None:  # noqa: ANN001
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    wh, t = sync_database(new_database())
    try:
        # nothing ran yet: tables there, no run
        h = health_of(wh)
        assert h["present"] and h["runs"] == [] and h["webhooks"]["newest"] is None
        assert [(p["severity"], p["problem"]) for p in h["problems"]] == [("info", "no sync has completed yet (none has started)")]
        # one complete run, 30 hours ago, a failed one after it that stored refunds its marts never got
        with wh.write() as conn:
            conn.execute(t.objects.sync_runs.insert(), [
                run_row("r1", "complete", NOW - timedelta(hours=31), NOW - timedelta(hours=30), reconciled=False),
                run_row("r2", "interrupted", NOW - timedelta(hours=29), NOW - timedelta(hours=28), error="interrupted",
                        objects={"charges": 0, "refunds": 1}),
            ])
            conn.execute(t.objects.sync_state.insert(), state_row("marts", NOW - timedelta(hours=30),
                                                                  transformed_through=NOW - timedelta(hours=30)))
            conn.execute(t.objects.refunds.insert(), [raw_row("re_1", NOW - timedelta(days=3), NOW - timedelta(hours=28))])
        h = health_of(wh)
        severities = [(p["severity"], p["problem"].split(": ")[0]) for p in h["problems"]]
        assert severities == [("error", "the last sync (r2, started 2026-12-03 07:00 UTC) interrupted"),
                              ("error", "Stripe data is stale"), ("warning", "the marts are behind the raw tables"),
                              ("info", "the last complete sync (r1) did not read the Events API"), ("info", "never populated")]
        assert "read access to Events" in h["problems"][3]["fix"]
        assert "nothing known complete for 30 h" in h["problems"][1]["problem"]
        assert not [p for p in health_of(wh, stale_after=timedelta(hours=48))["problems"] if "stale" in p["problem"]]
        # only runs that never completed
        with wh.write() as conn:
            conn.execute(t.objects.sync_runs.delete().where(t.objects.sync_runs.c.run_id == "r1"))
        problems = [(p["severity"], p["problem"]) for p in health_of(wh)["problems"]]
        # the first run started 29 hours ago, more than the 26 of the stale threshold
        assert ("error", "no sync has completed yet (the first started 2026-12-03 07:00 UTC)") in problems
        assert ("warning", "no sync has completed yet (the first started 2026-12-03 07:00 UTC)") in [
            (p["severity"], p["problem"]) for p in health_of(wh, stale_after=timedelta(hours=48))["problems"]]
    finally:
        wh.dispose()


def test_a_database_only_the_receiver_writes(new_database, engine_kind) -> None:  # noqa: ANN001
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    wh = new_database().warehouse(read_only=False)
    try:
        tables = SyncTables.of(wh)
        migrate(wh, tables.raw)  # what the receiver makes: the raw tables, no sync bookkeeping
        with wh.write() as conn:
            conn.execute(tables.raw.events.insert(), [event_row("evt_1", "charge.succeeded", NOW - timedelta(minutes=1), NOW)])
        h = health_of(wh)
        assert h["present"] and h["runs"] == [] and h["webhooks"]["newest"]["id"] == "evt_1"
        assert h["data_complete_at"] == NOW and h["last_complete_at"] is None
        [problem] = h["problems"]
        assert problem["severity"] == "info" and problem["problem"].startswith("no `paydash sync` has run against this database")
    finally:
        wh.dispose()


def test_without_sync_tables_the_status_says_so(new_database, engine_kind) -> None:  # noqa: ANN001
    """An empty database, and on ClickHouse (where neither the sync nor the receiver writes)."""
    wh = new_database().warehouse(read_only=False)  # a DuckDB file is made
    try:
        h = health_of(wh)
    finally:
        wh.dispose()
    assert not h["present"] and h["problems"] == [] and h["runs"] == []
    if engine_kind == "clickhouse":
        assert h["message"].startswith("paydash's Stripe sync and webhook receiver do not write to this database's engine")
    else:
        assert "no Stripe sync has run against this database" in h["message"] and "run `paydash sync`" in h["message"]


# -- an older paydash's database ----------------------------------------------------------------------
def old_shape(schema: str | None) -> tuple[sa.Table, sa.Table]:
    """stripe_events and paydash_sync_runs as the paydash before sync health made them."""
    md = sa.MetaData()
    events = sa.Table("stripe_events", md, sa.Column("id", sa.Text, primary_key=True), sa.Column("type", sa.Text, nullable=False),
                      sa.Column("created", sa.BigInteger, nullable=False), sa.Column("object_type", sa.Text),
                      sa.Column("object_id", sa.Text), sa.Column("livemode", sa.Boolean),
                      sa.Column("received_at", sa.DateTime, nullable=False), sa.Column("data", sa.Text, nullable=False),
                      schema=schema)
    runs = sa.Table("paydash_sync_runs", md, sa.Column("run_id", sa.Text, primary_key=True),
                    sa.Column("status", sa.Text, nullable=False), sa.Column("started_at", sa.DateTime, nullable=False),
                    sa.Column("updated_at", sa.DateTime, nullable=False), sa.Column("finished_at", sa.DateTime),
                    sa.Column("since_ts", sa.BigInteger), sa.Column("until_ts", sa.BigInteger), sa.Column("api_base", sa.Text),
                    sa.Column("objects", sa.Text), sa.Column("error", sa.Text), sa.Column("pid", sa.Integer), schema=schema)
    return events, runs


def test_an_old_database_is_read_then_migrated_without_losing_rows(new_database, engine_kind) -> None:  # noqa: ANN001
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    wh = new_database().warehouse(read_only=False)
    try:
        tables = SyncTables.of(wh)
        events, runs = old_shape(tables.raw.charges.schema)
        with wh.write() as conn:
            if events.schema:
                conn.execute(sa.schema.CreateSchema(events.schema, if_not_exists=True))
            # version 2: the raw tables of the release before, events and runs in their old shape
            for table in tables.raw.all:
                if table.name != "stripe_events":
                    table.create(conn)
            events.create(conn)
            conn.execute(events.insert(), [{k: v for k, v in event_row("evt_a", "charge.succeeded", NOW - timedelta(minutes=3),
                                                                      NOW - timedelta(minutes=2)).items()
                                            if k not in ("source", "delivered_at")}])
            create_object_tables(conn, tables.objects)  # the other sync tables, as they were
            tables.objects.sync_runs.drop(conn)
            runs.create(conn)
            conn.execute(runs.insert(), [{k: v for k, v in run_row("run_old", "complete", NOW - timedelta(hours=2),
                                                                   NOW - timedelta(hours=1)).items() if k in runs.c}])
        from paydash.warehouse.load import meta_table

        meta = meta_table(wh)
        with wh.write() as conn:
            meta.create(conn, checkfirst=True)
            conn.execute(meta.insert().values(key="schema_version", value="2"))
        # an older database is read as it is (the status of a database this paydash has not migrated yet)
        h = health_of(wh)
        assert [r["run_id"] for r in h["runs"]] == ["run_old"] and h["runs"][0]["events_read"] is None
        assert h["webhooks"]["newest"]["id"] == "evt_a" and h["undelivered"]["count"] == 0

        assert [m.version for m in migrate(wh, tables.raw)][0] == 3
        with wh.read() as conn:
            assert current_version(conn, wh, tables.raw) == SCHEMA_VERSION
            assert {"source", "delivered_at"} <= column_names(conn, tables.raw.events)
            assert {"events_read", "events_applied", "events_missing", "missing", "reconciled"} <= column_names(
                conn, tables.objects.sync_runs)
            e = tables.raw.events.c
            assert conn.execute(sa.select(e.id, e.source, e.delivered_at, e.received_at)).all() == [
                ("evt_a", "webhook", NOW - timedelta(minutes=2), NOW - timedelta(minutes=2))]
            rr = tables.objects.sync_runs.c
            assert conn.execute(sa.select(rr.run_id, rr.status, rr.finished_at, rr.events_read, rr.reconciled)).all() == [
                ("run_old", "complete", NOW - timedelta(hours=1), None, None)]
        if engine_kind == "postgres":  # the newest delivery and the undelivered events are indexed
            with wh.read() as conn:
                names = {n for (n,) in conn.execute(sa.text(
                    "SELECT indexname FROM pg_indexes WHERE tablename = 'stripe_events' AND schemaname = :s"),
                    {"s": tables.raw.events.schema})}
            assert {"ix_stripe_events_delivered_at", "ix_stripe_events_undelivered"} <= names
        assert migrate(wh, tables.raw) == []  # idempotent
        h = health_of(wh)
        assert h["runs"][0]["run_id"] == "run_old" and h["webhooks"]["newest"]["id"] == "evt_a"
        assert h["last_complete_at"] == NOW - timedelta(hours=1)
    finally:
        wh.dispose()


# -- the command ----------------------------------------------------------------------------------------
def paydash(*args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("paydash")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "paydash.cli"]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}, **settings}
    return subprocess.run([*command, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_sync_status_command(troubled, databases, tmp_path) -> None:  # noqa: ANN001
    not_on_clickhouse(databases.kind, SUBPROCESS_ON_CHDB)
    db = troubled.engine.url.render_as_string(hide_password=False)
    if databases.kind == "duckdb":
        db = db.removeprefix("duckdb:///")
    schema = SyncTables.of(troubled).raw.charges.schema
    troubled.dispose()  # the subprocess opens the DuckDB file
    # PostgreSQL: the tables live in the test's schema, beside the charge mart named there
    env = {"PAYDASH_PAYMENTS_TABLE": f"{schema}.mart_payments"} if schema else {}
    done = paydash("sync", "status", "--db", db, "--json", cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["present"] and [r["run_id"] for r in data["runs"]] == ["run_dead", "run_failed", "run_complete"]
    assert data["runs"][0]["started_at"] == "2026-12-04T10:00:00Z"
    assert data["undelivered"]["count"] == 3 and data["problems"][0]["severity"] == "error"
    done = paydash("sync", "status", "--db", db, cwd=tmp_path, **env)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.index("problems:") < out.index("runs (newest first):") < out.index("object types:") < out.index("webhooks:")
    assert "ERROR: the last sync (run_failed" in out and "seen through the API but never delivered: 3" in out
    # `paydash sync --db X status` works too; the sync's own options are refused before a subcommand
    done = paydash("sync", "--db", db, "status", cwd=tmp_path, **env)
    assert done.returncode == 0 and "ERROR: the last sync (run_failed" in done.stdout
    done = paydash("sync", "--api-base", "http://127.0.0.1:1", "status", "--db", db, cwd=tmp_path, **env)
    assert done.returncode == 1 and "belong to `paydash sync` itself" in done.stderr and "Traceback" not in done.stderr
    empty = tmp_path / "empty.duckdb"
    import duckdb

    duckdb.connect(str(empty)).close()
    done = paydash("sync", "status", "--db", str(empty), cwd=tmp_path)
    assert done.returncode == 0 and "no Stripe sync has run against this database" in done.stdout


# -- the alert rule ---------------------------------------------------------------------------------------
def stale_rule():  # noqa: ANN201
    from paydash.alerts.rules import load_rules
    from paydash.settings import Settings

    rules, _ = load_rules(Settings())
    return [r for r in rules if r.name == "stripe_data_stale"]


def test_the_stale_data_rule_fires_when_stale_and_not_when_fresh(new_database, engine_kind, tmp_path) -> None:  # noqa: ANN001
    """Through the runner, delivered to a loopback Slack: a last complete run 30 hours ago fires after
    the rule's 10 minutes; a webhook event an hour ago keeps it quiet; the replay agrees."""
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    from alert_helpers import Sink, check_slack
    from paydash.alerts.channels import Sender
    from paydash.alerts.runner import evaluate, replay, run_once
    from paydash.queries.alert_metrics import METRICS
    from paydash.settings import Settings
    from paydash.state import StateStore

    [rule] = stale_rule()
    assert (rule.metric, rule.comparison, rule.threshold, rule.channel) == ("stripe_data_age_minutes", ">", 1560, "slack")
    assert METRICS[rule.metric].unit == "minutes"
    db = new_database()
    wh, t = sync_database(db)
    with wh.write() as conn:
        conn.execute(t.objects.sync_runs.insert(), [run_row("r1", "complete", NOW - timedelta(hours=31), NOW - timedelta(hours=30))])
    sink = Sink()
    try:
        settings = Settings({"slack_webhook_url": sink.url + "/services/T/B/x", "state_url": str(tmp_path / "state.sqlite")})
        store, sender = StateStore(settings.state_url).alerts, Sender(timeout=5)
        first = run_once(wh, [rule], store, settings, sender, at=NOW)
        assert first.values["stripe_data_stale"].value == 30 * 60 and not first.notifications  # pending for 10 minutes
        fired = run_once(wh, [rule], store, settings, sender, at=NOW + timedelta(minutes=10))
        [n] = fired.notifications
        assert n.action == "trigger" and n.details["last_complete_sync"] == "2026-12-03T06:00:00Z"
        [body] = sink.bodies()
        check_slack(body, "http://localhost:8501/operations")
        assert "Stripe data not known complete" in body["text"]
        # a webhook event delivered: fresh again, resolved
        with wh.write() as conn:
            conn.execute(t.raw.events.insert(), [event_row("evt_1", "charge.succeeded", NOW + timedelta(minutes=11),
                                                           NOW + timedelta(minutes=11))])
        for minute in (12, 22):
            result = run_once(wh, [rule], store, settings, sender, at=NOW + timedelta(minutes=minute))
        assert result.values["stripe_data_stale"].value == 11.0
        assert [n.action for n in result.notifications] == ["resolve"] and len(sink.bodies()) == 2
        sender.close()
        # the replay over the same span sends the same, one query per family (the series form)
        replayed, problems = replay(wh, [rule], settings, NOW, NOW + timedelta(minutes=22), timedelta(minutes=1))
        assert problems == [] and [(r["action"], r["at"]) for r in replayed] == [
            ("trigger", NOW + timedelta(minutes=10)), ("resolve", NOW + timedelta(minutes=22))]
        # fresh from the start: a complete run an hour ago never fires
        with wh.write() as conn:
            conn.execute(t.objects.sync_runs.insert(), [run_row("r2", "complete", NOW - timedelta(hours=2), NOW - timedelta(hours=1))])
        fresh = evaluate(wh, [rule], StateStore(str(tmp_path / "fresh.sqlite")).alerts, settings, NOW)
        assert fresh.values["stripe_data_stale"].value == 60 and not fresh.notifications
    finally:
        sink.stop()
        wh.dispose()


def test_the_stale_rule_measures_nothing_without_sync_tables(new_database, engine_kind, tmp_path) -> None:  # noqa: ANN001
    """Where no sync or receiver writes (and on ClickHouse) the rule has no value: never fires, no warning."""
    from paydash.alerts.runner import evaluate
    from paydash.settings import Settings
    from paydash.state import StateStore

    db = new_database()
    wh = db.warehouse(read_only=False)
    try:
        result = evaluate(wh, stale_rule(), StateStore(str(tmp_path / "state.sqlite")).alerts, Settings(), NOW)
        assert result.values["stripe_data_stale"].value is None and result.problems == [] and not result.notifications
    finally:
        wh.dispose()


def test_the_age_metric_series_equals_the_metric_at_each_time(new_database, engine_kind) -> None:  # noqa: ANN001
    not_on_clickhouse(engine_kind, NOT_ON_CH)
    from paydash.queries.alert_metrics import MetricQuery, StripeSync, metric_at, metric_series

    wh, t = sync_database(new_database())
    try:
        with wh.write() as conn:
            conn.execute(t.objects.sync_runs.insert(), [
                run_row("r0", "running", NOW - timedelta(hours=3), updated=NOW - timedelta(hours=3)),
                run_row("r1", "complete", NOW - timedelta(hours=2), NOW - timedelta(minutes=95)),
                run_row("r2", "failed", NOW - timedelta(minutes=50), NOW - timedelta(minutes=40), error="x"),
            ])
            conn.execute(t.raw.events.insert(), [
                event_row("e1", "charge.succeeded", NOW - timedelta(minutes=70), NOW - timedelta(minutes=70, seconds=-20)),
                event_row("e2", "charge.succeeded", NOW - timedelta(minutes=30), NOW - timedelta(minutes=30)),
                event_row("e3", "charge.refunded", NOW - timedelta(minutes=20), NOW, "api", None),  # never delivered
            ])
        stripe = StripeSync(t.objects.sync_runs, t.raw.events)
        query = MetricQuery("stripe_data_age_minutes", timedelta(minutes=1))
        times = [NOW - timedelta(hours=4) + timedelta(minutes=5 * i) for i in range(50)]
        with wh.read() as conn:
            series = metric_series(conn, wh.marts, [query], times, stripe)[query]
            single = [metric_at(conn, wh.marts, query, at, stripe) for at in times]
        assert series == single
        values = dict(zip(times, (v.value for v in series)))
        assert values[NOW - timedelta(hours=4)] is None  # before anything started
        assert values[NOW - timedelta(hours=2)] == 60  # since the first start (nothing complete yet)
        assert values[NOW - timedelta(minutes=90)] == 5  # the complete run's end
        assert values[NOW - timedelta(minutes=60)] == 9.7  # the webhook event delivered at 69m40s before NOW
        assert values[NOW - timedelta(minutes=40)] == 29.7  # the failed run in between does not count
        assert values[NOW] == 30  # the failed run and the undelivered event do not count
    finally:
        wh.dispose()

