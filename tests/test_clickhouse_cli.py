"""ClickHouse through the seam users touch: `paydash demo --db chdb:///...`, then `paydash query
... --json`, each a process of its own (so each its own chdb path), compared with what ClickHouse
itself computes from the marts in plain SQL (chdb's own API, in another process). And the
commands that write incrementally refuse a ClickHouse URL with one line saying what to do.
"""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

pytestmark = pytest.mark.clickhouse

# plain SQL on the chdb directory, in a process of its own: rows as JSON lists, money as text
_SQL_SCRIPT = """
import json, sys
from chdb import session
s = session.Session(sys.argv[1])
out = []
for sql in json.load(sys.stdin):
    out.append([json.loads(line) for line in s.query(sql, "JSONCompactEachRow").bytes().decode().splitlines()])
print(json.dumps(out))
"""


def _env() -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def paydash(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paydash", *args], capture_output=True, text=True, cwd=cwd,
                          env=_env(), timeout=600)


def clickhouse_sql(path: Path, *statements: str) -> list[list[list]]:
    done = subprocess.run([sys.executable, "-c", _SQL_SCRIPT, str(path)], input=json.dumps(statements),
                          capture_output=True, text=True, env=_env(), timeout=300, check=True)
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, str]:  # noqa: ANN001
    """A demo of 3,000 payments built by `paydash demo` on a chdb directory: (its path, its --db)."""
    where = tmp_path_factory.mktemp("chcli")
    path = where / "x"
    db = f"chdb://{path}"
    done = paydash("demo", "--no-serve", "--payments", "3000", "--seed", "7", "--db", db, cwd=where)
    assert done.returncode == 0, done.stderr
    assert "demo database ready: 3,000 payments" in done.stdout
    return path, db


def _money(value) -> Decimal:  # noqa: ANN001
    return Decimal(str(value)).quantize(Decimal("0.01"))


def test_the_demo_builds_every_mart_as_a_merge_tree(demo) -> None:  # noqa: ANN001
    path, _db = demo
    (tables,) = clickhouse_sql(path, "SELECT name, engine, total_rows FROM system.tables "
                                     "WHERE database = 'default' ORDER BY name")
    found = {name: (engine, rows) for name, engine, rows in tables}
    for name in ("mart_stripe_payments", "mart_stripe_payments_daily", "mart_stripe_first_failures",
                 "mart_stripe_payment_amounts", "mart_stripe_customers", "mart_stripe_promotion_codes",
                 "mart_stripe_promotion_usage", "mart_stripe_customer_totals", "mart_stripe_customer_months",
                 "mart_stripe_refunds", "mart_stripe_disputes", "mart_operations_events"):
        assert found[name][0] == "MergeTree", name
        assert int(found[name][1]) > 0, name
    assert int(found["mart_stripe_payments"][1]) == 3000


def test_query_overview_equals_what_clickhouse_computes_from_the_marts(demo) -> None:  # noqa: ANN001
    path, db = demo
    # whole past days: no "today so far" cut
    end = date.today() - timedelta(days=5)
    start = end - timedelta(days=29)
    done = paydash("query", "overview", "--from", start.isoformat(), "--to", end.isoformat(), "--json", "--db", db,
                   cwd=path.parent)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    prev_end = start - timedelta(days=1)
    prev_start = prev_end - timedelta(days=29)

    def period(a: date, b: date) -> str:
        return f"created_at >= '{a} 00:00:00' AND created_at < '{b + timedelta(days=1)} 00:00:00'"

    sql = []
    for a, b in ((start, end), (prev_start, prev_end)):
        sql += [
            "SELECT count(), countIf(status = 'succeeded'), countIf(status = 'failed'), "
            "toString(sumIf(amount_usd, status = 'succeeded')), toString(sumIf(amount_usd, status = 'failed')) "
            f"FROM mart_stripe_payments WHERE {period(a, b)}",
            "SELECT count(), toString(sum(amount_usd)) FROM mart_stripe_refunds "
            f"WHERE status IN ('succeeded', 'pending', 'requires_action') AND {period(a, b)}",
            f"SELECT count(), toString(sum(amount_usd)) FROM mart_stripe_disputes WHERE {period(a, b)}",
        ]
    results = clickhouse_sql(path, *sql)
    for key, (charges, refunds, disputes) in (("current", results[0:3]), ("previous", results[3:6])):
        attempts, successful, failed, revenue, failed_usd = charges[0]
        shown = got[key]
        assert shown["attempts"] == attempts > 0
        assert shown["successful"] == successful
        assert shown["failed"] == failed
        assert _money(shown["revenue_usd"]) == Decimal(revenue)
        assert _money(shown["failed_amount_usd"]) == Decimal(failed_usd)
        assert shown["refunds"] == refunds[0][0]
        assert _money(shown["refunded_usd"]) == Decimal(refunds[0][1])
        assert shown["disputes"] == disputes[0][0]
        assert _money(shown["disputed_usd"]) == Decimal(disputes[0][1])
        assert shown["success_rate"] == pytest.approx(successful / attempts)
    # the default range (today so far) answers too
    done = paydash("query", "overview", "--json", "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["as_of"]


def test_query_payments_and_a_payment_equal_what_clickhouse_computes(demo) -> None:  # noqa: ANN001
    path, db = demo
    done = paydash("query", "payments", "--status", "failed", "--json", "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    page = json.loads(done.stdout)
    total, rows = clickhouse_sql(
        path,
        "SELECT count() FROM mart_stripe_payments WHERE status = 'failed'",
        "SELECT charge_id, toString(amount_usd), formatDateTime(created_at, '%Y-%m-%dT%H:%i:%SZ'), failure_code "
        "FROM mart_stripe_payments WHERE status = 'failed' ORDER BY created_at DESC, charge_id DESC LIMIT 50",
    )
    assert page["total"] == total[0][0]
    assert [(r["charge_id"], _money(r["amount_usd"]), r["created_at"], r["failure_code"]) for r in page["rows"]] == \
        [(c, Decimal(a), t, f) for c, a, t, f in rows]

    # the detail of a payment with a retry: its payment intent's attempts, in order
    (((charge, intent),),) = clickhouse_sql(
        path, "SELECT any(charge_id), payment_intent_id FROM mart_stripe_payments WHERE attempt_number = 1 "
              "AND payment_intent_id IN (SELECT payment_intent_id FROM mart_stripe_payments WHERE attempt_number = 2) "
              "GROUP BY payment_intent_id ORDER BY payment_intent_id LIMIT 1")
    done = paydash("query", "payment", charge, "--json", "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    detail = json.loads(done.stdout)
    (attempts,) = clickhouse_sql(
        path, "SELECT charge_id, attempt_number, status, toString(amount_usd) FROM mart_stripe_payments "
              f"WHERE payment_intent_id = '{intent}' ORDER BY attempt_number")
    assert detail["charge_id"] == charge and detail["payment_intent_id"] == intent
    assert [(h["charge_id"], h["attempt_number"], h["status"], _money(h["amount_usd"]))
            for h in detail["retry_history"]] == [(c, n, s, Decimal(a)) for c, n, s, a in attempts]


def test_export_streams_the_same_rows_clickhouse_holds(demo) -> None:  # noqa: ANN001
    path, db = demo
    out = path.parent / "failed.csv"
    done = paydash("export", "payments", "--status", "failed", "--out", str(out), "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    ((ids,),) = clickhouse_sql(path, "SELECT groupArray(charge_id) FROM (SELECT charge_id FROM mart_stripe_payments "
                                     "WHERE status = 'failed' ORDER BY created_at DESC, charge_id DESC)")
    lines = out.read_text().splitlines()
    assert lines[0].startswith("charge_id,payment_intent_id,")
    assert [line.split(",")[0].strip('"') for line in lines[1:]] == ids[0]


def test_check_says_the_contract_is_met(demo) -> None:  # noqa: ANN001
    path, db = demo
    done = paydash("check", "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "the data contract is met" in done.stdout


def test_sync_status_says_clickhouse_has_no_sync(demo) -> None:  # noqa: ANN001
    path, db = demo
    done = paydash("sync", "status", "--db", db, cwd=path.parent)
    assert done.returncode == 0, done.stderr
    assert "Stripe sync and webhook receiver do not write to this database's engine" in done.stdout
    assert len(done.stdout.strip().splitlines()) == 1
    done = paydash("sync", "status", "--db", db, "--json", cwd=path.parent)
    assert done.returncode == 0 and json.loads(done.stdout)["present"] is False


@pytest.mark.parametrize("command", [["sync", "--api-key", "sk_test_123"], ["webhooks"], ["rebuild-marts"]])
def test_commands_that_write_incrementally_refuse_clickhouse_in_one_line(command: list[str], tmp_path: Path) -> None:
    for db in (f"chdb://{tmp_path}/ch", "clickhouse://default:secret@127.0.0.1:8123/default"):
        done = paydash(*command, "--db", db, cwd=tmp_path)
        assert done.returncode == 1
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert "cannot write to ClickHouse" in lines[0]
        assert "dbt or a ClickHouse pipeline" in lines[0] and "docs/scaling.md" in lines[0]
        assert "secret" not in lines[0]
    assert not (tmp_path / "ch").exists()  # refused before anything was opened


def test_serve_with_a_webhook_secret_refuses_clickhouse(tmp_path: Path) -> None:
    env = {**_env(), "PAYDASH_STRIPE_WEBHOOK_SECRET": "whsec_test", "PAYDASH_PASSWORD": "correct horse battery"}
    done = subprocess.run([sys.executable, "-m", "paydash", "serve", "--port", "0", "--db", f"chdb://{tmp_path}/ch"],
                          capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "the webhook receiver of `paydash serve`" in lines[0]
    assert "cannot write to ClickHouse" in lines[0]
    assert not (tmp_path / "ch").exists()


def test_an_unreachable_clickhouse_server_is_one_message_with_the_fix(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    done = paydash("query", "overview", "--json", "--db", f"clickhouse://default:secret@127.0.0.1:{port}/default",
                   cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr  # no driver warning before it
    assert "cannot reach the database at clickhousedb://default:***@127.0.0.1" in lines[0]
    assert "Check PAYDASH_DATABASE_URL (or --db)" in lines[0] and "secret" not in lines[0]
