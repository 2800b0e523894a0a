"""The Payments explorer (AppTest): filters, search, paging, shared links, detail, export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest

from paydash.app import data, explorer, tables
from paydash.app import format as fmt
from paydash.queries import payments
from paydash.queries.dates import DateRange, today_in
from paydash.queries.filters import PaymentFilters, PaymentSort
from paydash.settings import Settings
from paydash.warehouse import load

from dashboard_db import HOSTILE_CHARGE, HOSTILE_CUSTOMER, HOSTILE_RETRY, IMG, SCRIPT


def expected_page(warehouse, filters: PaymentFilters, page: int = 1, sort: PaymentSort = PaymentSort()):  # noqa: ANN001, ANN201
    with warehouse.read() as conn:
        scope = payments.SearchScope(customers=warehouse.has_table(warehouse.marts.customers), card_last4=True)
        return payments.payments_page(conn, warehouse.marts, filters, page, mart_tz="UTC", sort=sort, scope=scope)


def shown_rows(at):  # noqa: ANN001, ANN201
    found = [d.value for d in at.dataframe if list(d.value.columns) == tables.PAYMENT_COLUMNS]
    return found[0] if found else None


def summary(at) -> list[str]:  # noqa: ANN001
    return [m.value for m in at.markdown if "matching payment" in m.value or m.value.startswith("Page ")]


def assert_shows(at, warehouse, filters: PaymentFilters, page: int = 1, sort: PaymentSort = PaymentSort()) -> None:  # noqa: ANN001
    want = expected_page(warehouse, filters, page, sort)
    assert summary(at) == [f"**{fmt.count(want.total)}** {fmt.plural(want.total, 'matching payment')}", f"Page {fmt.count(page)} of {fmt.count(want.pages)}"]
    assert shown_rows(at).to_dict("records") == tables.payment_rows(want.rows, "UTC").to_dict("records")


def test_first_page_shows_the_query_layers_rows_and_count(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    assert not at.exception and not at.error
    assert_shows(at, warehouse, PaymentFilters())
    assert len(shown_rows(at)) == 50
    assert at.query_params == {}


def test_filters_combine_with_and_and_go_into_the_url(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    at.selectbox(key="payments_status").select("failed").run()
    assert_shows(at, warehouse, PaymentFilters(status="failed"))
    assert set(shown_rows(at)["Status"]) == {"failed"}
    at.selectbox(key="payments_card_brand").select("amex").run()
    at.selectbox(key="payments_funnel").select("paid_social").run()
    end = today_in("UTC")
    start = end - timedelta(days=20)
    at.date_input(key="payments_dates").set_value((start, end)).run()
    both = PaymentFilters(status="failed", card_brand="amex", funnel="paid_social", date_range=DateRange(start, end, "UTC"))
    assert_shows(at, warehouse, both)
    rows = shown_rows(at)
    assert set(rows["Status"]) == {"failed"} and set(rows["Funnel"]) == {"paid_social"}
    assert all(card.startswith("amex") for card in rows["Card"])
    assert expected_page(warehouse, both).total < expected_page(warehouse, PaymentFilters(status="failed")).total
    assert at.query_params == {
        "status": "failed", "card_brand": "amex", "funnel": "paid_social", "from": start.isoformat(), "to": end.isoformat(),
    }
    at.button(key="payments_clear").click().run()
    assert_shows(at, warehouse, PaymentFilters())
    assert at.query_params == {}


@pytest.mark.parametrize("column", ["charge_id", "customer_id", "profile_id", "payment_intent_id"])
def test_search_finds_exact_ids(page, warehouse, column: str) -> None:  # noqa: ANN001
    some = expected_page(warehouse, PaymentFilters(status="failed"), page=3).rows[7]
    at = page("payments").run()
    at.text_input(key="payments_search").input(some[column]).run()
    want = expected_page(warehouse, PaymentFilters(search=some[column]))
    assert 1 <= want.total < 100
    assert_shows(at, warehouse, PaymentFilters(search=some[column]))
    assert some["charge_id"] in set(shown_rows(at)["Charge"])
    assert at.query_params["search"] == some[column]


def test_search_without_a_match(page) -> None:  # noqa: ANN001
    at = page("payments").run()
    at.text_input(key="payments_search").input("ch_does_not_exist").run()
    assert summary(at) == ["**0** matching payments", "Page 1 of 1"]
    assert "No payments match" in at.info[0].value
    assert at.button(key="payments_next").disabled and at.button(key="payments_previous").disabled


def test_paging_next_previous_and_page_n_of_m(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    assert at.button(key="payments_previous").disabled
    first = shown_rows(at)
    at.button(key="payments_next").click().run()
    assert_shows(at, warehouse, PaymentFilters(), page=2)
    assert at.query_params["page"] == "2"
    assert set(first["Charge"]).isdisjoint(shown_rows(at)["Charge"])
    at.button(key="payments_next").click().run()
    assert_shows(at, warehouse, PaymentFilters(), page=3)
    at.button(key="payments_previous").click().run()
    assert_shows(at, warehouse, PaymentFilters(), page=2)
    # a new filter starts again at page 1
    at.selectbox(key="payments_status").select("succeeded").run()
    assert_shows(at, warehouse, PaymentFilters(status="succeeded"), page=1)
    assert "page" not in at.query_params


def test_new_filters_and_sort_go_into_the_url_and_sort_every_page(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    at.selectbox(key="payments_failure_category").select("insufficient_funds").run()
    at.selectbox(key="payments_currency").select("eur").run()
    at.number_input(key="payments_min_amount").set_value(20.0).run()
    at.selectbox(key="payments_sort").select("Largest amount first").run()
    filters = PaymentFilters(failure_category="insufficient_funds", currency="eur", min_amount=Decimal("20.00"))
    largest = PaymentSort("amount")
    assert_shows(at, warehouse, filters, sort=largest)
    rows = shown_rows(at)
    assert list(rows["Amount (USD)"]) == sorted(rows["Amount (USD)"], reverse=True) and min(rows["Amount (USD)"]) >= 20
    assert at.query_params == {"failure_category": "insufficient_funds", "currency": "eur", "min_amount": "20.00",
                               "sort": "amount"}
    # the order holds across pages: the last page's largest is at most page 1's smallest
    at.button(key="payments_last").click().run()
    last = expected_page(warehouse, filters, sort=largest).pages
    assert last > 1 and at.query_params["page"] == str(last)
    assert_shows(at, warehouse, filters, page=last, sort=largest)
    assert max(shown_rows(at)["Amount (USD)"]) <= min(rows["Amount (USD)"])
    at.button(key="payments_first").click().run()
    assert_shows(at, warehouse, filters, sort=largest)
    # clearing the filters keeps the order
    at.button(key="payments_clear").click().run()
    assert_shows(at, warehouse, PaymentFilters(), sort=largest)
    assert at.query_params == {"sort": "amount"}


def test_jump_to_a_page_number(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    jump = [n for n in at.number_input if n.key.startswith("payments_jump_")][0]
    jump.set_value(7).run()
    assert_shows(at, warehouse, PaymentFilters(), page=7)
    assert at.query_params["page"] == "7"


def test_a_minimum_above_the_maximum_is_said_and_left_out(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments").run()
    at.number_input(key="payments_min_amount").set_value(50.0).run()
    at.number_input(key="payments_max_amount").set_value(10.0).run()
    assert "above the maximum" in " ".join(w.value for w in at.warning)
    assert_shows(at, warehouse, PaymentFilters())


def test_a_search_that_cannot_mean_anything_says_why(page) -> None:  # noqa: ANN001
    at = page("payments").run()
    at.text_input(key="payments_search").input("colour:red").run()
    assert not at.exception
    assert "fields: email:, last4:" in " ".join(e.value for e in at.error).replace("\\", "")


def test_the_last_page(page, warehouse) -> None:  # noqa: ANN001
    filters = PaymentFilters(status="failed")
    last = expected_page(warehouse, filters).pages
    at = page("payments")
    at.query_params.update({"status": "failed", "page": str(last)})
    at.run()
    assert_shows(at, warehouse, filters, page=last)
    assert at.button(key="payments_next").disabled and not at.button(key="payments_previous").disabled
    beyond = page("payments")
    beyond.query_params.update({"status": "failed", "page": str(last + 50)})
    beyond.run()
    assert_shows(beyond, warehouse, filters, page=last)


def test_a_shared_link_opens_the_same_view(page, warehouse) -> None:  # noqa: ANN001
    end = today_in("UTC")
    filters = PaymentFilters(status="failed", funnel="main_funnel", date_range=DateRange(end - timedelta(days=30), end, "UTC"))
    params = {**explorer.state_to_params(explorer.ExplorerState(filters, page=2))}
    at = page("payments")
    at.query_params.update(params)
    at.run()
    assert not at.warning
    assert at.selectbox(key="payments_status").value == "failed"
    assert at.selectbox(key="payments_funnel").value == "main_funnel"
    assert at.date_input(key="payments_dates").value == (filters.date_range.start, filters.date_range.end)
    assert_shows(at, warehouse, filters, page=2)


def test_invalid_link_values_are_dropped_with_a_note(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments")
    at.query_params.update({"status": "bogus", "from": "yesterday", "page": "-3", "card_brand": "visa"})
    at.run()
    assert not at.exception and not at.error
    notes = " ".join(w.value for w in at.warning)
    assert "status" in notes and "from" in notes and "page" in notes
    assert_shows(at, warehouse, PaymentFilters(card_brand="visa"))


def test_a_payments_link_opens_its_detail_at_the_top_with_one_timeline(page, warehouse) -> None:  # noqa: ANN001
    # the newest retry that won, found in the data (which page holds one depends on the day)
    recovered = next(
        r for n in range(1, 41) for r in expected_page(warehouse, PaymentFilters(status="succeeded"), page=n).rows
        if r["attempt_number"] == 2
    )
    at = page("payments")
    at.query_params["charge"] = recovered["charge_id"]
    at.run()
    assert not at.error
    with warehouse.read() as conn:
        detail = payments.payment_detail(conn, warehouse.marts, recovered["charge_id"], with_refunds=True,
                                         with_disputes=True, with_customer=True,
                                         fx_rates=load.conversion_rates(warehouse))
    fields = next(d.value for d in at.dataframe if list(d.value.columns) == ["Field", "Value"])
    assert fields.to_dict("records") == tables.payment_fields(detail, "UTC").to_dict("records")
    timeline = next(d.value for d in at.dataframe if list(d.value.columns) == list(tables.payment_timeline([], "UTC").columns))
    attempts = timeline[timeline["Event"] == "Attempt"]
    assert attempts["Id"].tolist() == [h["charge_id"] for h in detail["retry_history"]]
    assert attempts["Status"].tolist()[-1] == "succeeded" and len(attempts) >= 2
    assert len(timeline) == len(detail["retry_history"]) + len(detail["refunds"]) + len(detail["disputes"])
    # the link is URL-encoded (the test data holds hostile ids too)
    assert [c.value for c in at.code] == [recovered["charge_id"], "?" + urlencode({"charge": recovered["charge_id"]})]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {
        "Amount": tables.original_amount(detail),
        "Amount (USD)": fmt.money(detail["amount_usd"]),
        "Outcome of the payment": "recovered",
        "Attempts": str(len(detail["retry_history"])),
    }
    at.button(key="payments_close").click().run()
    assert "charge" not in at.query_params
    assert not any(list(d.value.columns) == ["Field", "Value"] for d in at.dataframe)


def test_an_unknown_charge_in_a_link(page) -> None:  # noqa: ANN001
    at = page("payments")
    at.query_params["charge"] = "ch_nope"
    at.run()
    assert "No payment with charge id ch\\_nope" in at.warning[0].value


def test_hostile_ids_and_metadata_are_plain_text(page) -> None:  # noqa: ANN001
    at = page("payments")
    at.query_params["search"] = HOSTILE_CUSTOMER
    at.query_params["charge"] = HOSTILE_CHARGE
    at.run()
    assert not at.exception and not at.error
    rows = shown_rows(at)
    assert set(rows["Charge"]) == {HOSTILE_CHARGE, HOSTILE_RETRY}
    assert set(rows["Customer"]) == {HOSTILE_CUSTOMER}
    fields = next(d.value for d in at.dataframe if list(d.value.columns) == ["Field", "Value"])
    value = dict(zip(fields["Field"], fields["Value"]))
    assert SCRIPT in value["Payment intent"] and IMG in value["Failure code"]
    # markdown-capable elements never carry the raw payload
    assert not any("<script" in m.value or "<img" in m.value for m in [*at.markdown, *at.caption, *at.warning])


def test_export_is_the_whole_filtered_result(env, warehouse, dashboard_db) -> None:  # noqa: ANN001
    filters = PaymentFilters(status="failed", card_brand="visa")
    source = data.Source.from_settings(Settings({"database_url": str(dashboard_db)}))
    body = data.csv_export(source, filters)()
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    with warehouse.read() as conn:
        total = payments.count_payments(conn, warehouse.marts, filters)
    assert total > 100 and len(rows) == total
    assert {r["status"] for r in rows} == {"failed"} and {r["card_brand"] for r in rows} == {"visa"}
    assert list(rows[0])[:3] == ["charge_id", "payment_intent_id", "customer_id"]


def test_too_big_an_export_points_to_the_cli(page, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_EXPORT_MAX_ROWS", "100")
    at = page("payments")
    at.query_params["status"] = "failed"
    at.run()
    assert at.button(key="payments_export_disabled").disabled
    today = today_in("UTC")  # the reporting timezone of these tests
    assert [c.value for c in at.code] == [f"paydash export payments --out payments-failed-until-{today}.csv --status failed"]


def test_an_unreachable_database_is_said_once_and_the_page_still_renders(page, env, tmp_path) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_DATABASE_URL", str(tmp_path / "missing.duckdb"))
    at = page("payments").run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and errors[0].startswith("**The database is unreachable**"), errors
    assert at.title[0].value == "Payments"
    assert at.text_input(key="payments_search")  # the filters still render


def test_a_link_with_an_amount_range_backwards_or_a_bad_search_is_noted(page, warehouse) -> None:  # noqa: ANN001
    at = page("payments")
    at.query_params.update({"min_amount": "50", "max_amount": "10", "search": "colour:red", "currency": "eur",
                            "sort": "price"})
    at.run()
    assert not at.exception and not at.error
    notes = " ".join(w.value for w in at.warning).replace("\\", "")
    assert "min_amount and max_amount" in notes and "search" in notes and "sort" in notes
    assert_shows(at, warehouse, PaymentFilters(currency="eur"))
