"""The Overview's queries with and without the rollups, alternating in one process (issue 12).

"All the Overview's queries" is run.py's definition: the totals of 30 days and the previous
period cut "today so far" at 12:00 UTC with refunds and disputes, the daily series, the
failure breakdown and recovery (first-failures mart). Each round runs both ways, so a noisy
neighbour hits both alike; medians after a warm-up.

    .venv/bin/python benchmarks/overview_rollup.py                       # 10M DuckDB demo of run.py
    .venv/bin/python benchmarks/overview_rollup.py --db benchmarks/data/demo-1000000.duckdb --repeat 15
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import date, datetime, time as clock, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from paydash.queries import failures, overview, recovery  # noqa: E402
from paydash.queries.dates import DateRange  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.load import read_meta  # noqa: E402


def parts(conn, m, rng: DateRange, noon: datetime, rollup: bool) -> dict:  # noqa: ANN001
    adjusted = {"with_refunds": True, "with_disputes": True}
    return {
        "totals + previous, today so far, refunds and disputes": lambda: overview.overview(
            conn, m, rng, mart_tz="UTC", now=noon, rollup=rollup, **adjusted),
        "daily series": lambda: overview.daily_series(conn, m, rng, mart_tz="UTC", rollup=rollup),
        "failures by category and code": lambda: failures.failure_breakdown(conn, m, rng, rollup=rollup),
        "recovery + acceptance": lambda: recovery.recovery(conn, m, rng, precomputed=True, mart_tz="UTC",
                                                           rollup=rollup),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(ROOT / "benchmarks" / "data" / "demo-10000000.duckdb"))
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    wh = Warehouse(args.db, Settings(), read_only=True)
    assert wh.has_rollup(), f"{args.db} has no rollups: rebuild it with `paydash demo` (or benchmarks/run.py --rebuild)"
    end = date.fromisoformat(read_meta(wh)["end"])
    rng = DateRange(end - timedelta(days=29), end, "UTC")
    noon = datetime.combine(end, clock(12))
    samples: dict[tuple[str, bool], list[float]] = {}
    print(f"{read_meta(wh)['payments']} payments, load before {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with wh.read() as conn:
        ways = {flag: parts(conn, wh.marts, rng, noon, flag) for flag in (True, False)}
        for fns in ways.values():
            for fn in fns.values():
                fn()  # warm-up
        for _ in range(args.repeat):
            for flag, fns in ways.items():
                total = 0.0
                for name, fn in fns.items():
                    started = time.perf_counter()
                    fn()
                    took = (time.perf_counter() - started) * 1000
                    samples.setdefault((name, flag), []).append(took)
                    total += took
                samples.setdefault(("ALL the Overview's queries, 30 days + previous", flag), []).append(total)
    print("\n| query (median ms) | with the rollups | without |\n|---|---|---|")
    for name in ["ALL the Overview's queries, 30 days + previous", *ways[True]]:
        print(f"| {name} | {statistics.median(samples[(name, True)]):.1f} | {statistics.median(samples[(name, False)]):.1f} |")
    print(f"\nload after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    wh.dispose()


if __name__ == "__main__":
    main()
