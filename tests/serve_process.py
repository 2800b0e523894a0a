"""A real `paydash serve` in a subprocess for the HTTP tests: a free port, the CLI, readiness polling."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

START_LIMIT = 120.0  # a waiting limit (never an assertion): the machine may be busy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process's environment without the developer's PAYDASH_* settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update({"PYTHONUNBUFFERED": "1", **extra})
    env.pop("PORT", None)
    return env


@dataclass
class Served:
    url: str
    port: int
    process: subprocess.Popen
    log: Path
    workdir: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def client(self, source: str | None = None, **options) -> httpx.Client:  # noqa: ANN003
        """An httpx client to this server, from the loopback `source` address when given."""
        transport = httpx.HTTPTransport(local_address=source) if source else None
        return httpx.Client(base_url=self.url, transport=transport, follow_redirects=False, timeout=60, **options)

    def stop(self) -> int:
        """SIGTERM, as a platform stops a process; its exit code."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        return self.process.returncode


def start_serve(workdir: Path, db: str, env: dict[str, str] | None = None, args: tuple[str, ...] = (),
                port: int | None = None, wait: bool = True) -> Served:
    """`paydash serve --address 127.0.0.1 --port P --db DB` in `workdir`, waited for until it says it runs."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    log = workdir / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1", "--port", str(port), "--db", db,
             *args],
            cwd=workdir, env=clean_env(**(env or {})), stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    served = Served(f"http://127.0.0.1:{port}", port, process, log, workdir)
    if not wait:
        return served
    deadline = time.monotonic() + START_LIMIT
    while "paydash is running at" not in served.output():
        if process.poll() is not None:
            raise AssertionError(f"paydash serve exited with {process.returncode}:\n{served.output()}")
        if time.monotonic() > deadline:
            served.stop()
            raise AssertionError(f"paydash serve did not start:\n{served.output()}")
        time.sleep(0.1)
    return served


def demo_password(served: Served) -> str | None:
    found = re.search(r"demo login: password (\S+)", served.output())
    return found.group(1) if found else None


def sign_in(served: Served, password: str, username: str | None = None, source: str | None = None,
            next_path: str = "/") -> str:
    """Sign in through the form; the session cookie's token."""
    form = {"password": password, "next": next_path}
    if username is not None:
        form["username"] = username
    with served.client(source) as client:
        response = client.post("/auth/login", data=form)
    assert response.status_code == 303, (response.status_code, response.text[:500])
    token = response.cookies.get("paydash_session")
    assert token
    return token


# -- Streamlit's websocket ------------------------------------------------------------------------
class Refused(Exception):
    def __init__(self, status: int | None) -> None:
        super().__init__(f"refused ({status})")
        self.status = status


def run_async(coroutine):  # noqa: ANN001, ANN201
    """`asyncio.run` in a thread of its own: after the browser tests, Playwright keeps an event loop
    running on the main thread, and asyncio.run refuses to start inside one."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coroutine).result()


def run_page(served: Served, token: str | None, page: str = "", origin: str | None = None,
             limit: float = 120.0) -> bytes:
    """Open /_stcore/stream (cookie, Origin as given), run `page` (its url path; "" = the default
    page) and return every ForwardMsg it sent, serialised and concatenated, up to script_finished.
    Raises Refused when the handshake is refused."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    headers = {}
    if token:
        headers["Cookie"] = f"paydash_session={token}"
    if origin:
        headers["Origin"] = origin

    async def talk() -> bytes:
        try:
            ws = await websockets.connect(f"ws://127.0.0.1:{served.port}/_stcore/stream",
                                          additional_headers=headers, subprotocols=["streamlit"], open_timeout=60)
        except websockets.exceptions.InvalidStatus as exc:
            raise Refused(exc.response.status_code) from None
        received = bytearray()
        async with ws:
            msg = BackMsg()
            msg.rerun_script.query_string = ""
            msg.rerun_script.page_name = page
            await ws.send(msg.SerializeToString())
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                data = await asyncio.wait_for(ws.recv(), limit)
                received += data
                forward = ForwardMsg()
                forward.ParseFromString(data)
                if forward.WhichOneof("type") == "script_finished":
                    break
        return bytes(received)

    return run_async(talk())


def new_session_config(served: Served, token: str):  # noqa: ANN201
    """The `Config` Streamlit sends a new browser session (what the frontend obeys)."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    async def talk():  # noqa: ANN202
        async with websockets.connect(f"ws://127.0.0.1:{served.port}/_stcore/stream",
                                      additional_headers={"Cookie": f"paydash_session={token}"},
                                      subprotocols=["streamlit"], open_timeout=60) as ws:
            msg = BackMsg()
            msg.rerun_script.query_string = ""
            await ws.send(msg.SerializeToString())
            while True:
                forward = ForwardMsg()
                forward.ParseFromString(await asyncio.wait_for(ws.recv(), 120))
                if forward.WhichOneof("type") == "new_session":
                    return forward.new_session.config

    return run_async(talk())
