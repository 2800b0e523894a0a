"""The Overview today so far against whole days, interleaved (issue 11).

A range ending today is cut at now, its previous period at the same time of day: the two
partial days come from the charge mart. This times the Overview's queries both ways on the
10M demo database `benchmarks/run.py` builds (run that first), alternating the two so a
busy machine slows both alike:

    .venv/bin/python benchmarks/overview_today.py --repeat 25
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default=str(ROOT / "benchmarks" / "data" / "demo-10000000.duckdb"))
    parser.add_argument("--repeat", type=int, default=25)
    args = parser.parse_args()
    end = date.today()  # the demo database ends today (run.py rebuilds it when it does not)
    rng = DateRange(end - timedelta(days=29), end, "UTC")
    noon = datetime.combine(end, clock(12))  # today so far, at 12:00 UTC
    wh = Warehouse(args.db, Settings(), read_only=True)
    with wh.read() as conn:
        m = wh.marts

        def page(now: datetime | None) -> None:  # every query of the Overview, as the page calls them
            overview.overview(conn, m, rng, mart_tz="UTC", now=now)
            overview.daily_series(conn, m, rng, mart_tz="UTC")
            failures.failure_breakdown(conn, m, rng)
            recovery.recovery(conn, m, rng, precomputed=True, mart_tz="UTC")

        runs = {
            "Overview, all queries, whole days": lambda: page(None),
            "Overview, all queries, today so far": lambda: page(noon),
            "totals, current + previous, whole days": lambda: overview.overview(conn, m, rng, mart_tz="UTC"),
            "totals, current + previous, today so far": lambda: overview.overview(conn, m, rng, mart_tz="UTC", now=noon),
        }
        for run in runs.values():
            run()  # warm-up
        samples: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(args.repeat):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                samples[name].append((time.perf_counter() - started) * 1000)
    wh.dispose()
    for name, values in samples.items():
        print(f"| {name} | {statistics.median(values):.1f} | {min(values):.1f} |")


if __name__ == "__main__":
    main()
