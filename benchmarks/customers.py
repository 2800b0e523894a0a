"""Benchmarks of the Customers and Promotions queries (not a test; medians after a warm-up).

Uses the same demo databases as benchmarks/run.py (benchmarks/data/demo-N.duckdb, or a
PostgreSQL URL), built if missing, and prints each query's median milliseconds with the
customer marts paydash builds (totals, months) and without them (as on dbt marts).

    .venv/bin/python benchmarks/customers.py                          # 10M on DuckDB
    .venv/bin/python benchmarks/customers.py --payments 1000000
    .venv/bin/python benchmarks/customers.py --payments 1000000 --db postgresql://postgres@127.0.0.1/paydash_bench
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import ensure_database, timed  # noqa: E402

from paydash.queries import customers as cq  # noqa: E402
from paydash.queries import promotions as pq  # noqa: E402


def run_queries(wh, repeat: int) -> dict[str, float]:  # noqa: ANN001
    m = wh.marts
    out: dict[str, float] = {}
    with wh.read() as conn:
        first = cq.customers_page(conn, m, precomputed=True, with_profiles=True)
        someone = first.rows[3]
        for label, pre in (("totals mart", True), ("charge mart only", False)):
            out[f"customers page 1 by revenue ({label})"] = timed(
                lambda pre=pre: cq.customers_page(conn, m, precomputed=pre, with_profiles=True), repeat)
            out[f"customers page 2 by revenue ({label})"] = timed(
                lambda pre=pre: cq.customers_page(conn, m, after=first.next_key, precomputed=pre, with_profiles=True), repeat)
            out[f"customers page 1 by last payment ({label})"] = timed(
                lambda pre=pre: cq.customers_page(conn, m, cq.CustomerSearch(sort="last_payment"), precomputed=pre,
                                                  with_profiles=True), repeat)
        out["search: exact customer id"] = timed(
            lambda: cq.customers_page(conn, m, cq.CustomerSearch(someone["customer_id"]), precomputed=True, with_profiles=True), repeat)
        out["search: start of a name"] = timed(
            lambda: cq.customers_page(conn, m, cq.CustomerSearch(someone["name"][:6]), precomputed=True, with_profiles=True), repeat)
        out["search: an email"] = timed(
            lambda: cq.customers_page(conn, m, cq.CustomerSearch(someone["email"]), precomputed=True, with_profiles=True), repeat)
        out["customer deep dive"] = timed(lambda: cq.customer_detail(conn, m, someone["customer_id"], True, True), repeat)
        out["cohorts (customer-months mart)"] = timed(lambda: cq.retention_cohorts(conn, m, "UTC", "UTC", precomputed=True), repeat)
        out["cohorts (charge mart only)"] = timed(lambda: cq.retention_cohorts(conn, m, "UTC", "UTC"), max(1, repeat // 2))
        codes = pq.promotion_codes(conn, m)
        busiest = max(codes.rows, key=lambda r: r["uses"])["promotion_code_id"]
        out["promotion codes (with uses)"] = timed(lambda: pq.promotion_codes(conn, m), repeat)
        out["a code's detail + customers + usage page 1"] = timed(lambda: (
            pq.code_detail(conn, m, busiest), pq.code_customers(conn, m, busiest, with_profiles=True),
            pq.usage_history(conn, m, pq.UsageFilters(busiest))), repeat)
        out["a code's usage, applied, page 20"] = timed(
            lambda: pq.usage_history(conn, m, pq.UsageFilters(busiest, action="applied"), 20), repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=10_000_000)
    parser.add_argument("--db", help="a PostgreSQL URL or DuckDB file (default: benchmarks/data/demo-N.duckdb)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    url = args.db
    if url is None:
        (ROOT / "benchmarks" / "data").mkdir(parents=True, exist_ok=True)
        url = str(ROOT / "benchmarks" / "data" / f"demo-{args.payments}.duckdb")
    wh, built = ensure_database(url, args.payments, date.today(), rebuild=False)
    try:
        if built:
            print(f"built in {built:.1f} s")
        results = run_queries(wh, args.repeat)
    finally:
        wh.dispose()
    width = max(len(k) for k in results)
    print(f"\n{wh.display_url} ({args.payments:,} payments)")
    for name, ms in results.items():
        print(f"{name:<{width}}  {ms:8.1f} ms")


if __name__ == "__main__":
    main()
