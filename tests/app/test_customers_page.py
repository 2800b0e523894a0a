"""The Customers page (AppTest): the list with the query layer's numbers, search, seek paging, a customer's link, cohorts, export."""

from __future__ import annotations

import csv
import io
import json
import re

import pyarrow as pa
import sqlalchemy as sa

from paydash.app import customer_views as views
from paydash.app import data
from paydash.app import format as fmt
from paydash.queries import customers as cq
from paydash.queries.dates import today_in
from paydash.settings import Settings

from conftest import clear_data_caches
from dashboard_db import HOSTILE_CUSTOMER


def expected(warehouse, search=cq.CustomerSearch(), after=None):  # noqa: ANN001, ANN201, B008
    with warehouse.read() as conn:
        return cq.customers_page(conn, warehouse.marts, search, after, precomputed=True, with_profiles=True)


def shown(at):  # noqa: ANN001, ANN201
    found = [d.value for d in at.dataframe if list(d.value.columns) == views.CUSTOMER_COLUMNS]
    return found[0] if found else None


def summary(at) -> list[str]:  # noqa: ANN001
    return [m.value for m in at.markdown if m.value.endswith((" customers", " customer")) or m.value.startswith("Page ")]


def assert_shows(at, want, page: int = 1) -> None:  # noqa: ANN001
    assert summary(at) == [f"**{want.total:,}** {fmt.plural(want.total, 'customer')}", f"Page {page:,} of {want.pages:,}"]
    assert shown(at).to_dict("records") == views.customer_rows(want.rows, "UTC").to_dict("records")


def heatmap(at):  # noqa: ANN001, ANN201
    def walk(node):  # noqa: ANN001, ANN202
        yield node
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    for element in walk(at._tree.root):
        if getattr(element, "type", "") == "vega_lite_chart":
            return json.loads(element.proto.spec), pa.ipc.open_stream(element.proto.data.data).read_all().to_pylist()
    return None


def grid_now(warehouse) -> list[dict]:  # noqa: ANN001
    with warehouse.read() as conn:
        return cq.retention_cohorts(conn, warehouse.marts, "UTC", "UTC", today=today_in("UTC"))


def test_the_list_shows_the_query_layers_rows_and_the_cohorts(page, warehouse) -> None:  # noqa: ANN001
    at = page("customers").run()
    assert not at.exception and not at.error and not at.warning
    assert_shows(at, expected(warehouse))
    rows = shown(at)
    assert len(rows) == 50 and rows["Revenue (USD)"].is_monotonic_decreasing
    assert rows["Email"].str.endswith("@example.com").all()
    spec, values = heatmap(at)
    with warehouse.read() as conn:
        grid = cq.retention_cohorts(conn, warehouse.marts, "UTC", "UTC")
    assert len(values) == len(grid) > 3
    assert sorted((v["cohort"], v["months_since"], v["active"]) for v in values) == sorted(
        (f"{g['cohort_month']:%Y-%m}", g["months_since"], g["active_customers"]) for g in grid)
    assert any(c.value == views.COHORTS for c in at.caption)  # the definition is on the page
    # the month not over yet (the demo runs up to today) is marked: a dashed cell, a starred share, a note
    this_month = f"{today_in('UTC'):%Y-%m}"
    partial = [v for v in values if v["partial"]]
    assert partial and all(v["label"].endswith("*") for v in partial)
    assert {v["cohort"] for v in values if v["months_since"] == 0 and v["partial"]} == {this_month}
    assert not any(v["label"].endswith("*") for v in values if not v["partial"])
    assert fmt.md_escape(views.partial_note(grid_now(warehouse))) in [c.value for c in at.caption]
    assert f"{today_in('UTC'):%B %Y} is not over" in views.partial_note(grid_now(warehouse))
    assert spec["height"] >= 44 * len({v["cohort"] for v in values})
    assert any(c.value.startswith("Data loaded") for c in at.caption)


def test_seek_paging_next_and_previous(page, warehouse) -> None:  # noqa: ANN001
    at = page("customers").run()
    first = expected(warehouse)
    assert at.button(key="customers_previous").disabled
    at.button(key="customers_next").click().run()
    second = expected(warehouse, after=first.next_key)
    assert_shows(at, second, page=2)
    at.button(key="customers_next").click().run()
    assert_shows(at, expected(warehouse, after=second.next_key), page=3)
    at.button(key="customers_previous").click().run()
    assert_shows(at, second, page=2)
    # another order starts again at page 1
    at.segmented_control(key="customers_sort").set_value("Last payment").run()
    assert_shows(at, expected(warehouse, cq.CustomerSearch(sort="last_payment")))
    assert at.query_params["sort"] == "last_payment"


def test_search_by_name_email_and_id(page, warehouse) -> None:  # noqa: ANN001
    someone = expected(warehouse).rows[4]
    at = page("customers").run()
    for text in (someone["name"].split()[0].upper(), someone["email"], someone["customer_id"]):
        at.text_input(key="customers_search").input(text).run()
        want = expected(warehouse, cq.CustomerSearch(text))
        # the list is everyone's in revenue order, so the 5th overall is near the top of any subset
        assert someone["customer_id"] in [r["customer_id"] for r in want.rows]
        assert_shows(at, want)
        assert at.query_params["search"] == text
    at.text_input(key="customers_search").input("%' OR 1=1; --").run()
    assert summary(at)[0] == "**0** customers" and not at.exception
    assert "No customers match" in at.info[0].value


def test_a_customers_link_opens_the_deep_dive(page, warehouse) -> None:  # noqa: ANN001
    rows = expected(warehouse).rows
    someone = next((r for r in rows if r["failed"]), rows[0])
    at = page("customers")
    at.query_params["customer"] = someone["customer_id"]
    at.run()
    assert not at.exception and not at.error
    with warehouse.read() as conn:
        detail = cq.customer_detail(conn, warehouse.marts, someone["customer_id"], with_profile=True, with_usage=True)
    cards = {m.label: m.value for m in at.metric}
    assert cards["Payments"] == f"{detail['totals']['payments']:,}" and cards["Attempts"] == f"{detail['totals']['attempts']:,}"
    assert cards["Revenue"] == f"${detail['totals']['revenue_usd']:,.2f}"
    timeline = next(d.value for d in at.dataframe if list(d.value.columns) == views.TIMELINE_COLUMNS)
    assert timeline.to_dict("records") == views.timeline_rows(detail["timeline"], "UTC").to_dict("records")
    assert any(someone["customer_id"] in c.value for c in at.code)  # its own link
    at.button(key="customers_close").click().run()
    assert "customer" not in at.query_params and not at.metric


def test_hostile_customer_is_shown_as_text(page) -> None:  # noqa: ANN001
    at = page("customers")
    at.query_params["customer"] = HOSTILE_CUSTOMER
    at.run()
    assert not at.exception and not at.error
    assert any(HOSTILE_CUSTOMER in d.value.to_string() for d in at.dataframe)
    # Markdown elements carry it escaped (\<img), never as a tag
    texts = [m.value for m in [*at.markdown, *at.caption, *at.warning, *at.subheader]]
    assert any("\\<img" in t for t in texts) and not any(re.search(r"(?<!\\)<img", t) for t in texts)


def test_invalid_link_values_are_dropped_with_a_note(page, warehouse) -> None:  # noqa: ANN001
    at = page("customers")
    at.query_params.update({"sort": "name; DROP", "search": "x" * 300})
    at.run()
    notes = " ".join(w.value for w in at.warning)
    assert "sort" in notes and "search" in notes
    assert_shows(at, expected(warehouse))
    assert at.query_params == {}


def test_refresh_reads_again(page) -> None:  # noqa: ANN001
    at = page("customers").run()
    at.button(key="customers_refresh").click().run()
    assert not at.error and [c.value for c in at.caption if c.value.startswith("Data loaded")]


def test_exports_are_whole_and_formula_safe(env, warehouse, dashboard_db) -> None:  # noqa: ANN001
    source = data.Source.from_settings(Settings({"database_url": str(dashboard_db)}))
    search = cq.CustomerSearch("a", "last_payment")
    rows = list(csv.DictReader(io.StringIO(data.table_csv(source, "customers", search)().decode())))
    want = expected(warehouse, search)
    assert want.total > 50 and len(rows) == want.total
    assert [r["customer_id"] for r in rows[:50]] == [r["customer_id"] for r in want.rows]
    assert list(rows[0]) == ["customer_id", "email", "name", "payments", "attempts", "successful", "failed", "revenue_usd",
                             "first_payment_at", "last_payment_at", "failure_rate"]
    grid = list(csv.DictReader(io.StringIO(data.table_csv(source, "cohorts")().decode())))
    assert grid and grid[0]["months_since"] == "0"
    timeline = list(csv.DictReader(io.StringIO(data.table_csv(source, "customer_timeline", HOSTILE_CUSTOMER)().decode())))
    assert len(timeline) == 2 and all(r["charge_id"].startswith("ch_<") for r in timeline)
    with warehouse.read() as conn:
        user = conn.execute(sa.select(warehouse.marts.promotion_usage.c.customer_id).limit(1)).scalar_one()
        uses = cq.usage_of(conn, warehouse.marts, user, limit=1000)
    exported = list(csv.DictReader(io.StringIO(data.table_csv(source, "customer_usage", user)().decode())))
    assert [r["usage_id"] for r in exported] == [u["usage_id"] for u in uses] and uses


def test_without_the_customers_mart_the_list_still_works(page, env, tmp_path) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_CUSTOMERS_TABLE", "no_customers_here")
    clear_data_caches()
    at = page("customers").run()
    assert not at.exception and not at.error
    info = " ".join(i.value for i in at.info)
    assert "no\\_customers\\_here" in info or "no_customers_here" in info
    assert "PAYDASH_CUSTOMERS_TABLE" in info.replace("\\", "") and "paydash sync" in info
    rows = shown(at)
    assert len(rows) == 50 and set(rows["Name"]) == {fmt.EMPTY}
    clear_data_caches()
