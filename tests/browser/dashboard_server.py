"""Running `paydash serve` for the browser tests: a free port, the real command, health polling."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

# Debian's Chromium (STACK-NOTES); PAYDASH_TEST_CHROMIUM points elsewhere
CHROMIUM = Path(os.environ.get("PAYDASH_TEST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
PASSWORD = "browser-test-password"
# tall enough that a full-page screenshot holds a whole page (Streamlit scrolls inside the app)
VIEWPORT = {"width": 1400, "height": 2000}
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}
# Waiting (not asserting) limits: generous, since the machine may be busy.
START_LIMIT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path
    printed_password: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            # `paydash serve` is one process (uvicorn); signalling the group also catches any child
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_server(db: Path, workdir: Path, extra_env: dict[str, str], args: list[str] = ()) -> Server:  # noqa: B006
    """`paydash serve` on a free port, waited for until healthy (and announced)."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update({"PORT": str(port), "PYTHONUNBUFFERED": "1", **extra_env})
    log = workdir / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1", "--db", str(db), *args],
            cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    server = Server(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + START_LIMIT
    while True:
        if process.poll() is not None:
            pytest.fail(f"paydash serve exited with {process.returncode}:\n{server.output()}", pytrace=False)
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as response:
                healthy = response.read().strip() == b"ok"
        except OSError:
            healthy = False
        # run_server prints its announcement after the same health check
        if healthy and "paydash is running at" in server.output():
            break
        if time.monotonic() > deadline:
            server.stop()
            pytest.fail(f"paydash serve did not become healthy:\n{server.output()}", pytrace=False)
        time.sleep(0.1)
    found = re.search(r"demo login: password (\S+)", server.output())
    server.printed_password = found.group(1) if found else None
    return server
