"""`paydash serve`: run the Streamlit app as a child process with production flags."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from paydash.app import auth
from paydash.errors import ConfigError, PaydashError
from paydash.settings import Settings, load_settings, raw_sources
from paydash.warehouse.engine import duckdb_file_has_writers
from paydash.warehouse.sandbox import EXAMPLE_QUERIES

MAIN = Path(__file__).with_name("main.py")


def streamlit_command(port: int, address: str) -> list[str]:
    return [
        sys.executable, "-m", "streamlit", "run", str(MAIN),
        "--server.headless=true",
        f"--server.port={port}",
        f"--server.address={address}",
        "--server.fileWatcherType=none",
        "--server.runOnSave=false",
        "--browser.gatherUsageStats=false",
        # no tracebacks in the browser; they go to the server log
        "--client.showErrorDetails=none",
        "--client.toolbarMode=minimal",
        "--global.developmentMode=false",
    ]


def child_environment(db: str | None, demo_password: str | None, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if db:
        env["PAYDASH_DATABASE_URL"] = db
    if demo_password:
        env["PAYDASH_PASSWORD"] = demo_password
    env.update(extra or {})
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def share_duckdb_file(settings: Settings) -> bool:
    """Whether the dashboard must open its embedded DuckDB file per query because `paydash
    webhooks` or `paydash sync` write to it (docs/stripe.md). PAYDASH_DUCKDB_SHARED, when set
    anywhere, decides; otherwise the file does (its raw Stripe tables, or a writer holding it)."""
    if "PAYDASH_DUCKDB_SHARED" in raw_sources():
        return False  # the child reads the team's own choice from the same sources
    try:
        return duckdb_file_has_writers(settings.database_url, settings)
    except PaydashError:
        return False  # the dashboard itself will say what is wrong with the database


def demo_saved_queries(settings: Settings) -> Path | None:
    """The example saved queries for the demo's Data explorer, unless the team has its own file
    (PAYDASH_SAVED_QUERIES_FILE set anywhere settings come from, or a queries.toml here)."""
    if "PAYDASH_SAVED_QUERIES_FILE" in raw_sources() or Path(settings.saved_queries_file).exists():
        return None
    return EXAMPLE_QUERIES


def shown_address(address: str, port: int) -> str:
    host = "localhost" if address in ("0.0.0.0", "::", "") else address
    return f"http://{host}:{port}"


def run_server(port: int = 8501, address: str = "0.0.0.0", db: str | None = None, demo_login: bool = False) -> None:
    """Start the dashboard and wait for it; refuse to start without a login, except for the demo."""
    settings = load_settings()
    if db:
        settings = settings.replace(database_url=db)
    config = auth.login_config(settings)
    demo_password = None
    if not config.configured:
        if not demo_login:
            raise ConfigError(f"refusing to start the dashboard: {auth.NOT_CONFIGURED}")
        # a fresh password for this run only, handed to the app through its environment
        demo_password = secrets.token_urlsafe(12)

    extra: dict[str, str] = {}
    examples = demo_saved_queries(settings) if demo_login else None
    if examples is not None:
        extra["PAYDASH_SAVED_QUERIES_FILE"] = str(examples)
    if share_duckdb_file(settings):
        extra["PAYDASH_DUCKDB_SHARED"] = "true"
        print("the DuckDB file is written by `paydash webhooks` / `paydash sync`: the dashboard opens it per query "
              "so they can write beside it (set PAYDASH_DUCKDB_SHARED=false to keep it open)", flush=True)
    process = subprocess.Popen(streamlit_command(port, address), env=child_environment(db, demo_password, extra))
    url = shown_address(address, port)

    def announce() -> None:
        local = "127.0.0.1" if address in ("0.0.0.0", "::", "") else address
        if _wait_healthy(f"http://{local}:{port}/_stcore/health", process):
            print(f"\npaydash is running at {url}", flush=True)
            if demo_password:
                print(f"demo login: password {demo_password}  (generated for this run only)", flush=True)
            elif config.mode == "users":
                print(f"sign in with a user from {settings.users_file}", flush=True)
            else:
                print("sign in with the team password (PAYDASH_PASSWORD)", flush=True)

    threading.Thread(target=announce, daemon=True).start()

    def forward(signum, _frame) -> None:  # noqa: ANN001
        if process.poll() is None:
            process.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        code = process.wait()
    except KeyboardInterrupt:
        process.send_signal(signal.SIGINT)
        try:
            code = process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            code = process.wait()
    if code not in (0, -signal.SIGINT, -signal.SIGTERM):
        raise SystemExit(code)


def _wait_healthy(url: str, process: subprocess.Popen, limit: float = 60.0) -> bool:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.read().strip() == b"ok":
                    return True
        except OSError:
            pass
        time.sleep(0.2)
    return False
