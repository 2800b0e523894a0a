"""Helpers of the alert tests: operations events written by hand, and loopback HTTP servers
standing in for PagerDuty, Slack and Opsgenie that record what they receive and check its shape.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterable
from urllib.parse import parse_qs, urlsplit

import pyarrow as pa

from builders import as_utc, rows_to_arrow
from paydash.warehouse import load

OPS_ARROW_SCHEMA = pa.schema([
    ("event_id", pa.string()), ("event_name", pa.string()), ("occurred_at", pa.timestamp("us")),
    ("received_at", pa.timestamp("us")), ("source", pa.string()), ("checkout_session_id", pa.string()),
    ("payment_intent_id", pa.string()), ("receipt_id", pa.string()), ("customer_id", pa.string()),
    ("attempt_number", pa.int32()), ("outcome", pa.string()), ("duration_ms", pa.int32()),
    ("error", pa.string()), ("properties", pa.string()),
])

_ids = itertools.count(1)


def ops_event(event_name: str, occurred_at: datetime | str, outcome: str | None = None, *,
              received_at: datetime | str | None = None, source: str = "demo", duration_ms: int | None = None,
              **columns: Any) -> dict[str, Any]:
    """One operations-mart row (received when it occurred unless said otherwise)."""
    occurred = as_utc(occurred_at)
    row = {name: None for name in OPS_ARROW_SCHEMA.names}
    row.update(event_id=f"ev_{next(_ids)}", event_name=event_name, occurred_at=occurred,
               received_at=as_utc(received_at) if received_at is not None else occurred, source=source,
               outcome=outcome, duration_ms=duration_ms, properties="{}", **columns)
    return row


def build_ops_warehouse(databases, events: Iterable[dict], payments: Iterable[dict] = (), **settings_changes):  # noqa: ANN001, ANN201
    """A read-only Warehouse over a charge mart and an operations mart loaded with these rows."""
    db = databases.new()
    writer = db.warehouse(read_only=False, **settings_changes)
    try:
        load.recreate_marts(writer)
        table = writer.marts.operations_events
        with writer.write() as conn:
            table.drop(conn, checkfirst=True)
            table.create(conn)
        events = list(events)
        if events:
            load.load_arrow(writer, table, pa.Table.from_pylist(events, schema=OPS_ARROW_SCHEMA))
        payments = rows_to_arrow(payments)
        if payments.num_rows:
            load.load_arrow(writer, writer.marts.payments, payments)
    finally:
        writer.dispose()
    wh = databases.track(db.warehouse(**settings_changes))
    wh.test_database = db  # the tests' CLI runs need the URL and table names
    return wh


# -- loopback services -----------------------------------------------------------------------
@dataclass
class Received:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    at: float


@dataclass
class Reply:
    status: int = 202
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: str = '{"status": "success"}'


class Sink:
    """An HTTP server on 127.0.0.1 that records every POST and answers from a script (then 202)."""

    def __init__(self, script: Iterable[Reply] = ()) -> None:
        self.script = list(script)
        self.received: list[Received] = []
        self.lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                parts = urlsplit(self.path)
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                with sink.lock:
                    sink.received.append(Received("POST", parts.path, parse_qs(parts.query),
                                                  {k: v for k, v in self.headers.items()}, body, time.monotonic()))
                    reply = sink.script.pop(0) if sink.script else Reply()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    data = reply.body.encode()
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
                    pass

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[Any]:
        with self.lock:
            return [r.body for r in self.received]


# -- what each service accepts (their API references) ------------------------------------------
def _iso8601(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def check_pagerduty(body: dict, routing_key: str) -> None:
    """PagerDuty Events API v2: https://developer.pagerduty.com/api-reference/368ae3d938c9e-send-an-event-to-pager-duty"""
    assert body["routing_key"] == routing_key
    assert body["event_action"] in {"trigger", "acknowledge", "resolve"}
    assert isinstance(body["dedup_key"], str) and 0 < len(body["dedup_key"]) <= 255
    if body["event_action"] == "trigger":
        payload = body["payload"]
        assert isinstance(payload["summary"], str) and 0 < len(payload["summary"]) <= 1024
        assert isinstance(payload["source"], str) and payload["source"]
        assert payload["severity"] in {"critical", "error", "warning", "info"}
        assert _iso8601(payload["timestamp"]).tzinfo is not None
        assert isinstance(payload.get("custom_details", {}), dict)
        for link in body.get("links", []):
            assert set(link) <= {"href", "text"} and link["href"].startswith("http")
    allowed = {"routing_key", "event_action", "dedup_key", "payload", "images", "links", "client", "client_url"}
    assert set(body) <= allowed, set(body) - allowed


def check_slack(body: dict, link: str) -> None:
    """Slack incoming webhook with Block Kit: text (fallback) plus section and context blocks."""
    assert isinstance(body["text"], str) and body["text"]
    assert set(body) <= {"text", "blocks", "attachments", "mrkdwn", "thread_ts", "unfurl_links", "unfurl_media"}
    assert 0 < len(body["blocks"]) <= 50
    for block in body["blocks"]:
        assert block["type"] in {"section", "context", "divider", "header", "actions"}
        if block["type"] == "section":
            assert block["text"]["type"] in {"mrkdwn", "plain_text"} and 0 < len(block["text"]["text"]) <= 3000
        if block["type"] == "context":
            assert 0 < len(block["elements"]) <= 10
            assert all(e["type"] in {"mrkdwn", "plain_text", "image"} for e in block["elements"])
    assert any(f"<{link}|" in b.get("text", {}).get("text", "") for b in body["blocks"])


def check_opsgenie_create(received: Received, api_key: str) -> None:
    """Opsgenie Alert API, create: POST /v2/alerts (https://docs.opsgenie.com/docs/alert-api#create-alert)."""
    assert received.headers["Authorization"] == f"GenieKey {api_key}"
    assert received.path == "/v2/alerts"
    body = received.body
    assert isinstance(body["message"], str) and 0 < len(body["message"]) <= 130
    assert 0 < len(body["alias"]) <= 512
    assert body["priority"] in {"P1", "P2", "P3", "P4", "P5"}
    assert len(body.get("description", "")) <= 15000
    assert len(body.get("tags", [])) <= 20 and all(isinstance(t, str) for t in body.get("tags", []))
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in body.get("details", {}).items())
    assert len(body.get("source", "")) <= 100
    assert set(body) <= {"message", "alias", "description", "responders", "visibleTo", "actions", "tags",
                         "details", "entity", "source", "priority", "user", "note"}


def check_opsgenie_close(received: Received, api_key: str, alias: str) -> None:
    """Opsgenie Alert API, close: POST /v2/alerts/{alias}/close?identifierType=alias."""
    assert received.headers["Authorization"] == f"GenieKey {api_key}"
    assert received.path == f"/v2/alerts/{alias}/close"
    assert received.query == {"identifierType": ["alias"]}
    assert set(received.body) <= {"user", "source", "note"}
