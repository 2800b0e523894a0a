"""The admin pages' speed in a real browser (System, Data explorer): benchmarks/browser.py's method.

Times sign-in -> the page fully rendered (every section's tables and the audit log), with
the page's cached reads cleared (its Refresh button) and cached, and a saved query's Run
-> its result shown. Not a test: medians and worst of several runs on a noisy machine.

    .venv/bin/python benchmarks/admin_browser.py --db benchmarks/data/system-1m.duckdb
    .venv/bin/python benchmarks/admin_browser.py --payments 10000000
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from browser import CHROMIUM, CHROMIUM_ARGS, IDLE, Dashboard, arm, ensure_database, measured, sign_in, summary  # noqa: E402

SYSTEM_RENDERED = IDLE + """
    && document.querySelectorAll('[data-testid="stDataFrame"]').length >= 6
    && [...document.querySelectorAll('[data-testid="stCaptionContainer"]')].some(e => e.innerText.startsWith('Sign-ins, failed sign-ins'))"""
EXPLORER_RENDERED = IDLE + """
    && document.querySelectorAll('[data-testid="stDataFrame"]').length >= 2
    && document.querySelectorAll('[data-testid="stCode"]').length >= 1"""
QUERY_SHOWN = IDLE + """
    && [...document.querySelectorAll('[data-testid="stMarkdownContainer"]')].some(e => / rows in \\d+ ms/.test(e.innerText))"""
SAVED_QUERIES = '''[[query]]
name = "Failures by code, last 7 days"
description = "A typical saved query: an aggregate over a week of the charge mart"
sql = """
SELECT failure_code, count(*) AS failures, sum(amount_usd) AS failed_usd
FROM mart_stripe_payments
WHERE status = 'failed' AND created_at >= current_date - INTERVAL '7 days'
GROUP BY failure_code ORDER BY failures DESC
"""
'''


def open_page(context, dashboard: Dashboard, path: str, condition: str) -> float:  # noqa: ANN001
    page = context.new_page()
    try:
        return sign_in(page, dashboard, f"{dashboard.url}/{path}", condition)
    finally:
        page.close()


def refreshed_system(context, dashboard: Dashboard) -> float:  # noqa: ANN001
    """Refresh (the System page's cached reads cleared), then a new session's sign-in to it."""
    page = context.new_page()
    try:
        sign_in(page, dashboard, f"{dashboard.url}/system", SYSTEM_RENDERED)
        arm(page, SYSTEM_RENDERED, need_running=True)
        page.get_by_role("button", name="Refresh").click()
        measured(page)
    finally:
        page.close()
    return open_page(context, dashboard, "system", SYSTEM_RENDERED)


def query_runs(context, dashboard: Dashboard, n: int) -> list[float]:  # noqa: ANN001
    page = context.new_page()
    try:
        sign_in(page, dashboard, f"{dashboard.url}/data-explorer", EXPLORER_RENDERED)
        times = []
        for _ in range(n):
            arm(page, QUERY_SHOWN, need_running=True)
            page.get_by_role("button", name="Run").click()
            times.append(measured(page))
        return times
    finally:
        page.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--payments", type=int, default=10_000_000)
    parser.add_argument("--db", type=Path, help="Use this DuckDB file as it is.")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    db = args.db or ROOT / "benchmarks" / "data" / f"demo-{args.payments}.duckdb"
    if args.db is None:
        db.parent.mkdir(parents=True, exist_ok=True)
        ensure_database(db, args.payments)
    work = ROOT / "benchmarks" / "results"
    work.mkdir(parents=True, exist_ok=True)
    (work / "queries.toml").write_text(SAVED_QUERIES)  # the server runs in `work`

    from playwright.sync_api import sync_playwright

    results = {}
    dashboard = Dashboard(db.resolve(), work / "admin-browser-server.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            open_page(context, dashboard, "system", SYSTEM_RENDERED)  # fills the browser's cache
            results["sign-in -> System, its reads cleared"] = summary([refreshed_system(context, dashboard) for _ in range(args.repeat)])
            results["sign-in -> System, cached"] = summary(
                [open_page(context, dashboard, "system", SYSTEM_RENDERED) for _ in range(args.repeat)])
            results["sign-in -> Data explorer"] = summary(
                [open_page(context, dashboard, "data-explorer", EXPLORER_RENDERED) for _ in range(args.repeat)])
            results["saved query: Run -> result shown"] = summary(query_runs(context, dashboard, args.repeat))
            browser.close()
    finally:
        dashboard.stop()
    width = max(len(k) for k in results)
    print(f"\n{db}")
    for name, r in results.items():
        print(f"{name:<{width}}  median {r['median_s']:6.2f} s   worst {r['worst_s']:6.2f} s   ({r['runs']} runs)")


if __name__ == "__main__":
    main()
