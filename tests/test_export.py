"""CSV export: the streamed warehouse export on both engines.

Rules: a header, ISO 8601 UTC times ending in Z, numbers as plain numbers, booleans as
true/false, and no text cell a spreadsheet would run as a formula (a leading ' is added).
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters
from paydash.queries.payments import EXPORT_COLUMNS, count_payments, export_select

ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def rows(charge):
    return [
        charge("ch_1", "2024-03-04 10:00:05", amount="10.50", customer_id="=HYPERLINK(\"http://x\")", profile_id="+4915112345"),
        charge("ch_2", "2024-03-04 11:30:00", "failed", "1234.00", customer_id="-2+3", profile_id="@SUM(A1)",
               failure_code="insufficient_funds"),
        charge("ch_3", "2024-03-05 23:59:59", "pending", "0.99", customer_id="\tcmd", profile_id="plain, with \"quotes\""),
        charge("ch_4", "2024-03-06 00:00:00", amount="7.00", customer_id="cus_ok", profile_id="ünï©ødé"),
    ]


def export(wh, filters: PaymentFilters, chunk_rows: int = 100_000) -> str:
    out = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, export_select(wh.marts, filters), out.write, chunk_rows=chunk_rows)
    return out.getvalue().decode("utf-8")


@pytest.mark.parametrize("chunk_rows", [100_000, 1], ids=["one-chunk", "row-by-row"])
def test_export_of_everything(make_warehouse, rows, chunk_rows) -> None:
    wh = make_warehouse(rows)
    text = export(wh, PaymentFilters(), chunk_rows)
    lines = text.splitlines()
    assert lines[0] == ",".join(EXPORT_COLUMNS)  # one header, plain names
    parsed = list(csv.DictReader(io.StringIO(text)))
    with wh.read() as conn:
        assert len(parsed) == count_payments(conn, wh.marts, PaymentFilters()) == 4

    assert [r["charge_id"] for r in parsed] == ["ch_4", "ch_3", "ch_2", "ch_1"]  # newest first
    by_id = {r["charge_id"]: r for r in parsed}
    assert by_id["ch_1"]["created_at"] == "2024-03-04T10:00:05Z"
    assert all(ISO_Z.match(r["created_at"]) for r in parsed)
    assert by_id["ch_3"]["created_date"] == "2024-03-05"

    # formulas neutralised, other text untouched
    assert by_id["ch_1"]["customer_id"] == "'=HYPERLINK(\"http://x\")"
    assert by_id["ch_1"]["profile_id"] == "'+4915112345"
    assert by_id["ch_2"]["customer_id"] == "'-2+3"
    assert by_id["ch_2"]["profile_id"] == "'@SUM(A1)"
    assert by_id["ch_3"]["customer_id"] == "'\tcmd"
    assert by_id["ch_3"]["profile_id"] == 'plain, with "quotes"'
    assert by_id["ch_4"]["customer_id"] == "cus_ok" and by_id["ch_4"]["profile_id"] == "ünï©ødé"

    # numbers stay numbers
    assert [by_id[i]["amount_usd"] for i in ("ch_1", "ch_2", "ch_3", "ch_4")] == ["10.50", "1234.00", "0.99", "7.00"]
    assert by_id["ch_2"]["attempt_number"] == "1" and by_id["ch_2"]["hour_of_day"] == "11"
    assert re.search(r"(^|,)10\.50(,|$)", lines[-1])  # unquoted in the raw text: a number to a spreadsheet

    # booleans and nulls are the same on both engines
    assert [by_id[i]["is_successful"] for i in ("ch_1", "ch_2", "ch_3")] == ["true", "false", "false"]
    assert by_id["ch_1"]["failure_code"] == "" and by_id["ch_2"]["failure_code"] == "insufficient_funds"
    assert by_id["ch_2"]["recovery_action"] == "retry_eligible"


def test_export_applies_the_filters(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    filters = PaymentFilters(status="failed", date_range=DateRange(date(2024, 3, 4), date(2024, 3, 4)), search="-2+3")
    parsed = list(csv.DictReader(io.StringIO(export(wh, filters))))
    assert [r["charge_id"] for r in parsed] == ["ch_2"]
    berlin = PaymentFilters(date_range=DateRange(date(2024, 3, 6), date(2024, 3, 6), "Europe/Berlin"))
    # 23:59:59 UTC on the 5th is already the 6th in Berlin; midnight UTC on the 6th too
    assert [r["charge_id"] for r in csv.DictReader(io.StringIO(export(wh, berlin)))] == ["ch_4", "ch_3"]


def test_export_of_nothing_has_the_header(make_warehouse, rows) -> None:
    wh = make_warehouse(rows)
    assert export(wh, PaymentFilters(funnel="none")).splitlines() == [",".join(EXPORT_COLUMNS)]


# -- in-memory CSV (small tables of the dashboard) ----------------------------------------
def test_repeated_exports_and_queries_share_pooled_connections(make_warehouse, rows) -> None:
    # An export on a connection the pool already used (and pinged) must work, and leave it usable.
    wh = make_warehouse(rows)
    for filters in (PaymentFilters(status="failed"), PaymentFilters(funnel="none"), PaymentFilters(), PaymentFilters()):
        with wh.read() as conn:
            expected = count_payments(conn, wh.marts, filters)
        assert len(export(wh, filters).splitlines()) == 1 + expected
        with wh.read() as conn:
            assert count_payments(conn, wh.marts, filters) == expected


@pytest.mark.parametrize("rows_per_window", [1, 2, 1_000])
@pytest.mark.parametrize("filters", [PaymentFilters(), PaymentFilters(status="failed"), PaymentFilters(search="cus_ok"),
                                     PaymentFilters(funnel="none")], ids=["all", "failed", "search", "nothing"])
def test_export_in_time_windows_is_the_same_file(make_warehouse, rows, charge, filters, rows_per_window) -> None:
    from paydash.queries.payments import export_selects

    wh = make_warehouse(rows + [charge(f"ch_x{i}", f"2024-03-0{1 + i % 3} 0{i}:00", amount="1.00") for i in range(8)])
    windowed = io.BytesIO()
    with wh.read() as conn:
        for index, stmt in enumerate(export_selects(conn, wh.marts, filters, rows_per_window=rows_per_window)):
            wh.copy_csv(conn, stmt, windowed.write, header=index == 0)
    assert windowed.getvalue().decode() == export(wh, filters)
