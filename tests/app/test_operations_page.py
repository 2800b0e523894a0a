"""The Operations page (AppTest): its tiles are the query layer's numbers as of the data's "now", and a missing mart is explained."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime
from pathlib import Path

import duckdb
import pytest

from paydash.app import format as fmt
from paydash.queries import operations
from paydash.settings import Settings
from paydash.sources.demo import DemoSpec, build_demo_database
from paydash.warehouse.engine import Warehouse

# the data stops an hour into the demo's issuer outage (2026-11-11 14:00 UTC): the page's "now" is then
SPEC = DemoSpec(payments=12_000, days=60, seed=5, end=date(2026, 11, 20), now=datetime(2026, 11, 11, 15, 0))


@pytest.fixture(scope="module")
def ops_db(tmp_path_factory) -> Path:  # noqa: ANN001
    path = tmp_path_factory.mktemp("ops") / "ops.duckdb"
    wh = Warehouse(str(path), Settings(), read_only=False)
    try:
        build_demo_database(wh, SPEC, show_progress=False)
    finally:
        wh.dispose()
    return path


@pytest.fixture
def ops_page(env, ops_db, page):  # noqa: ANN001, ANN201
    env.setenv("PAYDASH_DATABASE_URL", str(ops_db))
    return page("operations")


def vega_specs(at) -> list[dict]:  # noqa: ANN001
    def walk(node):  # noqa: ANN001, ANN202
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return [json.loads(e.proto.spec) for e in walk(at._tree.root) if getattr(e, "type", "") == "vega_lite_chart"]


def expected_snapshot(db: Path) -> tuple[datetime, dict]:
    wh = Warehouse(str(db), Settings(), read_only=True)
    try:
        with wh.read() as conn:
            latest = operations.latest_event_time(conn, wh.marts)
            now, from_data = operations.as_of(latest, datetime(2030, 1, 1))
            assert from_data
            return now, operations.snapshot(conn, wh.marts, now)
    finally:
        wh.dispose()


def test_tiles_are_the_queries_numbers_as_of_the_latest_event(ops_page, ops_db) -> None:
    at = ops_page.run()
    assert not at.exception, at.exception
    now, snap = expected_snapshot(ops_db)
    assert now == datetime(2026, 11, 11, 15, 0)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Checkout success (15 min)"] == fmt.percent(snap["checkout_success_rate_15m"])
    assert snap["checkout_success_rate_15m"] < 0.97  # in the outage
    assert metrics["Expired sessions (1 h)"] == fmt.count(snap["expired_sessions_1h"])
    assert metrics["Sessions active"] == fmt.count(snap["active_sessions"])
    assert metrics["Sessions pending"] == fmt.count(snap["pending_sessions"])
    assert metrics["Retry backlog"] == fmt.count(snap["retry_backlog"])
    # "now" comes from the data, and the page says so
    assert any("older than now" in i.value for i in at.info)
    assert any(fmt.local_time(now, "UTC") in c.value for c in at.caption)
    # the panels are drawn, the refresh controls are there and auto-refresh is on by default
    specs = vega_specs(at)
    assert len(specs) == 8  # success, expired, extensions, retries, heatmap, p95, receipt errors, lag
    success = next(s for s in specs if s["layer"][0]["encoding"]["y"].get("title") == "Success rate (15 min)"
                   if "layer" in s)
    assert success["layer"][1]["data"]["values"] == [{"target": 0.97}]
    assert at.toggle(key="operations_auto").value is True
    assert at.button(key="operations_refresh")
    tables = [d.value for d in at.dataframe]
    assert any(list(t.columns[:1]) == ["Reason"] and len(t) > 0 for t in tables)
    receipts = next(t for t in tables if "Edge location" in t.columns)
    assert len(receipts) == 20 and receipts["Download status"].ne(fmt.EMPTY).all()


def test_switching_auto_refresh_off_keeps_the_page(ops_page) -> None:
    at = ops_page.run()
    at.toggle(key="operations_auto").set_value(False).run()
    assert not at.exception and at.toggle(key="operations_auto").value is False
    assert "Checkout success (15 min)" in {m.label for m in at.metric}


def test_a_missing_operations_mart_is_explained(env, ops_db, page, tmp_path) -> None:  # noqa: ANN001
    copy = tmp_path / "no_ops.duckdb"
    shutil.copy(ops_db, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute("DROP TABLE mart_operations_events")
    env.setenv("PAYDASH_DATABASE_URL", str(copy))
    at = page("operations").run()
    assert not at.exception
    warning = " ".join(w.value for w in at.warning)
    assert "mart\\_operations\\_events" in warning and "paydash demo" in warning and "POST /events" in warning
    assert not at.metric
