"""Redis health (a real Redis, and a RESP server of our own for AUTH), versions, environment, the report,
and the query layer's own timing of queries."""

from __future__ import annotations

import json
import os
import socket
import socketserver
import threading
from datetime import date
from typing import Iterator

import pytest

from paydash import health
from paydash.queries import overview
from paydash.queries.dates import DateRange
from paydash.settings import Settings
from paydash.warehouse import querylog

REDIS_URL = os.environ.get("PAYDASH_TEST_REDIS", "redis://127.0.0.1:6379/0")
IN_CI = os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def test_a_real_redis_answers() -> None:
    result = health.redis_health(REDIS_URL)
    if not result.ok and "cannot reach" in result.message:
        message = f"Redis at {REDIS_URL} is not running ({result.message}): start it with `redis-server --daemonize yes`"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    assert result.ok and result.ms is not None and result.ms >= 0
    assert result.version and result.version[0].isdigit()
    assert result.where == "127.0.0.1:6379/0"


class FakeRedis(socketserver.StreamRequestHandler):
    """Answers AUTH (password 'sesame'), SELECT, PING and INFO the way Redis does."""

    commands: list[list[str]] = []

    def handle(self) -> None:
        while True:
            line = self.rfile.readline()
            if not line:
                return
            args = []
            for _ in range(int(line[1:])):
                size = int(self.rfile.readline()[1:])
                args.append(self.rfile.read(size + 2)[:-2].decode())
            FakeRedis.commands.append(args)
            name = args[0].upper()
            if name == "AUTH":
                self.wfile.write(b"+OK\r\n" if args[-1] == "sesame" else b"-WRONGPASS invalid username-password pair\r\n")
            elif name in ("SELECT",):
                self.wfile.write(b"+OK\r\n")
            elif name == "PING":
                self.wfile.write(b"+PONG\r\n")
            elif name == "INFO":
                body = b"# Server\r\nredis_version:7.9.1\r\nredis_mode:standalone\r\n"
                self.wfile.write(b"$%d\r\n%s\r\n" % (len(body), body))


@pytest.fixture
def fake_redis() -> Iterator[int]:
    FakeRedis.commands = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), FakeRedis)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_redis_with_a_password_and_a_database(fake_redis: int) -> None:
    result = health.redis_health(f"redis://:sesame@127.0.0.1:{fake_redis}/2")
    assert result.ok and result.version == "7.9.1" and result.where == f"127.0.0.1:{fake_redis}/2"
    assert FakeRedis.commands[:3] == [["AUTH", "sesame"], ["SELECT", "2"], ["PING"]]
    assert "sesame" not in repr(result)


def test_redis_with_a_wrong_password_says_so(fake_redis: int) -> None:
    result = health.redis_health(f"redis://app:wrong@127.0.0.1:{fake_redis}/0")
    assert not result.ok
    assert FakeRedis.commands[0] == ["AUTH", "app", "wrong"]
    assert "refused" in result.message and "PAYDASH_REDIS_URL" in result.message and "wrong" not in result.message


def test_redis_that_is_not_running_says_where() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = health.redis_health(f"redis://127.0.0.1:{port}/0", timeout=2)
    assert not result.ok and f"cannot reach Redis at 127.0.0.1:{port}/0" in result.message


@pytest.mark.parametrize("url, message", [("http://x", "must start with redis://"), ("redis://h:6379/abc", "must be a number")])
def test_a_bad_redis_url_says_what_is_wrong(url: str, message: str) -> None:
    result = health.redis_health(url)
    assert not result.ok and message in result.message


def test_environment_shows_secrets_only_as_set_or_not() -> None:
    settings = Settings({"password": "hunter22", "database_url": "postgresql://app:s3cret@db:5432/pay",
                         "redis_url": "redis://:pw@127.0.0.1:6379/0"})
    rows = {r["setting"]: r for r in health.environment(settings)}
    assert rows["PAYDASH_PASSWORD"]["value"] == "set"
    assert rows["PAYDASH_STRIPE_WEBHOOK_SECRET"]["value"] == "not set"
    assert rows["PAYDASH_REDIS_URL"]["value"] == "set"
    assert rows["PAYDASH_DATABASE_URL"]["value"] == "postgresql://app:***@db:5432/pay"
    assert rows["PAYDASH_TIMEZONE"] == {"setting": "PAYDASH_TIMEZONE", "value": "UTC", "default": "yes"}
    text = json.dumps(rows)
    assert "hunter22" not in text and "s3cret" not in text and ":pw@" not in text


def test_versions_name_python_and_streamlit() -> None:
    versions = health.package_versions()
    assert versions["Python"].count(".") == 2 and versions["streamlit"][0].isdigit()


def test_report_renders_as_json_and_markdown() -> None:
    report = {"generated_at": date(2026, 3, 1), "generated_by": "alice", "database": {"ok": True, "response_ms": 1.23456},
              "tables": [{"table": "mart|x", "rows": 3}], "slowest_recent_queries": []}
    data = json.loads(health.report_json(report))
    assert data["database"]["response_ms"] == 1.23456 and data["generated_at"] == "2026-03-01"
    markdown = health.report_markdown(report)
    assert "# paydash system report" in markdown and "## Tables" in markdown
    assert "| mart\\|x | 3 |" in markdown


# -- the query layer times its own queries ---------------------------------------------------
def test_reads_are_timed_and_labelled_by_the_query_function(make_warehouse, charge) -> None:  # noqa: ANN001
    wh = make_warehouse([charge("ch_1", "2026-03-01 10:00")])
    querylog.RECENT.clear()
    with wh.read() as conn:
        overview.overview(conn, wh.marts, DateRange(date(2026, 3, 1), date(2026, 3, 1)), mart_tz="UTC")
    timed = querylog.RECENT.recent()
    assert timed and all(q.ms >= 0 for q in timed)
    assert any(q.label.startswith("overview.") for q in timed), [q.label for q in timed]
    assert all(len(q.statement) <= 200 for q in timed)


def test_the_ring_buffer_keeps_the_last_entries_and_sorts_the_slowest() -> None:
    log = querylog.QueryLog(capacity=3)
    for i, ms in enumerate([5.0, 50.0, 1.0, 20.0]):
        log.add(querylog.TimedQuery(f"q{i}", ms, None, "SELECT 1", "duckdb"))  # type: ignore[arg-type]
    assert [q.label for q in log.recent()] == ["q1", "q2", "q3"]
    assert [q.label for q in log.slowest(2)] == ["q1", "q3"]
