"""Reconciliation through the Events API, the way a user meets it: `paydash sync` and
`paydash webhooks` as subprocesses against a fake Stripe on loopback whose account changes
while the receiver is down (disputes close, refunds fail, a checkout session expires, a charge
is refunded and another disputed), then `paydash sync --reconcile` catches every change
exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from builders import not_on_clickhouse
from fake_stripe_api import Account, Clock, FakeStripe, deliver_all
from receiver_process import SECRET, start_receiver
from paydash.warehouse.raw import raw_tables_for
from paydash.warehouse.stripe_objects import object_tables_for

RK = "rk_test_fakerestricted0000000000"
RK_NO_EVENTS = "rk_test_noevents000000000000000"
DAY = 86_400
STORED = {"charge", "payment_intent", "customer", "refund", "dispute", "checkout.session", "invoice",
          "promotion_code", "coupon"}


@pytest.fixture(autouse=True)
def _not_on_clickhouse(request) -> None:  # noqa: ANN001
    if "engine_kind" in request.fixturenames:
        not_on_clickhouse(request.getfixturevalue("engine_kind"),
                          "`paydash sync` and the receiver upsert Stripe objects; they refuse a ClickHouse URL")


@pytest.fixture
def clock() -> Clock:
    # the account's time starts now and moves on with the test: a sync versions what it reads by
    # the second it reads it, and every change after that carries a later time, as in life
    return Clock(int(time.time()) + 1)


@pytest.fixture
def fake(clock: Clock) -> Any:
    account = Account.generate(200, seed=11, end=clock() - 3600, days=20, now=clock)
    server = FakeStripe(account, restricted_keys={RK: {}, RK_NO_EVENTS: {"events": False}})
    server.start()
    yield server
    server.stop()


def env(db, key: str = RK) -> dict[str, str]:  # noqa: ANN001
    e = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_") or k == "PAYDASH_TEST_PG"}
    e.update(PAYDASH_STRIPE_API_KEY=key, PAYDASH_FX_RATES="eur=1.08,jpy=0.0067",
             PAYDASH_PAYMENTS_TABLE=db.settings.payments_table, PAYDASH_DAILY_TABLE=db.settings.daily_table)
    return e


def paydash(db, fake: FakeStripe, *args: str, key: str = RK, cwd: Path) -> subprocess.CompletedProcess:  # noqa: ANN001
    command = [sys.executable, "-m", "paydash.cli", *args]
    if args[0] == "sync" and (len(args) < 2 or args[1].startswith("-")):
        command += ["--api-base", fake.url]
    return subprocess.run(command + ["--db", db.url], env=env(db, key), cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def latest_run(db) -> dict[str, Any]:  # noqa: ANN001
    wh = db.warehouse()
    try:
        t = object_tables_for(wh).sync_runs
        with wh.read() as conn:
            return dict(conn.execute(sa.select(t).order_by(t.c.started_at.desc())).mappings().first())
    finally:
        wh.dispose()


def events(db) -> dict[str, tuple]:  # noqa: ANN001
    """id -> (source, delivered) of every stored event."""
    wh = db.warehouse()
    try:
        e = raw_tables_for(wh).events
        with wh.read() as conn:
            return {i: (s, d is not None) for i, s, d in conn.execute(sa.select(e.c.id, e.c.source, e.c.delivered_at))}
    finally:
        wh.dispose()


def mart_states(db) -> dict[str, dict[str, str]]:  # noqa: ANN001
    """What the dashboard's Disputes and Refunds show: id -> status."""
    wh = db.warehouse()
    try:
        d, r = wh.marts.disputes.c, wh.marts.refunds.c
        with wh.read() as conn:
            return {"dispute": dict(conn.execute(sa.select(d.dispute_id, d.status)).all()),
                    "refund": dict(conn.execute(sa.select(r.refund_id, r.status)).all())}
    finally:
        wh.dispose()


def account_states(fake: FakeStripe) -> dict[str, dict[str, str]]:
    return {kind: {o["id"]: o["status"] for o in fake.account.all_objects(kind)} for kind in ("dispute", "refund")}


def page_states(db, fake: FakeStripe, page: str, key: str, cwd: Path) -> dict[str, str]:  # noqa: ANN001
    """What `paydash query page NAME --json` shows, every page of it: id -> status."""
    states: dict[str, str] = {}
    number, pages = 1, 1
    while number <= pages:
        out = paydash(db, fake, "query", "page", page, "--page", str(number), "--json", cwd=cwd)
        assert out.returncode == 0, out.stdout + out.stderr
        body = json.loads(out.stdout)
        assert set(body) == {"total", "page", "pages", "rows"}
        states.update({row[key]: row["status"] for row in body["rows"]})
        pages, number = body["pages"], number + 1
    assert len(states) == body["total"]
    return states


def raw_session_status(db, session_id: str) -> str:  # noqa: ANN001
    wh = db.warehouse()
    try:
        s = object_tables_for(wh).checkout_sessions
        with wh.read() as conn:
            return conn.execute(sa.select(s.c.status).where(s.c.id == session_id)).scalar()
    finally:
        wh.dispose()


def test_an_outage_of_the_receiver_is_caught_up_exactly_once(new_database, fake: FakeStripe, clock: Clock,
                                                              tmp_path: Path) -> None:
    acct = fake.account
    db = new_database()
    first = paydash(db, fake, "sync", cwd=tmp_path)
    assert first.returncode == 0, first.stdout + first.stderr
    assert mart_states(db) == account_states(fake)

    # the receiver is up: a dispute is won and its event delivered
    receiver = start_receiver(db, tmp_path)
    try:
        mark = acct.latest_event_id()
        clock.advance(3600)
        acct.close_dispute(acct.ids("dispute", status="needs_response")[0], status="won")
        delivered = acct.events_since(mark)
        assert deliver_all(receiver.url + "/webhooks/stripe", delivered, SECRET) == [200] * len(delivered)
    finally:
        receiver.stop()

    # three days down: disputes close, refunds fail, a session expires, a charge is refunded, another disputed
    mark = acct.latest_event_id()
    clock.advance(DAY)
    open_disputes = acct.ids("dispute", status="needs_response") + acct.ids("dispute", status="under_review")
    acct.close_dispute(open_disputes[0], status="lost")
    acct.close_dispute(open_disputes[1], status="won")
    clock.advance(DAY)
    for refund_id in acct.ids("refund", status="pending")[:2]:
        acct.fail_refund(refund_id)
    session = acct.ids("checkout.session", status="open")[0]
    acct.expire_checkout_session(session)
    clock.advance(DAY)
    won = [c for c in acct.ids("charge", status="succeeded") if c not in {r["charge"] for r in acct.all_objects("refund")}]
    new_refund = acct.refund_charge(won[-1])
    new_dispute = acct.dispute_charge(won[-2])
    missed = acct.events_since(mark)
    assert mart_states(db) != account_states(fake)  # the dashboard is behind

    done = paydash(db, fake, "sync", "--reconcile", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert mart_states(db) == account_states(fake)
    assert mart_states(db)["refund"][new_refund] == "succeeded" and new_dispute in mart_states(db)["dispute"]
    assert raw_session_status(db, session) == "expired"
    final = account_states(fake)
    assert page_states(db, fake, "disputes", "dispute_id", tmp_path) == final["dispute"]
    assert page_states(db, fake, "refunds", "refund_id", tmp_path) == final["refund"]
    run = latest_run(db)
    relevant = [e for e in missed if e["data"]["object"]["object"] in STORED]
    assert run["status"] == "complete" and run["reconciled"]
    assert run["events_missing"] == len(relevant)
    assert json.loads(run["missing"]) == dict(Counter(e["type"] for e in relevant))
    assert "never delivered by a webhook" in done.stdout
    stored = events(db)
    assert {e["id"] for e in relevant} <= set(stored)
    assert all(stored[e["id"]] == ("api", False) for e in relevant)
    assert all(stored[e["id"]] == ("webhook", True) for e in delivered)

    # `paydash sync status --json` says so: the run complete, what was missing, never delivered
    status = paydash(db, fake, "sync", "status", "--json", cwd=tmp_path)
    assert status.returncode == 0, status.stdout + status.stderr
    health = json.loads(status.stdout)
    newest = health["runs"][0]
    assert newest["status"] == "complete" and newest["reconciled"] is True
    assert newest["events_missing"] == len(relevant)
    assert newest["missing"] == dict(Counter(e["type"] for e in relevant))
    assert health["undelivered"]["count"] == len(relevant)
    assert health["undelivered"]["by_type"] == dict(Counter(e["type"] for e in relevant))
    assert all(r["status"] == "complete" for r in health["runs"])
    assert any("never delivered" in p["problem"] or "not delivered" in p["problem"] for p in health["problems"]), \
        health["problems"]
    # the run rebuilt the marts itself: nothing is left queued for a receiver that is not running
    assert health["marts"]["queued"] == 0
    assert [p["severity"] for p in health["problems"]] == ["warning"], health["problems"]

    # exactly once: walking again finds nothing new and changes nothing
    again = paydash(db, fake, "sync", "--reconcile", cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert latest_run(db)["events_missing"] == 0 and events(db) == stored
    assert mart_states(db) == account_states(fake)

    # the receiver comes back and Stripe delivers what it missed: duplicates, now marked delivered
    receiver = start_receiver(db, tmp_path)
    try:
        assert deliver_all(receiver.url + "/webhooks/stripe", missed, SECRET) == [200] * len(missed)
    finally:
        receiver.stop()
    assert all(delivered for _, delivered in events(db).values())
    assert mart_states(db) == account_states(fake)
    after = json.loads(paydash(db, fake, "sync", "status", "--json", cwd=tmp_path).stdout)
    assert after["undelivered"]["count"] == 0


def test_a_key_that_may_not_read_events_skips_reconciliation_unless_asked(new_database, fake: FakeStripe,
                                                                          tmp_path: Path) -> None:
    db = new_database()
    plain = paydash(db, fake, "sync", key=RK_NO_EVENTS, cwd=tmp_path)
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "reconciliation skipped" in plain.stderr and "events" in plain.stderr
    run = latest_run(db)
    assert run["status"] == "complete" and not run["reconciled"]

    asked = paydash(db, fake, "sync", "--reconcile", key=RK_NO_EVENTS, cwd=tmp_path)
    assert asked.returncode == 1
    [line] = [l for l in asked.stderr.splitlines() if l.strip()][-1:]
    assert "403" in line and "events" in line and "Traceback" not in asked.stderr
    assert RK_NO_EVENTS not in asked.stderr + asked.stdout
    assert latest_run(db)["status"] == "failed"


def test_a_cursor_older_than_stripe_keeps_events_says_what_to_read_again(new_database, fake: FakeStripe,
                                                                         tmp_path: Path) -> None:
    db = new_database()
    assert paydash(db, fake, "sync", cwd=tmp_path).returncode == 0
    wh = db.warehouse(read_only=False)
    try:
        s = object_tables_for(wh).sync_state
        with wh.write() as conn:
            conn.execute(s.update().where(s.c.object_type == "events").values(synced_until=int(time.time()) - 45 * DAY))
    finally:
        wh.dispose()
    done = paydash(db, fake, "sync", "--reconcile", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "more than 30 days ago" in done.stderr and "paydash sync --since" in done.stderr


def test_a_reconciliation_stopped_midway_is_interrupted_and_the_next_counts_nothing_twice(
        new_database, fake: FakeStripe, clock: Clock, tmp_path: Path) -> None:
    import signal

    acct = fake.account
    db = new_database()
    assert paydash(db, fake, "sync", "--no-reconcile", cwd=tmp_path).returncode == 0
    mark = acct.latest_event_id()
    for charge in acct.ids("charge", status="succeeded")[:120]:  # 240 events: three pages of 100
        clock.advance(5)
        acct.refund_charge(charge)
    relevant = [e for e in acct.events_since(mark) if e["data"]["object"]["object"] in STORED]
    fake.delay = 0.5
    proc = subprocess.Popen([sys.executable, "-m", "paydash.cli", "sync", "--reconcile", "--api-base", fake.url,
                             "--db", db.url], env=env(db), cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(fake.served("/v1/events")) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    stopped = latest_run(db)
    assert stopped["status"] == "interrupted" and stopped["error"].startswith("interrupted")
    assert 0 < stopped["events_missing"] < len(relevant)  # some pages were stored before the stop
    fake.delay = 0.0
    done = paydash(db, fake, "sync", "--reconcile", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    finished = latest_run(db)
    assert finished["status"] == "complete"
    assert stopped["events_missing"] + finished["events_missing"] == len(relevant)
    assert {e["id"] for e in relevant} <= set(events(db))
    assert mart_states(db) == account_states(fake)
