"""The admin pages (System, Data explorer): admins only, even by URL; what they show; the audit log."""

from __future__ import annotations

from pathlib import Path

import pytest

from paydash.state import StateStore, audit, open_state
from paydash.app import admin_data, data
from paydash.queries.filters import PaymentFilters
from paydash.settings import load_settings

ADMIN_PAGES = ("system", "data_explorer")
SAVED_QUERIES = '''
[[query]]
name = "Failed payments by code"
description = "Which decline codes, how often"
sql = """
SELECT failure_code, count(*) AS failures
FROM mart_stripe_payments WHERE status = 'failed'
GROUP BY failure_code ORDER BY failures DESC, failure_code
"""

[[query]]
name = "Delete everything"
description = "Refused by the database"
sql = "DELETE FROM mart_stripe_payments"

[[query]]
name = "Every payment"
description = "More rows than the explorer returns"
sql = "SELECT charge_id, amount_usd FROM mart_stripe_payments ORDER BY created_at"
'''


def audit_entries(tmp_path: Path) -> list[tuple[str, str, str]]:
    """(user, action, detail) of the audit log in the test's working directory, oldest first."""
    page = StateStore(str(tmp_path / "data" / "state.sqlite")).audit.page(audit.AuditFilter(), page_size=1000)
    return [(e.username, e.action, e.detail) for e in reversed(page.entries)]


TABLES = {  # a column only that table has (dataframes without on_select carry no key in AppTest)
    "system_tables": "Role", "system_quality": "What it counts", "system_environment": "Setting",
    "system_slow": "Statement", "system_audit": "Action", "explorer_tables": "Columns", "explorer_columns": "Type",
}


def table(at, name: str):  # noqa: ANN001, ANN201
    """The values of the page's table `name` (or the saved query's result: the last table shown)."""
    if name == "explorer_result_table":
        found = [d.value for d in at.dataframe if "Columns" not in d.value.columns and "Type" not in d.value.columns]
        return found[-1] if found else None
    found = [d.value for d in at.dataframe if TABLES[name] in d.value.columns]
    return found[0] if found else None


@pytest.fixture
def users(env) -> None:  # noqa: ANN001
    store = open_state(load_settings())  # the state store in the test's working directory
    store.users.add("alice", "alice-password", "admin")
    store.users.add("bob", "bob-password", "viewer")


# -- who may open them ----------------------------------------------------------------------
@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_a_viewer_opening_the_page_script_is_refused(page, users, signed_in, name: str) -> None:  # noqa: ANN001
    at = signed_in(page(name, sign_in=False), username="bob", role="viewer").run()
    assert not at.exception
    assert [e.value for e in at.error] == ["This page is for admins. Ask an admin of this dashboard if you need it."]
    assert not at.header and not at.metric and not at.dataframe


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_nobody_signed_in_gets_only_the_way_to_sign_in(page, name: str) -> None:  # noqa: ANN001
    at = page(name, sign_in=False).run()
    assert [i.value for i in at.info] == ["You are not signed in."]
    assert not at.header and not at.dataframe and not at.metric


@pytest.mark.parametrize("name", ADMIN_PAGES)
def test_a_viewer_has_no_admin_page_to_open_by_url(main_app, users, signed_in, name) -> None:  # noqa: ANN001
    at = signed_in(main_app(), username="bob", role="viewer").run()
    assert [t.value for t in at.title] == ["Overview"]
    # st.navigation never registers the page for a viewer: there is no URL to open
    # (the browser test opens /system as a viewer and lands on the Overview)
    with pytest.raises(ValueError, match="Could not find a navigation page") as missing:
        at.switch_page(f"app_pages/{name}.py")
    assert "overview.py" in str(missing.value) and "system.py'" not in str(missing.value).split("Known pages")[1]


@pytest.mark.parametrize("name, title", [("system", "System"), ("data_explorer", "Data explorer")])
def test_an_admin_opens_the_admin_url(main_app, users, signed_in, name, title) -> None:  # noqa: ANN001
    at = signed_in(main_app(), username="alice", role="admin").run()
    at.switch_page(f"app_pages/{name}.py").run()
    assert not at.exception
    assert [t.value for t in at.title] == [title]


# -- the System page -----------------------------------------------------------------------------
def test_system_page_shows_health_counts_quality_and_versions(page, warehouse, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_REDIS_URL", "redis://127.0.0.1:6379/0")
    at = page("system").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert [h.value for h in at.header] == ["Health", "Stripe sync health", "Tables", "Growth", "Data quality", "Versions and environment",
                                           "Slowest recent queries", "Actions", "Audit log"]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Database (duckdb)"].endswith(" ms")
    assert "Redis" in metrics
    tables = table(at, "system_tables")
    payments = tables[tables["Table"] == "mart_stripe_payments"].iloc[0]
    with warehouse.read() as conn:
        from sqlalchemy import text

        expected = conn.execute(text("SELECT count(*) FROM mart_stripe_payments")).scalar_one()
    assert (payments["Present"], int(payments["Rows"]), payments["Count"]) == ("yes", expected, "exact")
    quality = table(at, "system_quality")
    assert list(quality["Check"])[:3] == ["Payments without a customer", "Retries without a first attempt",
                                          "Duplicate charge ids"]
    environment = table(at, "system_environment")
    assert environment.set_index("Setting").loc["PAYDASH_PASSWORD", "Value"] == "set"
    assert not environment["Value"].str.contains("correct horse").any()
    slow = table(at, "system_slow")
    assert len(slow) > 0 and slow["ms"].is_monotonic_decreasing


def test_system_actions_are_done_and_audited(page, tmp_path: Path) -> None:  # noqa: ANN001
    at = page("system").run()
    at.button(key="system_clear_cache").click().run()
    assert "The cache is cleared" in at.success[0].value
    at.button(key="system_test_connection").click().run()
    assert "answered in" in at.success[0].value
    actions = [(who, action) for who, action, _ in audit_entries(tmp_path)]
    assert actions == [("team", audit.CLEAR_CACHE), ("team", audit.TEST_CONNECTION)]
    # and the audit log on the page shows them
    at.run()
    shown = table(at, "system_audit")
    assert list(shown["Action"]) == [audit.TEST_CONNECTION, audit.CLEAR_CACHE]


def test_system_audit_log_filters_and_pages(page, tmp_path: Path) -> None:  # noqa: ANN001
    log = StateStore(str(tmp_path / "data" / "state.sqlite")).audit
    for i in range(60):
        log.record("alice" if i % 2 else "bob", audit.LOGIN)
    log.record("mallory", audit.LOGIN_FAILED, "Wrong user name or password.")
    at = page("system").run()
    assert "**61** entries" in [m.value for m in at.markdown]
    assert len(table(at, "system_audit")) == 50
    at.button(key="system_audit_next").click().run()
    assert len(table(at, "system_audit")) == 11
    at.selectbox(key="system_audit_action").select(audit.LOGIN_FAILED).run()
    shown = table(at, "system_audit")
    assert list(shown["User"]) == ["mallory"]


# -- the Data explorer -----------------------------------------------------------------------------
@pytest.fixture
def saved_queries(tmp_path: Path) -> Path:
    path = tmp_path / "queries.toml"  # the default PAYDASH_SAVED_QUERIES_FILE, in the working directory
    path.write_text(SAVED_QUERIES)
    return path


def test_explorer_lists_tables_and_columns(page, saved_queries) -> None:  # noqa: ANN001
    at = page("data_explorer").run()
    assert not at.exception and not at.error
    tables = table(at, "explorer_tables")
    assert {"mart_stripe_payments", "mart_stripe_payments_daily"} <= set(tables["Table"])
    at.selectbox(key="explorer_table").select("main.mart_stripe_payments").run()
    columns = table(at, "explorer_columns")
    assert list(columns["Column"])[:3] == ["charge_id", "payment_intent_id", "customer_id"]


def test_explorer_runs_a_saved_query(page, saved_queries, warehouse, tmp_path: Path) -> None:  # noqa: ANN001
    at = page("data_explorer").run()
    assert at.selectbox(key="explorer_query").value == "Failed payments by code"
    at.button(key="explorer_run").click().run()
    assert not at.error
    result = table(at, "explorer_result_table")
    with warehouse.read() as conn:
        from sqlalchemy import text

        expected = conn.execute(text(
            "SELECT failure_code, count(*) FROM mart_stripe_payments WHERE status = 'failed' "
            "GROUP BY failure_code ORDER BY 2 DESC, 1")).all()
    assert [tuple(r) for r in result.itertuples(index=False)] == [tuple(r) for r in expected]
    assert audit_entries(tmp_path)[-1][:2] == ("team", audit.RUN_QUERY)


def test_explorer_shows_a_refusal_clearly(page, saved_queries, warehouse) -> None:  # noqa: ANN001
    at = page("data_explorer").run()
    at.selectbox(key="explorer_query").select("Delete everything").run()
    at.button(key="explorer_run").click().run()
    assert not at.exception
    assert at.error[0].value.startswith("the database refused this query")
    assert "read\\-only" in at.error[0].value or "read-only" in at.error[0].value
    assert table(at, "explorer_result_table") is None


def test_explorer_says_when_it_truncated(page, saved_queries, env) -> None:  # noqa: ANN001
    env.setenv("PAYDASH_EXPLORER_MAX_ROWS", "25")
    at = page("data_explorer").run()
    at.selectbox(key="explorer_query").select("Every payment").run()
    at.button(key="explorer_run").click().run()
    assert len(table(at, "explorer_result_table")) == 25
    assert "Only the first 25 rows are shown" in at.warning[0].value


def test_explorer_without_saved_queries_says_how_to_add_them(page) -> None:  # noqa: ANN001
    at = page("data_explorer").run()
    assert "No saved queries yet" in at.info[0].value


def test_explorer_with_a_broken_queries_file_says_what_is_wrong(page, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "queries.toml").write_text("[[query]\n")
    at = page("data_explorer").run()
    assert not at.exception
    assert any("not valid TOML" in e.value for e in at.error)
    assert table(at, "explorer_tables") is not None  # the rest of the page still works


# -- the audit log of exports (sign-ins: the HTTP layer's tests) ---------------------------------
def test_the_payments_export_is_audited(env, tmp_path: Path) -> None:  # noqa: ANN001
    settings = load_settings()
    source = data.Source.from_settings(settings)
    build = data.csv_export(source, PaymentFilters(status="failed"),
                            on_done=admin_data.export_recorder(settings, "alice", "payments CSV, filters status=failed"))
    assert audit_entries(tmp_path) == []  # nothing until the file is built (the click)
    body = build()
    assert body.startswith(b"charge_id,")
    assert audit_entries(tmp_path) == [("alice", audit.EXPORT, "payments CSV, filters status=failed")]

