"""The `paydash` command as users script it: demo, query ... --json, export, check, errors.

Most commands run in-process through `paydash.cli.main` (catching its SystemExit); the
traceback behaviour is checked through the installed entry point in a subprocess.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from paydash.cli import main
from paydash.settings import settings_markdown
from builders import not_on_clickhouse, SUBPROCESS_ON_CHDB

PAYMENTS = 20_000
PERIOD_KEYS = {"attempts", "successful", "failed", "revenue_usd", "failed_amount_usd", "success_rate", "from", "to",
               "refunds", "refunded_usd", "net_revenue_usd", "disputes", "disputed_usd", "dispute_rate"}


def run(*args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of `paydash ARGS` run in-process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), contextlib.chdir(cwd or Path.cwd()):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        else:
            code = 0
    return code, out.getvalue(), err.getvalue()


def run_json(*args: str) -> dict:
    code, out, err = run(*args, "--json")
    assert code == 0, err
    return json.loads(out)


@pytest.fixture(scope="module")
def demo_db(module_databases, tmp_path_factory) -> str:
    """`paydash demo --no-serve --payments 20000` into a database of its own: its --db value."""
    db = module_databases.isolated()
    not_on_clickhouse(db.kind, SUBPROCESS_ON_CHDB)
    target = str(tmp_path_factory.mktemp("cli") / "demo.duckdb") if db.kind == "duckdb" else db.url
    with pytest.MonkeyPatch.context() as mp:
        for name in [n for n in os.environ if n.startswith("PAYDASH_") and n != "PAYDASH_TEST_PG"]:
            mp.delenv(name)
        code, out, err = run("demo", "--no-serve", "--payments", str(PAYMENTS), "--db", target,
                             cwd=tmp_path_factory.mktemp("cwd"))
    assert code == 0, err
    assert f"{PAYMENTS:,} payments" in out
    return target


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # no .env or .streamlit/secrets.toml of the developer's may leak in
    monkeypatch.chdir(tmp_path)


# -- an independent computation --------------------------------------------------------
def independent_totals(db: str, start: date, end: date, tz: str = "UTC", funnel: str | None = None,
                       until: datetime | None = None) -> dict:
    """Period totals straight from the charge mart, by SQL written here, not by paydash (up to `until`, naive UTC)."""
    lo = datetime.combine(start, time(0), ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)
    hi = datetime.combine(end + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)
    hi = min(hi, until) if until else hi
    sql = (
        "SELECT count(*), count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'failed'), "
        "coalesce(sum(amount_usd) FILTER (WHERE status = 'succeeded'), 0), "
        "coalesce(sum(amount_usd) FILTER (WHERE status = 'failed'), 0) "
        "FROM mart_stripe_payments WHERE created_at >= {p} AND created_at < {p}"
    )
    params = [lo, hi]
    if funnel:
        sql += " AND funnel_name = {p}"
        params.append(funnel)
    if "://" in db:
        import psycopg

        with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://")) as conn:
            row = conn.execute(sql.format(p="%s"), params).fetchone()
    else:
        import duckdb

        with duckdb.connect(db, read_only=True) as conn:
            row = conn.execute(sql.format(p="?"), params).fetchone()
    attempts, ok, bad, revenue, failed_amount = row
    return {"attempts": attempts, "successful": ok, "failed": bad,
            "revenue_usd": Decimal(revenue).quantize(Decimal("0.01")),
            "failed_amount_usd": Decimal(failed_amount).quantize(Decimal("0.01"))}


def independent_adjustments(db: str, start: date, end: date, tz: str = "UTC", funnel: str | None = None,
                            until: datetime | None = None) -> dict:
    """Refunds and disputes created in the period straight from their marts, by SQL written here (up to `until`)."""
    lo = datetime.combine(start, time(0), ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)
    hi = datetime.combine(end + timedelta(days=1), time(0), ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)
    hi = min(hi, until) if until else hi
    of_funnel = " AND charge_id IN (SELECT charge_id FROM mart_stripe_payments WHERE funnel_name = {p})" if funnel else ""
    queries = {
        "refunds": "SELECT count(*), coalesce(sum(amount_usd), 0) FROM mart_stripe_refunds WHERE created_at >= {p} "
                   "AND created_at < {p} AND status NOT IN ('failed', 'canceled')" + of_funnel,
        "disputes": "SELECT count(*), coalesce(sum(amount_usd), 0) FROM mart_stripe_disputes WHERE created_at >= {p} "
                    "AND created_at < {p}" + of_funnel,
    }
    params = [lo, hi] + ([funnel] if funnel else [])
    out = {}
    for name, sql in queries.items():
        if "://" in db:
            import psycopg

            with psycopg.connect(db.replace("postgresql+psycopg://", "postgresql://")) as conn:
                out[name] = conn.execute(sql.format(p="%s"), params).fetchone()
        else:
            import duckdb

            with duckdb.connect(db, read_only=True) as conn:
                out[name] = conn.execute(sql.format(p="?"), params).fetchone()
    return {"refunds": out["refunds"][0], "refunded_usd": Decimal(out["refunds"][1]).quantize(Decimal("0.01")),
            "disputes": out["disputes"][0], "disputed_usd": Decimal(out["disputes"][1]).quantize(Decimal("0.01"))}


def cents(value: float) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def assert_period_agrees(period: dict, db: str, tz: str = "UTC", funnel: str | None = None,
                         until: datetime | None = None) -> None:
    assert PERIOD_KEYS <= set(period)
    want = independent_totals(db, date.fromisoformat(period["from"]), date.fromisoformat(period["to"]), tz, funnel, until)
    got = {k: period[k] for k in ("attempts", "successful", "failed")}
    got |= {k: cents(period[k]) for k in ("revenue_usd", "failed_amount_usd")}
    assert got == want
    for key in ("revenue_usd", "failed_amount_usd"):
        assert cents(period[key]) == Decimal(str(period[key]))  # rounded to cents
    if want["attempts"]:
        assert period["success_rate"] == pytest.approx(want["successful"] / want["attempts"])
    else:
        assert period["success_rate"] is None
    adjusted = independent_adjustments(db, date.fromisoformat(period["from"]), date.fromisoformat(period["to"]), tz, funnel,
                                       until)
    assert {k: period[k] for k in ("refunds", "disputes")} == {k: adjusted[k] for k in ("refunds", "disputes")}
    assert (cents(period["refunded_usd"]), cents(period["disputed_usd"])) == (adjusted["refunded_usd"], adjusted["disputed_usd"])
    assert cents(period["net_revenue_usd"]) == want["revenue_usd"] - adjusted["refunded_usd"]
    assert period["dispute_rate"] == (pytest.approx(adjusted["disputes"] / want["successful"]) if want["successful"] else None)


def today() -> date:
    return datetime.now(timezone.utc).date()


RANGES = {
    "90-days": (89, 0),
    "last-7": (6, 0),
    "one-day": (9, 9),  # the demo's issuer outage day
    "middle": (60, 31),
    "crosses-the-start": (120, 80),
    "before-the-data": (400, 300),
}


@pytest.mark.parametrize("back", RANGES.values(), ids=RANGES.keys())
def test_query_overview_agrees_to_the_cent(demo_db, back) -> None:
    start, end = today() - timedelta(days=back[0]), today() - timedelta(days=back[1])
    result = run_json("query", "overview", "--from", start.isoformat(), "--to", end.isoformat(), "--db", demo_db)
    assert {"from", "to", "current", "previous", "as_of"} <= set(result)
    assert (result["from"], result["to"]) == (start.isoformat(), end.isoformat())
    as_of = previous_cut = None
    if end == today():  # today so far, against the same hours of the previous period's last day
        as_of = datetime.fromisoformat(result["as_of"].removesuffix("Z"))
        previous_cut = as_of - timedelta(days=(end - start).days + 1)  # UTC has no DST
    else:
        assert result["as_of"] is None
    assert_period_agrees(result["current"], demo_db, until=as_of)
    assert_period_agrees(result["previous"], demo_db, until=previous_cut)
    days = (end - start).days + 1
    assert result["previous"]["to"] == (start - timedelta(days=1)).isoformat()
    assert result["previous"]["from"] == (start - timedelta(days=days)).isoformat()


def test_the_whole_demo_is_in_the_90_days(demo_db) -> None:
    result = run_json("query", "overview", "--from", (today() - timedelta(days=89)).isoformat(),
                      "--to", today().isoformat(), "--db", demo_db)
    assert result["current"]["attempts"] == PAYMENTS


@pytest.mark.parametrize("tz, funnel", [("America/New_York", None), ("Asia/Kolkata", "main_funnel"), ("UTC", "mobile_app")])
def test_query_overview_in_other_timezones_and_funnels(demo_db, tz, funnel) -> None:
    start, end = today() - timedelta(days=20), today() - timedelta(days=3)
    args = ["query", "overview", "--from", start.isoformat(), "--to", end.isoformat(), "--tz", tz, "--db", demo_db]
    result = run_json(*args, *(["--funnel", funnel] if funnel else []))
    assert_period_agrees(result["current"], demo_db, tz, funnel)
    assert_period_agrees(result["previous"], demo_db, tz, funnel)


def test_query_daily_failures_recovery(demo_db) -> None:
    start, end = today() - timedelta(days=13), today()
    rng = ["--from", start.isoformat(), "--to", end.isoformat(), "--db", demo_db]
    daily = run_json("query", "daily", *rng)
    assert [d["date"] for d in daily["days"]] == [(start + timedelta(days=i)).isoformat() for i in range(14)]
    overview = run_json("query", "overview", *rng)["current"]
    assert sum(d["attempts"] for d in daily["days"]) == overview["attempts"]
    assert sum(cents(d["revenue_usd"]) for d in daily["days"]) == cents(overview["revenue_usd"])

    failures = run_json("query", "failures", *rng)
    assert failures["failures"] == overview["failed"]
    assert sum(c["failures"] for c in failures["by_category"]) == overview["failed"]
    assert cents(failures["failed_amount_usd"]) == cents(overview["failed_amount_usd"])

    recovery = run_json("query", "recovery", *rng)
    assert 0 < recovery["recovery_rate"] < 1 and 0 < recovery["payment_acceptance"] <= 1
    assert recovery["recovered"] <= recovery["first_failed"] <= recovery["payments"]


def test_query_payments(demo_db) -> None:
    first = run_json("query", "payments", "--db", demo_db)
    assert {"total", "page", "pages", "rows"} <= set(first)
    assert (first["total"], first["page"], first["pages"]) == (PAYMENTS, 1, PAYMENTS // 50)
    assert len(first["rows"]) == 50
    row = first["rows"][0]
    assert {"charge_id", "created_at", "amount_usd", "status", "funnel_name", "card_brand"} <= set(row)
    assert row["created_at"].endswith("Z")
    stamps = [(r["created_at"], r["charge_id"]) for r in first["rows"]]
    assert stamps == sorted(stamps, reverse=True)

    failed = run_json("query", "payments", "--status", "failed", "--page", "2", "--db", demo_db)
    assert failed["page"] == 2 and failed["rows"] and all(r["status"] == "failed" for r in failed["rows"])
    start = today() - timedelta(days=89)
    assert failed["total"] == independent_totals(demo_db, start, today())["failed"]

    some = first["rows"][3]
    found = run_json("query", "payments", "--search", some["customer_id"], "--db", demo_db)
    assert found["total"] >= 1 and all(r["customer_id"] == some["customer_id"] for r in found["rows"])


def test_query_payment_detail_with_retry_history(demo_db) -> None:
    listing = run_json("query", "payments", "--status", "failed", "--db", demo_db)
    for row in listing["rows"]:
        detail = run_json("query", "payment", row["charge_id"], "--db", demo_db)
        if len(detail["retry_history"]) > 1:
            break
    else:
        pytest.fail("no failed payment with a retry on the first page")
    assert detail["charge_id"] == row["charge_id"]
    history = detail["retry_history"]
    for attempt in history:
        assert {"charge_id", "created_at", "status", "failure_category"} <= set(attempt)
    assert [a["created_at"] for a in history] == sorted(a["created_at"] for a in history)
    assert row["charge_id"] in [a["charge_id"] for a in history]
    assert history[0]["status"] == "failed" and history[0]["failure_category"]


def test_export_payments(demo_db, tmp_path) -> None:
    out = tmp_path / "failed.csv"
    code, _, err = run("export", "payments", "--status", "failed", "--out", str(out), "--db", demo_db)
    assert code == 0, err
    rows = list(csv.DictReader(out.open(newline="")))
    total = run_json("query", "payments", "--status", "failed", "--db", demo_db)["total"]
    assert len(rows) == total > 0
    assert all(r["status"] == "failed" for r in rows)
    assert all(r["created_at"].endswith("Z") and "T" in r["created_at"] for r in rows)
    assert [r["created_at"] for r in rows] == sorted((r["created_at"] for r in rows), reverse=True)
    assert {r["is_successful"] for r in rows} == {"false"}
    Decimal(rows[0]["amount_usd"])  # a plain number


def test_check(demo_db) -> None:
    code, out, _ = run("check", "--db", demo_db)
    assert code == 0
    assert "the data contract is met" in out and f"ok ({PAYMENTS:,} rows)" in out


# -- errors: one line, no traceback ------------------------------------------------------
@pytest.fixture
def empty_duckdb(tmp_path) -> str:
    import duckdb

    path = tmp_path / "empty.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE unrelated (x integer)")
    return str(path)


@pytest.fixture
def no_card_brand_duckdb(tmp_path) -> str:
    import duckdb

    from test_contract import DAILY_DDL, PAYMENTS_DDL

    path = tmp_path / "custom.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(PAYMENTS_DDL.replace(" card_brand text,", "").format(table="mart_stripe_payments"))
        con.execute(DAILY_DDL.format(table="mart_stripe_payments_daily"))
        con.execute("INSERT INTO mart_stripe_payments (charge_id, status, created_at, funnel_name) "
                    "VALUES ('ch_1', 'succeeded', TIMESTAMP '2024-03-04 10:00:00', 'main_funnel')")
        con.execute("INSERT INTO mart_stripe_payments_daily (date, funnel_name, total_attempts, successful_payments, "
                    "failed_payments) VALUES (DATE '2024-03-04', 'main_funnel', 1, 1, 0)")
    return str(path)


def assert_one_error_line(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0]


def test_error_missing_database_file(tmp_path) -> None:
    code, _, err = run("query", "overview", "--db", str(tmp_path / "nope.duckdb"), "--json")
    assert_one_error_line(code, err, "nope.duckdb", "paydash demo")
    assert not (tmp_path / "nope.duckdb").exists()


def test_error_unreachable_postgres() -> None:
    code, _, err = run("query", "overview", "--db", "postgresql://postgres:pw@127.0.0.1:1/nowhere", "--json")
    assert_one_error_line(code, err, "127.0.0.1:1", "PAYDASH_DATABASE_URL")
    assert ":pw@" not in err


def test_error_missing_table(empty_duckdb) -> None:
    code, _, err = run("query", "overview", "--db", empty_duckdb, "--json")
    assert_one_error_line(code, err, "mart_stripe_payments_daily", "PAYDASH_DAILY_TABLE")
    code, _, err = run("query", "payment", "ch_1", "--db", empty_duckdb, "--json")
    assert_one_error_line(code, err, "mart_stripe_payments", "PAYDASH_PAYMENTS_TABLE")


def test_error_missing_column(no_card_brand_duckdb) -> None:
    for args in (["query", "payments"], ["query", "payment", "ch_1"], ["export", "payments", "--out", "x.csv"]):
        code, _, err = run(*args, "--db", no_card_brand_duckdb)
        assert_one_error_line(code, err, "card_brand", "paydash check")


@pytest.mark.parametrize(
    "args, needles",
    [
        (["query", "overview", "--from", "2024-13-01"], ["--from", "YYYY-MM-DD"]),
        (["query", "overview", "--from", "2024-03-05", "--to", "2024-03-01"], ["before"]),
        (["query", "payments", "--to", "soon"], ["soon"]),
        (["query", "payments", "--status", "refunded"], ["refunded", "succeeded"]),
        (["query", "overview", "--tz", "Mars/Olympus"], ["Mars/Olympus"]),
        (["query", "payment", "ch_does_not_exist"], ["ch_does_not_exist"]),
        (["query", "payments", "--page", "0"], ["page"]),
        (["query", "payments", "--page", "100000"], ["--page 100000 is past the last page, 400 (20,000 matching"]),
        (["query", "payments", "--status", "failed", "--page", "100000"], ["past the last page"]),
        (["query", "daily", "--tz", "Mars/Base"], ["--tz 'Mars/Base' is not a timezone"]),
        (["query", "overview", "--from", "0001-01-01", "--to", "9999-12-31"], ["outside the days paydash handles"]),
    ],
)
def test_error_bad_input(demo_db, args, needles) -> None:
    code, out, err = run(*args, "--db", demo_db, "--json")
    assert_one_error_line(code, err, *needles)
    assert out == ""


def test_error_bad_setting(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("PAYDASH_POOL_SIZE", "zero")
    code, _, err = run("query", "overview", "--db", str(tmp_path / "x.duckdb"))
    assert_one_error_line(code, err, "PAYDASH_POOL_SIZE")


def test_check_reports_what_is_missing(empty_duckdb, no_card_brand_duckdb) -> None:
    code, out, _ = run("check", "--db", empty_duckdb)
    assert code == 1
    assert "mart_stripe_payments: MISSING. Set PAYDASH_PAYMENTS_TABLE" in out
    assert "the data contract is NOT met" in out
    code, out, _ = run("check", "--db", no_card_brand_duckdb)
    assert code == 1
    assert "mart_stripe_payments: missing columns card_brand" in out


def test_demo_refuses_foreign_marts(no_card_brand_duckdb) -> None:
    code, _, err = run("demo", "--no-serve", "--payments", "100", "--db", no_card_brand_duckdb)
    assert_one_error_line(code, err, "refusing to overwrite")


def _entry_point(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("paydash")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "paydash.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    return subprocess.run([*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def test_query_overview_as_of_through_the_installed_command(demo_db, tmp_path) -> None:
    """A range ending today carries as_of, the moment (UTC, ISO 8601) both periods are cut at."""
    before = datetime.now(timezone.utc).replace(microsecond=0)
    done = _entry_point(tmp_path, "query", "overview", "--from", (today() - timedelta(days=6)).isoformat(),
                        "--db", demo_db, "--json")
    after = datetime.now(timezone.utc)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["as_of"].endswith("Z")
    as_of = datetime.fromisoformat(result["as_of"])
    assert before <= as_of <= after
    assert result["to"] == as_of.date().isoformat()
    assert_period_agrees(result["previous"], demo_db, until=as_of.replace(tzinfo=None) - timedelta(days=7))

    past = _entry_point(tmp_path, "query", "overview", "--from", "2024-01-01", "--to", "2024-01-07", "--db", demo_db, "--json")
    assert past.returncode == 0, past.stderr
    assert json.loads(past.stdout)["as_of"] is None


def test_the_installed_command_prints_one_line_and_debug_prints_the_traceback(tmp_path) -> None:
    plain = _entry_point(tmp_path, "query", "overview", "--db", str(tmp_path / "nope.duckdb"))
    assert_one_error_line(plain.returncode, plain.stderr, "nope.duckdb")
    debug = _entry_point(tmp_path, "--debug", "query", "overview", "--db", str(tmp_path / "nope.duckdb"))
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "DatabaseUnreachable" in debug.stderr


def test_settings_command(tmp_path, monkeypatch) -> None:
    code, out, _ = run("settings", "--markdown")
    assert code == 0 and out.strip() == settings_markdown()
    monkeypatch.setenv("PAYDASH_DATABASE_URL", "postgresql://reader:s3cret@db.example/analytics")
    monkeypatch.setenv("PAYDASH_TIMEZONE", "Europe/Berlin")
    code, out, _ = run("settings")
    assert code == 0
    assert "s3cret" not in out and "PAYDASH_TIMEZONE=Europe/Berlin" in out and "db.example" in out


def test_query_payment_lists_refunds_and_disputes_in_its_timeline(demo_db) -> None:
    if "://" in demo_db:
        import psycopg

        with psycopg.connect(demo_db.replace("postgresql+psycopg://", "postgresql://")) as conn:
            charge_id = conn.execute("SELECT charge_id FROM mart_stripe_disputes ORDER BY created_at LIMIT 1").fetchone()[0]
    else:
        import duckdb

        with duckdb.connect(demo_db, read_only=True) as conn:
            charge_id = conn.execute("SELECT charge_id FROM mart_stripe_disputes ORDER BY created_at LIMIT 1").fetchone()[0]
    detail = run_json("query", "payment", charge_id, "--db", demo_db)
    assert [d["charge_id"] for d in detail["disputes"]] == [charge_id]
    assert isinstance(detail["refunds"], list)
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("attempt") == len(detail["retry_history"]) and kinds.count("dispute") == 1
    assert [e["at"] for e in detail["timeline"]] == sorted(e["at"] for e in detail["timeline"])
    own = detail["original_amount"]
    assert own["currency"] == detail["currency"]
    assert cents(own["amount"] * own["usd_per_unit"]) == pytest.approx(cents(detail["amount_usd"]), abs=Decimal("0.01"))
