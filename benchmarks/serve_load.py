"""One `paydash serve` taking Stripe webhooks while five people use its dashboard (issue 10).

Not a test: it reports what it measured and checks the result (docs/performance.md).

    .venv/bin/python benchmarks/serve_load.py                  # a new DuckDB file, 10,000 deliveries, 5 browsers
    .venv/bin/python benchmarks/serve_load.py --deliveries 2000 --sessions 2

On the embedded default (a new DuckDB file, which `paydash serve` creates because a webhook
signing secret is set), it starts the real `paydash serve` with a team password, so the
dashboard and the receiver share one process, one port and the one open file. A first batch of
deliveries (`--prefill` payments over the last month, not timed) gives the pages data to draw
(a demo file will not do: the receiver refuses to mix Stripe data into the demo's marts). Then,
at the same time:

- `--sessions` Chromium contexts (Debian's /usr/bin/chromium) each sign in through the real
  form and keep opening the dashboard's pages (Overview, Payments, Operations, Customers,
  Promotions) one after another, reading each for `--think` seconds on average (0.5-1.5x);
  a page load is timed in the page, from the navigation's start to the page drawn and its
  script finished. The browsers run on the server's own 2 cores (in a deployment they are
  on the users' machines): with `--think 0` five tabs redrawing back to back take most of
  the CPU the server needs, which the figures then show;
- `--deliveries` Stripe-signed webhook deliveries (20% duplicates, 20% out of order) are
  sent to the same port over `--senders` kept-alive connections, as a steady stream of
  `--rate` deliveries a second (the target's 250 events/s and 10% more), or with `--rate 0`
  as fast as the server answers (its ceiling beside the sessions).

Checks at the end: every delivery answered 2xx, every event stored once, the charge mart's
rows for those payments equal the rows computed from the final Stripe objects.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import httpx  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from browser import CHROMIUM, CHROMIUM_ARGS, free_port  # noqa: E402
from paydash.settings import Settings  # noqa: E402
from paydash.sources.stripe.transform import TransformOptions, attempt_numbers, mart_row  # noqa: E402
from paydash.warehouse.engine import Warehouse  # noqa: E402
from paydash.warehouse.raw import raw_tables_for  # noqa: E402
from stripe_objects import payment_history  # noqa: E402
from webhooks import deliver, deliveries_of, signed_requests  # noqa: E402

SECRET = "whsec_serve_load"
RATES = "eur=1.08,jpy=0.0067"

# A page is loaded when Streamlit's script has finished, nothing is pending, and the page's
# own content is drawn (as benchmarks/browser.py waits for it).
IDLE = ("document.querySelector('[data-testid=\"stApp\"][data-test-script-state=\"notRunning\"]') !== null"
        " && document.querySelector('[data-testid=\"stStatusWidget\"]') === null")
TITLES = {"overview": "Overview", "payments": "Payments", "operations": "Operations", "customers": "Customers",
          "promotions": "Promotions"}
PAGES = {
    "overview": IDLE + " && document.querySelectorAll('[data-testid=\"stMetric\"]').length >= 8"
                       " && document.querySelectorAll('[data-testid=\"stDataFrame\"]').length >= 1",
    "payments": IDLE + " && [...document.querySelectorAll('[data-testid=\"stMarkdownContainer\"]')]"
                       ".some(e => e.innerText.includes('matching payments'))"
                       " && document.querySelector('[data-testid=\"stDataFrame\"]') !== null",
    # on webhook data alone these pages may say that their optional marts are missing: drawn is drawn
    "operations": IDLE + " && document.querySelector('[data-testid=\"stHeading\"]') !== null",
    "customers": IDLE + " && document.querySelector('[data-testid=\"stHeading\"]') !== null",
    "promotions": IDLE + " && document.querySelector('[data-testid=\"stHeading\"]') !== null",
}
# Runs in every document before its scripts: notes performance.now() (ms since the
# navigation started) the first time the page's condition holds.
# Mutations arrive in batches: a short script run can go running -> notRunning within one, so
# the records' old values are looked at too, not only the state at the callback.
HELPERS = """
const OBSERVE = {subtree: true, childList: true, attributes: true, characterData: true, attributeOldValue: true};
const sawRun = (records) => (records || []).some(r => r.type === 'attributes'
    && r.attributeName === 'data-test-script-state' && r.oldValue === 'running');
"""
PROBE = HELPERS + """
(() => {
    const conditions = %s;
    const path = location.pathname.replace(/^\\//, '') || 'overview';
    const condition = conditions[path];
    if (!condition) return;
    const holds = new Function('return (' + condition + ')');
    window.__loaded = null;
    let ran = false;
    const check = (records) => {
        if (document.querySelector('[data-testid="stApp"][data-test-script-state="running"]') || sawRun(records)) ran = true;
        if (window.__loaded === null && ran && holds()) { window.__loaded = performance.now(); observer.disconnect(); }
    };
    const observer = new MutationObserver(check);
    const start = () => observer.observe(document.documentElement, OBSERVE);
    if (document.documentElement) start(); else document.addEventListener('DOMContentLoaded', start);
})();
""" % json.dumps(PAGES)
# Before a click in the sidebar (no new document): notes performance.now() at the click and the
# first time after it that the new page's title is drawn, its script finished and its condition
# holds (a short run may never show "running" to an observer); __loaded is then the
# milliseconds from the click to the page drawn. Consecutive pages differ, so a stale title
# from the page before cannot pass.
ARM = """
([path, title]) => {
    const conditions = %s;
    const holds = new Function('return (' + conditions[path] + ')');
    const clicked = performance.now();
    window.__loaded = null;
    const check = () => {
        const h1 = document.querySelector('[data-testid="stMain"] h1');
        if (window.__loaded === null && h1 && h1.innerText.trim() === title && holds()) {
            window.__loaded = performance.now() - clicked; observer.disconnect();
        }
    };
    const observer = new MutationObserver(check);
    observer.observe(document.documentElement, {subtree: true, childList: true, attributes: true, characterData: true});
}
""" % json.dumps(PAGES)


def start_serve(db: Path, work: Path, password: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update(PAYDASH_PASSWORD=password, PAYDASH_STRIPE_WEBHOOK_SECRET=SECRET, PAYDASH_FX_RATES=RATES,
               PYTHONUNBUFFERED="1")
    log = work / "serve-load.log"
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1", "--port", str(port), "--db", str(db)],
        stdout=out, stderr=subprocess.STDOUT, env=env, cwd=work, start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"paydash serve exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base + "/healthz", timeout=5).status_code == 200 and "paydash is running at" in log.read_text():
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"paydash serve did not start:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def browse(browser, base: str, password: str, user: int, stop_at: asyncio.Event, loads: list[tuple[str, float]],  # noqa: ANN001
                 minimum: int, think: float, navigate: str) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    await context.add_init_script(PROBE)
    page = await context.new_page()
    await page.goto(f"{base}/auth/login", wait_until="domcontentloaded")
    await page.get_by_label("Password", exact=True).fill(password)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()
    order = list(PAGES)
    rng = random.Random(user)
    rng.shuffle(order)
    done = 0
    while not stop_at.is_set() or done < minimum:
        path = order[done % len(order)]
        if navigate == "link" or done == 0:
            # a new document: Streamlit's frontend starts again (a link from Slack, a reload)
            await page.goto(f"{base}/{path}", wait_until="domcontentloaded")
        else:
            # the sidebar, as someone using the dashboard moves between its pages
            await page.evaluate(ARM, [path, TITLES[path]])
            await page.locator('[data-testid="stSidebarNav"]').get_by_role("link", name=TITLES[path], exact=True).click()
        try:
            await page.wait_for_function("() => window.__loaded !== null && window.__loaded !== undefined",
                                         polling=50, timeout=120_000)
        except Exception as exc:  # noqa: BLE001 - say which page never finished drawing
            await page.screenshot(path=f"serve-load-stuck-{user}.png")
            raise SystemExit(f"session {user}: {path} was not drawn in 120 s ({type(exc).__name__}); "
                             f"see serve-load-stuck-{user}.png") from None
        loads.append((path, await page.evaluate("window.__loaded") / 1000))
        done += 1
        if think > 0:  # a person reads the page before the next click
            await asyncio.sleep(rng.uniform(0.5 * think, 1.5 * think))
    await context.close()


async def marts_caught_up(base: str, limit: float = 120.0) -> None:
    """Until /healthz says the marts show every stored event."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if not (await client.get("/healthz")).json().get("receiver", {}).get("marts_pending", True):
                return
            await asyncio.sleep(0.5)
    raise SystemExit("the marts did not catch up with the stored events")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def run(base: str, password: str, prefill: list[dict], deliveries: list[dict], args: argparse.Namespace) -> dict:
    from playwright.async_api import async_playwright

    _seconds, statuses = await deliver(base, signed_requests(base, prefill, SECRET), args.senders, attempts=1)
    if any(not 200 <= s < 300 for s in statuses):
        raise SystemExit(f"the prefill was not accepted: {sorted(set(statuses))}")
    await marts_caught_up(base)
    loads: list[tuple[str, float]] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        stop_at = asyncio.Event()
        users = [asyncio.create_task(browse(browser, base, password, n, stop_at, loads, args.min_loads, args.think,
                                          args.navigate))
                 for n in range(args.sessions)]
        while len(loads) < args.sessions and not any(u.done() for u in users):
            await asyncio.sleep(0.2)  # every session signed in and drew a first page
        for u in users:
            if u.done():
                u.result()  # raises what went wrong
        requests = signed_requests(base, deliveries, SECRET)
        loads_before = len(loads)
        # one attempt each: every delivery must be answered 2xx the first time
        seconds, statuses = await deliver(base, requests, args.senders, attempts=1, rate=args.rate or None)
        loads_during = loads[loads_before:]
        stop_at.set()
        await asyncio.gather(*users)
        await browser.close()
    await marts_caught_up(base)
    return {"seconds": seconds, "statuses": statuses, "loads": loads, "loads_during": loads_during}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prefill", type=int, default=1_500, help="Payments delivered before the browsers start.")
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--sessions", type=int, default=5, help="Browser sessions using the dashboard meanwhile.")
    parser.add_argument("--senders", type=int, default=64, help="Connections the deliveries are sent over.")
    parser.add_argument("--min-loads", type=int, default=5, help="Page loads each session makes at least.")
    parser.add_argument("--rate", type=float, default=330.0,
                        help="Deliveries per second sent (a steady stream; 330 with 1/6 duplicates is 275 distinct "
                             "events/s, 10%% over the 250 target). 0: as fast as the server answers.")
    parser.add_argument("--navigate", choices=("click", "link"), default="click",
                        help="click: after its first page each session moves through the sidebar, as people use the "
                             "dashboard (timed from the click); link: every page opened by its URL, a new document "
                             "each time (a link from Slack, a reload)")
    parser.add_argument("--think", type=float, default=3.0,
                        help="Seconds a session reads a page before opening the next (0.5x-1.5x at random; 0: "
                             "back to back, five Chromium tabs then take most of the 2 cores the server needs).")
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")

    work = ROOT / "benchmarks" / "results" / "serve-load"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    db = work / "paydash.duckdb"

    def start_for(intents: int) -> int:  # payments come about 2,015 s apart: the last one made a day ago
        return int(time.time()) - intents * 2_015 - 86_400

    prefill_events, prefill_charges, prefill_pis = payment_history(seed=7, intents=args.prefill,
                                                                   start=start_for(args.prefill), label="prefill")
    prefill = deliveries_of(prefill_events, random.Random(7))
    # about 6 events per payment intent; deliveries are events + 20% duplicates
    intents = max(1, round(args.deliveries / 1.2 / 6.0))
    events, charges, pis = payment_history(seed=2026, intents=intents, start=start_for(intents), label="load")
    load_events = len(events)
    deliveries = deliveries_of(events, random.Random(2026))
    password = secrets.token_urlsafe(12)
    proc, base = start_serve(db, work, password)
    try:
        result = asyncio.run(run(base, password, prefill, deliveries, args))
    finally:
        stop(proc)
    charges |= prefill_charges
    pis |= prefill_pis
    events += prefill_events

    wh = Warehouse(str(db), Settings(), read_only=True)
    try:
        raw = raw_tables_for(wh)
        options = TransformOptions(fx_rates={"eur": 1.08, "jpy": 0.0067})
        with wh.read() as conn:
            stored = conn.execute(sa.select(sa.func.count()).select_from(raw.events)).scalar_one()
            mart = {r.charge_id: dict(r._mapping) for r in conn.execute(
                sa.select(wh.marts.payments).where(wh.marts.payments.c.charge_id.in_(list(charges))))}
    finally:
        wh.dispose()
    ranks = attempt_numbers(charges.values())
    expected = {cid: mart_row(ch, ranks[cid], None, pis[ch["payment_intent"]], options) for cid, ch in charges.items()}

    statuses = result["statuses"]
    during = [s for _, s in result["loads_during"]]
    every = [s for _, s in result["loads"]]
    checks = {
        "every delivery answered 2xx": all(200 <= s < 300 for s in statuses),
        # the event id is the raw table's primary key: a second copy cannot be stored, a lost one is missing
        "every event stored once": stored == len(events),
        "charge mart equals the final Stripe objects": mart == expected,
        f"page loads during the deliveries: p95 <= 2 s ({len(during)} loads)": bool(during) and percentile(during, 0.95) <= 2.0,
        "at least 250 events/s sustained (distinct events, duplicates not counted)": load_events / result["seconds"] >= 250,
    }
    moves = "through the sidebar, timed from the click" if args.navigate == "click" else "each opened by its URL"
    print(f"\n{args.sessions} browser sessions (a page every {args.think:g} s on average, plus its load; pages {moves}), "
          f"paydash serve on a new DuckDB file ({args.prefill:,} payments delivered first), {os.cpu_count()} cores, "
          f"Python {platform.python_version()}, {time.strftime('%Y-%m-%d %H:%M')}")
    print(f"{len(deliveries):,} deliveries ({load_events:,} events) over {args.senders} connections, "
          f"{f'sent at {args.rate:g}/s' if args.rate else 'as fast as answered'}, "
          f"in {result['seconds']:.1f} s: {len(deliveries) / result['seconds']:.0f} deliveries/s "
          f"({load_events / result['seconds']:.0f} distinct events/s)")
    if during:
        print(f"{args.sessions} browser sessions, page loads while deliveries arrived: {len(during)}, "
              f"median {statistics.median(during):.2f} s, p95 {percentile(during, 0.95):.2f} s, worst {max(during):.2f} s")
    print(f"all page loads: {len(every)}, median {statistics.median(every):.2f} s, p95 {percentile(every, 0.95):.2f} s")
    for path in PAGES:
        mine = [s for p, s in result["loads_during"] if p == path]
        if mine:
            print(f"  {path:<11} {len(mine):3d} loads during deliveries, median {statistics.median(mine):.2f} s, "
                  f"worst {max(mine):.2f} s")
    not_ok = sorted({s for s in statuses if not 200 <= s < 300})
    if not_ok:
        print(f"  answers other than 2xx: {not_ok}")
    for name, ok in checks.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}")
    (work / "result.json").write_text(json.dumps({
        "deliveries": len(deliveries), "events": len(events), "seconds": result["seconds"],
        "loads": result["loads"], "loads_during": result["loads_during"], "checks": checks}, indent=1))
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
