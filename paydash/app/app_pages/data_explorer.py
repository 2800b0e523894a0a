"""Data explorer (admins): the tables and their columns, and saved queries run read-only with limits."""

from datetime import date

import streamlit as st

from paydash.app import admin_data, admin_tables, data, login
from paydash.app import format as fmt

settings = data.settings()
user = login.require_admin(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
RESULT = "explorer_result"  # (query name, QueryResult | None, error message | None)


def refresh() -> None:
    admin_data.catalog.clear()
    st.session_state.pop(RESULT, None)


def run(query) -> None:  # noqa: ANN001
    try:
        st.session_state[RESULT] = (query.name, admin_data.run_saved_query(settings, query, user.username), None)
    except admin_data.PaydashError as exc:
        st.session_state[RESULT] = (query.name, None, str(exc))


def csv_download(df, name: str, key: str) -> None:  # noqa: ANN001
    admin_data.csv_download(settings, user.username, df, name, key)


st.title("Data explorer")
caption_col, refresh_col = st.columns([5, 1], vertical_alignment="bottom")
caption_col.caption("For admins: what the database holds, and saved queries run read-only.")
refresh_col.button("Refresh", key="explorer_refresh", on_click=refresh, icon=":material/refresh:",
                   help="Read the tables and columns again, and forget the last query result.")

# -- tables and columns -------------------------------------------------------------------------
st.header("Tables")
with data.section("Tables and columns"):
    loaded = admin_data.catalog(source)
    columns = loaded.value
    tables = admin_tables.catalog_tables(columns)
    tables_col, columns_col = st.columns([2, 3])
    with tables_col:
        st.dataframe(tables, key="explorer_tables", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
        st.caption(f"{fmt.quantity(len(tables), 'table or view', 'tables and views')} (information_schema). Loaded {fmt.loaded_at(loaded.loaded_at, tz)}")
        csv_download(tables, "tables", "explorer_tables_csv")
    with columns_col:
        names = [f"{s}.{t}" for s, t in zip(tables["Schema"], tables["Table"])]
        chosen = st.selectbox("Columns of", names, key="explorer_table") if names else None
        if chosen:
            schema, table = chosen.split(".", 1)
            table_columns = admin_tables.catalog_columns(columns, schema, table)
            st.dataframe(table_columns, key="explorer_columns", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
            csv_download(table_columns, f"columns-{table}", "explorer_columns_csv")

# -- saved queries -----------------------------------------------------------------------------
st.header("Saved queries")
with data.section("Saved queries"):
    queries = admin_data.saved_queries(settings)
    if not queries:
        st.info(f"No saved queries yet: add them to {fmt.md_escape(settings.saved_queries_file)} (PAYDASH_SAVED_QUERIES_FILE) "
                "as [[query]] tables with name, description and sql; docs/admin.md shows an example.")
    else:
        by_name = {q.name: q for q in queries}
        name = st.selectbox("Query", list(by_name), key="explorer_query")
        query = by_name[name]
        if query.description:
            st.markdown(fmt.md_escape(query.description))
        st.code(query.sql, language="sql")
        st.button("Run", key="explorer_run", on_click=run, args=(query,), type="primary", icon=":material/play_arrow:")
        st.caption(f"Runs read-only: at most {fmt.count(settings.explorer_max_rows)} rows (PAYDASH_EXPLORER_MAX_ROWS) and "
                   f"{settings.explorer_timeout} s (PAYDASH_EXPLORER_TIMEOUT), both enforced by the database.")

        shown = st.session_state.get(RESULT)
        if shown and shown[0] == query.name:
            _, result, error = shown
            if error:
                st.error(fmt.md_escape(error), icon=":material/block:")
            elif not result.columns:
                st.info("The statement ran and returned no table.")
            else:
                df = admin_tables.query_result(result.columns, result.rows)
                st.markdown(f"**{fmt.count(len(result.rows))}** {fmt.plural(len(result.rows), 'row')} in {result.elapsed_ms:.0f} ms")
                if result.truncated:
                    st.warning(f"Only the first {fmt.count(result.max_rows)} rows are shown: the query has more. "
                               "Narrow it, or raise PAYDASH_EXPLORER_MAX_ROWS.", icon=":material/content_cut:")
                st.dataframe(df, key="explorer_result_table", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
                csv_download(df, f"query-{query.name}", "explorer_result_csv")
