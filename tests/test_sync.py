"""`paydash sync` against a fake Stripe API (a real HTTP server on 127.0.0.1, tests/fake_stripe_api.py):
backfill, incremental runs, kill-and-resume, rate limits, failures, a restricted key, and a key
that never reaches a log. Each database test runs on DuckDB and PostgreSQL."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from fake_stripe_api import Account, FakeStripe, expected_totals
from paydash.errors import ConfigError
from paydash.queries.dates import DateRange
from paydash.queries.overview import period_totals
from paydash.sources.stripe.api import (
    OBJECT_TYPES,
    RetryPolicy,
    StripeReader,
    SyncError,
    check_api_key,
    parse_since,
    redact,
)
from paydash.sources.stripe.sync import Syncer
from paydash.sources.stripe.transform import TransformOptions
from paydash.warehouse.engine import Warehouse
from paydash.warehouse.raw import raw_tables_for
from paydash.warehouse.stripe_objects import object_tables_for
from builders import not_on_clickhouse

ROOT = Path(__file__).resolve().parent.parent
RK = "rk_test_fakerestricted0000000000"
SK = "sk_test_fakesecret000000000000"
OPTIONS = TransformOptions(fx_rates={"eur": 1.08, "jpy": 0.0067})
FAST = RetryPolicy(max_retries=4, base_delay=0.01, max_delay=0.05)
NOW = int(time.time())
DAY = 86_400
EVERY_RUN = {t.name for t in OBJECT_TYPES if t.every_run_all}


def account(charges: int = 150, seed: int = 5) -> Account:
    # history ending three days ago: older than the incremental run's look-back
    return Account.generate(charges, seed=seed, end=NOW - 3 * DAY, days=20)


@pytest.fixture(autouse=True)
def _sync_is_not_on_clickhouse(request) -> None:  # noqa: ANN001
    if "engine_kind" in request.fixturenames:
        not_on_clickhouse(request.getfixturevalue("engine_kind"),
                          "`paydash sync` upserts Stripe objects and takes advisory locks; it refuses a ClickHouse "
                          "URL (dbt or a ClickHouse pipeline writes the contract's marts there)")


@pytest.fixture
def fake() -> Any:
    server = FakeStripe(account())
    server.start()
    yield server
    server.stop()


def writer(db) -> Warehouse:  # noqa: ANN001
    return Warehouse(db.url, db.settings, read_only=False, hold_duckdb_file=False)


def sync(db, fake: FakeStripe, key: str = RK, **kw: Any):  # noqa: ANN001, ANN201
    wh = writer(db)
    try:
        return Syncer(wh, StripeReader(key, fake.url, kw.pop("retry", FAST)), OPTIONS, **kw).run()
    finally:
        wh.dispose()


def snapshot(db) -> dict[str, Any]:  # noqa: ANN001
    """Every mart row and every raw object (id, JSON), in a stable order."""
    wh = db.warehouse()
    try:
        raw, objects, m = raw_tables_for(wh), object_tables_for(wh), wh.marts
        out: dict[str, Any] = {}
        with wh.read() as conn:
            for t in (m.payments, m.daily, m.first_failures, m.customers, m.promotion_codes, m.promotion_usage,
                      m.refunds, m.disputes):
                out[t.name] = sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(t)))
            for t in (raw.charges, raw.payment_intents, raw.balance_transactions, *objects.by_kind.values()):
                out[t.name] = sorted(conn.execute(sa.select(t.c.id, t.c.data)).all())
                assert len(out[t.name]) == len({r[0] for r in out[t.name]}), f"duplicate ids in {t.name}"
        return out
    finally:
        wh.dispose()


def runs(db) -> list[dict[str, Any]]:  # noqa: ANN001
    wh = db.warehouse()
    try:
        t = object_tables_for(wh).sync_runs
        with wh.read() as conn:
            return [dict(r) for r in conn.execute(sa.select(t).order_by(t.c.started_at)).mappings()]
    finally:
        wh.dispose()


def dashboard_totals(db) -> dict[str, Any]:  # noqa: ANN001
    wh = db.warehouse()
    try:
        with wh.read() as conn:
            t = period_totals(conn, wh.marts, DateRange(datetime(2020, 1, 1).date(), datetime(2035, 1, 1).date(), "UTC"))
        return {"attempts": t.attempts, "successful": t.successful, "revenue_usd": t.revenue_usd,
                "success_rate": t.success_rate}
    finally:
        wh.dispose()


def served_ids(fake: FakeStripe, since: int = 0) -> dict[str, set[str]]:
    by_path: dict[str, set[str]] = {}
    for r in fake.served():
        if r.at >= since:
            by_path.setdefault(r.path, set()).update(r.ids)
    return by_path


# -- pure parts -------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("2024-03-01", int(datetime(2024, 3, 1, tzinfo=timezone.utc).timestamp())),
    ("2024-03-01T12:00:00Z", int(datetime(2024, 3, 1, 12, tzinfo=timezone.utc).timestamp())),
    (None, None), ("", None),
])
def test_parse_since(text, expected) -> None:
    assert parse_since(text) == expected


def test_parse_since_refuses_what_is_not_a_date() -> None:
    with pytest.raises(ConfigError, match="YYYY-MM-DD"):
        parse_since("last tuesday")


@pytest.mark.parametrize("key, message", [
    ("", "PAYDASH_STRIPE_API_KEY"), (None, "restricted key"),
    ("pk_live_abc123", "publishable key"), ("whsec_abc", "does not look like"),
])
def test_bad_keys_get_a_clear_message(key, message) -> None:
    with pytest.raises(ConfigError, match=message) as err:
        check_api_key(key)
    if key:
        assert key not in str(err.value)


def test_redact_hides_the_key_and_anything_shaped_like_one() -> None:
    text = f"Invalid API Key provided: {SK} (also sk_live_Abc123 and rk_test_X9)"
    cleaned = redact(text, SK)
    assert SK not in cleaned and "Abc123" not in cleaned and "rk_test_X9" not in cleaned


# -- against the fake API ------------------------------------------------------------------------
def test_backfill_builds_every_mart_from_the_api(new_database, fake: FakeStripe) -> None:
    db = new_database()
    report = sync(db, fake)
    acct = fake.account
    assert report.status == "complete"
    assert report.objects["charges"] == len(acct.records["charge"])
    assert report.objects["invoices"] == len(acct.records["invoice"])
    # the dashboard's numbers equal the ones computed straight from the API's objects
    assert dashboard_totals(db) == expected_totals(acct, "2020-01-01", "2035-01-01")
    snap = snapshot(db)
    assert len(snap["mart_stripe_payments"]) == len(acct.records["charge"])
    assert len(snap["stripe_balance_transactions"]) == len(acct.records["balance_transaction"])
    assert len(snap["mart_stripe_customers"]) == len(acct.records["customer"])
    # promotion codes with their coupon, amount_off in USD like a charge's amount
    codes = {row[1]: row for row in snap["mart_stripe_promotion_codes"]}
    assert len(codes) == len(acct.records["promotion_code"])
    assert codes["SAVE10"][3] == "10.0" and codes["SAVE10"][4] == "None"
    assert codes["FIVEOFF"][4] == "5.00"  # 500 cents USD
    assert codes["EURO5"][4] == "5.40"  # 5.00 EUR at 1.08
    assert codes["YEN500"][4] == "3.35"  # 500 JPY (zero-decimal) at 0.0067
    # usage: a completed checkout session or a paid invoice with a promotion code
    want = sum(1 for r in acct.records["checkout.session"] if r.f["status"] == "complete" and r.f["promo"]) + \
        sum(1 for r in acct.records["invoice"] if r.f["status"] == "paid" and r.f["promo"])
    usage = snap["mart_stripe_promotion_usage"]
    assert len(usage) == want > 0
    assert {row[4] for row in usage} == {"applied"}
    # refunds and disputes, each with its charge's payment intent and (full amounts) its charge's amount_usd
    charge_usd = {row[0]: (row[1], row[6]) for row in snap["mart_stripe_payments"]}
    for mart, kind in (("mart_stripe_refunds", "refund"), ("mart_stripe_disputes", "dispute")):
        rows = snap[mart]
        assert len(rows) == len(acct.records[kind])
        assert all((row[2], row[3]) == charge_usd[row[1]] for row in rows)
    assert snap["mart_stripe_refunds"]


def paths_of_types() -> set[str]:
    return {t.path for t in OBJECT_TYPES}


def test_a_partial_refund_and_a_dispute_reach_their_marts(new_database, fake: FakeStripe) -> None:
    acct = fake.account
    won = next(r for r in acct.records["charge"] if r.f["status"] == "succeeded" and r.f["currency"] == "eur")
    refund = acct.add("refund", won.created + 60, charge=won.id, payment_intent=won.f["payment_intent"],
                      amount=won.f["amount"] // 4, currency="eur")
    dispute = acct.add("dispute", won.created + 120, charge=won.id, payment_intent=won.f["payment_intent"],
                       amount=won.f["amount"], currency="eur")
    db = new_database()
    sync(db, fake)
    snap = snapshot(db)
    charge = next(row for row in snap["mart_stripe_payments"] if row[0] == won.id)
    refunds = {row[0]: row for row in snap["mart_stripe_refunds"]}
    disputes = {row[0]: row for row in snap["mart_stripe_disputes"]}
    # a quarter of the charge at the charge's own settlement rate; the whole charge disputed
    quarter = (Decimal(charge[6]) * (won.f["amount"] // 4) / won.f["amount"]).quantize(Decimal("0.01"))
    assert refunds[refund.id][1:6] == (won.id, won.f["payment_intent"], str(quarter), "eur", "succeeded")
    assert disputes[dispute.id][1:6] == (won.id, won.f["payment_intent"], charge[6], "eur", "needs_response")
    assert disputes[dispute.id][8] != "None"  # evidence_due_by from evidence_details.due_by
    # every run is recorded; only GETs with 100 a page and a created window
    assert [r["status"] for r in runs(db)] == ["complete"]
    listed = fake.served()
    assert listed and all(r.method == "GET" for r in listed)
    lists = [r for r in listed if r.path != "/v1/events"]
    assert all(r.params["limit"] == 100 and {"gte", "lt"} <= set(r.params["created"]) for r in lists)
    # then reconciliation walked the events (of the last 30 days: here none, the account's were made before)
    assert [r.path for r in listed if r.path not in paths_of_types()] == ["/v1/events"]


def test_a_rerun_with_nothing_new_changes_nothing(new_database, fake: FakeStripe) -> None:
    db = new_database()
    sync(db, fake)
    before = snapshot(db)
    sync(db, fake)
    assert snapshot(db) == before
    assert [r["status"] for r in runs(db)] == ["complete", "complete"]


def test_an_incremental_run_reads_only_new_objects(new_database, fake: FakeStripe) -> None:
    db = new_database()
    sync(db, fake)
    old = {rec.id for recs in fake.account.records.values() for rec in recs}
    fake.account.extend(30, seed=77, start=NOW - 6 * 3600, end=NOW - 60)
    new = {rec.id for recs in fake.account.records.values() for rec in recs} - old
    mark = time.monotonic()
    report = sync(db, fake)
    seen = served_ids(fake, since=mark)
    paths = {t.path: t for t in OBJECT_TYPES}
    read_again = set().union(*(ids for path, ids in seen.items() if path in paths and paths[path].name not in EVERY_RUN))
    # nothing older than the look-back (one day) is read again; every new object is
    assert read_again <= new
    assert {i for i in new if not i.startswith(("txn_", "di_"))} <= read_again
    assert report.objects["charges"] == sum(1 for i in new if i.startswith("ch_"))
    assert dashboard_totals(db) == expected_totals(fake.account, "2020-01-01", "2035-01-01")
    # a later state of a recent object replaces the stored one
    session = next(r for r in fake.account.records["checkout.session"] if r.id in new and r.f["status"] == "expired")
    fake.account.update(session.id, status="complete", promo=fake.account.records["promotion_code"][0].id, discount=90)
    # a sync's reads are versioned by the second they are made (docs/stripe.md, newest state
    # wins); two equally final states read in the same second tie and the hash decides, so the
    # changed state is read in a later second, as any real change would be
    time.sleep(1.05 - time.time() % 1)
    sync(db, fake)
    usage = {row[6]: row for row in snapshot(db)["mart_stripe_promotion_usage"]}
    currency = session.f["currency"]
    rate = {"usd": Decimal("1"), "eur": Decimal("1.08"), "jpy": Decimal("0.0067")}[currency]
    expected = (Decimal(90) / (1 if currency == "jpy" else 100) * rate).quantize(Decimal("0.01"))
    assert usage[session.id][4] == "applied" and usage[session.id][8] == str(expected)


def test_since_reads_from_that_day_again(new_database, fake: FakeStripe) -> None:
    db = new_database()
    sync(db, fake)
    mark = time.monotonic()
    first_day = datetime.fromtimestamp(NOW - 23 * DAY, timezone.utc).strftime("%Y-%m-%d")
    report = sync(db, fake, since=parse_since(first_day))
    assert report.objects["charges"] == len(fake.account.records["charge"])
    assert served_ids(fake, since=mark)["/v1/charges"] == {r.id for r in fake.account.records["charge"]}


def _cli_env(db, fake: FakeStripe, key: str = RK) -> dict[str, str]:  # noqa: ANN001
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update(PAYDASH_STRIPE_API_KEY=key, PAYDASH_FX_RATES="eur=1.08,jpy=0.0067",
               PAYDASH_PAYMENTS_TABLE=db.settings.payments_table, PAYDASH_DAILY_TABLE=db.settings.daily_table)
    return env


def _cli(db, fake: FakeStripe, *args: str) -> list[str]:  # noqa: ANN001
    return [sys.executable, "-m", "paydash.cli", "sync", "--api-base", fake.url, "--db", db.url, *args]


def test_a_killed_sync_resumes_where_it_stopped(new_database, fake: FakeStripe, tmp_path: Path) -> None:
    fake.account.extend(1000, seed=8, end=NOW - 3 * DAY, days=20)  # charges over a dozen pages
    whole = new_database()
    sync(whole, fake)
    fake.requests.clear()

    db = new_database()
    # pages commit together once a second (GROUP_SECONDS): 9 pages at >= 0.15 s each span a commit
    fake.delay = 0.15
    proc = subprocess.Popen(_cli(db, fake), env=_cli_env(db, fake), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while sum(len(r.ids) == 100 for r in fake.served("/v1/charges")) < 9 and proc.poll() is None \
                and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()[0]
        proc.send_signal(signal.SIGKILL)
    finally:
        output = proc.communicate(timeout=60)[0]
    assert proc.returncode == -signal.SIGKILL, output
    fake.delay = 0.0
    killed_at = len(fake.requests)
    assert [r["status"] for r in runs(db)] == ["running"]

    done = subprocess.run(_cli(db, fake), env=_cli_env(db, fake), cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "charges:" in done.stderr and "sync complete" in done.stdout
    # resumed mid-window: its first charges request continues after the last committed page
    resumed = [r for r in fake.requests[killed_at:] if r.path == "/v1/charges" and r.status == 200]
    assert "starting_after" in resumed[0].params
    assert snapshot(db) == snapshot(whole)
    statuses = [(r["status"], r["error"]) for r in runs(db)]
    # the killed run is never shown complete: the next run, holding the lock, marks it interrupted
    assert statuses[0][0] == "interrupted" and "killed?" in statuses[0][1]
    assert statuses[1] == ("complete", None)


def test_sigterm_ends_the_run_as_interrupted(new_database, fake: FakeStripe, tmp_path: Path) -> None:
    db = new_database()
    fake.delay = 0.05
    proc = subprocess.Popen(_cli(db, fake), env=_cli_env(db, fake), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while len(fake.served("/v1/payment_intents")) < 1 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=60)[0]
    assert proc.returncode == 130, output
    [run] = runs(db)
    assert run["status"] == "interrupted" and run["error"].startswith("interrupted") and run["finished_at"] is not None


def test_rate_limits_are_honoured(new_database, fake: FakeStripe) -> None:
    db = new_database()
    fake.rate_limit_every = 4
    fake.retry_after = "0.3"
    report = sync(db, fake)
    limited = [i for i, r in enumerate(fake.requests) if r.status == 429]
    assert limited and report.retries == len(limited)
    for i in limited:
        # the retry came no sooner than Retry-After asked
        assert fake.requests[i + 1].at - fake.requests[i].at >= 0.3
    assert dashboard_totals(db) == expected_totals(fake.account, "2020-01-01", "2035-01-01")


def test_a_429_stripe_says_not_to_retry_fails_the_run(new_database, fake: FakeStripe) -> None:
    db = new_database()
    fake.rate_limit_every = 5
    fake.should_retry = "false"
    with pytest.raises(SyncError, match="429"):
        sync(db, fake)
    assert len(fake.served(status=429)) == 1  # not retried
    [run] = runs(db)
    assert run["status"] == "failed" and "429" in run["error"]


def test_a_server_error_midway_marks_the_run_failed_and_the_next_run_finishes(new_database, fake: FakeStripe) -> None:
    db = new_database()
    fake.fail_from, fake.fail_path = 25, "/v1/charges"
    with pytest.raises(SyncError, match="500"):
        sync(db, fake)
    assert len(fake.served("/v1/charges", status=500)) == FAST.max_retries + 1
    [run] = runs(db)
    assert run["status"] == "failed" and "500" in run["error"] and run["finished_at"] is not None
    fake.fail_from = None
    sync(db, fake)
    assert [r["status"] for r in runs(db)] == ["failed", "complete"]
    assert dashboard_totals(db) == expected_totals(fake.account, "2020-01-01", "2035-01-01")


def test_an_unreachable_api_is_one_clear_line_and_a_failed_run(new_database) -> None:
    """A wrong --api-base: the reason (connection refused) and the fix, not stripe-python's paragraph."""
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = new_database()
    wh = writer(db)
    try:
        with pytest.raises(SyncError) as caught:
            Syncer(wh, StripeReader(RK, f"http://127.0.0.1:{port}", FAST), OPTIONS).run()
    finally:
        wh.dispose()
    message = str(caught.value)
    assert f"cannot reach the Stripe API at http://127.0.0.1:{port}" in message and "refused" in message.lower()
    assert "check --api-base" in message and "\n" not in message and "support@stripe.com" not in message
    [run] = runs(db)
    assert run["status"] == "failed"


def test_a_restricted_key_is_enough_and_the_fake_enforces_it(new_database, fake: FakeStripe) -> None:
    import stripe

    db = new_database()
    assert sync(db, fake, key=RK).status == "complete"
    assert {r.method for r in fake.requests} == {"GET"}
    # a write with that key is refused (so the sync above used reads only)
    client = stripe.StripeClient(RK, base_addresses={"api": fake.url}, max_network_retries=0)
    with pytest.raises(stripe.PermissionError):
        client.raw_request("post", "/v1/customers", email="x@example.com")


def test_the_key_never_reaches_a_log_an_error_or_the_database(new_database, fake: FakeStripe, caplog, capsys,
                                                             monkeypatch) -> None:
    import stripe

    monkeypatch.setattr(stripe, "log", "debug")  # stripe-python's own request logging, to stderr
    caplog.set_level(logging.DEBUG)
    db = new_database()
    fake.rate_limit_every, fake.retry_after = 7, "0.01"
    sync(db, fake, key=SK)
    fake.fail_from = len(fake.requests) + 3
    with pytest.raises(SyncError) as failed:
        sync(db, fake, key=SK, since=parse_since("2020-01-01"))
    fake.fail_from = None
    fake.leak_key_in_errors = True  # a server that echoes the key back in its 401
    wrong = "sk_test_wrongwrongwrong123456"
    with pytest.raises(SyncError) as refused:
        sync(db, fake, key=wrong)
    assert "401" in str(refused.value)
    out, err = capsys.readouterr()
    stored = json.dumps([{k: str(v) for k, v in r.items()} for r in runs(db)])
    text = "\n".join([out, err, caplog.text, str(failed.value), str(refused.value), stored])
    assert "Request to Stripe api" in text  # the client's logs were captured
    for key in (SK, wrong):
        assert key not in text
        assert key[8:] not in text


def test_the_cli_never_prints_the_key(new_database, fake: FakeStripe, tmp_path: Path) -> None:
    db = new_database()
    env = _cli_env(db, fake, key=SK) | {"STRIPE_LOG": "debug"}
    ok = subprocess.run(_cli(db, fake), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert ok.returncode == 0, ok.stderr
    fake.leak_key_in_errors = True
    env["PAYDASH_STRIPE_API_KEY"] = "sk_test_notavalidkey999"
    bad = subprocess.run(_cli(db, fake), env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "Stripe refused the API key" in bad.stderr
    assert "Traceback" not in bad.stderr
    for text in (ok.stdout + ok.stderr, bad.stdout + bad.stderr):
        assert SK not in text and "notavalidkey999" not in text


def test_the_cli_explains_a_missing_key(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "sync", "--db", str(tmp_path / "x.duckdb")],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "no Stripe API key" in done.stderr and "PAYDASH_STRIPE_API_KEY" in done.stderr


# -- the promotion marts' rules, pure ------------------------------------------------------------
def _fixture(kind: str, **fields: Any) -> dict[str, Any]:
    from fake_stripe_api import TEMPLATES

    obj = json.loads(json.dumps(TEMPLATES[kind]))
    obj.update(fields)
    return obj


def test_promotion_code_row_reads_the_coupon_of_either_api_shape() -> None:
    from paydash.sources.stripe.marts import promotion_code_row

    new_shape = _fixture("promotion_code", id="promo_1", code="SPRING", promotion={"coupon": "co_1", "type": "coupon"})
    coupon = _fixture("coupon", id="co_1", amount_off=1250, currency="krw", percent_off=None)
    row = promotion_code_row(new_shape, coupon, TransformOptions(fx_rates={"krw": 0.00075}))
    assert row["coupon_id"] == "co_1" and row["amount_off_usd"] == Decimal("0.94")  # 1,250 KRW, zero-decimal
    old_shape = _fixture("promotion_code", id="promo_2", code="OLD")
    old_shape.pop("promotion")
    old_shape["coupon"] = _fixture("coupon", id="co_2", percent_off=15.0, amount_off=None)
    from paydash.sources.stripe.marts import coupon_object

    row = promotion_code_row(old_shape, coupon_object(old_shape), OPTIONS)
    assert (row["coupon_id"], row["percent_off"], row["amount_off_usd"]) == ("co_2", 15.0, None)


@pytest.mark.parametrize("status, discounts, expected", [
    ("complete", [{"coupon": None, "promotion_code": "promo_1"}], [("promo_1", Decimal("4.00"))]),
    ("expired", [{"coupon": None, "promotion_code": "promo_1"}], []),
    ("complete", [{"coupon": "co_1", "promotion_code": None}], []),  # a coupon alone is no code use
    ("complete", [{"coupon": None, "promotion_code": "promo_1"}, {"coupon": None, "promotion_code": "promo_2"}],
     [("promo_1", None), ("promo_2", None)]),  # Stripe's total cannot be split
])
def test_checkout_session_usage(status, discounts, expected) -> None:
    from paydash.sources.stripe.marts import session_usage_rows

    session = _fixture("checkout.session", id="cs_1", status=status, discounts=discounts, currency="usd",
                       customer="cus_1", created=1_700_000_000)
    session["total_details"]["amount_discount"] = 400
    rows = session_usage_rows(session, {"promo_1": "SPRING"}, None, OPTIONS)
    assert [(r["promotion_code_id"], r["discount_usd"]) for r in rows] == expected
    assert all(r["action"] == "applied" and r["customer_id"] == "cus_1" for r in rows)


def test_paid_invoice_usage_takes_the_discounts_amount() -> None:
    from paydash.sources.stripe.marts import invoice_usage_rows

    discount = _fixture("discount", id="di_1", promotion_code="promo_1")
    invoice = _fixture("invoice", id="in_1", status="paid", currency="eur", discounts=[discount],
                       total_discount_amounts=[{"amount": 500, "discount": "di_1"}])
    invoice["status_transitions"]["paid_at"] = 1_700_000_000
    [row] = invoice_usage_rows(invoice, {}, OPTIONS)
    assert (row["usage_id"], row["discount_usd"], row["invoice_id"]) == ("in_1:di_1", Decimal("5.40"), "in_1")
    assert row["occurred_at"] == datetime(2023, 11, 14, 22, 13, 20)
    assert invoice_usage_rows({**invoice, "status": "open"}, {}, OPTIONS) == []
