"""`paydash serve`: what it configures, and its refusals to start (the served HTTP is tests/test_serve_http.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from paydash.app import server

REPO = Path(__file__).resolve().parents[2]


def _serve(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-m", "paydash.cli", "serve", *args], cwd=tmp_path, env=environ,
                          capture_output=True, text=True, timeout=120)


def test_without_a_login_serve_refuses_to_start_and_says_how(tmp_path: Path) -> None:
    # a real `paydash serve`: were it to start instead, the timeout would fail the test
    done = _serve(tmp_path, "--port", "0")
    assert done.returncode == 1
    assert done.stderr.startswith("error: refusing to start the dashboard: no dashboard login is configured")
    assert "PAYDASH_PASSWORD" in done.stderr and "paydash users add" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("env, message", [
    ({"PAYDASH_TRUSTED_PROXIES": "10.0.0.1, proxy.internal"}, "PAYDASH_TRUSTED_PROXIES: 'proxy.internal' is not an IP"),
    ({"PAYDASH_OIDC_ISSUER": "https://id.example.com"}, "sign-in with an identity provider is half set up"),
    ({"PORT": "eighty"}, "PORT='eighty' is not a port number"),
])
def test_a_bad_setting_stops_the_start_with_one_line(tmp_path: Path, env: dict[str, str], message: str) -> None:
    done = _serve(tmp_path, PAYDASH_PASSWORD="team-password", **env)
    assert done.returncode == 1, done.stdout
    assert done.stderr.startswith("error: ") and message in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_streamlit_runs_headless_with_the_side_doors_closed() -> None:
    options = server.streamlit_options(8600, "0.0.0.0")
    assert options["server.port"] == 8600 and options["server.address"] == "0.0.0.0"
    assert options["server.headless"] is True and options["server.fileWatcherType"] == "none"
    assert options["server.runOnSave"] is False and options["global.developmentMode"] is False
    assert options["browser.gatherUsageStats"] is False
    assert options["client.showErrorDetails"] == "none"  # no tracebacks in the browser
    assert options["client.disableDataExport"] is True  # the table toolbar's CSV skips neutralisation
    assert options["server.enableXsrfProtection"] is True


def test_every_option_is_one_streamlit_knows() -> None:
    from streamlit import config

    for name in server.streamlit_options(8501, "127.0.0.1"):
        assert name in config._config_options_template, name


def test_the_demo_shows_the_example_saved_queries_unless_the_team_has_its_own(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from paydash.warehouse.sandbox import load_saved_queries

    monkeypatch.chdir(tmp_path)
    examples = server.demo_saved_queries(server.serve_settings())
    assert examples is not None and len(load_saved_queries(examples)) >= 3  # shipped with the package
    assert server.serve_settings(demo_login=True).saved_queries_file == str(examples)
    assert server.serve_settings(demo_login=False).saved_queries_file != str(examples)
    (tmp_path / "queries.toml").write_text("")  # the team's own file, even empty, wins
    assert server.demo_saved_queries(server.serve_settings()) is None
    assert server.serve_settings(demo_login=True).saved_queries_file != str(examples)
    (tmp_path / "queries.toml").unlink()
    (tmp_path / ".env").write_text("PAYDASH_SAVED_QUERIES_FILE=/elsewhere/ours.toml\n")  # so does a setting
    assert server.serve_settings(demo_login=True).saved_queries_file == "/elsewhere/ours.toml"


def test_serve_settings_are_the_whole_settings_with_db_over_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("PAYDASH_DUCKDB_SHARED=true\nPAYDASH_FIRST_FAILURES_TABLE=ff\n")
    settings = server.serve_settings(db="/data/other.duckdb")
    assert settings.database_url == "/data/other.duckdb"
    assert settings.duckdb_shared is True and settings.first_failures_table == "ff"


@pytest.mark.parametrize("address, shown", [("0.0.0.0", "http://localhost:8501"), ("127.0.0.1", "http://127.0.0.1:8501"),
                                            ("::1", "http://[::1]:8501")])
def test_the_printed_address(address: str, shown: str) -> None:
    assert server.shown_address(address, 8501) == shown


def test_procfile_serves_on_the_platforms_port() -> None:
    processes = dict(line.split(": ", 1) for line in (REPO / "Procfile").read_text().strip().splitlines())
    assert processes["web"] == "paydash serve --port $PORT --address 0.0.0.0"
    assert processes["alerts"] == "paydash alerts watch --interval 60"


def test_make_demo_honours_port() -> None:
    def demo_line(*args: str) -> str:
        done = subprocess.run(["make", "-n", "demo", *args], cwd=REPO, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return [line for line in done.stdout.splitlines() if "paydash demo" in line][-1]

    assert demo_line("PORT=9123").endswith("paydash demo --port 9123")
    assert demo_line().endswith("paydash demo")


def test_port_comes_from_the_option_then_port_then_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    from paydash import cli
    from paydash.errors import InvalidInput

    monkeypatch.delenv("PORT", raising=False)
    assert cli._port(None, 8501) == 8501
    monkeypatch.setenv("PORT", "9000")
    assert cli._port(None, 8501) == 9000
    assert cli._port(7000, 8501) == 7000
    monkeypatch.setenv("PORT", "70000")
    with pytest.raises(InvalidInput, match="PORT 70000 is not a port number"):
        cli._port(None, 8501)
