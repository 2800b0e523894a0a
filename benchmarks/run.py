"""Benchmarks of the demo generator and every query behind the Overview and the explorer.

Not a test: timings on these shared machines are noisy, so this script reports medians
of several runs after a warm-up, and docs/performance.md records what it printed.

    .venv/bin/python benchmarks/run.py                       # 1M and 10M on DuckDB, 1M on PostgreSQL
    .venv/bin/python benchmarks/run.py --sizes 1000000 --engines duckdb
    .venv/bin/python benchmarks/run.py --pg-url postgresql://postgres@127.0.0.1/paydash_bench

Databases are built once under benchmarks/data/ (DuckDB) or in the given PostgreSQL
database, and reused while their demo spec matches.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, time as clock, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from paydash.queries import failures, overview, payments, recovery  # noqa: E402
from paydash.queries.dates import DateRange  # noqa: E402
from paydash.queries.filters import PaymentFilters, PaymentSort  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.sources.demo import DemoSpec, build_demo_database  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.load import read_meta  # noqa: E402

SEED = 7
DAYS = 90


def timed(fn, repeat: int) -> float:
    """Median milliseconds of `repeat` runs after one warm-up."""
    fn()
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def ensure_database(url: str, size: int, end: date, rebuild: bool) -> tuple[Warehouse, float | None]:
    """A demo database of `size` payments; returns (read-only warehouse, build seconds or None if reused)."""
    settings = Settings()
    writer = Warehouse(url, settings, read_only=False)
    meta = {}
    try:
        meta = read_meta(writer)
    except Exception:  # noqa: BLE001 - no database yet
        meta = {}
    wanted = {"payments": str(size), "seed": str(SEED), "end": end.isoformat(), "days": str(DAYS)}
    build_seconds = None
    if rebuild or any(meta.get(k) != v for k, v in wanted.items()):
        started = time.perf_counter()
        build_demo_database(writer, DemoSpec(payments=size, days=DAYS, seed=SEED, end=end), show_progress=True)
        build_seconds = time.perf_counter() - started
    writer.dispose()
    return Warehouse(url, settings, read_only=True), build_seconds


def _load() -> str:
    """The 1-, 5- and 15-minute load averages: the machine is shared, the figures depend on it."""
    import os

    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_queries(wh: Warehouse, end: date, repeat: int) -> dict[str, float]:
    rng = DateRange(end - timedelta(days=29), end, "UTC")
    noon = datetime.combine(end, clock(12))  # "today so far": the range and its previous period cut at 12:00 UTC
    m = wh.marts
    out: dict[str, float] = {}
    with wh.read() as conn:
        some = payments.payments_page(conn, m, PaymentFilters(), 1).rows[0]
        failed = payments.payments_page(conn, m, PaymentFilters(status="failed"), 3).rows[0]
        retried = conn.execute(
            sa.select(m.payments.c.charge_id).where(m.payments.c.attempt_number == 3).limit(1)
        ).scalar_one()

        adjusted = {"with_refunds": True, "with_disputes": True}
        # what the app passes: the rollups when the marts have them (paydash/warehouse/rollup.py)
        r = {"rollup": wh.has_rollup()}

        def overview_page() -> None:
            overview.overview(conn, m, rng, mart_tz="UTC", now=noon, **adjusted, **r)
            overview.daily_series(conn, m, rng, mart_tz="UTC", **r)
            failures.failure_breakdown(conn, m, rng, **r)
            recovery.recovery(conn, m, rng, precomputed=True, mart_tz="UTC", **r)

        out["overview: all queries, 30 days + previous"] = timed(overview_page, repeat)

        def overview_funnel() -> None:
            overview.overview(conn, m, rng, "mobile_app", mart_tz="UTC", now=noon, **adjusted, **r)
            overview.daily_series(conn, m, rng, "mobile_app", mart_tz="UTC", **r)
            failures.failure_breakdown(conn, m, rng, "mobile_app", **r)
            recovery.recovery(conn, m, rng, "mobile_app", precomputed=True, mart_tz="UTC", **r)

        out["overview: all queries, one funnel"] = timed(overview_funnel, repeat)
        out["overview: totals (current + previous), today so far"] = timed(
            lambda: overview.overview(conn, m, rng, mart_tz="UTC", now=noon, **r), repeat
        )
        out["overview: totals (current + previous), whole days"] = timed(lambda: overview.overview(conn, m, rng, mart_tz="UTC", **r), repeat)
        out["overview: totals with refunds and disputes"] = timed(
            lambda: overview.overview(conn, m, rng, mart_tz="UTC", **adjusted, **r), repeat)
        out["overview: refunds and disputes alone (current + previous)"] = timed(
            lambda: overview.adjustments_of(conn, m, [rng, rng.previous()], None, True, True, r["rollup"]), repeat)
        out["overview: refunds and disputes of one funnel (current + previous)"] = timed(
            lambda: overview.adjustments_of(conn, m, [rng, rng.previous()], "mobile_app", True, True, r["rollup"]), repeat)
        out["overview: daily series"] = timed(lambda: overview.daily_series(conn, m, rng, mart_tz="UTC", **r), repeat)
        out["overview: totals from the charge mart (other tz)"] = timed(
            lambda: overview.overview(conn, m, DateRange(rng.start, rng.end, "America/New_York"), mart_tz="UTC"), repeat
        )
        out["overview: totals in another timezone (New York) from the rollups"] = timed(
            lambda: overview.overview(conn, m, DateRange(rng.start, rng.end, "America/New_York"), mart_tz="UTC", **r),
            repeat)
        out["failures: by category and code"] = timed(lambda: failures.failure_breakdown(conn, m, rng, **r), repeat)
        out["recovery + acceptance (first-failures mart)"] = timed(lambda: recovery.recovery(conn, m, rng, precomputed=True, mart_tz="UTC", **r), repeat)
        out["recovery + acceptance (charge mart only, as on dbt marts)"] = timed(lambda: recovery.recovery(conn, m, rng), repeat)
        out["payments: page 1 (+ total)"] = timed(lambda: payments.payments_page(conn, m, PaymentFilters(), 1, mart_tz="UTC"), repeat)
        out["payments: page 1000 (+ total)"] = timed(lambda: payments.payments_page(conn, m, PaymentFilters(), 1000, mart_tz="UTC"), repeat)
        out["payments: failed, 30 days, page 1"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(status="failed", date_range=rng), 1, mart_tz="UTC"), repeat
        )
        out["payments: funnel + card brand, page 20"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(funnel="mobile_app", card_brand="visa"), 20, mart_tz="UTC"), repeat
        )
        out["search: exact charge id"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=some["charge_id"]), 1), repeat
        )
        out["search: exact customer id"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=failed["customer_id"]), 1), repeat
        )
        out["search: exact profile id"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=failed["profile_id"]), 1), repeat
        )
        # issue 11: the Stripe-like search and the explorer's sorting (the page's own scope:
        # the customers mart's emails and names when it exists, card_last4)
        scope = payments.SearchScope(customers=wh.has_table(m.customers), card_last4=wh.has_column(m.payments, "card_last4"),
                                     id_sketches=wh.has_id_sketches(), amount_counts=wh.has_table(m.amount_counts),
                                     rollup=r["rollup"])
        ids_only = payments.SearchScope(card_last4=scope.card_last4, id_sketches=scope.id_sketches)
        fragment = failed["payment_intent_id"][-7:-1].swapcase()  # 6 characters, the case changed
        out["search: id fragment, any case (+ email/name start)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=fragment), 1, scope=scope), repeat
        )
        out["search: id fragment, any case (ids only)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=fragment), 1, scope=ids_only), repeat
        )
        if scope.card_last4:
            out["search: last4: + amount:>100"] = timed(
                lambda: payments.payments_page(conn, m, PaymentFilters(search="last4:4242 amount:>100"), 1, scope=scope), repeat
            )
        largest = PaymentSort("amount")
        for label, flt in (("failed", PaymentFilters(status="failed")),
                           ("failed, 30 days", PaymentFilters(status="failed", date_range=rng))):
            for number in (1, 1000):
                out[f"payments: {label}, largest amount first, page {number}"] = timed(
                    lambda flt=flt, number=number: payments.payments_page(conn, m, flt, number, mart_tz="UTC", sort=largest,
                                                                                 scope=scope),
                    repeat,
                )
        out["payments: all, smallest amount first, page 1000"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(), 1000, mart_tz="UTC", sort=PaymentSort("amount", True),
                                           scope=scope),
            repeat,
        )
        out["payments: all, oldest first, page 1000"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(), 1000, mart_tz="UTC", sort=PaymentSort("created", True)),
            repeat,
        )
        out["payments: category + currency, page 1000"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(failure_category="insufficient_funds", currency="usd"),
                                           1000, mart_tz="UTC"), repeat,
        )
        out["detail: payment + retry history"] = timed(lambda: payments.payment_detail(conn, m, retried), repeat)
        disputed = conn.execute(sa.select(m.disputes.c.charge_id).order_by(m.disputes.c.created_at.desc()).limit(1)).scalar_one()
        out["detail: + refunds, disputes, customer, timeline"] = timed(
            lambda: payments.payment_detail(conn, m, disputed, with_refunds=True, with_disputes=True, with_customer=True,
                                            fx_rates={"eur": 1.08}), repeat)
        out["filter options"] = timed(lambda: payments.filter_options(conn, m, **r), repeat)
    return out


def export_million(url: str, size: int, end: date) -> dict[str, float]:
    """Export about 1M rows through the CLI in a child process; wall time and its peak memory."""
    args = [str(ROOT / ".venv/bin/paydash"), "export", "payments", "--db", url, "--out", "/tmp/paydash-bench-export.csv"]
    if size > 1_000_000:
        # about 1M of the newest rows: the last days of the range
        days = max(1, round(DAYS * 1_000_000 / size))
        args += ["--from", (end - timedelta(days=days - 1)).isoformat(), "--to", end.isoformat()]
    started = time.perf_counter()
    # /usr/bin/time reports the child's own peak resident memory (%M, in KB)
    done = subprocess.run(["/usr/bin/time", "-f", "%M"] + args, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    peak_kb = int(done.stderr.strip().splitlines()[-1])
    rows = sum(1 for _ in open("/tmp/paydash-bench-export.csv", "rb")) - 1
    return {"export: rows": rows, "export: seconds": round(seconds, 2), "export: peak MB": round(peak_kb / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/paydash_bench")
    parser.add_argument("--pg-sizes", default="1000000", help="sizes to run on PostgreSQL")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--rebuild", action="store_true")
    parser.add_argument("--no-export", action="store_true")
    args = parser.parse_args()

    end = date.today()
    results = {"machine": f"{platform.node()} {platform.machine()} python {platform.python_version()}", "runs": []}
    data_dir = ROOT / "benchmarks" / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    for engine in args.engines.split(","):
        sizes = args.sizes if engine == "duckdb" else args.pg_sizes
        for size in (int(s) for s in sizes.split(",") if s):
            if engine == "duckdb":
                url = str(data_dir / f"demo-{size}.duckdb")
            else:
                url = args.pg_url
                _create_pg_database(url)
            wh, build = ensure_database(url, size, end, args.rebuild)
            run = {"engine": engine, "payments": size, "build_seconds": None if build is None else round(build, 1)}
            run["load_before"] = _load()
            run["queries_ms"] = {k: round(v, 1) for k, v in run_queries(wh, end, args.repeat).items()}
            run["load_after"] = _load()
            wh.dispose()
            if not args.no_export:
                run.update(export_million(url, size, end))
            results["runs"].append(run)
            print(json.dumps(run, indent=2), flush=True)
    out = ROOT / "benchmarks" / "results"
    out.mkdir(exist_ok=True)
    (out / f"run-{int(time.time())}.json").write_text(json.dumps(results, indent=2))
    print(markdown(results))


def _create_pg_database(url: str) -> None:
    """CREATE DATABASE for the benchmark if it does not exist (needs autocommit)."""
    parsed = sa.engine.make_url(url.replace("postgresql://", "postgresql+psycopg://"))
    admin = sa.create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": parsed.database}).first()
        if not exists:
            conn.execute(sa.text(f'CREATE DATABASE "{parsed.database}"'))
    admin.dispose()


def markdown(results: dict) -> str:
    runs = results["runs"]
    heads = [f"{r['engine']} {r['payments'] / 1e6:g}M" for r in runs]
    lines = ["| query (median ms) | " + " | ".join(heads) + " |", "|---|" + "---|" * len(runs)]
    for key in runs[0]["queries_ms"]:
        lines.append(f"| {key} | " + " | ".join(str(r["queries_ms"].get(key, "")) for r in runs) + " |")
    for key in ("build_seconds", "export: rows", "export: seconds", "export: peak MB"):
        lines.append(f"| {key} | " + " | ".join(str(r.get(key, "")) for r in runs) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
