"""`paydash demo`'s build: the generated charges, then every mart beside them, into a warehouse."""

from __future__ import annotations

import sys
import time as _time
from datetime import timedelta

from paydash.sources.demo import customers, operations, refunds
from paydash.sources.demo.payments import FX_TO_USD, DemoSpec, generate_payments
from paydash.warehouse import load, transforms


def build_demo_database(wh, spec: DemoSpec, show_progress: bool = True) -> dict:  # noqa: ANN001
    """Generate the demo, write the charge mart, build the daily mart from it with SQL, index.

    Refuses to overwrite marts that `paydash demo` did not build. Returns a summary.
    """
    from tqdm import tqdm

    started = _time.perf_counter()
    load.ensure_replaceable(wh)
    operations.ensure_replaceable(wh)
    bar = tqdm(total=spec.payments, unit="payments", unit_scale=True, desc="generating", disable=not show_progress, file=sys.stderr)
    table = generate_payments(spec, progress=lambda stage: bar.set_description(stage))
    bar.set_description("writing charge mart")
    load.recreate_marts(wh)
    # claimed before loading, so a build that dies halfway can be rebuilt over
    load.write_meta(wh, {"built_by": "paydash demo", "complete": "false"})
    load.load_arrow(wh, wh.marts.payments, table, progress=bar.update)
    bar.set_description("customers and promotions")
    customers.load_customer_marts(wh, table, spec.seed)
    bar.set_description("refunds and disputes")
    refunds.load_refund_disputes(wh, table, spec.resolved_now(), spec.seed)
    bar.set_description("building daily mart")
    with wh.write() as conn:
        wh.marts.amount_counts.create(conn, checkfirst=True)  # filled here, kept current by the refreshes
        for rolled in wh.marts.rollups:  # the same
            rolled.create(conn, checkfirst=True)
        daily_rows = transforms.rebuild_derived_marts(conn, wh.marts)
    bar.set_description("operations events")
    operations_events = operations.load_operations_events(wh, spec, table)
    bar.set_description("indexing")
    # Demo charge and intent ids are numbered in time order, like the rows, so DuckDB's
    # zone maps find them; customers and profiles are scattered and need an index.
    load.create_indexes(wh, id_columns=("customer_id", "profile_id"))
    customers.finish_customer_marts(wh, table)
    load.write_meta(
        wh,
        {
            "built_by": "paydash demo",
            "complete": "true",
            "seed": str(spec.seed),
            "payments": str(spec.payments),
            "days": str(spec.days),
            "end": spec.resolved_end().isoformat(),
            "timezone": spec.tz,
            # the rates amount_usd was converted at: a payment's detail shows the charge's own amount
            "fx_rates": ",".join(f"{code}={rate}" for code, rate in FX_TO_USD.items()),
        },
    )
    bar.set_description("done")
    bar.close()
    return {
        "payments": table.num_rows,
        "operations_events": operations_events,
        "daily_rows": daily_rows,
        "start": (spec.resolved_end() - timedelta(days=spec.days - 1)).isoformat(),
        "end": spec.resolved_end().isoformat(),
        "seconds": round(_time.perf_counter() - started, 1),
    }
