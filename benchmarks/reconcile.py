"""Benchmark of `paydash sync --reconcile`: a fake Stripe account synced into a fresh database,
then a receiver outage during which N changes happen (charges refunded, disputes opened and
closed, refunds failed), then `paydash sync --reconcile` in a child process catches them up.
Prints events per second and checks the refunds and disputes marts equal the account.

    .venv/bin/python benchmarks/reconcile.py --charges 20000 --changes 5000
    .venv/bin/python benchmarks/reconcile.py --db postgresql://postgres@127.0.0.1/paydash_reconcile_bench

Not a test: figures for docs/performance.md ("Reconciliation"); exits non-zero when the marts differ.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sqlalchemy as sa  # noqa: E402

from fake_stripe_api import Account, Clock, FakeStripe  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402

KEY = "rk_test_fakerestricted0000000000"


def run(url: str, db: str, *args: str) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update(PAYDASH_STRIPE_API_KEY=KEY, PAYDASH_FX_RATES="eur=1.08,jpy=0.0067")
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "sync", "--api-base", url, "--db", db, *args],
                          env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"paydash sync {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    print(done.stdout.strip().splitlines()[-1], flush=True)
    return took


def states(db: str) -> dict[str, dict[str, str]]:
    wh = Warehouse(db, Settings(), read_only=True)
    try:
        d, r = wh.marts.disputes.c, wh.marts.refunds.c
        with wh.read() as conn:
            return {"dispute": dict(conn.execute(sa.select(d.dispute_id, d.status)).all()),
                    "refund": dict(conn.execute(sa.select(r.refund_id, r.status)).all())}
    finally:
        wh.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--charges", type=int, default=20_000)
    parser.add_argument("--changes", type=int, default=5_000,
                        help="changes made while the receiver is down (each makes 2 or 3 events)")
    parser.add_argument("--db", default=None, help="database URL or DuckDB path (default benchmarks/data/reconcile.duckdb)")
    args = parser.parse_args()

    clock = Clock(int(time.time()) + 1)
    account = Account.generate(args.charges, seed=13, end=clock() - 3600, days=60, now=clock)
    db = args.db or str(ROOT / "benchmarks" / "data" / "reconcile.duckdb")
    if args.db is None:
        Path(db).parent.mkdir(parents=True, exist_ok=True)
        for suffix in ("", ".wal", ".sync.lock"):
            Path(db + suffix).unlink(missing_ok=True)
    with FakeStripe(account, restricted_keys={KEY: {}}) as fake:
        first = run(fake.url, db, "--no-reconcile")
        rng = random.Random(7)
        won = account.ids("charge", status="succeeded")
        rng.shuffle(won)
        mark = account.latest_event_id()
        for _ in range(min(args.changes, len(won))):
            clock.advance(rng.randint(0, 5))
            charge = won.pop()
            choice = rng.random()
            if choice < 0.5:
                account.refund_charge(charge, status=rng.choice(["succeeded", "pending"]))
            elif choice < 0.8:
                dispute = account.dispute_charge(charge)
                clock.advance(rng.randint(1, 600))
                account.close_dispute(dispute, status=rng.choice(["won", "lost"]))
            else:
                refund = account.refund_charge(charge, status="pending")
                clock.advance(rng.randint(1, 600))
                account.fail_refund(refund)
        missed = len(account.events_since(mark))
        took = run(fake.url, db, "--reconcile")
        expected = {kind: {o["id"]: o["status"] for o in account.all_objects(kind)} for kind in ("dispute", "refund")}
        equal = states(db) == expected
    print(json.dumps({"charges": args.charges, "events_missed": missed, "first_sync_s": round(first, 1),
                      "reconcile_s": round(took, 1), "events_per_s": round(missed / took), "equal": equal}))
    return 0 if equal else 1


if __name__ == "__main__":
    raise SystemExit(main())
