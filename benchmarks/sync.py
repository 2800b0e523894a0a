"""Benchmark of `paydash sync`: a fake Stripe API serving N charges (with their payment
intents, balance transactions, customers, checkout sessions, ...), synced into a fresh
database by `paydash sync` in a child process, killed midway, resumed; then the dashboard's
numbers (paydash.queries overview totals) are checked against the ones computed directly
from the fake API's objects.

    .venv/bin/python benchmarks/sync.py --charges 100000
    .venv/bin/python benchmarks/sync.py --charges 10000 --db postgresql://postgres@127.0.0.1/paydash_sync_bench

Not a test: it prints figures (docs/performance.md, "Stripe sync") and exits non-zero when
the numbers differ. The database (default benchmarks/data/sync-N.duckdb) is rebuilt each time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402

from fake_stripe_api import Account, FakeStripe, expected_totals  # noqa: E402
from paydash.queries.dates import DateRange  # noqa: E402
from paydash.queries.overview import overview, period_totals  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.raw import raw_tables_for  # noqa: E402

KEY = "rk_test_fakerestricted0000000000"
SEED = 11
DAYS = 90


def sync_command(url: str, db: str) -> list[str]:
    return [sys.executable, "-m", "paydash.cli", "sync", "--api-base", url, "--db", db]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=100_000)
    parser.add_argument("--db", default=None, help="database URL or DuckDB path (default benchmarks/data/sync-N.duckdb)")
    parser.add_argument("--kill-at", type=float, default=0.5, help="kill the first run after this share of charges")
    args = parser.parse_args()

    end = int(time.time()) - 3600
    started = time.perf_counter()
    account = Account.generate(args.charges, seed=SEED, end=end, days=DAYS)
    counts = {kind: len(recs) for kind, recs in account.records.items()}
    print(f"fake account: {json.dumps(counts)} ({time.perf_counter() - started:.1f} s)", flush=True)

    db = args.db or str(ROOT / "benchmarks" / "data" / f"sync-{args.charges}.duckdb")
    if "://" not in db:
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", ".wal", ".sync.lock"):
            Path(db + suffix).unlink(missing_ok=True)
    else:
        from sqlalchemy.engine import make_url

        admin = make_url(db).set(database="postgres")
        name = make_url(db).database
        with sa.create_engine(admin).connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env["PAYDASH_STRIPE_API_KEY"] = KEY
    env["PAYDASH_FX_RATES"] = "eur=1.08,jpy=0.0067"

    fake = FakeStripe(account)
    url = fake.start()
    figures: dict[str, object] = {"charges": counts["charge"], "objects": sum(counts.values())}
    try:
        # 1. a run killed once it has read args.kill_at of the charges
        kill_at = int(counts["charge"] * args.kill_at)
        started = time.perf_counter()
        proc = subprocess.Popen(sync_command(url, db), env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        while proc.poll() is None and sum(len(r.ids) for r in fake.served("/v1/charges")) < kill_at:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        first = time.perf_counter() - started
        read_before = {path: sum(len(r.ids) for r in fake.served(path)) for path in ("/v1/charges", "/v1/payment_intents")}
        requests_before = len(fake.requests)
        print(f"killed after {first:.1f} s, {requests_before} requests: {json.dumps(read_before)}", flush=True)

        # 2. the resumed run, to the end
        started = time.perf_counter()
        done = subprocess.run(sync_command(url, db), env=env, cwd=ROOT, capture_output=True, text=True)
        second = time.perf_counter() - started
        if done.returncode != 0:
            print(done.stdout, done.stderr)
            return 1
        print(done.stdout.strip(), flush=True)
        requests_after = len(fake.requests) - requests_before
        figures.update(killed_after_s=round(first, 1), resumed_run_s=round(second, 1),
                       requests=len(fake.requests), resumed_requests=requests_after,
                       objects_per_s=round(figures["objects"] / (first + second)))  # type: ignore[operator]
    finally:
        fake.stop()

    # 3. the dashboard's numbers against the API's objects
    wh = Warehouse(db, Settings(), read_only=True)
    try:
        raw = raw_tables_for(wh)
        with wh.read() as conn:
            stored = conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(raw.charges.c.id)))).one()
            first_day = datetime.fromtimestamp(end - DAYS * 86_400, timezone.utc).date()
            last_day = datetime.fromtimestamp(end, timezone.utc).date()
            whole = period_totals(conn, wh.marts, DateRange(first_day, last_day, "UTC"))
            month = overview(conn, wh.marts, DateRange(last_day - timedelta(days=29), last_day, "UTC"))["current"]
    finally:
        wh.dispose()
    checks = {
        "whole period": ({"attempts": whole.attempts, "successful": whole.successful, "revenue_usd": whole.revenue_usd,
                          "success_rate": whole.success_rate},
                         expected_totals(account, first_day.isoformat(), last_day.isoformat())),
        "last 30 days (overview)": ({k: month[k] for k in ("attempts", "successful", "revenue_usd", "success_rate")},
                                    expected_totals(account, (last_day - timedelta(days=29)).isoformat(),
                                                    last_day.isoformat())),
    }
    ok = stored[0] == stored[1] == counts["charge"]
    print(f"raw charges stored: {stored[0]} ({stored[1]} distinct, {counts['charge']} served)")
    for name, (dashboard, api) in checks.items():
        same = dashboard == api
        ok &= same
        print(f"{name}: dashboard {dashboard} | API {api} -> {'EQUAL' if same else 'DIFFERENT'}")
    figures["equal"] = ok
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
