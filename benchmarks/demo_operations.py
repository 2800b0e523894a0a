"""What the operations events add to the demo generator: time of generate_payments vs generate_operations_events.

    .venv/bin/python benchmarks/demo_operations.py --payments 1000000 --repeat 3

Both run in this process on the same spec; the median of each is printed (the machine is
shared and noisy: compare the two, not the absolute seconds).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from paydash.sources.demo import DemoSpec, generate_payments  # noqa: E402
from paydash.sources.demo.operations import generate_operations_events  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    spec = DemoSpec(payments=args.payments, days=90, seed=7, end=date.today())
    payments_s, events_s = [], []
    for _ in range(args.repeat):
        started = time.perf_counter()
        payments = generate_payments(spec)
        payments_s.append(time.perf_counter() - started)
        started = time.perf_counter()
        events = generate_operations_events(payments, spec)
        events_s.append(time.perf_counter() - started)
    p, e = statistics.median(payments_s), statistics.median(events_s)
    print(f"{args.payments:,} payments: generate_payments {p:.2f} s, operations events {e:.2f} s "
          f"(+{e / p:.0%}), {events.num_rows:,} events; median of {args.repeat}")


if __name__ == "__main__":
    main()
