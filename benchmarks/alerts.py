"""How long `paydash alerts replay` takes: the bucketed series form against one query per step.

Builds (or reuses) a demo database; when it has no operations events mart (the demo did not
make one yet), synthesizes one from the payments: a checkout_completed per attempt with its
outcome, a receipt per success, and a Stripe copy arriving a few seconds late. Then replays
the default rules over the last --days days at --step, once with `metric_series` (what the
CLI does) and once evaluating every rule at every step with `metric_at`, and prints both.

    .venv/bin/python benchmarks/alerts.py                              # 1M payments, 1 day at 1m
    .venv/bin/python benchmarks/alerts.py --payments 300000 --days 7
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from paydash.alerts.evaluate import RuleState, step  # noqa: E402
from paydash.alerts.rules import load_rules  # noqa: E402
from paydash.alerts.runner import replay, replay_times  # noqa: E402
from paydash.queries.alert_metrics import metric_at  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.sources.demo import DemoSpec, build_demo_database  # noqa: E402
from paydash.warehouse import load  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402


def synthesize_operations(wh: Warehouse) -> int:
    p = wh.marts.payments
    with wh.read() as conn:
        rows = conn.execute(sa.select(p.c.charge_id, p.c.created_at, p.c.status)).all()
    ids = pa.array([r[0] for r in rows])
    at = pa.array([r[1] for r in rows], pa.timestamp("us"))
    status = pa.array([r[2] for r in rows])
    n = len(rows)
    nulls = pa.nulls(n, pa.string())

    def events(prefix: str, name: str, outcome, received, source: str, mask=None) -> pa.Table:  # noqa: ANN001
        table = pa.table({
            "event_id": pc.binary_join_element_wise(pa.array([prefix] * n), ids, ""), "event_name": pa.array([name] * n),
            "occurred_at": at, "received_at": received, "source": pa.array([source] * n), "checkout_session_id": nulls,
            "payment_intent_id": nulls, "receipt_id": nulls, "customer_id": nulls, "attempt_number": pa.nulls(n, pa.int32()),
            "outcome": outcome, "duration_ms": pa.array([800] * n, pa.int32()), "error": nulls,
            "properties": pa.array(["{}"] * n),
        })
        return table if mask is None else table.filter(mask)

    late = pc.add(at, pa.scalar(timedelta(seconds=4), pa.duration("us")))
    table = pa.concat_tables([
        events("co_", "checkout_completed", status, at, "demo"),
        events("rc_", "receipt_generated", pa.array(["succeeded"] * n), at, "demo", pc.equal(status, "succeeded")),
        events("st_", "checkout_started", pa.nulls(n, pa.string()), late, "stripe"),
    ])
    table = table.sort_by("occurred_at")
    ops = wh.marts.operations_events
    with wh.write() as conn:
        ops.drop(conn, checkfirst=True)
        ops.create(conn)
    load.load_arrow(wh, ops, table)
    return table.num_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", default="/tmp/paydash-alerts-bench.duckdb")
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--days", type=float, default=1.0)
    parser.add_argument("--step", type=int, default=60, help="seconds")
    parser.add_argument("--per-step-steps", type=int, default=120,
                        help="steps timed with one query per step (it is slow: ~30 ms a query)")
    args = parser.parse_args()

    settings = Settings()
    writer = Warehouse(args.db, settings, read_only=False)
    built = {}
    if not writer.has_table(writer.marts.payments):
        built["demo"] = build_demo_database(writer, DemoSpec(payments=args.payments), show_progress=False)
    if not writer.has_table(writer.marts.operations_events, max_age=0):
        built["synthetic_operations_events"] = synthesize_operations(writer)
    writer.dispose()

    wh = Warehouse(args.db, settings)
    rules, _ = load_rules(settings)
    with wh.read() as conn:
        end = conn.execute(sa.select(sa.func.max(wh.marts.payments.c.created_at))).scalar_one().replace(second=0, microsecond=0)
        events = conn.execute(sa.select(sa.func.count()).select_from(wh.marts.operations_events)).scalar_one()
    start = end - timedelta(days=args.days)
    every = timedelta(seconds=args.step)
    times = replay_times(start, end, every)

    started = time.perf_counter()
    notifications, _ = replay(wh, rules, settings, start, end, every)
    series_s = time.perf_counter() - started

    sample = times[: args.per_step_steps]
    started = time.perf_counter()
    per_step = []
    with wh.read() as conn:
        for rule in rules:
            state = RuleState(rule.name)
            for t in sample:
                state, _, notes = step(rule, state, metric_at(conn, wh.marts, rule.query, t), t)
                per_step += notes
    per_step_s = time.perf_counter() - started
    same, _ = replay(wh, rules, settings, sample[0], sample[-1], every)
    assert len(per_step) == len(same), (len(per_step), len(same))

    print(json.dumps({
        "db": args.db, "events": events, "rules": len(rules), "steps": len(times), "from": str(start), "to": str(end),
        "notifications": len(notifications), "built": {k: str(v) for k, v in built.items()},
        "series_seconds": round(series_s, 2), "series_ms_per_step": round(series_s * 1000 / len(times), 2),
        "one_query_per_step_ms_per_step": round(per_step_s * 1000 / len(sample), 1), "per_step_sample": len(sample),
        "speedup": round((per_step_s / len(sample)) / (series_s / len(times)), 1),
    }, indent=2))


if __name__ == "__main__":
    main()
