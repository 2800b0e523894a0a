"""Customers: find a customer, page through everyone, open one's payments; retention cohorts."""

from dataclasses import replace

import streamlit as st

from paydash.app import customer_views as views
from paydash.app import data, downloads, explorer, login
from paydash.app import format as fmt

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
STATE = "customers_state"
KEYS = "customers_keys"  # the seek key of each page before the current one
loaded = []


def select_customer(table_key: str, customer_ids: list[str]) -> None:
    rows = st.session_state[table_key].selection["rows"]
    if rows:
        st.session_state[STATE] = replace(st.session_state[STATE], customer=customer_ids[rows[0]])


def close_customer() -> None:
    st.session_state[STATE] = replace(st.session_state[STATE], customer=None)


def next_page(key: tuple) -> None:
    st.session_state[KEYS] = [*st.session_state[KEYS], key]


def previous_page() -> None:
    st.session_state[KEYS] = st.session_state[KEYS][:-1]


def refresh() -> None:
    data.refresh_customers()


def download(column, label: str, total: int, what: str, table: str, *args, key: str, file: str) -> None:  # noqa: ANN001, ANN002
    downloads.table_download(column, settings, source, user.username, label, total, what, table, *args, key=key, file=file)


# -- the URL is the shareable state: read it when it changed outside this page -------------------
url = {key: st.query_params[key] for key in views.CUSTOMER_URL_KEYS if key in st.query_params}
if st.session_state.get("customers_url") != url or STATE not in st.session_state:
    state, notes = views.customers_state(url)
    st.session_state[STATE] = state
    st.session_state["customers_search"] = state.search.text or ""
    st.session_state["customers_sort"] = views.SORT_LABELS[state.search.sort]
    st.session_state["customers_notes"] = notes
    st.session_state["customers_url"] = url
    st.session_state[KEYS] = []

title_col, refresh_col = st.columns([5, 2], vertical_alignment="bottom")
title_col.title("Customers")
with refresh_col:
    st.button("Refresh", key="customers_refresh", on_click=refresh, icon=":material/refresh:",
              help="Read the customers again from the database.")
    loaded_slot = st.empty()
for note in st.session_state["customers_notes"]:
    st.warning(fmt.md_escape(note), icon=":material/link_off:")

present = {"customers": False, "promotion_usage": False}
with data.section("Optional tables"):
    present = data.optional_marts(source)
    if not present["customers"]:
        st.info(views.missing_mart("customers", data.warehouse_table_name(source, "customers"))
                + " Without it the list shows customer ids only, and search takes exact ids.", icon=":material/info:")

# -- search and order -------------------------------------------------------------------------------
search_col, sort_col = st.columns([4, 2], vertical_alignment="bottom")
search_col.text_input("Search", key="customers_search", max_chars=200,
                      placeholder="Exact customer id (cus_...), or the start of an email or a name")
sort_col.segmented_control("Sort by", list(views.SORT_LABELS.values()), key="customers_sort")
sort = next((k for k, v in views.SORT_LABELS.items() if v == st.session_state["customers_sort"]), "revenue")
search = data.CustomerSearch(st.session_state["customers_search"][:200], sort).normalized()
if search != st.session_state[STATE].search:
    st.session_state[STATE] = replace(st.session_state[STATE], search=search)
    st.session_state[KEYS] = []
state = st.session_state[STATE]
keys = st.session_state[KEYS]

# -- the list, a page at a time ----------------------------------------------------------------------
with data.section("Customers"):
    result = data.customers_page(source, state.search, keys[-1] if keys else None)
    loaded.append(result.loaded_at)
    found = result.value
    count_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
    count_col.markdown(f"**{fmt.count(found.total)}** {fmt.plural(found.total, 'customer')}")
    if found.total:
        download(export_col, f"Download CSV ({fmt.quantity(found.total, 'customer')})", found.total, "customers", "customers",
                 state.search, key="customers_export", file="customers")
    if found.rows:
        table_key = f"customers_table_{len(keys)}_{abs(hash(state.search))}"
        ids = [r["customer_id"] for r in found.rows]
        st.dataframe(
            views.customer_rows(found.rows, tz), key=table_key, hide_index=True, placeholder=fmt.EMPTY, width="stretch", height=600,
            on_select=lambda: select_customer(table_key, ids), selection_mode="single-row",
            column_config={
                "Revenue (USD)": st.column_config.NumberColumn(format="dollar", help=views.REVENUE),
                "Failure rate": st.column_config.NumberColumn(**fmt.PERCENT_COLUMN, help=views.FAILURE_RATE),
                "Payments": st.column_config.NumberColumn(help=views.PAYMENTS),
                "Attempts": st.column_config.NumberColumn(help=views.ATTEMPTS),
                "First payment": st.column_config.TextColumn(f"First payment ({tz})", help=views.FIRST_LAST),
                "Last payment": st.column_config.TextColumn(f"Last payment ({tz})", help=views.FIRST_LAST),
            },
        )
        st.caption("Select a row to open the customer.")
    else:
        st.info("No customers match." if state.search.text else "No customers yet.")
    prev_col, page_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
    prev_col.button("Previous", key="customers_previous", on_click=previous_page, disabled=not keys,
                    icon=":material/chevron_left:")
    page_col.markdown(f"Page {fmt.count(len(keys) + 1)} of {fmt.count(found.pages)}")
    next_col.button("Next", key="customers_next", on_click=next_page, args=(found.next_key,), disabled=found.next_key is None,
                    icon=":material/chevron_right:")

# -- one customer --------------------------------------------------------------------------------------
if state.customer:
    with data.section("Customer"):
        st.divider()
        head, close = st.columns([5, 1], vertical_alignment="bottom")
        head.subheader(f"Customer {fmt.md_escape(state.customer)}")
        close.button("Close", key="customers_close", on_click=close_customer, icon=":material/close:")
        result = data.customer_detail(source, state.customer)
        loaded.append(result.loaded_at)
        detail = result.value
        if detail is None:
            st.warning(f"No payments of customer {fmt.md_escape(state.customer)} were found.", icon=":material/search_off:")
        else:
            totals = detail["totals"]
            revenue, payments, attempts, failure = st.columns(4, border=True)
            revenue.metric("Revenue", fmt.money(totals["revenue_usd"]), help=views.REVENUE)
            payments.metric("Payments", fmt.count(totals["payments"]), help=views.PAYMENTS)
            attempts.metric("Attempts", fmt.count(totals["attempts"]), help=views.ATTEMPTS)
            failure.metric("Failure rate", fmt.percent(totals["failure_rate"]), help=views.FAILURE_RATE)
            st.dataframe(views.profile_fields(detail, tz), key="customers_fields", hide_index=True, placeholder=fmt.EMPTY, width="stretch",
                         height="content")
            timeline_head, timeline_export = st.columns([3, 2], vertical_alignment="bottom")
            timeline_head.markdown("**Payments**, newest first, each with its attempts (retries) in order")
            download(timeline_export, "Download CSV (all attempts)", totals["attempts"], "attempts", "customer_timeline",
                     state.customer, key="customers_timeline_export", file="customer-payments")
            st.dataframe(views.timeline_rows(detail["timeline"], tz), key="customers_timeline", hide_index=True, placeholder=fmt.EMPTY,
                         width="stretch", height="content" if len(detail["timeline"]) < 12 else 420,
                         column_config={"Amount (USD)": st.column_config.NumberColumn(format="dollar"),
                                        "Time": st.column_config.TextColumn(f"Time ({tz})")})
            if detail["truncated"]:
                st.caption("Showing the latest attempts only; the CSV has all of them.")
            st.caption("Refunds are not part of the charge mart (docs/data-contract.md), so they are not shown here.")
            if detail["promotion_usage"]:
                usage_head, usage_export = st.columns([3, 2], vertical_alignment="bottom")
                usage_head.markdown("**Promotion codes** used by this customer (latest first)")
                download(usage_export, "Download CSV (all uses)", len(detail["promotion_usage"]), "uses", "customer_usage",
                         state.customer, key="customers_usage_export", file="customer-promotions")
                st.dataframe(views.customer_usage_rows(detail["promotion_usage"], tz), key="customers_usage", hide_index=True, placeholder=fmt.EMPTY,
                             width="stretch", height="content",
                             column_config={"Discount (USD)": st.column_config.NumberColumn(format="dollar")})
            st.caption("Link to this customer:")
            st.code(explorer.link(st.context.url or "", {"customer": state.customer}), language=None)

# -- retention cohorts -------------------------------------------------------------------------------------
with data.section("Retention cohorts"):
    st.divider()
    head, export = st.columns([3, 2], vertical_alignment="bottom")
    head.subheader("Monthly retention cohorts", help=views.COHORTS)
    result = data.retention_cohorts(source, data.today(source))
    loaded.append(result.loaded_at)
    grid = result.value
    if grid:
        download(export, "Download CSV (cohorts)", len(grid), "cohort cells", "cohorts", key="customers_cohorts_export",
                 file="cohorts")
        st.caption(views.COHORTS)
        st.vega_lite_chart(spec=views.cohort_heatmap(grid), key="customers_cohorts", width="stretch")
        if note := views.partial_note(grid):
            st.caption(fmt.md_escape(note))
        with st.expander("Cohorts as a table", icon=":material/table:"):
            st.dataframe(views.cohort_table(grid), key="customers_cohort_table", hide_index=True, placeholder=fmt.EMPTY, width="stretch",
                         height="content", column_config={c: st.column_config.NumberColumn(**fmt.PERCENT_COLUMN)
                                                          for c in views.cohort_table(grid).columns if c.startswith("Month")})
    else:
        st.info("No successful payments yet, so no cohorts.")

with st.expander("How these numbers are defined", icon=":material/help:"):
    st.table({"Metric": list(views.CUSTOMER_DEFINITIONS), "Definition": list(views.CUSTOMER_DEFINITIONS.values())})

if loaded:
    loaded_slot.caption(f"Data loaded {fmt.loaded_at(min(loaded), tz)}")

# -- keep the URL in step, so the view can be shared ------------------------------------------------------
params = views.customers_params(st.session_state[STATE])
if params != url:
    st.query_params.from_dict(params)
st.session_state["customers_url"] = params
