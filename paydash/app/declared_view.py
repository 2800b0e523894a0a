"""A page declared in configuration (docs/pages.md), drawn: search, filters, stats cards, a table paged in
the database, a row's detail, the whole result as CSV, refresh, and the view in the URL.

main.py registers one Streamlit page per declared page the user may see (`page_function`); what the
page shows comes from the declaration and the table (data.declared_*), never from code per page.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Callable
from urllib.parse import urlencode

import pandas as pd
import streamlit as st

from paydash.app import admin_data, data, login
from paydash.app import format as fmt
from paydash.app.file_names import csv_file_name
from paydash.declared_pages import (
    PAYMENT_LINK,
    URL_WORDS,
    DeclaredPage,
    PageQuery,
    format_range,
    missing_table,
    query_from_params,
    query_to_params,
)
from paydash.errors import ConfigError

ALL = "All"
ICON = ":material/table_rows:"


def page_function(name: str) -> Callable[[], None]:
    """The callable st.Page runs for declared page `name`."""

    def run() -> None:
        render(name)

    run.__name__ = "declared_" + name.replace("-", "_")
    return run


def navigation_pages(settings, role: str | None) -> list:  # noqa: ANN001
    """st.Page entries of the declared pages `role` may see (None: nobody signed in, every page, for a
    hidden navigation). paydash's own pages only when their table exists; a team's page always (a
    missing table is said on that page). A broken pages file is said here, once, and adds no page."""
    source = data.Source.from_settings(settings)
    try:
        declared = data.declared_pages(source)
    except ConfigError as exc:
        if role == "admin":
            st.sidebar.error(f"Declared pages: {fmt.md_escape(exc)}", icon=":material/error:")
        return []
    present: set[str] | None = None
    if role is not None and any(page.shipped for page in declared.values()):
        present = data.tables_present(source)  # None: the database cannot say; each page will
    shown = []
    for page in declared.values():
        if role is not None and not page.visible_to(role):
            continue
        if page.shipped and present is not None and page.table not in present:
            continue
        shown.append(st.Page(page_function(page.name), title=page.title, icon=ICON, url_path=page.name))
    return shown


# -- values as the page shows them (pure) ------------------------------------------------------
def cell(value: Any, kind: str, tz: str) -> Any:
    """A value in its column's format: times in the reporting timezone, money and numbers as numbers."""
    if value is None:
        return None
    if kind == "epoch" and isinstance(value, (int, float, Decimal)):
        return fmt.local_time(datetime.fromtimestamp(int(value), timezone.utc).replace(tzinfo=None), tz)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        return fmt.local_time(value, tz) if kind in ("datetime", "text", "epoch") else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if kind in ("money", "number") and isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return float(value)
    if kind == "json":
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        return text if len(text) <= 200 else text[:199] + "…"
    return str(value)


def pretty_json(value: Any) -> str:
    """A JSON column's value, indented (as it is when it is not JSON)."""
    if value is None:
        return ""
    try:
        parsed = json.loads(value) if isinstance(value, (str, bytes)) else value
        return json.dumps(parsed, indent=2, sort_keys=True, default=str)
    except (TypeError, ValueError):
        return str(value)


def link_url(target: str, value: Any) -> str | None:
    """Where a link column's value leads: the target page's detail (or the Payments page's charge)."""
    if value is None or value == "":
        return None
    word = "charge" if target == PAYMENT_LINK else "key"
    return f"/{target}?{urlencode({word: str(value)})}"


def header(page: DeclaredPage, name: str, tz: str) -> str:
    """A column's header in the table: its label, and the timezone its times are shown in."""
    label = page.label_of(name)
    return f"{label} ({tz})" if page.format_of(name) in ("datetime", "epoch") else label


def rows_frame(page: DeclaredPage, rows: list[dict[str, Any]], names: list[str], tz: str) -> pd.DataFrame:
    links = page.link_map
    out = []
    for row in rows:
        shown = {}
        for name in names:
            if name in links:
                shown[header(page, name, tz)] = link_url(links[name], row.get(name))
            else:
                shown[header(page, name, tz)] = cell(row.get(name), page.format_of(name), tz)
        out.append(shown)
    return pd.DataFrame(out, columns=[header(page, n, tz) for n in names])


# -- the page ---------------------------------------------------------------------------------
def render(name: str) -> None:
    settings = data.settings()
    user = login.require_user(settings)
    source = data.Source.from_settings(settings)
    try:
        pages = data.declared_pages(source)
    except ConfigError as exc:
        st.error(f"The declared pages cannot be read: {fmt.md_escape(exc)}", icon=":material/error:")
        return
    page = pages.get(name)
    if page is None or not page.visible_to(user.role):
        st.error("This page is not available to you. Ask an admin of this dashboard if you need it.",
                 icon=":material/lock:")
        st.stop()
    data.outage_banner(source, user)
    tz = source.timezone
    st.title(page.title)
    if page.description:
        st.caption(fmt.md_escape(page.description))
    table = None
    with data.section(page.title):
        _page, table = data.declared_table(source, name)
        if table is None:
            st.warning(fmt.md_escape(missing_table(page, "the database")), icon=":material/table_chart:")
    if table is None:
        return
    dates = data.declared_date_filters(page, table)
    p = f"declared_{name}"
    state_key, url_key, touched_key = f"{p}_query", f"{p}_url", f"{p}_touched"
    wanted = set(URL_WORDS) | set(page.filters)

    def touched() -> None:
        st.session_state[touched_key] = True

    def show(query: PageQuery) -> None:
        """Put the widgets in step with `query` (before they render)."""
        st.session_state[f"{p}_q"] = query.search or ""
        chosen = query.filter_map
        for column in page.filters:
            value = chosen.get(column)
            if column in dates:
                st.session_state[f"{p}_f_{column}"] = tuple(d for d in (value or (None, None)) if d is not None)
            else:
                st.session_state[f"{p}_f_{column}"] = ALL if value is None else value

    def from_widgets() -> None:
        touched()
        filters = []
        for column in page.filters:
            value = st.session_state.get(f"{p}_f_{column}")
            if column in dates:
                picked = [d for d in (value or ()) if isinstance(d, date)]
                if picked:
                    filters.append((column, (min(picked), max(picked))))
            elif value not in (None, "", ALL):
                filters.append((column, str(value)))
        search = (st.session_state.get(f"{p}_q") or "").strip() or None
        old = st.session_state[state_key]
        st.session_state[state_key] = PageQuery(search, tuple(filters), 1, old.key)

    def go_to(number: int) -> None:
        touched()
        st.session_state[state_key] = replace(st.session_state[state_key], page=max(1, number))

    def open_row(table_key: str, keys: list[Any]) -> None:
        touched()
        selected = st.session_state[table_key].selection["rows"]
        if selected and keys[selected[0]] is not None:
            st.session_state[state_key] = replace(st.session_state[state_key], key=str(keys[selected[0]]))

    def close_detail() -> None:
        touched()
        st.session_state[state_key] = replace(st.session_state[state_key], key=None)

    def clear() -> None:
        touched()
        query = PageQuery()
        show(query)
        st.session_state[state_key] = query

    # -- the URL is the shareable state: read it when it changed outside this page --------------
    url = {k: st.query_params[k] for k in st.query_params if k in wanted}
    choice_made = st.session_state.pop(touched_key, False)
    if state_key not in st.session_state or f"{p}_q" not in st.session_state or (
            st.session_state.get(url_key) != url and not choice_made):
        query, notes = query_from_params(page, dates, url)
        show(query)
        st.session_state[state_key] = query
        st.session_state[f"{p}_notes"] = notes
        st.session_state[url_key] = url
    for note in st.session_state.get(f"{p}_notes", []):
        st.warning(fmt.md_escape(f"ignored the link's {note}"), icon=":material/link_off:")

    # -- a row's detail, at the top --------------------------------------------------------------
    query = st.session_state[state_key]
    if query.key and page.key:
        with st.container(border=True, key=f"{p}_detail"), data.section(f"{page.title}: detail"):
            _detail(source, page, name, query.key, tz, close_detail)

    # -- search and filters ----------------------------------------------------------------------
    options: dict[str, list[str]] = {}
    with data.section("Filter choices"):
        options = data.declared_options(source, name).value
    search_col, clear_col, refresh_col = st.columns([4, 1, 1], vertical_alignment="bottom")
    if page.search:
        search_col.text_input("Search", key=f"{p}_q", max_chars=200, on_change=from_widgets,
                              placeholder="Part of " + ", ".join(page.label_of(c) for c in page.search),
                              help="Any case; matches rows where any of these columns contains the text.")
    clear_col.button("Clear filters", key=f"{p}_clear", on_click=clear, icon=":material/filter_alt_off:")
    refresh_col.button("Refresh", key=f"{p}_refresh", on_click=data.refresh_declared, icon=":material/refresh:",
                       help="Read the table again from the database.")
    if page.filters:
        boxes = st.columns(min(4, len(page.filters)))
        for i, column in enumerate(page.filters):
            box = boxes[i % len(boxes)]
            label = page.label_of(column)
            if column in dates:
                box.date_input(label, key=f"{p}_f_{column}", on_change=from_widgets, format="YYYY-MM-DD",
                               min_value=date(1970, 1, 1), help=f"Whole days in {tz}; leave empty for all dates.")
            else:
                found = options.get(column, [])
                current = st.session_state.get(f"{p}_f_{column}", ALL)
                choices = [ALL, *found, *([current] if current not in (ALL, *found) else [])]
                box.selectbox(label, choices, key=f"{p}_f_{column}", on_change=from_widgets)
    query = st.session_state[state_key]

    # -- stats cards -----------------------------------------------------------------------------
    if page.stats:
        with data.section("Counts"):
            counts = data.declared_stats(source, name, replace(query, key=None, page=1)).value
            for column in page.stats:
                values = counts.get(column, [])
                st.markdown(f"**By {fmt.md_escape(page.label_of(column).lower())}**")
                if not values:
                    st.caption("No rows.")
                    continue
                cards = st.columns(min(len(values), 6))
                for i, (value, n) in enumerate(values[:6]):
                    cards[i].metric(fmt.md_escape(fmt.text(cell(value, page.format_of(column), tz))), fmt.count(n))

    # -- the rows, a page at a time --------------------------------------------------------------
    with data.section(page.title):
        result = data.declared_rows(source, name, replace(query, key=None))
        found = result.value
        if found.page != query.page:  # past the end (a link): its last page
            st.session_state[state_key] = query = replace(query, page=found.page)
        count_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
        count_col.markdown(f"**{fmt.count(found.total)}** matching {fmt.plural(found.total, 'row')}")
        if found.total > settings.export_max_rows:
            export_col.caption(f"{fmt.count(found.total)} rows are more than one download holds "
                               f"({fmt.count(settings.export_max_rows)}); narrow the filters or run:")
            export_col.code(export_command(name, query), language="bash")
        elif found.total:
            export_col.download_button(
                f"Download CSV ({fmt.quantity(found.total, 'row')})",
                data=data.declared_csv(source, name, replace(query, key=None, page=1), on_done=admin_data.export_recorder(
                    settings, user.username, f"{name} CSV, {found.total} rows, {query_to_params(replace(query, key=None, page=1)) or 'no filters'}")),
                file_name=csv_file_name(name, _file_params(query), admin_data.today(source)),
                mime="text/csv", key=f"{p}_export", on_click="ignore", icon=":material/download:",
                help="The whole filtered result, in the page's order.")
        names = data.declared_shown_columns(page, table)
        if found.rows:
            frame = rows_frame(page, found.rows, names, tz)
            keys = [row.get(page.key) for row in found.rows] if page.key else []
            table_key = f"{p}_table_{query.page}_{abs(hash((query.search, query.filters)))}_{query.key or ''}"
            config: dict[str, Any] = {}
            for column, target in page.links:
                if column in names:
                    word = "charge" if target == PAYMENT_LINK else "key"
                    config[header(page, column, tz)] = st.column_config.LinkColumn(display_text=rf"[?&]{word}=([^&]*)$")
            for column in names:
                if page.format_of(column) == "money":
                    config[header(page, column, tz)] = st.column_config.NumberColumn(format="%.2f")
            st.dataframe(frame, key=table_key, hide_index=True, width="stretch", placeholder=fmt.EMPTY,
                         column_config=config,
                         **({"on_select": lambda: open_row(table_key, keys), "selection_mode": "single-row"}
                            if page.key else {}))
            if page.key:
                st.caption("Select a row to open it: every column" + (", the JSON formatted" if page.json else "") + ".")
        else:
            st.info("No rows match." if query.search or query.filters else "The table has no rows.")
        first, previous, position, following, last = st.columns([1, 1, 2, 1, 1], vertical_alignment="center")
        first.button("First", key=f"{p}_first", disabled=query.page <= 1, on_click=go_to, args=(1,),
                     icon=":material/first_page:")
        previous.button("Previous", key=f"{p}_previous", disabled=query.page <= 1, on_click=go_to,
                        args=(query.page - 1,), icon=":material/chevron_left:")
        position.markdown(f"Page {fmt.count(query.page)} of {fmt.count(found.pages)}")
        following.button("Next", key=f"{p}_next", disabled=query.page >= found.pages, on_click=go_to,
                         args=(query.page + 1,), icon=":material/chevron_right:")
        last.button("Last", key=f"{p}_last", disabled=query.page >= found.pages, on_click=go_to,
                    args=(found.pages,), icon=":material/last_page:")
        st.caption(f"Data loaded {fmt.loaded_at(result.loaded_at, tz)}")

    # -- keep the URL in step, so the view can be shared -----------------------------------------
    params = query_to_params(st.session_state[state_key])
    if params != url:
        st.query_params.from_dict(params)
    st.session_state[url_key] = params


def export_command(name: str, query: PageQuery) -> str:
    """The CLI command that exports the same result (for exports too big for the browser)."""
    import shlex

    args = ["paydash", "export", "page", name, "--out", f"{name}.csv"]
    if query.search:
        args += ["--search", query.search]
    for column, value in query.filters:
        args += ["--filter", f"{column}={format_range(value) if isinstance(value, tuple) else value}"]
    return shlex.join(args)


def _file_params(query: PageQuery) -> dict[str, str]:
    params = {"search": query.search} if query.search else {}
    for column, value in query.filters:
        params[column] = format_range(value) if isinstance(value, tuple) else str(value)
    return params


def _detail(source: data.Source, page: DeclaredPage, name: str, key: str, tz: str, on_close: Callable[[], None]) -> None:
    row = data.declared_row(source, name, key).value
    head, close = st.columns([5, 1], vertical_alignment="center")
    head.subheader(fmt.md_escape(f"{page.title}: {key}"), anchor=False)
    close.button("Close", key=f"declared_{name}_close", on_click=on_close, icon=":material/close:")
    if row is None:
        st.warning(fmt.md_escape(f"No row with {page.key} {key!r} (any more)."), icon=":material/search_off:")
        return
    links = page.link_map
    fields = []
    for column, value in row.items():
        if column == page.json:
            continue
        kind = page.format_of(column)
        shown = cell(value, kind if kind != "json" else "text", tz)
        fields.append({"Field": page.label_of(column), "Value": fmt.text(shown)})
    st.dataframe(pd.DataFrame(fields), hide_index=True, width="stretch", key=f"declared_{name}_fields",
                 placeholder=fmt.EMPTY)
    for column, target in links.items():
        url = link_url(target, row.get(column))
        if url:
            st.markdown(f"[{fmt.md_escape(page.label_of(column))}: {fmt.md_escape(row.get(column))}]({url})")
    if page.json and page.json in row:
        st.markdown(f"**{fmt.md_escape(page.label_of(page.json))}**")
        st.code(pretty_json(row[page.json]), language="json")
