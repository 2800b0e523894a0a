"""A declared page in the dashboard (AppTest): search, filters, stats cards, the paged table, a row's detail,
the URL holding the view, a viewer kept out of an admin-only page, a missing table said on its page only."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import duckdb
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from paydash.app.format import md_escape
from paydash.settings import load_settings
from paydash.state import open_state

TIMEOUT = 60  # the first run imports pandas and the query layer: generous, not timed
REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixtures" / "appointments.csv"
MISSING = '''
[[page]]
name = "calls"
title = "Calls"
table = "call_logs"
search = ["caller"]
filters = []
order_by = ["started_at desc"]
'''


def doc_example() -> str:
    text = (REPO / "docs" / "pages.md").read_text()
    return re.search(r"## Worked example.*?```toml\n(.*?)```", text, re.S).group(1)


@pytest.fixture(scope="module")
def board_db(tmp_path_factory) -> Path:  # noqa: ANN001
    path = tmp_path_factory.mktemp("board") / "board.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE appointments AS SELECT appointment_id, title, end_user, status, booking_source, "
                    f"CAST(starts_at AS TIMESTAMP) AS starts_at, extra FROM read_csv('{FIXTURE}', all_varchar=true)")
    return path


@pytest.fixture
def board(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, board_db: Path, team_password: str) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pages.toml").write_text(doc_example() + MISSING)
    monkeypatch.setenv("PAYDASH_DATABASE_URL", str(board_db))
    monkeypatch.setenv("PAYDASH_PASSWORD", team_password)
    monkeypatch.setenv("PAYDASH_PAGES_FILE", str(tmp_path / "pages.toml"))
    st.cache_data.clear()
    st.cache_resource.clear()
    return tmp_path


def declared(name: str, **params: str) -> AppTest:
    at = AppTest.from_string(f"from paydash.app import declared_view\ndeclared_view.render({name!r})",
                             default_timeout=TIMEOUT)
    for key, value in params.items():
        at.query_params[key] = value
    return at


def shown_ids(at: AppTest) -> list[str]:
    (rows,) = [d.value for d in at.dataframe if "Appointment" in d.value.columns]  # not the detail's fields
    return list(rows["Appointment"])


def test_the_page_searches_filters_and_counts(board, signed_in) -> None:  # noqa: ANN001
    at = signed_in(declared("appointments")).run()
    assert not at.exception and not at.error
    assert [t.value for t in at.title] == ["Appointments"]
    assert shown_ids(at) == ["apt_07", "apt_06", "apt_05", "apt_04", "apt_03", "apt_02", "apt_01"]
    assert {(m.label, m.value) for m in at.metric} >= {("booked", "3"), ("web", "3"), ("partner", "1")}
    at.text_input(key="declared_appointments_q").input("anna").run()
    assert shown_ids(at) == ["apt_06", "apt_01"]
    assert dict(at.query_params) == {"q": "anna"}
    at.selectbox(key="declared_appointments_f_status").select("booked").run()
    assert shown_ids(at) == ["apt_01"]
    assert {(m.label, m.value) for m in at.metric} == {("booked", "1"), ("web", "1")}
    assert at.query_params["status"] == "booked"
    assert any("**1** matching row" in m.value for m in at.markdown)
    at.button(key="declared_appointments_clear").click().run()
    at.date_input(key="declared_appointments_f_starts_at").set_value((date(2026, 3, 2), date(2026, 3, 5))).run()
    assert shown_ids(at) == ["apt_05", "apt_04", "apt_03", "apt_02", "apt_01"]
    assert dict(at.query_params) == {"starts_at": "2026-03-02..2026-03-05"}
    at.button(key="declared_appointments_refresh").click().run()
    assert not at.exception and len(shown_ids(at)) == 5


def test_a_link_reproduces_the_view_with_the_detail_open(board, signed_in) -> None:  # noqa: ANN001
    at = signed_in(declared("appointments", q="haircut", starts_at="2026-03-03..", key="apt_06")).run()
    assert not at.exception and not at.error
    assert shown_ids(at) == ["apt_06", "apt_03"]
    assert at.date_input(key="declared_appointments_f_starts_at").value[0].isoformat() == "2026-03-03"
    assert [c.value for c in at.code] == ['{\n  "child": "Mia"\n}']  # the extra data, as formatted JSON
    assert [s.value for s in at.subheader] == [md_escape("Appointments: apt_06")]
    at.button(key="declared_appointments_close").click().run()
    assert not at.code and "key" not in at.query_params


def test_a_viewer_cannot_open_an_admin_only_page(board, signed_in) -> None:  # noqa: ANN001
    open_state(load_settings()).users.add("bob", "bob-password", "viewer")
    at = signed_in(declared("appointments"), username="bob", role="viewer").run()
    assert [e.value for e in at.error] == ["This page is not available to you. Ask an admin of this dashboard if you "
                                           "need it."]
    assert not at.dataframe and not at.metric


def test_a_missing_table_is_said_on_its_page_only(board, signed_in) -> None:  # noqa: ANN001
    at = signed_in(declared("calls")).run()
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [md_escape(
        "table call_logs of page 'calls' not found in the database; create it, grant the warehouse user SELECT on it, "
        f"or fix key 'table' of page 'calls' in {board / 'pages.toml'}")]
    assert signed_in(declared("appointments")).run().dataframe


def test_values_links_and_json_as_the_page_shows_them() -> None:
    from datetime import datetime
    from decimal import Decimal

    from paydash.app.declared_view import cell, export_command, link_url, pretty_json
    from paydash.declared_pages import PageQuery

    assert cell(datetime(2026, 3, 2, 9, 0), "datetime", "Europe/Berlin") == "2026-03-02 10:00:00"
    assert cell(1772442000, "epoch", "UTC") == "2026-03-02 09:00:00"
    assert cell(Decimal("19.99"), "money", "UTC") == 19.99 and cell(None, "money", "UTC") is None
    assert link_url("payments", "ch_1") == "/payments?charge=ch_1"
    assert link_url("appointments", "apt 1&x") == "/appointments?key=apt+1%26x"
    assert link_url("appointments", None) is None
    assert pretty_json('{"b": 1, "a": [2]}') == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}'
    assert pretty_json("not json") == "not json"
    query = PageQuery("anna's", (("status", "booked"), ("starts_at", (date(2026, 3, 1), None))))
    assert export_command("appointments", query) == ("paydash export page appointments --out appointments.csv "
                                                     "--search 'anna'\"'\"'s' --filter status=booked "
                                                     "--filter starts_at=2026-03-01..")
