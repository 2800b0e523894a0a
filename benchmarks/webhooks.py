"""The webhook receiver under load: many deliveries, duplicated, out of order, a restart midway.

Not a test: it reports the sustained rate and checks the result (docs/performance.md).

    .venv/bin/python benchmarks/webhooks.py                          # PostgreSQL, 10,000 deliveries
    .venv/bin/python benchmarks/webhooks.py --engine duckdb --deliveries 2000

It starts a real `paydash webhooks` process on a fresh database, sends the deliveries from
`--senders` connections (Stripe-signed, 20% of them duplicates, 20% moved out of order), stops
the receiver halfway and starts it again, then checks that every event is stored once and
that the charge mart equals the mart computed directly from the final Stripe objects, and
that the daily and first-failures marts equal a rebuild from the raw tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from paydash.settings import Settings  # noqa: E402
from paydash.sources.stripe.transform import TransformOptions, attempt_numbers, mart_row, rebuild_from_raw  # noqa: E402
from paydash.sources.stripe.webhooks import sign  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.raw import raw_tables_for  # noqa: E402
from stripe_objects import payment_history  # noqa: E402

SECRET = "whsec_benchmark"
RATES = "eur=1.08,jpy=0.0067"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_receiver(url: str, log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update(PAYDASH_STRIPE_WEBHOOK_SECRET=SECRET, PAYDASH_FX_RATES=RATES, PAYDASH_WRITE_LOCK_WAIT="30")
    out = open(log, "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paydash.cli", "webhooks", "--address", "127.0.0.1", "--port", str(port), "--db", url],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the receiver exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("the receiver did not start")


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def deliveries_of(events: list[dict], rng: random.Random) -> list[dict]:
    """Events in time order plus 20% duplicates, with 20% of all deliveries moved elsewhere."""
    ordered = sorted(events, key=lambda e: (e["created"], e["id"]))
    ordered += rng.sample(ordered, len(ordered) // 5)  # duplicates, delivered again at the end
    moved = set(rng.sample(range(len(ordered)), len(ordered) // 5))
    kept = [d for i, d in enumerate(ordered) if i not in moved]
    for i in sorted(moved):
        kept.insert(rng.randrange(len(kept) + 1), ordered[i])
    return kept


def signed_requests(base: str, events: list[dict], secret: str = SECRET) -> list[bytes]:
    """Each event as the bytes of a Stripe-signed `POST /webhooks/stripe`, made before any clock starts."""
    host = base.removeprefix("http://")
    now = int(time.time())
    requests = []
    for event in events:
        payload = json.dumps(event).encode()
        head = (f"POST /webhooks/stripe HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Stripe-Signature: t={now},v1={sign(payload, secret, now)}\r\nContent-Length: {len(payload)}\r\n\r\n")
        requests.append(head.encode() + payload)
    return requests


async def deliver(base: str, requests: list[bytes], senders: int, attempts: int = 20,
                  rate: float | None = None) -> tuple[float, list[int]]:
    """Every request over `senders` kept-alive connections, one in flight each; a request not
    answered 200 is sent again (as Stripe redelivers) up to `attempts` times in all. With
    `rate`, request i is not sent before i / rate seconds from the start (a steady stream, as
    an account's traffic arrives; without it, as fast as the receiver answers). Returns
    (seconds, the last status of each; -1 for no answer).

    The sender shares the machine's 2 cores with the receiver and its database, so it is kept
    cheap: requests are signed and serialised to bytes before the clock starts and written by
    one asyncio loop (the 64 http.client threads it replaced took 6-15 % off the measured
    rate; docs/performance.md).
    """
    host, port = base.removeprefix("http://").split(":")
    statuses = [0] * len(requests)
    cursor = iter(range(len(requests)))

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes) -> int:
        writer.write(request)
        status = int((await reader.readline()).split(b" ", 2)[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return status

    async def connection() -> None:
        reader = writer = None
        for i in cursor:
            if rate:
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
            for attempt in range(attempts):
                try:
                    if writer is None:
                        reader, writer = await asyncio.open_connection(host, int(port))
                    statuses[i] = await exchange(reader, writer, requests[i])
                    if statuses[i] == 200:
                        break
                except (OSError, ValueError, IndexError, asyncio.IncompleteReadError):
                    statuses[i] = -1
                    if writer is not None:
                        writer.close()
                    reader = writer = None
                if attempt + 1 < attempts:
                    await asyncio.sleep(0.5)
        if writer is not None:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(senders)))
    return time.perf_counter() - started, statuses


def send(base: str, part: list[dict], senders: int) -> tuple[float, list[int]]:
    """Deliver `part` over `senders` kept-alive connections; returns (seconds, statuses)."""
    return asyncio.run(deliver(base, signed_requests(base, part), senders))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["postgres", "duckdb"], default="postgres")
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--senders", type=int, default=64)
    parser.add_argument("--pg-url", default="postgresql://postgres@127.0.0.1:5432/paydash_bench_webhooks")
    args = parser.parse_args()

    rng = random.Random(2026)
    # about 6 events per payment intent; deliveries are events + 20% duplicates
    events, charges, pis = payment_history(seed=2026, intents=max(1, round(args.deliveries / 1.2 / 6.0)))
    deliveries = deliveries_of(events, rng)
    data = ROOT / "benchmarks" / "data"
    data.mkdir(parents=True, exist_ok=True)
    log = data / "webhooks-receiver.log"
    log.write_text("")
    if args.engine == "postgres":
        url = args.pg_url
        admin = sa.create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
        name = url.rsplit("/", 1)[1]
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
    else:
        path = data / "webhooks.duckdb"
        path.unlink(missing_ok=True)
        url = str(path)

    half = len(deliveries) // 2
    elapsed = 0.0
    for part in (deliveries[:half], deliveries[half:]):
        proc, base = start_receiver(url, log)
        try:
            seconds, statuses = send(base, part, args.senders)
        finally:
            stop(proc)
        elapsed += seconds
        failed = [s for s in statuses if s != 200]
        if failed:
            raise SystemExit(f"{len(failed)} deliveries not acknowledged: {sorted(set(failed))}\n{log.read_text()[-3000:]}")
        print(f"  {len(part)} deliveries in {seconds:.1f} s ({len(part) / seconds:.0f}/s); receiver restarted", flush=True)

    settings = Settings().replace(duckdb_shared=True)
    wh = Warehouse(url, settings, read_only=False)
    options = TransformOptions(fx_rates={"eur": 1.08, "jpy": 0.0067})
    raw = raw_tables_for(wh)
    try:
        # the marts fill within seconds of the last acknowledgement
        time.sleep(0)
        with wh.read() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(raw.events)).scalar_one()
            mart = {r.charge_id: dict(r._mapping) for r in conn.execute(sa.select(wh.marts.payments))}
            daily = [tuple(r) for r in conn.execute(sa.select(wh.marts.daily).order_by(wh.marts.daily.c.date, wh.marts.daily.c.funnel_name))]
            ff = [tuple(r) for r in conn.execute(sa.select(wh.marts.first_failures).order_by(wh.marts.first_failures.c.payment_intent_id))]
        ranks = attempt_numbers(charges.values())
        expected = {cid: mart_row(ch, ranks[cid], None, pis[ch["payment_intent"]], options) for cid, ch in charges.items()}
        with wh.write() as conn:
            rebuild_from_raw(conn, wh.marts, raw, options)
        with wh.read() as conn:
            daily_rebuilt = [tuple(r) for r in conn.execute(sa.select(wh.marts.daily).order_by(wh.marts.daily.c.date, wh.marts.daily.c.funnel_name))]
            ff_rebuilt = [tuple(r) for r in conn.execute(sa.select(wh.marts.first_failures).order_by(wh.marts.first_failures.c.payment_intent_id))]
    finally:
        wh.dispose()
    checks = {
        "every event stored once": stored == len(events),
        "charge mart equals the final Stripe objects": mart == expected,
        "daily mart equals a rebuild from raw": daily == daily_rebuilt,
        "first-failures mart equals a rebuild from raw": ff == ff_rebuilt,
    }
    print(f"{args.engine}: {len(deliveries)} deliveries ({len(events)} events, {len(charges)} charges), "
          f"{args.senders} senders, {os.cpu_count()} cores, {platform.python_version()}")
    print(f"sustained rate: {len(deliveries) / elapsed:.0f} deliveries/s ({elapsed:.1f} s sending, restart excluded)")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    if not all(checks.values()):
        missing = set(expected) - set(mart)
        wrong = [cid for cid in expected if cid in mart and mart[cid] != expected[cid]]
        print(f"  {len(missing)} charges missing from the mart, {len(wrong)} differ", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main()
