"""`paydash serve`: what it runs, and its refusal to start without a login (the real start is in tests/browser)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

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


def test_the_demo_shows_the_example_saved_queries_unless_the_team_has_its_own(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from paydash.settings import load_settings
    from paydash.warehouse.sandbox import load_saved_queries

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYDASH_SAVED_QUERIES_FILE", raising=False)
    examples = server.demo_saved_queries(load_settings())
    assert examples is not None and len(load_saved_queries(examples)) >= 3  # shipped with the package
    assert server.child_environment(None, None, {"PAYDASH_SAVED_QUERIES_FILE": str(examples)})["PAYDASH_SAVED_QUERIES_FILE"] == str(examples)
    assert "PAYDASH_SAVED_QUERIES_FILE" not in server.child_environment(None, None)
    (tmp_path / "queries.toml").write_text("")  # the team's own file, even empty, wins
    assert server.demo_saved_queries(load_settings()) is None
    (tmp_path / "queries.toml").unlink()
    (tmp_path / ".env").write_text("PAYDASH_SAVED_QUERIES_FILE=/elsewhere/ours.toml\n")  # so does a setting
    assert server.demo_saved_queries(load_settings()) is None


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "http://localhost:8501"), ("127.0.0.1", "http://127.0.0.1:8501")])
def test_the_printed_address(address: str, shown: str) -> None:
    assert server.shown_address(address, 8501) == shown


def test_procfile_serves_on_the_platforms_port() -> None:
    processes = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().strip().splitlines())
    assert processes["web"] == "paydash serve --port $PORT --address 0.0.0.0"
    assert processes["alerts"] == "paydash alerts watch --interval 60"


def test_serve_opens_a_duckdb_file_per_query_when_the_stripe_sources_write_to_it(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """`paydash serve` beside `paydash webhooks` on the embedded default: the dashboard must not
    keep the file open, or the receiver cannot write (docs/stripe.md)."""
    from paydash.settings import Settings, load_settings
    from paydash.sources.stripe_transform import prepare_database
    from paydash.warehouse.engine import Warehouse

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PAYDASH_DUCKDB_SHARED", raising=False)
    path = tmp_path / "stripe.duckdb"
    monkeypatch.setenv("PAYDASH_DATABASE_URL", str(path))
    assert not server.share_duckdb_file(load_settings())  # no file yet

    marts_only = tmp_path / "marts.duckdb"
    wh = Warehouse(str(marts_only), Settings(), read_only=False)
    with wh.write() as conn:  # a file of marts only, as the demo or a dbt copy
        conn.execute(sa.text("CREATE TABLE mart_stripe_payments (charge_id TEXT)"))
    wh.dispose()
    monkeypatch.setenv("PAYDASH_DATABASE_URL", str(marts_only))
    assert not server.share_duckdb_file(load_settings())

    monkeypatch.setenv("PAYDASH_DATABASE_URL", str(path))
    wh = Warehouse(str(path), Settings(), read_only=False, hold_duckdb_file=False)
    prepare_database(wh)  # what `paydash webhooks` and `paydash sync` do first
    wh.dispose()
    assert server.share_duckdb_file(load_settings())

    monkeypatch.setenv("PAYDASH_DUCKDB_SHARED", "false")  # the team's own choice wins
    assert not server.share_duckdb_file(load_settings())
    monkeypatch.delenv("PAYDASH_DUCKDB_SHARED")

    # a file another process holds open for writing (a receiver mid-transaction, a sync)
    held = tmp_path / "held.duckdb"
    code = ("import duckdb, sys, time\n"
            f"c = duckdb.connect({str(held)!r}); c.execute('CREATE TABLE t (a INT)')\n"
            "print('ready', flush=True); sys.stdin.read()\n")
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        monkeypatch.setenv("PAYDASH_DATABASE_URL", str(held))
        assert server.share_duckdb_file(load_settings())
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert not server.share_duckdb_file(load_settings())  # let go, and no raw tables in it

    monkeypatch.setenv("PAYDASH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")  # never opened
    assert not server.share_duckdb_file(load_settings())
