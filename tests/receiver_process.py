"""`paydash webhooks` as a subprocess on a free loopback port, for the tests that deliver to it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from builders import not_on_clickhouse
from paydash.sources.stripe.webhooks import sign

SECRET = "whsec_test_secret"
OLD_SECRET = "whsec_old_secret"


def header(payload: bytes, secret: str = SECRET, timestamp: int | None = None, extra: str = "") -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={sign(payload, secret, timestamp)}{extra}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Receiver:
    url: str
    db: Any
    proc: subprocess.Popen
    log: Path

    def post(self, payload: bytes, signature: str | None, client: httpx.Client | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        if signature is not None:
            headers["Stripe-Signature"] = signature
        return (client or httpx).post(self.url + "/webhooks/stripe", content=payload, headers=headers, timeout=60)

    def deliver(self, event: dict, secret: str = SECRET, client: httpx.Client | None = None) -> httpx.Response:
        payload = json.dumps(event).encode()
        return self.post(payload, header(payload, secret), client)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


RECEIVER_NOT_ON_CLICKHOUSE = (
    "the webhook receiver (and its POST /events) upserts rows one event at a time under an advisory lock; "
    "ClickHouse would need an append-and-collapse design, so `paydash serve` refuses to run the receiver on a "
    "ClickHouse URL (a ClickHouse pipeline writes the contract's marts instead)"
)


def start_receiver(db, tmp: Path, **env: str) -> Receiver:  # noqa: ANN001
    not_on_clickhouse(db.kind, RECEIVER_NOT_ON_CLICKHOUSE)
    port = _free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_") or k == "PAYDASH_TEST_PG"}
    environ.update({
        "PAYDASH_STRIPE_WEBHOOK_SECRET": f"{SECRET},{OLD_SECRET}",
        "PAYDASH_PAYMENTS_TABLE": db.settings.payments_table,
        "PAYDASH_DAILY_TABLE": db.settings.daily_table,
        "PAYDASH_WRITE_LOCK_WAIT": "1",
        "PAYDASH_WEBHOOK_MAX_BODY": "65536",
        **env,
    })
    log = tmp / f"receiver-{port}.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paydash.cli", "webhooks", "--address", "127.0.0.1", "--port", str(port), "--db", db.url],
            stdout=out, stderr=subprocess.STDOUT, env=environ, cwd=tmp,
        )
    receiver = Receiver(f"http://127.0.0.1:{port}", db, proc, log)
    # wait for the server's own readiness, not a fixed sleep; the bound only ends a hung start
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"the receiver exited with {proc.returncode}:\n{receiver.output()}")
        try:
            if httpx.get(receiver.url + "/healthz", timeout=5).status_code == 200:
                return receiver
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            receiver.stop()
            raise AssertionError(f"the receiver did not answer /healthz:\n{receiver.output()}")
        time.sleep(0.1)


