"""DuckDB and PostgreSQL side by side, in one process, on the same demo (issue 12's table).

Each query runs on both engines in turn (warm-up, then `--repeat` rounds alternating the
engines, so a noisy neighbour hits both alike) and the medians are compared. Every query is
the query layer's own function, once with the rollup marts (what paydash's marts have) and
once without (`rollup=False`: what dbt marts without them get).

    .venv/bin/python benchmarks/engines.py                     # 1M payments, seed 7, 90 days
    .venv/bin/python benchmarks/engines.py --size 1000000 --pg-url postgresql://postgres@127.0.0.1:5432/paydash_engines

Databases are built once (benchmarks/data/demo-SIZE.duckdb and the given PostgreSQL
database, by `paydash demo`'s builder, which makes the rollups and PostgreSQL's indexes) and
reused while their demo spec matches.
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
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import _create_pg_database, ensure_database  # noqa: E402

from paydash.queries import failures, overview, payments, recovery  # noqa: E402
from paydash.queries.dates import DateRange  # noqa: E402
from paydash.queries.filters import PaymentFilters  # noqa: E402


def queries(wh, end: date, rolled: bool) -> dict:  # noqa: ANN001
    """name -> callable(conn) for one engine; `rolled`: read the rollups (when the warehouse has them)."""
    m = wh.marts
    rollup = rolled and wh.has_rollup()
    utc = DateRange(end - timedelta(days=29), end, "UTC")
    new_york = DateRange(utc.start, utc.end, "America/New_York")
    noon = datetime.combine(end, clock(12))
    scope = payments.SearchScope(customers=wh.has_table(m.customers), card_last4=wh.has_column(m.payments, "card_last4"),
                                 id_sketches=wh.has_id_sketches(), amount_counts=wh.has_table(m.amount_counts),
                                 rollup=rollup)
    adjusted = {"with_refunds": True, "with_disputes": True}

    def overview_new_york(conn) -> None:  # noqa: ANN001
        overview.overview(conn, m, new_york, mart_tz="UTC", rollup=rollup, **adjusted)

    def overview_page_new_york(conn) -> None:  # noqa: ANN001
        overview.overview(conn, m, new_york, mart_tz="UTC", now=noon, rollup=rollup, **adjusted)
        overview.daily_series(conn, m, new_york, mart_tz="UTC", rollup=rollup)
        failures.failure_breakdown(conn, m, new_york, rollup=rollup)
        recovery.recovery(conn, m, new_york, precomputed=True, mart_tz="UTC", rollup=rollup)

    return {
        "Overview totals + previous in New York (refunds, disputes)": overview_new_york,
        "Overview, all its queries in New York, today so far": overview_page_new_york,
        "count with a card-brand filter": lambda conn: payments.count_payments(
            conn, m, PaymentFilters(card_brand="amex"), "UTC", scope),
        "page 1 of failed amex payments": lambda conn: payments.payments_page(
            conn, m, PaymentFilters(status="failed", card_brand="amex"), 1, mart_tz="UTC", scope=scope),
        "filter options": lambda conn: payments.filter_options(conn, m, rollup=rollup),
        "failures by reason (30 days)": lambda conn: failures.failure_breakdown(conn, m, utc, rollup=rollup),
        "recovery (30 days, first-failures mart)": lambda conn: recovery.recovery(conn, m, utc, precomputed=True,
                                                                                  mart_tz="UTC", rollup=rollup),
    }


def side_by_side(duck, pg, end: date, repeat: int, rolled: bool) -> list[tuple[str, float, float]]:  # noqa: ANN001
    ours, theirs = queries(duck, end, rolled), queries(pg, end, rolled)
    out = []
    with duck.read() as dconn, pg.read() as pconn:
        for name in ours:
            samples: dict[str, list[float]] = {"duckdb": [], "postgres": []}
            ours[name](dconn), theirs[name](pconn)  # warm-up
            for _ in range(repeat):
                for engine, fn, conn in (("duckdb", ours[name], dconn), ("postgres", theirs[name], pconn)):
                    started = time.perf_counter()
                    fn(conn)
                    samples[engine].append((time.perf_counter() - started) * 1000)
            out.append((name, statistics.median(samples["duckdb"]), statistics.median(samples["postgres"])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--duckdb", default=None, help="DuckDB file (default benchmarks/data/demo-SIZE.duckdb)")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/paydash_engines")
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--end", default=None, help="the demo's last day (default today)")
    parser.add_argument("--without-rollup", action="store_true", help="also time the queries without the rollups")
    args = parser.parse_args()
    end = date.fromisoformat(args.end) if args.end else date.today()
    data_dir = ROOT / "benchmarks" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    _create_pg_database(args.pg_url)
    duck, _ = ensure_database(args.duckdb or str(data_dir / f"demo-{args.size}.duckdb"), args.size, end, False)
    pg, _ = ensure_database(args.pg_url, args.size, end, False)
    assert duck.has_rollup() and pg.has_rollup(), "the demo databases have no rollups: rebuild them"
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{args.size:,} payments, medians of {args.repeat} alternating rounds, load before {load}", flush=True)
    modes = [("with the rollups", True)] + ([("without (dbt marts)", False)] if args.without_rollup else [])
    for label, rolled in modes:
        print(f"\n| query ({label}) | DuckDB ms | PostgreSQL ms | ratio |\n|---|---|---|---|")
        for name, d, p in side_by_side(duck, pg, end, args.repeat, rolled):
            print(f"| {name} | {d:.1f} | {p:.1f} | {p / d:.1f}x |", flush=True)
    print(f"\nload after {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    duck.dispose()
    pg.dispose()


if __name__ == "__main__":
    main()
