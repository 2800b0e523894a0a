"""The Overview, a page of payments and a payment's detail on 100M payments in embedded ClickHouse.

Not a test: a benchmark (docs/performance.md records what it printed, with the machine's load).

    .venv/bin/python benchmarks/clickhouse_scale.py                    # 10M demo x 10 = 100M payments
    .venv/bin/python benchmarks/clickhouse_scale.py --base 1000000 --copies 3

How the 100M are made: `paydash demo`'s generator writes `--base` payments (with every other
demo mart) into a chdb database under benchmarks/data/, then ClickHouse copies the charge mart
`--copies - 1` times into itself, each copy's charge, payment-intent, customer and profile ids
suffixed so they stay unique (and a copy's retry history stays together), the id sketches
left empty (a sketch-less row is compared by its text). Same days, same mix: ten times the
traffic of the demo. The derived marts (daily, first failures, amount counts, rollups) are then
rebuilt from the 100M-row charge mart by paydash's own transforms, as `paydash demo` builds them.
The database is reused while its recorded size matches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, datetime, time as clock, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from paydash.queries import failures, overview, payments, recovery  # noqa: E402
from paydash.queries.dates import DateRange  # noqa: E402
from paydash.queries.filters import PaymentFilters  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.sources.demo import DemoSpec, build_demo_database  # noqa: E402
from paydash.warehouse import load, transforms  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.schema import display_name  # noqa: E402
from run import _load, timed  # noqa: E402 - benchmarks/run.py: medians after a warm-up, the load

SEED = 7
DAYS = 90
ID_COLUMNS = ("charge_id", "payment_intent_id", "customer_id", "profile_id")


def ensure_database(url: str, base: int, copies: int, end: date, rebuild_derived: bool = False) -> dict:
    """The chdb database of base x copies payments; what building it took (empty if reused).
    `rebuild_derived`: keep the charge mart, rebuild the marts derived from it."""
    writer = Warehouse(url, Settings().replace(statement_timeout=3600), read_only=False)  # copying 10M rows takes a while
    try:
        meta = load.read_meta(writer)
    except Exception:  # noqa: BLE001 - no database yet
        meta = {}
    timings: dict[str, float] = {}
    demo = {"payments": str(base), "end": end.isoformat()}
    if not all(meta.get(k) == v for k, v in demo.items()) or meta.get("demo_complete") != "true":
        started = time.perf_counter()
        build_demo_database(writer, DemoSpec(payments=base, days=DAYS, seed=SEED, end=end), show_progress=True)
        timings["demo build (s)"] = round(time.perf_counter() - started, 1)
        load.write_meta(writer, {"demo_complete": "true", "copies": "1"})
        meta = load.read_meta(writer)
    if meta.get("copies") != str(copies):
        timings["copies (s)"] = make_copies(writer, copies)
        rebuild_derived = True
    if rebuild_derived:
        started = time.perf_counter()
        with writer.write() as conn:
            transforms.rebuild_derived_marts(conn, writer.marts)
        timings["derived marts (s)"] = round(time.perf_counter() - started, 1)
    writer.dispose()
    return timings


def make_copies(writer: Warehouse, copies: int) -> float:
    """The demo's charges copied `copies - 1` times into the charge mart (ids suffixed); seconds taken."""
    started = time.perf_counter()
    table = writer.marts.payments
    target = display_name(table)
    columns = [c.name for c in table.columns]

    def value(name: str, k: int) -> str:
        if name in ID_COLUMNS:
            return f"concat({name}, '_x{k}') AS {name}"
        if name.endswith("_sketch"):
            return f"CAST(NULL AS Nullable(Int64)) AS {name}"
        return name

    with writer.write() as conn:
        # constants and our own table's column names only: no outside text in this SQL
        conn.execute(sa.text(f"ALTER TABLE {target} DELETE WHERE position(charge_id, '_x') > 0 SETTINGS mutations_sync = 1"))
        for k in range(1, copies):
            conn.execute(sa.text(
                f"INSERT INTO {target} ({', '.join(columns)}) "
                f"SELECT {', '.join(value(c, k) for c in columns)} "
                # the filter in a subquery: ClickHouse would read charge_id in an outer WHERE as the
                # suffixed alias above
                f"FROM (SELECT * FROM {target} WHERE position(charge_id, '_x') = 0)"
            ))
            print(f"copy {k}/{copies - 1} written", file=sys.stderr, flush=True)
        rows = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
    load.write_meta(writer, {"copies": str(copies)})
    print(f"charge mart: {rows:,} rows", file=sys.stderr, flush=True)
    return round(time.perf_counter() - started, 1)


def run_queries(wh: Warehouse, end: date, repeat: int) -> dict[str, float]:
    rng = DateRange(end - timedelta(days=29), end, "UTC")
    noon = datetime.combine(end, clock(12))
    m = wh.marts
    out: dict[str, float] = {}
    with wh.read() as conn:
        out["rows in the charge mart"] = conn.execute(sa.select(sa.func.count()).select_from(m.payments)).scalar_one()
        retried = conn.execute(
            sa.select(m.payments.c.charge_id).where(m.payments.c.attempt_number == 3).limit(1)
        ).scalar_one()
        adjusted = {"with_refunds": wh.has_table(m.refunds), "with_disputes": wh.has_table(m.disputes)}
        # what the app passes: the rollups when the marts have them (paydash/warehouse/rollup.py)
        r = {"rollup": wh.has_rollup()}
        scope = payments.SearchScope(customers=wh.has_table(m.customers), card_last4=wh.has_column(m.payments, "card_last4"),
                                     id_sketches=wh.has_id_sketches(), amount_counts=wh.has_table(m.amount_counts),
                                     rollup=r["rollup"])

        def overview_page() -> None:
            overview.overview(conn, m, rng, mart_tz="UTC", now=noon, **adjusted, **r)
            overview.daily_series(conn, m, rng, mart_tz="UTC", **r)
            failures.failure_breakdown(conn, m, rng, **r)
            recovery.recovery(conn, m, rng, precomputed=True, mart_tz="UTC", **r)

        out["overview: all queries, 30 days + previous (ms)"] = timed(overview_page, repeat)
        out["overview: totals in America/New_York (ms)"] = timed(
            lambda: overview.overview(conn, m, DateRange(rng.start, rng.end, "America/New_York"), mart_tz="UTC",
                                      **adjusted, **r), repeat)
        out["payments: page 1 (+ total) (ms)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(), 1, mart_tz="UTC", scope=scope), repeat)
        out["payments: failed, 30 days, page 1 (ms)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(status="failed", date_range=rng), 1, mart_tz="UTC",
                                           scope=scope), repeat)
        out["payments: page 1000 (ms)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(), 1000, mart_tz="UTC", scope=scope), repeat)
        out["detail: payment + retry history (ms)"] = timed(lambda: payments.payment_detail(conn, m, retried), repeat)
        out["search: exact charge id (ms)"] = timed(
            lambda: payments.payments_page(conn, m, PaymentFilters(search=retried), 1, scope=scope), repeat)
    return {k: (round(v, 1) if isinstance(v, float) else v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=int, default=10_000_000, help="payments the demo generator writes")
    parser.add_argument("--copies", type=int, default=10, help="the charge mart is this many times the demo")
    parser.add_argument("--path", default=str(ROOT / "benchmarks" / "data" / "chdb-scale"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--rebuild-derived", action="store_true", help="keep the charge mart, rebuild the rest")
    args = parser.parse_args()

    end = date.today()
    url = f"chdb://{Path(args.path).resolve()}"
    result = {"payments": args.base * args.copies, "url": url, "load_before": _load()}
    result.update(ensure_database(url, args.base, args.copies, end, args.rebuild_derived))
    wh = Warehouse(url, Settings(), read_only=True)
    result["load_before_queries"] = _load()
    result["queries"] = run_queries(wh, end, args.repeat)
    result["load_after"] = _load()
    wh.dispose()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
