"""The `paydash` command's conventions, run as a user runs it (a subprocess, `python -m paydash`):

- usage errors as click shows them: `Usage: ...`, `Try '... --help' for help.`, `Error: ...`, exit 2;
- real failures, bad values included, as one line `error: ...`, exit 1;
- `paydash` (or a command group) alone prints its help and exits 0; `--version`;
- `--json` on check, settings and users list; shell completion through main().
Nothing here may print a traceback or call a user's mistake "unexpected".
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

PAYMENTS = 2_000


def paydash(cwd: Path, *args: str, env: dict[str, str] | None = None, stdin: str = "",
            command: tuple[str, ...] = (sys.executable, "-m", "paydash")) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PAYDASH_", "_PAYDASH_", "_TYPER_"))}
    return subprocess.run([*command, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=180,
                          env={**clean, **(env or {})})


def assert_clean(done: subprocess.CompletedProcess) -> None:
    for stream in (done.stdout, done.stderr):
        assert "Traceback" not in stream and "error: unexpected" not in stream and "Exception" not in stream, stream


def assert_usage_error(done: subprocess.CompletedProcess, usage: str, error: str) -> None:
    """click's shape, exactly: the usage line, the help hint, a blank line, the error; exit 2."""
    assert_clean(done)
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    command = usage.split(" [")[0].removeprefix("Usage: ")
    assert done.stderr == f"{usage}\nTry '{command} --help' for help.\n\nError: {error}\n"


def assert_one_error_line(done: subprocess.CompletedProcess, *needles: str) -> str:
    assert_clean(done)
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    for needle in needles:
        assert needle in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> str:
    """A small demo database (DuckDB), built by `paydash demo --no-serve`."""
    db = str(tmp_path_factory.mktemp("usage") / "demo.duckdb")
    done = paydash(Path(db).parent, "demo", "--no-serve", "--payments", str(PAYMENTS), "--days", "30", "--db", db)
    assert done.returncode == 0, done.stderr
    return db


# -- usage errors: click's shape, exit 2 ------------------------------------------------------------
USAGE_ERRORS = {
    "unknown command": (["nosuchcommand"], "Usage: paydash [OPTIONS] COMMAND [ARGS]...",
                        "No such command 'nosuchcommand'."),
    "unknown subcommand": (["query", "nosuch"], "Usage: paydash query [OPTIONS] COMMAND [ARGS]...",
                           "No such command 'nosuch'."),
    "unknown option": (["query", "overview", "--bogus"], "Usage: paydash query overview [OPTIONS]",
                       "No such option: --bogus"),
    "unknown option of the command itself": (["--bogus"], "Usage: paydash [OPTIONS] COMMAND [ARGS]...",
                                              "No such option: --bogus"),
    "missing argument": (["query", "payment"], "Usage: paydash query payment [OPTIONS] {CHARGE_ID}",
                         "Missing argument 'CHARGE_ID'."),
    "missing user name": (["users", "remove"], "Usage: paydash users remove [OPTIONS] {USERNAME}",
                          "Missing argument 'USERNAME'."),
    "missing required option": (["export", "payments"], "Usage: paydash export payments [OPTIONS]",
                                "Missing option '--out'."),
    "option without its value": (["query", "overview", "--from"], "Usage: paydash query overview [OPTIONS]",
                                 "Option '--from' requires an argument."),
    "not a number": (["query", "payments", "--page", "two"], "Usage: paydash query payments [OPTIONS]",
                     "Invalid value for '--page': Input should be a valid integer, unable to parse string as an integer"),
    "an extra argument": (["check", "extra"], "Usage: paydash check [OPTIONS]", "Got unexpected extra argument(s) (extra)"),
    "a flag given a value": (["--version=3"], "Usage: paydash [OPTIONS] COMMAND [ARGS]...",
                             "Option '--version' does not take a value."),
}


@pytest.mark.parametrize("args, usage, error", USAGE_ERRORS.values(), ids=USAGE_ERRORS.keys())
def test_usage_errors_look_and_exit_like_click(tmp_path, args, usage, error) -> None:  # noqa: ANN001
    assert_usage_error(paydash(tmp_path, *args), usage, error)


def test_a_usage_error_wins_over_debug(tmp_path) -> None:
    # --debug shows tracebacks of failures; a usage error is no failure and has none
    done = paydash(tmp_path, "--debug", "query", "overview", "--bogus")
    assert_usage_error(done, "Usage: paydash query overview [OPTIONS]", "No such option: --bogus")


# -- help and version: exit 0 --------------------------------------------------------------------------
@pytest.mark.parametrize("args", [[], ["--help"], ["query"], ["export"], ["users"], ["alerts"], ["query", "--help"]],
                         ids=["alone", "--help", "query", "export", "users", "alerts", "query --help"])
def test_help_alone_exits_0(tmp_path, args) -> None:  # noqa: ANN001
    done = paydash(tmp_path, *args)
    assert_clean(done)
    assert done.returncode == 0 and done.stderr == ""
    assert f"Usage: paydash{''.join(' ' + a for a in args if a != '--help')} [OPTIONS] COMMAND [ARGS]..." in done.stdout
    if not args:
        for command in ("demo", "check", "serve", "query", "export", "users", "alerts", "--version", "--debug",
                        "--install-completion", "--show-completion"):
            assert command in done.stdout


def test_version_from_the_package_metadata(tmp_path) -> None:
    want = f"paydash {version('paydash')}\n"
    assert version("paydash") and want != "paydash \n"
    done = paydash(tmp_path, "--version")
    assert (done.returncode, done.stdout, done.stderr) == (0, want, "")
    script = Path(sys.executable).with_name("paydash")  # the installed command says the same
    if script.exists():
        installed = paydash(tmp_path, "--version", command=(str(script),))
        assert (installed.returncode, installed.stdout) == (0, want)
    module = paydash(tmp_path, "--version", command=(sys.executable, "-m", "paydash.cli"))
    assert (module.returncode, module.stdout) == (0, want)


# -- real failures: one line, exit 1 ---------------------------------------------------------------------
def test_bad_values_are_one_error_line(demo, tmp_path) -> None:  # noqa: ANN001
    db = ["--db", demo]
    for args, needles in [
        (["query", "overview", "--tz", "Mars/Base"], ["--tz 'Mars/Base' is not a timezone", "America/New_York"]),
        (["query", "payments", "--tz", "Mars/Base", "--from", "2026-01-01"], ["Mars/Base"]),
        (["export", "payments", "--out", "x.csv", "--tz", "../../etc/passwd", "--from", "2026-01-01"], ["--tz"]),
        (["query", "daily", "--tz", ""], ["--tz ''"]),
        (["query", "overview", "--from", "0001-01-01", "--to", "9999-12-31"],
         ["--from 0001-01-01 is outside the days paydash handles (1970-01-01 to 2199-12-31)"]),
        (["query", "payments", "--from", "0001-01-01", "--to", "9999-12-31"], ["--from 0001-01-01"]),
        (["query", "failures", "--to", "9999-12-31"], ["--to 9999-12-31"]),
        (["query", "recovery", "--from", "1969-12-31"], ["--from 1969-12-31"]),
        (["query", "overview", "--from", "2026-02-30"], ["--from '2026-02-30' is not a date", "YYYY-MM-DD"]),
        (["alerts", "replay", "--from", "0001-01-01", "--to", "0001-01-02"],
         ["--from 0001-01-01 is outside the times paydash handles"]),
        (["alerts", "replay", "--from", "2026-11-20", "--to", "2026-11-21", "--step", "99999999999999999999h"],
         ["--step: '99999999999999999999h' is longer than any duration"]),
    ]:
        done = paydash(tmp_path, *args, *db)
        assert_one_error_line(done, *needles)
    assert not (tmp_path / "x.csv").exists()


def test_the_widest_range_paydash_handles_works(demo, tmp_path) -> None:  # noqa: ANN001
    wide = ["--from", "1970-01-01", "--to", "2199-12-31", "--db", demo, "--json"]
    overview = paydash(tmp_path, "query", "overview", *wide)
    assert overview.returncode == 0, overview.stderr
    assert json.loads(overview.stdout)["current"]["attempts"] == PAYMENTS
    listed = paydash(tmp_path, "query", "payments", *wide)
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)["total"] == PAYMENTS


def test_export_to_a_place_that_cannot_be_written(demo, tmp_path) -> None:  # noqa: ANN001
    missing = tmp_path / "no" / "such" / "folder" / "payments.csv"
    done = paydash(tmp_path, "export", "payments", "--out", str(missing), "--db", demo)
    assert_one_error_line(done, f"the folder {missing.parent} does not exist")
    assert not missing.parent.exists()
    done = paydash(tmp_path, "export", "payments", "--out", str(tmp_path), "--db", demo)
    assert_one_error_line(done, "is a folder", str(tmp_path / "payments.csv"))
    (tmp_path / "locked").mkdir(mode=0o500)
    if os.geteuid() != 0:  # root writes anywhere
        done = paydash(tmp_path, "export", "payments", "--out", str(tmp_path / "locked" / "x.csv"), "--db", demo)
        assert_one_error_line(done, "cannot be written", "Permission denied")


def test_a_failed_export_leaves_no_file(tmp_path) -> None:
    import duckdb

    db = tmp_path / "unrelated.duckdb"
    with duckdb.connect(str(db)) as con:
        con.execute("CREATE TABLE unrelated (x integer)")
    done = paydash(tmp_path, "export", "payments", "--out", "payments.csv", "--db", str(db))
    assert_one_error_line(done, "mart_stripe_payments")
    assert not (tmp_path / "payments.csv").exists()


def test_a_page_past_the_last_says_so(demo, tmp_path) -> None:  # noqa: ANN001
    last = PAYMENTS // 50
    done = paydash(tmp_path, "query", "payments", "--page", str(last), "--json", "--db", demo)
    assert done.returncode == 0 and json.loads(done.stdout)["page"] == last
    for args in (["--page", str(last + 1)], ["--page", str(last + 1), "--json"], ["--page", "1000000000"]):
        done = paydash(tmp_path, "query", "payments", *args, "--db", demo)
        assert_one_error_line(done, f"--page {args[1]} is past the last page, {last} ({PAYMENTS:,} matching payments, "
                                    "50 a page)")
    done = paydash(tmp_path, "query", "payments", "--search", "ch_nobody", "--page", "2", "--db", demo)
    assert_one_error_line(done, "--page 2 is past the last page, 1 (0 matching payments, 50 a page)")
    done = paydash(tmp_path, "query", "payments", "--search", "ch_nobody", "--json", "--db", demo)
    assert done.returncode == 0 and json.loads(done.stdout)["total"] == 0  # page 1 of nothing is no error


@pytest.mark.parametrize(
    "args, needle",
    [
        (["demo", "--no-serve", "--payments", "100000000000000000000"], "--payments must be 1 to 100,000,000"),
        (["demo", "--no-serve", "--payments", "0"], "--payments must be 1 to"),
        (["demo", "--no-serve", "--payments", "10", "--days", "1000000000"], "--days must be 1 to 3,650"),
        (["demo", "--no-serve", "--payments", "10", "--seed", "-1"], "--seed must be 0 or"),
        (["alerts", "status", "--limit", "100000000000000000000000"], "--limit must be 1 to 10,000"),
        (["alerts", "status", "--limit", "-5"], "--limit must be 1 to"),
        (["alerts", "watch", "--interval", "99999999999999999"], "--interval must be 1 to 86,400 seconds"),
        (["serve", "--alerts", "--alerts-interval", "99999999999"], "--alerts-interval must be 1 to 86,400 seconds"),
        (["settings", "--json", "--markdown"], "choose one"),
        (["query", "overview", "--db", "duckdb:///:memory:"], "names no DuckDB file"),
    ],
)
def test_out_of_range_numbers_are_one_error_line(tmp_path, args, needle) -> None:  # noqa: ANN001
    assert_one_error_line(paydash(tmp_path, *args), needle)
    assert not (tmp_path / "data").exists()  # refused before anything was created


def test_debug_shows_the_traceback_of_a_failure(tmp_path) -> None:
    done = paydash(tmp_path, "query", "overview", "--tz", "Mars/Base", "--debug")
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr and "InvalidInput" in done.stderr


def test_a_reader_that_goes_away_is_no_error(demo, tmp_path) -> None:  # noqa: ANN001
    # `paydash export payments --out - | head -1`
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    process = subprocess.Popen([sys.executable, "-m", "paydash", "export", "payments", "--out", "-", "--db", demo],
                               cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=clean)
    assert process.stdout.readline().startswith(b"charge_id,")
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.wait(timeout=120)
    assert stderr == "" and process.returncode == 1


# -- --json on check, settings and users list ------------------------------------------------------------
def test_check_json(demo, tmp_path) -> None:  # noqa: ANN001
    done = paydash(tmp_path, "check", "--json", "--db", demo)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["reachable"] is True and report["database"].endswith("demo.duckdb")
    tables = {t["name"]: t for t in report["tables"]}
    assert tables["mart_stripe_payments"] == {"name": "mart_stripe_payments", "setting": "PAYDASH_PAYMENTS_TABLE",
                                              "present": True, "missing_columns": [], "rows": PAYMENTS, "error": None,
                                              "ok": True}
    assert tables["mart_stripe_payments_daily"]["ok"] is True

    missing = paydash(tmp_path, "check", "--json", "--db", str(tmp_path / "nope.duckdb"))
    assert missing.returncode == 1 and missing.stderr == ""  # the report is the answer; the exit code says "not met"
    report = json.loads(missing.stdout)
    assert report["ok"] is False and report["reachable"] is False and "nope.duckdb" in report["error"]


def test_settings_json(tmp_path) -> None:
    env = {"PAYDASH_DATABASE_URL": "postgresql://reader:s3cret@db.example/analytics", "PAYDASH_PASSWORD": "team-secret",
           "PAYDASH_TIMEZONE": "Europe/Berlin", "PAYDASH_POOL_SIZE": "7"}
    done = paydash(tmp_path, "settings", "--json", env=env)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert "s3cret" not in done.stdout and "team-secret" not in done.stdout
    assert shown["PAYDASH_PASSWORD"] == "***" and "db.example" in shown["PAYDASH_DATABASE_URL"]
    assert shown["PAYDASH_TIMEZONE"] == "Europe/Berlin" and shown["PAYDASH_POOL_SIZE"] == 7
    text = paydash(tmp_path, "settings", env=env)
    assert [line.split("=", 1)[0] for line in text.stdout.splitlines()] == list(shown)  # the same settings either way


def test_users_list_json(tmp_path) -> None:
    done = paydash(tmp_path, "users", "list", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"state_store": str(tmp_path / "data" / "state.sqlite"), "users": []}
    for name, role in (("bob", "viewer"), ("alice", "admin")):
        added = paydash(tmp_path, "users", "add", name, "--role", role, "--password-stdin", stdin=f"{name}-password-1\n")
        assert added.returncode == 0, added.stderr
    done = paydash(tmp_path, "users", "list", "--json")
    users = json.loads(done.stdout)["users"]
    assert [(u["username"], u["role"]) for u in users] == [("alice", "admin"), ("bob", "viewer")]
    assert all(set(u) == {"username", "role", "created_at"} and u["created_at"] for u in users)
    assert "argon2" not in done.stdout and "password" not in done.stdout


def test_users_add_without_a_terminal_says_how_to_give_the_password(tmp_path) -> None:
    done = paydash(tmp_path, "users", "add", "carol")  # stdin is a pipe, not a terminal
    assert_one_error_line(done, "no terminal", "--password-stdin")
    assert json.loads(paydash(tmp_path, "users", "list", "--json").stdout)["users"] == []


# -- shell completion, through main() -----------------------------------------------------------------------
def complete(tmp_path: Path, words: str) -> list[str]:
    """What bash completion offers after `words` (the protocol typer's bash script speaks)."""
    parts = words.split(" ")
    done = paydash(tmp_path, env={"_PAYDASH_COMPLETE": "complete_bash", "COMP_WORDS": words,
                                  "COMP_CWORD": str(len(parts) - 1)})
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout.split()


def test_completion_protocol(tmp_path) -> None:
    assert complete(tmp_path, "paydash que") == ["query"]
    assert set(complete(tmp_path, "paydash query pay")) == {"payments", "payment"}
    assert "--status" in complete(tmp_path, "paydash query payments --st")
    assert "--json" in complete(tmp_path, "paydash check --")
    assert not (tmp_path / "data").exists()  # completing opens no database or state store


def test_show_and_install_completion(tmp_path) -> None:
    no_detection = {"_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1", "HOME": str(tmp_path)}
    shown = paydash(tmp_path, "--show-completion", "bash", env=no_detection)
    assert shown.returncode == 0, shown.stderr
    assert "_PAYDASH_COMPLETE=complete_bash" in shown.stdout and "complete -o default -F _paydash_completion paydash" \
        in shown.stdout
    installed = paydash(tmp_path, "--install-completion", "bash", env=no_detection)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "paydash.sh"
    assert script.read_text().strip() == shown.stdout.strip()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_with_the_shown_script(tmp_path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "paydash"  # `paydash` on the PATH, as after `pip install`
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m paydash "$@"\n')
    wrapper.chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"}
    script = ('eval "$(paydash --show-completion bash)"; COMP_WORDS=(paydash export pay); COMP_CWORD=2; '
              '_paydash_completion paydash; printf "%s\\n" "${COMPREPLY[@]}"')
    done = paydash(tmp_path, "-c", script, env=env, command=("bash",))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["payments"]


# -- hostile values: never a traceback, never "unexpected" ----------------------------------------------
def run_in_process(*args: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from paydash.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            return (exc.code if isinstance(exc.code, int) else 1), out.getvalue(), err.getvalue()
    return 0, out.getvalue(), err.getvalue()


OPTION_TEXT = st.one_of(st.text(max_size=40), st.sampled_from(["0001-01-01", "9999-12-31", "2026-02-29", "-1", "0",
                                                                "99999999999999999999", "UTC", "Mars/Base", "../x", ""]))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(command=st.sampled_from([["query", "overview"], ["query", "daily"], ["query", "payments"], ["query", "failures"]]),
       option=st.sampled_from(["--from", "--to", "--tz", "--funnel", "--status", "--search", "--page", "--card-brand"]),
       value=OPTION_TEXT)
def test_any_option_value_fails_cleanly(demo, monkeypatch, command, option, value) -> None:  # noqa: ANN001
    if option in ("--status", "--search", "--page", "--card-brand") and command != ["query", "payments"]:
        command = ["query", "payments"]
    for name in [n for n in os.environ if n.startswith("PAYDASH_")]:
        monkeypatch.delenv(name)
    code, out, err = run_in_process(*command, option, value, "--db", demo, "--json")
    assert code in (0, 1, 2), (code, err)
    assert "Traceback" not in err and "error: unexpected" not in err, err
    if code == 0:
        json.loads(out)
    elif code == 1:
        assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    else:
        assert err.startswith("Usage: paydash ") and "\nError: " in err, err
