"""Benchmarks of the System page's queries (row counts, growth, data-quality checks).

Reuses the demo databases of benchmarks/run.py (built once, reused while the spec matches).
Medians of several runs after a warm-up; noisy shared machines, so compare, don't assert.

    .venv/bin/python benchmarks/system.py --size 1000000
    .venv/bin/python benchmarks/system.py --size 10000000 --engines duckdb
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from run import ensure_database, timed  # noqa: E402

import sqlalchemy as sa  # noqa: E402

from paydash.queries import system  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402


def first_payments_table(url: str, wh: Warehouse) -> sa.Table:
    """(customer_id, first_payment_at), as the customer-totals mart holds them; built once."""
    table = sa.Table("bench_first_payments", sa.MetaData(), sa.Column("customer_id", sa.Text),
                     sa.Column("first_payment_at", sa.DateTime))
    if "bench_first_payments" not in wh.table_names():
        wh.dispose()
        writer = Warehouse(url, wh.settings, read_only=False)
        with writer.write() as conn:
            conn.execute(sa.text("CREATE TABLE bench_first_payments AS SELECT customer_id, min(created_at) AS first_payment_at "
                                 "FROM mart_stripe_payments GROUP BY customer_id"))
        writer.dispose()
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--duckdb-path", default=None, help="default benchmarks/data/system-SIZE.duckdb")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/paydash_sys_bench")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    today = datetime.now(timezone.utc).date()
    for engine in args.engines.split(","):
        url = args.pg_url if engine == "postgres" else (args.duckdb_path or str(ROOT / f"benchmarks/data/system-{args.size // 1_000_000}m.duckdb"))
        wh, built = ensure_database(url, args.size, today, False)
        m = wh.marts
        first = first_payments_table(url, wh)
        with wh.read() as conn:
            tables = [m.payments, m.daily]
            results = {
                "row counts (exact), charge + daily mart": timed(lambda: system.row_counts(conn, tables), args.repeat),
                "growth, new customers from the charge mart": timed(lambda: system.growth(conn, m, today, "UTC"), args.repeat),
                "growth, new customers from a first-payments table": timed(
                    lambda: system.growth(conn, m, today, "UTC", first_payments=first), args.repeat),
                "quality checks, last 7 days": timed(lambda: system.quality(conn, m, today, "UTC", days=7), args.repeat),
                "quality checks, last 90 days": timed(
                    lambda: system.quality(conn, m, today, "UTC", days=90), args.repeat),
            }
            if wh.dialect == "postgresql":
                results["row counts (estimate, pg_class)"] = timed(lambda: system.estimated_row_counts(conn, tables), args.repeat)
        wh.dispose()
        print(f"\n{engine}, {args.size:,} payments" + (f" (built in {built:.0f} s)" if built else ""))
        for name, ms in results.items():
            print(f"  {name:<45} {ms:8.1f} ms")


if __name__ == "__main__":
    main()
