"""`paydash serve`: what it runs, and its refusal to start without a login (the real start is in tests/browser)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paydash.app import server

REPO = Path(__file__).resolve().parents[2]


def test_without_a_login_serve_refuses_to_start_and_says_how(tmp_path: Path) -> None:
    # a real `paydash serve`: were it to start instead, the timeout would fail the test
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "serve", "--port", "8598"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("error: refusing to start the dashboard: no dashboard login is configured")
    assert "Traceback" not in done.stderr


def test_streamlit_runs_headless_without_tracebacks_for_users() -> None:
    command = server.streamlit_command(8600, "0.0.0.0")
    assert command[:4] == [sys.executable, "-m", "streamlit", "run"]
    assert Path(command[4]) == REPO / "paydash" / "app" / "main.py"
    for flag in ("--server.headless=true", "--server.port=8600", "--server.address=0.0.0.0",
                 "--browser.gatherUsageStats=false", "--client.showErrorDetails=none"):
        assert flag in command


def test_the_demo_password_goes_to_the_app_through_its_environment_only() -> None:
    env = server.child_environment(db="/data/demo.duckdb", demo_password="s3cret-demo")
    assert env["PAYDASH_PASSWORD"] == "s3cret-demo" and env["PAYDASH_DATABASE_URL"] == "/data/demo.duckdb"
    assert "PAYDASH_PASSWORD" not in server.child_environment(db=None, demo_password=None)


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "http://localhost:8501"), ("127.0.0.1", "http://127.0.0.1:8501")])
def test_the_printed_address(address: str, shown: str) -> None:
    assert server.shown_address(address, 8501) == shown


def test_procfile_serves_on_the_platforms_port() -> None:
    lines = (REPO / "Procfile").read_text().strip().splitlines()
    assert lines[0] == "web: paydash serve --port $PORT --address 0.0.0.0"
    assert "alerts: paydash alerts watch --interval 60" in lines  # the alert runner (docs/alerts.md)
