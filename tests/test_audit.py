"""The audit log (in the state store, outside the warehouse; SQLite and PostgreSQL): writing, filtering,
paging, CSV export."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from pathlib import Path

import pytest

from paydash.csv_safe import csv_bytes, safe_cell
from paydash.queries.dates import DateRange
from paydash.state import StateStore, audit, schema
from paydash.state.audit import AuditFilter, AuditLog
from state_helpers import state_kind, state_pg, state_url, store  # noqa: F401 - fixtures


@pytest.fixture
def log(store: StateStore) -> AuditLog:
    log = store.audit
    entries = [
        ("alice", audit.LOGIN, "role admin", datetime(2026, 3, 1, 9)),
        ("mallory", audit.LOGIN_FAILED, "Wrong user name or password.", datetime(2026, 3, 1, 23, 30)),
        ("alice", audit.EXPORT, "payments CSV, 12 rows", datetime(2026, 3, 2, 10)),
        ("bob", audit.LOGIN, "role viewer", datetime(2026, 3, 3, 8)),
        ("alice", audit.CLEAR_CACHE, "=HYPERLINK(\"http://evil\")", datetime(2026, 3, 3, 9)),
    ]
    for who, action, detail, at in entries:
        assert log.record(who, action, detail, now=at)
    return log


def test_entries_come_back_newest_first(log: AuditLog) -> None:
    page = log.page(AuditFilter())
    assert page.total == 5 and page.pages == 1
    assert [(e.username, e.action) for e in page.entries] == [
        ("alice", "clear_cache"), ("bob", "login"), ("alice", "export"), ("mallory", "login_failed"), ("alice", "login")]
    assert page.entries[-1].at == datetime(2026, 3, 1, 9)


@pytest.mark.parametrize(
    "filters, expected",
    [
        (AuditFilter(username="alice"), ["clear_cache", "export", "login"]),
        (AuditFilter(action=audit.LOGIN), ["login", "login"]),
        (AuditFilter(username="alice", action=audit.EXPORT), ["export"]),
        (AuditFilter(date_range=DateRange(date(2026, 3, 1), date(2026, 3, 1), "UTC")), ["login_failed", "login"]),
        # 23:30 UTC on 1 March is 2 March in Berlin
        (AuditFilter(date_range=DateRange(date(2026, 3, 2), date(2026, 3, 2), "Europe/Berlin")), ["export", "login_failed"]),
        (AuditFilter(username="nobody"), []),
    ],
)
def test_filters(log: AuditLog, filters: AuditFilter, expected: list[str]) -> None:
    assert [e.action for e in log.page(filters).entries] == expected


def test_paging(log: AuditLog) -> None:
    first, last = log.page(AuditFilter(), 1, page_size=2), log.page(AuditFilter(), 3, page_size=2)
    assert (first.pages, len(first.entries), len(last.entries)) == (3, 2, 1)
    assert last.entries[0].username == "alice" and last.entries[0].action == "login"
    assert log.page(AuditFilter(), 99, page_size=2).page == 3  # past the end: the last page


def test_choices(log: AuditLog) -> None:
    choices = log.choices()
    assert choices["username"] == ["alice", "bob", "mallory"]
    assert set(audit.ACTIONS) <= set(choices["action"])


def test_csv_export_is_whole_and_formula_safe(log: AuditLog) -> None:
    body = b"".join(log.csv_chunks(AuditFilter(username="alice"))).decode()
    rows = list(csv.reader(io.StringIO(body)))
    assert rows[0] == list(audit.COLUMNS)
    assert [r[3] for r in rows[1:]] == ["clear_cache", "export", "login"]
    assert rows[1][4] == "'=HYPERLINK(\"http://evil\")"


def test_a_broken_store_does_not_break_what_it_records(tmp_path: Path, caplog) -> None:  # noqa: ANN001
    (tmp_path / "file").write_text("not a directory")
    broken = StateStore(str(tmp_path / "file" / "state.sqlite")).audit
    assert broken.record("alice", audit.LOGIN) is False
    assert "could not write the audit log entry" in caplog.text
    down = StateStore("postgresql://postgres@127.0.0.1:1/state", connect_timeout=1).audit
    assert down.record("alice", audit.LOGOUT) is False


def test_the_export_streams_many_entries(store: StateStore) -> None:
    with store.write() as conn:  # more than one chunk of rows
        conn.execute(schema.audit_log.insert(), [{"at": f"2026-03-01 10:00:{i % 60:02d}.{i:06d}", "username": f"u{i % 7}",
                                                  "action": audit.EXPORT, "detail": f"#{i}"} for i in range(12_000)])
    rows = list(csv.reader(io.StringIO(b"".join(store.audit.csv_chunks(AuditFilter())).decode())))
    assert len(rows) == 12_001 and len({r[4] for r in rows[1:]}) == 12_000


@pytest.mark.parametrize(
    "value, expected",
    [("=1+1", "'=1+1"), ("+1", "'+1"), ("-1", "'-1"), ("@SUM(A1)", "'@SUM(A1)"), ("\tx", "'\tx"), ("plain", "plain"),
     (None, ""), (-5, -5), (1.5, 1.5), (date(2026, 3, 1), "2026-03-01"), (float("nan"), "")],
)
def test_safe_cell(value, expected) -> None:  # noqa: ANN001
    assert safe_cell(value) == expected


def test_csv_bytes_quotes_and_protects_every_cell() -> None:
    body = csv_bytes(["=name", "n"], [("a,b", 1), ("-2", 2)]).decode()
    assert body == "'=name,n\n\"a,b\",1\n'-2,2\n"
