"""Payments explorer: find payments, page through them, export them, open one (at the top from its
link, in a dialog from a selected row) with its attempts, refunds and disputes."""

from dataclasses import replace
from datetime import date

import streamlit as st

from paydash.app import admin_data, data, explorer, login, payment_view, tables
from paydash.app import format as fmt

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
STATE = "payments_state"
DIALOG = "payments_dialog"  # the charge whose detail a selected row opened in a dialog
TABLE_RESET = "payments_table_reset"  # bumped on close, so the list forgets its selected row


def go_to_page(page: int) -> None:
    st.session_state[STATE] = replace(st.session_state[STATE], page=page)


def open_selected(table_key: str, charge_ids: list[str]) -> None:
    rows = st.session_state[table_key].selection["rows"]
    if rows:
        st.session_state[STATE] = replace(st.session_state[STATE], charge=charge_ids[rows[0]])
        st.session_state[DIALOG] = charge_ids[rows[0]]


def close_detail() -> None:
    st.session_state[STATE] = replace(st.session_state[STATE], charge=None)
    st.session_state[DIALOG] = None
    st.session_state[TABLE_RESET] = st.session_state.get(TABLE_RESET, 0) + 1


def clear_filters() -> None:
    for key, value in explorer.widget_values(explorer.PaymentFilters()).items():
        st.session_state[f"payments_{key}"] = value


# -- the URL is the shareable state: read it when it changed outside this page -----------------
url = {key: st.query_params[key] for key in explorer.URL_KEYS if key in st.query_params}
if st.session_state.get("payments_url") != url or STATE not in st.session_state:
    state, notes = explorer.state_from_params(url, tz)
    for key, value in explorer.widget_values(state.filters).items():
        st.session_state[f"payments_{key}"] = value
    st.session_state[STATE] = state
    st.session_state["payments_notes"] = notes
    st.session_state["payments_url"] = url
    st.session_state[DIALOG] = None  # a link opens its payment at the top

st.title("Payments")
for note in st.session_state["payments_notes"]:
    st.warning(fmt.md_escape(note), icon=":material/link_off:")

# -- a payment's link: its detail at the top, above the filters and the list ------------------------
opened = st.session_state[STATE].charge
if opened and st.session_state.get(DIALOG) != opened:
    with st.container(border=True, key="payments_detail"), data.section("Payment detail"):
        payment_view.render(data.payment_detail(source, opened).value, opened, tz, on_close=close_detail)

# -- filters (they combine with AND) ----------------------------------------------------------
options = {"status": list(explorer.STATUSES), "funnel": [], "card_brand": []}
with data.section("Filter choices"):
    options.update(data.filter_options(source).value)


def choices(everything: str, found: list[str], current: str) -> list[str]:
    # a value from a shared link stays selectable even when the data no longer has it
    return [everything, *found, *([current] if current not in (everything, *found) else [])]


status_col, dates_col, funnel_col, brand_col = st.columns(4)
status_col.selectbox("Status", choices(explorer.ANY_STATUS, options["status"], st.session_state["payments_status"]),
                     key="payments_status")
dates_col.date_input("Dates", key="payments_dates", format="YYYY-MM-DD", min_value=date(2000, 1, 1),
                     help="Whole days in the reporting timezone; leave empty for all dates.")
funnel_col.selectbox("Funnel", choices(explorer.ALL_FUNNELS, options["funnel"], st.session_state["payments_funnel"]),
                     key="payments_funnel")
brand_col.selectbox("Card brand", choices(explorer.ALL_BRANDS, options["card_brand"], st.session_state["payments_card_brand"]),
                    key="payments_card_brand")
search_col, clear_col, refresh_col = st.columns([4, 1, 1], vertical_alignment="bottom")
search_col.text_input("Search", key="payments_search", placeholder="Exact charge (ch_...), payment intent (pi_...), customer (cus_...) or profile id",
                      max_chars=200)
clear_col.button("Clear filters", key="payments_clear", on_click=clear_filters, icon=":material/filter_alt_off:")
refresh_col.button("Refresh", key="payments_refresh", on_click=data.refresh_explorer, icon=":material/refresh:",
                   help="Read the payments again from the database.")

filters = explorer.filters_from_widgets({key: st.session_state[f"payments_{key}"] for key in explorer.widget_values(explorer.PaymentFilters())}, tz)
st.session_state[STATE] = st.session_state[STATE].with_filters(filters)
state = st.session_state[STATE]

# -- matching payments, a page at a time --------------------------------------------------------
with data.section("Payments"):
    result = data.payments_page(source, state.filters, state.page)
    found = result.value
    if found.total and state.page > found.pages:
        go_to_page(found.pages)
        state = st.session_state[STATE]
        result = data.payments_page(source, state.filters, state.page)
        found = result.value

    count_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
    count_col.markdown(f"**{fmt.count(found.total)}** {fmt.plural(found.total, 'matching payment')}")
    with export_col:
        if found.total > settings.export_max_rows:
            st.button("Download CSV", key="payments_export_disabled", disabled=True, icon=":material/download:")
            st.caption(f"{fmt.count(found.total)} payments are more than one download holds "
                       f"({fmt.count(settings.export_max_rows)}); narrow the filters or run:")
            st.code(explorer.export_command(state.filters, admin_data.today(source)), language="bash")
        elif found.total:
            st.download_button(
                f"Download CSV ({fmt.quantity(found.total, 'payment')})",
                data=data.csv_export(source, state.filters, on_done=admin_data.export_recorder(
                    settings, user.username, f"payments CSV, {found.total} rows, filters {explorer.state_to_params(state) or 'none'}")),
                file_name=explorer.export_file_name(state.filters, admin_data.today(source)),
                mime="text/csv",
                key="payments_export",
                on_click="ignore",
                icon=":material/download:",
            )

    if found.rows:
        table_key = f"payments_table_{state.page}_{abs(hash(state.filters))}_{st.session_state.get(TABLE_RESET, 0)}"
        charge_ids = [row["charge_id"] for row in found.rows]
        st.dataframe(
            tables.payment_rows(found.rows, tz),
            key=table_key,
            hide_index=True, placeholder=fmt.EMPTY,
            width="stretch",
            height=600,
            on_select=lambda: open_selected(table_key, charge_ids),
            selection_mode="single-row",
            column_config={
                "Time": st.column_config.TextColumn(f"Time ({tz})"),
                "Amount (USD)": st.column_config.NumberColumn(format="dollar"),
            },
        )
        st.caption("Select a row to open the payment: its detail, refunds, disputes and every attempt.")
    else:
        st.info("No payments match these filters.")

    previous_col, position_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
    previous_col.button("Previous", key="payments_previous", disabled=state.page <= 1,
                        on_click=go_to_page, args=(state.page - 1,), icon=":material/chevron_left:")
    position_col.markdown(f"Page {fmt.count(state.page)} of {fmt.count(found.pages)}")
    next_col.button("Next", key="payments_next", disabled=state.page >= found.pages,
                    on_click=go_to_page, args=(state.page + 1,), icon=":material/chevron_right:")
    st.caption(f"Data loaded {fmt.loaded_at(result.loaded_at, tz)}")

# -- a selected row: its detail in a dialog, in view wherever the list was scrolled to -----------------
@st.dialog("Payment", width="large", on_dismiss=close_detail)
def detail_dialog(charge_id: str) -> None:
    with st.container(key="payments_detail"), data.section("Payment detail"):
        payment_view.render(data.payment_detail(source, charge_id).value, charge_id, tz)


if state.charge and st.session_state.get(DIALOG) == state.charge:
    detail_dialog(state.charge)

# -- keep the URL in step, so the view can be shared --------------------------------------------------
params = explorer.state_to_params(st.session_state[STATE])
if params != url:
    st.query_params.from_dict(params)
st.session_state["payments_url"] = params
