"""House rules of the app, checked on its source: pages stay UI, data never becomes HTML."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

APP = Path(__file__).resolve().parents[2] / "paydash" / "app"
PAGES = sorted((APP / "app_pages").glob("*.py"))
# what a page may import from paydash: the app's own modules (data.py is the door to the database)
PAGE_IMPORTS = {"streamlit", "dataclasses", "datetime", "paydash.app", "paydash.app.format", "paydash.app.ranges"}


def imports_of(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
    return found


def test_there_are_pages() -> None:
    assert {p.name for p in PAGES} >= {"overview.py", "payments.py"}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_pages_reach_the_database_only_through_data_py(page: Path) -> None:
    unexpected = imports_of(page) - PAGE_IMPORTS
    assert not unexpected, f"{page.name} imports {sorted(unexpected)}; go through paydash.app.data"
    text = page.read_text()
    for word in ("select(", "sa.text(", "SELECT ", ".execute(", "Warehouse(", ".read()", "wh."):
        assert word not in text, f"{page.name} contains {word!r}: SQL and database calls live in the query layer"


def test_only_data_py_calls_the_query_layer() -> None:
    callers = {p.relative_to(APP).as_posix() for p in APP.rglob("*.py")
               if any(m.startswith(("paydash.queries.overview", "paydash.queries.payments", "paydash.queries.failures",
                                    "paydash.queries.recovery", "paydash.queries.system")) or m == "paydash.queries"
                      for m in imports_of(p))}
    # admin_data.py is data.py's companion for the admin pages (System, Data explorer)
    assert callers <= {"data.py", "admin_data.py"} and "data.py" in callers


def test_nothing_is_rendered_as_raw_html() -> None:
    for path in APP.rglob("*.py"):
        text = path.read_text()
        for word in ("unsafe_allow_html", "st.html(", "components.html(", "unsafe_allow_javascript"):
            assert word not in text, f"{path.relative_to(APP)} uses {word}"


def test_the_app_takes_only_the_engine_from_the_warehouse() -> None:
    # the pages and their data modules read through the query layer (paydash.queries); of the
    # warehouse they need only the engine (Warehouse)
    for path in APP.rglob("*.py"):
        for module in imports_of(path):
            if module.startswith("paydash.warehouse"):
                assert module == "paydash.warehouse.engine", f"{path.relative_to(APP)} imports {module}"


def test_no_dialect_branches_in_the_app() -> None:
    for path in APP.rglob("*.py"):
        text = path.read_text()
        assert "dialect ==" not in text and "dialect !=" not in text, f"{path.relative_to(APP)} branches on the dialect"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_table_shows_nothing_the_same_way(page: Path) -> None:
    # a missing value reads as format.EMPTY in every table, as in cards and details
    for node in ast.walk(ast.parse(page.read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "dataframe":
            given = {k.arg: ast.unparse(k.value) for k in node.keywords}
            assert given.get("placeholder") == "fmt.EMPTY", f"{page.name}:{node.lineno} st.dataframe without placeholder=fmt.EMPTY"
