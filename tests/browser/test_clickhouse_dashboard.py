"""The dashboard on embedded ClickHouse in a real browser: `paydash demo` into a chdb directory,
`paydash serve --db chdb:///...`, and the Overview and the explorer show what `paydash query`
computes from the same marts (each paydash a process of its own: one chdb directory a process)."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from playwright.sync_api import expect

from dashboard_server import PASSWORD, VIEWPORT, start_server
from paydash.app import format as fmt
from serve_process import clean_env
from test_dashboard import open_signed_in, wait_idle


def _paydash(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "paydash.cli", *args], cwd=cwd, env=clean_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_overview_and_explorer_on_clickhouse(browser, tmp_path: Path) -> None:  # noqa: ANN001
    url = f"chdb://{tmp_path / 'clickhouse'}"
    _paydash("demo", "--no-serve", "--payments", "6000", "--seed", "11", "--db", url, cwd=tmp_path)
    totals = json.loads(_paydash("query", "overview", "--db", url, "--json", cwd=tmp_path))["current"]
    failed = json.loads(_paydash("query", "payments", "--status", "failed", "--db", url, "--json", cwd=tmp_path))
    assert totals["attempts"] > 0 and failed["total"] > 0

    server = start_server(url, tmp_path / "serve", {"PAYDASH_PASSWORD": PASSWORD})
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(60_000)
    page = context.new_page()
    try:
        open_signed_in(page, server.url + "/")
        wait_idle(page)
        expect(page.get_by_text(f"{fmt.money(Decimal(str(totals['revenue_usd'])))} exactly")).to_be_visible()
        expect(page.get_by_text(f"{fmt.money(Decimal(str(totals['net_revenue_usd'])))} exactly")).to_be_visible()

        page.goto(server.url + "/payments?status=failed", wait_until="domcontentloaded")
        wait_idle(page)
        expect(page.get_by_text(f"{failed['total']:,}", exact=False).first).to_be_visible()
        expect(page.locator('[data-testid="stDataFrame"]').first).to_be_visible()
        body = page.inner_text("body")
        assert "Traceback" not in body and "database error" not in body
    finally:
        context.close()
        server.stop()
