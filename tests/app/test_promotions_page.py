"""The Promotions page (AppTest): codes, a code's link with its customers and filtered usage history, export, missing marts."""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta

from paydash.app import customer_views as views
from paydash.app import data
from paydash.queries import promotions as pq
from paydash.queries.dates import DateRange
from paydash.settings import Settings

from conftest import clear_data_caches


def codes(warehouse):  # noqa: ANN001, ANN201
    with warehouse.read() as conn:
        return pq.promotion_codes(conn, warehouse.marts)


def usage(warehouse, filters, page=1):  # noqa: ANN001, ANN201
    with warehouse.read() as conn:
        return pq.usage_history(conn, warehouse.marts, filters, page)


def table(at, columns):  # noqa: ANN001, ANN201
    found = [d.value for d in at.dataframe if list(d.value.columns) == columns]
    return found[0] if found else None


def records(df) -> list[dict]:  # noqa: ANN001
    """Rows with missing numbers as None (NaN never equals NaN)."""
    return df.astype(object).where(df.notna(), None).to_dict("records")


def busiest(warehouse):  # noqa: ANN001, ANN201
    return max(codes(warehouse).rows, key=lambda r: r["uses"])


def test_codes_show_the_query_layers_numbers(page, warehouse) -> None:  # noqa: ANN001
    at = page("promotions").run()
    assert not at.exception and not at.error and not at.warning
    want = codes(warehouse)
    assert 20 <= want.total <= 40
    assert f"**{want.total}** promotion codes" in [m.value for m in at.markdown]
    assert records(table(at, views.CODE_COLUMNS)) == records(views.code_rows(want.rows, "UTC"))
    assert views.USES in [c.value for c in at.caption]


def test_a_codes_link_opens_its_customers_and_filtered_history(page, warehouse) -> None:  # noqa: ANN001
    code = busiest(warehouse)
    at = page("promotions")
    at.query_params["code"] = code["promotion_code_id"]
    at.run()
    assert not at.exception and not at.error
    cards = {m.label: m.value for m in at.metric}
    assert cards["Uses"] == f"{code['uses']:,}" and cards["Customers"] == f"{code['customers']:,}"
    with warehouse.read() as conn:
        people = pq.code_customers(conn, warehouse.marts, code["promotion_code_id"], with_profiles=True)
    assert records(table(at, views.CODE_CUSTOMER_COLUMNS)) == records(views.code_customer_rows(people.rows, "UTC"))
    everything = pq.UsageFilters(code["promotion_code_id"])
    assert records(table(at, views.USAGE_COLUMNS)) == records(views.usage_rows(usage(warehouse, everything).rows, "UTC"))

    # filters combine with AND and go into the URL
    # a customer who applied the code in the last 60 days, taken from the data itself
    # (the first of the code's customers may have no such use, depending on the day)
    end = date.today()
    recent = DateRange(end - timedelta(days=60), end)
    applied = usage(warehouse, pq.UsageFilters(code["promotion_code_id"], None, "applied", recent))
    assert applied.total >= 1
    someone = applied.rows[0]["customer_id"]
    at.selectbox(key="promotions_action").select("applied").run()
    at.text_input(key="promotions_customer").input(someone).run()
    at.date_input(key="promotions_dates").set_value((end - timedelta(days=60), end)).run()
    filters = pq.UsageFilters(code["promotion_code_id"], someone, "applied", DateRange(end - timedelta(days=60), end))
    want = usage(warehouse, filters)
    assert want.total >= 1
    assert f"**{want.total:,}** matching uses" in [m.value for m in at.markdown]
    shown = table(at, views.USAGE_COLUMNS)
    assert set(shown["Action"]) == {"applied"} and set(shown["Customer"]) == {someone}
    assert at.query_params == {"code": code["promotion_code_id"], "action": "applied", "customer": someone,
                               "from": (end - timedelta(days=60)).isoformat(), "to": end.isoformat()}
    at.selectbox(key="promotions_action").select("failed").run()
    at.text_input(key="promotions_customer").input("%' OR 1=1 --").run()
    assert "**0** matching uses" in [m.value for m in at.markdown] and not at.exception


def test_usage_history_pages(page, warehouse) -> None:  # noqa: ANN001
    code = busiest(warehouse)
    at = page("promotions")
    at.query_params["code"] = code["promotion_code_id"]
    at.run()
    everything = pq.UsageFilters(code["promotion_code_id"])
    assert usage(warehouse, everything).pages > 1
    at.button(key="promotions_next").click().run()
    assert at.query_params["page"] == "2"
    assert records(table(at, views.USAGE_COLUMNS)) == records(views.usage_rows(usage(warehouse, everything, 2).rows, "UTC"))
    # the code's customers page on their own
    with warehouse.read() as conn:
        second = pq.code_customers(conn, warehouse.marts, code["promotion_code_id"], 2, with_profiles=True)
    at.button(key="promotions_people_next").click().run()
    assert f"Customers page 2 of {second.pages:,}" in [m.value for m in at.markdown]
    assert records(table(at, views.CODE_CUSTOMER_COLUMNS)) == records(views.code_customer_rows(second.rows, "UTC"))
    at.button(key="promotions_close").click().run()
    assert at.query_params == {} and not at.metric


def test_invalid_link_values_are_dropped_with_a_note(page) -> None:  # noqa: ANN001
    at = page("promotions")
    at.query_params.update({"code": "promo_nope", "action": "stolen", "from": "yesterday", "page": "-1"})
    at.run()
    assert not at.exception and not at.error
    notes = " ".join(w.value for w in at.warning)
    assert "action" in notes and "from" in notes and "page" in notes and "No promotion code" in notes


def test_refresh_reads_again(page) -> None:  # noqa: ANN001
    at = page("promotions").run()
    at.button(key="promotions_refresh").click().run()
    assert not at.error and [c.value for c in at.caption if c.value.startswith("Data loaded")]


def test_exports_are_whole(env, warehouse, dashboard_db) -> None:  # noqa: ANN001
    source = data.Source.from_settings(Settings({"database_url": str(dashboard_db)}))
    code = busiest(warehouse)
    rows = list(csv.DictReader(io.StringIO(data.table_csv(source, "promotion_codes")().decode())))
    assert len(rows) == codes(warehouse).total
    filters = pq.UsageFilters(code["promotion_code_id"], action="applied")
    rows = list(csv.DictReader(io.StringIO(data.table_csv(source, "promotion_usage", filters)().decode())))
    assert len(rows) == code["uses"] > 50 and {r["action"] for r in rows} == {"applied"}
    people = list(csv.DictReader(io.StringIO(data.table_csv(source, "promotion_customers", code["promotion_code_id"])().decode())))
    assert sum(int(r["uses"]) for r in people) == code["uses"]


def test_missing_promotion_marts_are_named_and_the_page_still_renders(page, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_PROMOTION_USAGE_TABLE", "no_usage_here")
    clear_data_caches()
    at = page("promotions").run()
    assert not at.exception and not at.error
    warning = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "no_usage_here" in warning and "PAYDASH_PROMOTION_USAGE_TABLE" in warning and "paydash sync" in warning
    assert at.title[0].value == "Promotions" and at.button(key="promotions_refresh")
    clear_data_caches()
