"""The Overview page (AppTest): its numbers are the query layer's, its controls change them."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, time, timedelta

import pyarrow as pa
import pytest
from streamlit.proto.Metric_pb2 import Metric

from paydash.app import format as fmt
from paydash.app import tables
from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.queries import failures, overview, recovery
from paydash.queries.dates import DateRange, last_n_days, today_in

from dashboard_db import HOSTILE_CODE, HOSTILE_FUNNEL, SCRIPT


def page_now(at) -> datetime | None:  # noqa: ANN001
    """The minute the page cut today at, read from what it says ("today so far, compared up to HH:MM")."""
    for caption in at.caption:
        found = re.search(r"today so far, compared up to (\d\d):(\d\d)", caption.value)
        if found:
            return datetime.combine(today_in("UTC"), time(int(found[1]), int(found[2])))
    return None


def expected(warehouse, rng: DateRange, funnel: str | None = None, at=None) -> dict:  # noqa: ANN001
    """The query layer's numbers for the range, cut where the page `at` says it cut today."""
    now = page_now(at) if at is not None else None
    with warehouse.read() as conn:
        return {
            "totals": overview.overview(conn, warehouse.marts, rng, funnel, mart_tz="UTC", with_refunds=True,
                                        with_disputes=True, now=now),
            "daily": overview.daily_series(conn, warehouse.marts, rng, funnel, mart_tz="UTC"),
            "failures": failures.failure_breakdown(conn, warehouse.marts, rng, funnel),
            "recovery": recovery.recovery(conn, warehouse.marts, rng, funnel),
        }


def cards(at) -> dict[str, tuple[str, str | None]]:  # noqa: ANN001
    return {m.label: (m.value, m.delta or None) for m in at.metric}


def expected_cards(numbers: dict) -> dict[str, tuple[str, str | None]]:
    now, change = numbers["totals"]["current"], numbers["totals"]["change"]
    rec = numbers["recovery"]
    return {
        "Revenue": (fmt.money_compact(now["revenue_usd"]), fmt.relative_change(change["revenue_usd"])),
        "Success rate": (fmt.percent(now["success_rate"]), fmt.points_change(change["success_rate"])),
        "Failed payments": (fmt.count(now["failed"]), fmt.relative_change(change["failed"])),
        "Attempts": (fmt.count(now["attempts"]), fmt.relative_change(change["attempts"])),
        "Recovery rate": (fmt.percent(rec["recovery_rate"]), None),
        "Payment acceptance": (fmt.percent(rec["payment_acceptance"]), None),
        "Recovered revenue": (fmt.money_compact(rec["recovered_usd"]), None),
        "Unrecovered amount": (fmt.money_compact(rec["unrecovered_usd"]), None),
        "Net revenue": (fmt.money_compact(now["net_revenue_usd"]), fmt.relative_change(change["net_revenue_usd"])),
        "Refunds": (fmt.count(now["refunds"]), fmt.relative_change(change["refunds"])),
        "Disputes": (fmt.count(now["disputes"]), fmt.relative_change(change["disputes"])),
        "Dispute rate": (fmt.percent(now["dispute_rate"], 2), fmt.points_change(change["dispute_rate"], 2)),
    }


def table(at, first_column: str):  # noqa: ANN001, ANN201
    found = [d.value for d in at.dataframe if list(d.value.columns[:1]) == [first_column]]
    assert len(found) == 1, f"expected one table starting with {first_column!r}"
    return found[0]


def charts(at) -> dict[str, tuple[dict, list[dict]]]:  # noqa: ANN001
    """The Vega-Lite charts by name: (spec, rows of its data)."""

    def walk(node):  # noqa: ANN001, ANN202
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    found = {}
    for element in walk(at._tree.root):
        if getattr(element, "type", "") != "vega_lite_chart":
            continue
        spec = json.loads(element.proto.spec)
        rows = pa.ipc.open_stream(element.proto.data.data).read_all().to_pylist()
        name = "daily" if "layer" in spec else "donut" if spec["mark"]["type"] == "arc" else "recovery"
        assert name not in found
        found[name] = (spec, rows)
    return found


def chart(at, name: str) -> tuple[dict, list[dict]]:  # noqa: ANN001
    found = charts(at)
    assert name in found, f"no {name} chart; found {list(found)}"
    return found[name]


def rows_of(at, name: str) -> list[dict]:  # noqa: ANN001
    return chart(at, name)[1]


def test_cards_charts_and_table_show_the_query_layers_numbers(page, warehouse) -> None:  # noqa: ANN001
    at = page("overview").run()
    assert not at.exception and not at.error
    numbers = expected(warehouse, last_n_days(30, "UTC"), at=at)
    assert page_now(at) is not None  # the range ends today: today so far
    assert numbers["totals"]["current"]["attempts"] > 1000  # the data is there, the test can fail
    assert cards(at) == expected_cards(numbers)
    captions = [c.value for c in at.caption]
    assert f"{fmt.money(numbers['totals']['current']['revenue_usd'])} exactly" in captions
    assert f"{fmt.money(numbers['totals']['current']['failed_amount_usd'])} failed amount" in captions

    spec, rows = chart(at, "daily")
    bars, line = spec["layer"]
    assert bars["mark"]["type"] == "bar" and line["mark"]["type"] == "line"
    assert spec["resolve"]["scale"]["y"] == "independent"  # the success rate has its own axis
    assert [r["date"] for r in rows] == [d["date"] for d in numbers["daily"]]
    assert [r["revenue_usd"] for r in rows] == [float(d["revenue_usd"]) for d in numbers["daily"]]
    assert [r["success_rate"] for r in rows] == [d["success_rate"] for d in numbers["daily"]]
    assert [r["date"] for r in rows if r["so_far"]] == [today_in("UTC").isoformat()]  # today's bar is today so far

    spec, rows = chart(at, "donut")
    assert spec["mark"]["innerRadius"] > 0
    assert [(r["category"], r["failures"]) for r in rows] == [
        (c["failure_category"], c["failures"]) for c in numbers["failures"]["by_category"]
    ]

    _, rows = chart(at, "recovery")
    assert [r["recovery_rate"] for r in rows] == [d["recovery_rate"] for d in numbers["recovery"]["by_day"]]

    shown = table(at, "Failure reason")
    want = tables.top_failure_reasons(numbers["failures"]["by_code"])
    assert shown.drop(columns="Payments").to_dict("records") == want.to_dict("records")
    assert list(shown.columns[:4]) == ["Failure reason", "Category", "Failures", "Lost amount (USD)"]
    assert "Recommended action" in shown.columns

    # every failure reason and category leads to the explorer filtered to its failed payments of the range
    rng = last_n_days(30, "UTC")
    span = f"from={rng.start.isoformat()}&to={rng.end.isoformat()}"
    assert shown["Payments"].tolist() == [f"/payments?status=failed&{span}&failure_code={code}"
                                          for code in shown["Failure reason"]]
    # (a category the explorer does not know, like the hostile one here, gets no link)
    assert [r["href"] for r in rows_of(at, "donut")] == [
        f"/payments?status=failed&{span}&failure_category={c['failure_category']}"
        if c["failure_category"] in FAILURE_CATEGORIES else None for c in numbers["failures"]["by_category"]]
    links = next(m.value for m in at.markdown if m.value.startswith("See the payments: "))
    first = numbers["failures"]["by_category"][0]["failure_category"]
    assert f"(/payments?status=failed&{span}&failure_category={first})" in links


@pytest.mark.parametrize("preset", ["Last 7 days", "Last 30 days", "Last 90 days"])
def test_failures_rising_are_shown_as_bad(page, preset: str) -> None:  # noqa: ANN001
    at = page("overview")
    at.session_state["overview_preset"] = preset
    at.run()
    by_label = {m.label: m.proto for m in at.metric}
    # a change that rounds to none (which day of the week the run falls on decides) is grey, with no arrow
    flat = {Metric.MetricDirection.NONE: Metric.MetricColor.GRAY}
    bad_when_up = {Metric.MetricDirection.UP: Metric.MetricColor.RED, Metric.MetricDirection.DOWN: Metric.MetricColor.GREEN,
                   **flat}
    good_when_up = {Metric.MetricDirection.UP: Metric.MetricColor.GREEN, Metric.MetricDirection.DOWN: Metric.MetricColor.RED,
                    **flat}
    failed = by_label["Failed payments"]
    assert failed.color == bad_when_up[failed.direction]
    for label in ("Revenue", "Success rate", "Attempts"):
        assert by_label[label].color == good_when_up[by_label[label].direction]
    for metric in by_label.values():
        if metric.direction == Metric.MetricDirection.NONE and metric.delta:
            assert not any(digit in metric.delta for digit in "123456789"), metric


def test_every_metric_has_its_definition_one_click_away(page) -> None:  # noqa: ANN001
    at = page("overview").run()
    for metric in at.metric:
        assert metric.help, f"{metric.label} has no definition"
    assert "Sum of amount_usd over successful attempts" in {m.label: m for m in at.metric}["Revenue"].help
    assert at.expander[0].label == "How these numbers are defined"


@pytest.mark.parametrize("preset, days", [("Last 7 days", 7), ("Last 90 days", 90)])
def test_range_presets_change_the_numbers(page, warehouse, preset: str, days: int) -> None:  # noqa: ANN001
    at = page("overview").run()
    default_cards = cards(at)
    at.button_group(key="overview_preset").set_value(preset).run()
    assert not at.error
    numbers = expected(warehouse, last_n_days(days, "UTC"), at=at)
    assert cards(at) == expected_cards(numbers)
    assert cards(at)["Attempts"] != default_cards["Attempts"]
    assert len(chart(at, "daily")[1]) == days


def test_custom_range(page, warehouse) -> None:  # noqa: ANN001
    at = page("overview").run()
    at.button_group(key="overview_preset").set_value("Custom").run()
    assert "Pick the first and the last day" in at.info[0].value
    end = last_n_days(1, "UTC").end - timedelta(days=3)
    start = end - timedelta(days=9)
    at.date_input(key="overview_custom").set_value((start, end)).run()
    assert not at.info and not at.error
    assert page_now(at) is None  # a range in the past: whole days
    assert cards(at) == expected_cards(expected(warehouse, DateRange(start, end, "UTC"), at=at))
    assert chart(at, "daily")[1][0]["date"] == start.isoformat()


def test_funnel_filter_changes_the_numbers(page, warehouse) -> None:  # noqa: ANN001
    at = page("overview").run()
    options = at.selectbox(key="overview_funnel").options
    assert options[0] == "All funnels" and "mobile_app" in options
    at.selectbox(key="overview_funnel").select("mobile_app").run()
    numbers = expected(warehouse, last_n_days(30, "UTC"), "mobile_app", at=at)
    all_funnels = expected(warehouse, last_n_days(30, "UTC"), at=at)
    assert cards(at) == expected_cards(numbers)
    assert numbers["totals"]["current"]["attempts"] < all_funnels["totals"]["current"]["attempts"]


def test_data_from_the_warehouse_is_shown_as_text(page) -> None:  # noqa: ANN001
    at = page("overview").run()
    at.button_group(key="overview_preset").set_value("Last 7 days").run()
    assert HOSTILE_FUNNEL in at.selectbox(key="overview_funnel").options
    at.selectbox(key="overview_funnel").select(HOSTILE_FUNNEL).run()
    assert not at.exception and not at.error
    reasons = table(at, "Failure reason")
    assert reasons["Failure reason"].tolist() == [HOSTILE_CODE]
    # Vega draws labels as text: the category goes to it as it is (the browser test checks the drawing)
    assert [r["category"] for r in chart(at, "donut")[1]] == [SCRIPT]
    assert not any("<" in m.value for m in at.markdown)


def test_refresh_reads_again_and_shows_when(page) -> None:  # noqa: ANN001
    at = page("overview").run()
    loaded = [c.value for c in at.caption if c.value.startswith("Data loaded")]
    assert len(loaded) == 1
    at.button(key="overview_refresh").click().run()
    assert not at.error
    again = [c.value for c in at.caption if c.value.startswith("Data loaded")]
    assert len(again) == 1


def test_a_missing_database_is_said_once_and_the_page_recovers(page, env, tmp_path, dashboard_db) -> None:  # noqa: ANN001
    target = tmp_path / "later.duckdb"
    env.setenv("PAYDASH_DATABASE_URL", str(target))
    at = page("overview").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    # one banner for the whole page, with the fix for the admin; the sections below stay quiet
    assert len(errors) == 1 and errors[0].startswith("**The database is unreachable**"), errors
    assert "paydash demo" in errors[0] and "later\\.duckdb" in errors[0]  # Markdown-escaped
    assert "Traceback" not in errors[0]
    assert not at.metric
    # the rest of the page still renders: title, controls, definitions
    assert at.title[0].value == "Overview"
    assert at.button(key="overview_refresh")
    assert at.expander

    shutil.copy(dashboard_db, target)  # the database is back: no restart needed
    at.run()
    assert not at.error
    assert at.metric[0].label == "Revenue"


def test_a_missing_table_names_the_table_and_the_setting(page, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_PAYMENTS_TABLE", "no_such_mart")
    at = page("overview").run()
    assert not at.exception
    errors = " ".join(e.value for e in at.error)
    assert "no\\_such\\_mart" in errors and "PAYDASH\\_PAYMENTS\\_TABLE" in errors
    # a range in the past is whole days: its cards come from the daily mart, which is still there
    # (today so far needs the charge mart for the partial days)
    end = last_n_days(1, "UTC").end - timedelta(days=3)
    at.button_group(key="overview_preset").set_value("Custom").run()
    at.date_input(key="overview_custom").set_value((end - timedelta(days=6), end)).run()
    assert at.metric[0].label == "Revenue"


def test_reads_are_cached_per_parameters_and_refresh_reads_again(page) -> None:  # noqa: ANN001
    from paydash.app import data
    from paydash.settings import load_settings

    at = page("overview").run()
    source = data.Source.from_settings(load_settings())
    rng = last_n_days(30, "UTC")
    first = data.overview_totals(source, rng.start, rng.end, None)
    assert data.overview_totals(source, rng.start, rng.end, None).loaded_at == first.loaded_at  # cached
    other = data.overview_totals(source, rng.start, rng.end, "mobile_app")
    assert other.value != first.value  # the funnel is part of the key
    at.button(key="overview_refresh").click().run()
    again = data.overview_totals(source, rng.start, rng.end, None)
    assert again.loaded_at > first.loaded_at and again.value == first.value


def test_without_refund_and_dispute_marts_the_cards_say_what_to_add(page, env, warehouse) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_REFUNDS_TABLE", "no_refunds_here")
    env.setenv("PAYDASH_DISPUTES_TABLE", "no_disputes_here")
    at = page("overview").run()
    assert not at.exception and not at.error
    shown = cards(at)
    assert {name: shown[name] for name in ("Net revenue", "Refunds", "Disputes", "Dispute rate")} == {
        "Net revenue": (fmt.EMPTY, None), "Refunds": (fmt.EMPTY, None), "Disputes": (fmt.EMPTY, None),
        "Dispute rate": (fmt.EMPTY, None)}
    captions = " ".join(c.value for c in at.caption)
    assert "no_refunds_here" in captions and "PAYDASH_REFUNDS_TABLE" in captions
    assert "no_disputes_here" in captions and "PAYDASH_DISPUTES_TABLE" in captions
    assert "docs/data-contract.md" in captions
    # everything else works: the cards from the charge and daily marts are the query layer's
    numbers = expected(warehouse, last_n_days(30, "UTC"), at=at)
    assert shown["Revenue"] == expected_cards(numbers)["Revenue"]


def test_refund_and_dispute_cards_carry_their_definitions(page) -> None:  # noqa: ANN001
    from paydash.app import definitions

    at = page("overview").run()
    helps = {m.label: m.help for m in at.metric}
    assert helps["Net revenue"] == definitions.NET_REVENUE and helps["Dispute rate"] == definitions.DISPUTE_RATE
    assert helps["Refunds"] == definitions.REFUNDS and helps["Disputes"] == definitions.DISPUTES


# -- the view lives in the URL -----------------------------------------------------------------
def test_range_and_funnel_go_into_the_url_and_a_link_reopens_them(page, warehouse) -> None:  # noqa: ANN001
    at = page("overview").run()
    assert at.query_params == {}  # the default view is the bare page
    at.button_group(key="overview_preset").set_value("Last 7 days").run()
    at.selectbox(key="overview_funnel").select("mobile_app").run()
    assert at.query_params == {"range": "7d", "funnel": "mobile_app"}
    shown = cards(at)

    # the link opened afresh (a new session) shows the same view and the same numbers
    again = page("overview")
    again.query_params.update(dict(at.query_params))
    again.run()
    assert not again.exception and not again.error and not again.warning
    assert again.button_group(key="overview_preset").value == "Last 7 days"
    assert again.selectbox(key="overview_funnel").value == "mobile_app"
    assert cards(again) == shown == expected_cards(expected(warehouse, last_n_days(7, "UTC"), "mobile_app", at=again))
    assert again.query_params == {"range": "7d", "funnel": "mobile_app"}


def test_a_custom_range_round_trips_through_the_url(page, warehouse) -> None:  # noqa: ANN001
    end = last_n_days(1, "UTC").end - timedelta(days=3)
    start = end - timedelta(days=9)
    at = page("overview").run()
    at.button_group(key="overview_preset").set_value("Custom").run()
    at.date_input(key="overview_custom").set_value((start, end)).run()
    assert at.query_params == {"from": start.isoformat(), "to": end.isoformat()}

    again = page("overview")
    again.query_params.update({"from": start.isoformat(), "to": end.isoformat()})
    again.run()
    assert not again.info and not again.warning
    assert again.button_group(key="overview_preset").value == "Custom"
    assert again.date_input(key="overview_custom").value == (start, end)
    assert cards(again) == expected_cards(expected(warehouse, DateRange(start, end, "UTC")))
    again.button_group(key="overview_preset").set_value("Last 30 days").run()
    assert again.query_params == {}


def test_a_bad_link_is_ignored_with_a_note(page, warehouse) -> None:  # noqa: ANN001
    at = page("overview")
    at.query_params.update({"range": "forever", "funnel": "x" * 500})
    at.run()
    assert not at.exception and not at.error
    notes = " ".join(w.value for w in at.warning)
    assert "range" in notes and "7d" in notes and "funnel" in notes
    assert at.button_group(key="overview_preset").value == "Last 30 days"
    assert cards(at) == expected_cards(expected(warehouse, last_n_days(30, "UTC"), at=at))
    assert at.query_params == {}

    swapped = page("overview")
    swapped.query_params.update({"from": "2026-03-10", "to": "2026-03-01"})
    swapped.run()
    assert "swap" in " ".join(w.value for w in swapped.warning)


def test_a_funnel_from_a_link_that_the_data_lacks_stays_chosen(page) -> None:  # noqa: ANN001
    at = page("overview")
    at.query_params.update({"funnel": "retired_funnel"})
    at.run()
    assert not at.exception and not at.error
    assert at.selectbox(key="overview_funnel").value == "retired_funnel"
    assert cards(at)["Attempts"][0] == "0"
