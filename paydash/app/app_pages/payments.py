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
    st.session_state["payments_touched"] = True  # see the URL below
    st.session_state[STATE] = replace(st.session_state[STATE], page=max(1, page))


def jump_to_page(key: str) -> None:
    go_to_page(int(st.session_state[key] or 1))


def open_selected(table_key: str, charge_ids: list[str]) -> None:
    st.session_state["payments_touched"] = True  # see the URL below
    rows = st.session_state[table_key].selection["rows"]
    if rows:
        st.session_state[STATE] = replace(st.session_state[STATE], charge=charge_ids[rows[0]])
        st.session_state[DIALOG] = charge_ids[rows[0]]


def close_detail() -> None:
    st.session_state["payments_touched"] = True  # see the URL below
    st.session_state[STATE] = replace(st.session_state[STATE], charge=None)
    st.session_state[DIALOG] = None
    st.session_state[TABLE_RESET] = st.session_state.get(TABLE_RESET, 0) + 1


def show_state(state: explorer.ExplorerState) -> None:
    """Put the widgets in step with `state` (before they render)."""
    for key, value in explorer.widget_values(state.filters).items():
        st.session_state[f"payments_{key}"] = value
    st.session_state["payments_sort"] = explorer.sort_label(state.sort)


def clear_filters() -> None:
    st.session_state["payments_touched"] = True  # see the URL below
    # the filters only: the chosen order stays
    show_state(replace(st.session_state[STATE], filters=explorer.PaymentFilters()))


# -- the URL is the shareable state: read it when it changed outside this page -----------------
url = {key: st.query_params[key] for key in explorer.URL_KEYS if key in st.query_params}
# (and when another page ran in between: Streamlit then forgets these widgets' values). A choice
# just made on the page wins over the URL of this run, which can still be the one before it (the
# browser had not applied the last URL change yet).
choice_made = st.session_state.pop("payments_touched", False)
if (STATE not in st.session_state or "payments_status" not in st.session_state
        or (st.session_state.get("payments_url") != url and not choice_made)):
    state, notes = explorer.state_from_params(url, tz)
    show_state(state)
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
options = {key: [] for key in explorer.SELECTS} | {"status": list(explorer.STATUSES)}
with data.section("Filter choices"):
    options.update(data.filter_options(source).value)


def choices(everything: str, found: list[str], current: str) -> list[str]:
    # a value from a shared link stays selectable even when the data no longer has it
    return [everything, *found, *([current] if current not in (everything, *found) else [])]


def touched() -> None:
    st.session_state["payments_touched"] = True


def filter_box(column, key: str, label: str) -> None:  # noqa: ANN001
    everything = explorer.SELECTS[key][1]
    column.selectbox(label, choices(everything, options[key], st.session_state[f"payments_{key}"]), key=f"payments_{key}",
                     on_change=touched)


status_col, dates_col, funnel_col, brand_col = st.columns(4)
filter_box(status_col, "status", "Status")
dates_col.date_input("Dates", key="payments_dates", on_change=touched, format="YYYY-MM-DD", min_value=date(2000, 1, 1),
                     help="Whole days in the reporting timezone; leave empty for all dates.")
filter_box(funnel_col, "funnel", "Funnel")
filter_box(brand_col, "card_brand", "Card brand")
category_col, code_col, currency_col, country_col = st.columns(4)
filter_box(category_col, "failure_category", "Failure category")
filter_box(code_col, "failure_code", "Failure code")
filter_box(currency_col, "currency", "Currency")
filter_box(country_col, "card_country", "Card country")
min_col, max_col, sort_col = st.columns([1, 1, 2])
min_col.number_input("Min amount (USD)", key="payments_min_amount", on_change=touched, min_value=0.0, step=1.0, format="%.2f",
                     placeholder="Any", help="Included.")
max_col.number_input("Max amount (USD)", key="payments_max_amount", on_change=touched, min_value=0.0, step=1.0, format="%.2f",
                     placeholder="Any", help="Included.")
sort_col.selectbox("Sort", list(explorer.SORT_CHOICES), key="payments_sort", on_change=touched,
                   help="Orders the whole result, every page (ties: the newest first, or the oldest when ascending).")
search_col, clear_col, refresh_col = st.columns([4, 1, 1], vertical_alignment="bottom")
search_col.text_input("Search", key="payments_search", max_chars=200, on_change=touched, help=explorer.SEARCH_HELP,
                      placeholder="An id or part of one, an email or name, or terms like amount:>100 last4:4242 country:DE")
clear_col.button("Clear filters", key="payments_clear", on_click=clear_filters, icon=":material/filter_alt_off:")
refresh_col.button("Refresh", key="payments_refresh", on_click=data.refresh_explorer, icon=":material/refresh:",
                   help="Read the payments again from the database.")

widgets = {key: st.session_state[f"payments_{key}"] for key in explorer.widget_values(explorer.PaymentFilters())}
try:
    filters = explorer.filters_from_widgets(widgets, tz)
except explorer.InvalidInput as exc:
    st.warning(f"{fmt.md_escape(exc)}: the amount range is not applied.", icon=":material/warning:")
    filters = explorer.filters_from_widgets(widgets | {"min_amount": None, "max_amount": None}, tz)
st.session_state[STATE] = (st.session_state[STATE].with_filters(filters)
                           .with_sort(explorer.SORT_CHOICES[st.session_state["payments_sort"]]))
state = st.session_state[STATE]

# -- matching payments, a page at a time --------------------------------------------------------
with data.section("Payments"):
    result = data.payments_page(source, state.filters, state.page, state.sort)
    found = result.value
    if found.total and state.page > found.pages:
        go_to_page(found.pages)
        state = st.session_state[STATE]
        result = data.payments_page(source, state.filters, state.page, state.sort)
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
                help="Newest first, whatever the sort.",
            )

    if found.rows:
        table_key = f"payments_table_{state.page}_{abs(hash((state.filters, state.sort)))}_{st.session_state.get(TABLE_RESET, 0)}"
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
        # Streamlit cannot turn header sorting off while rows are selectable: say what it does
        st.caption("Select a row to open the payment: its detail, refunds, disputes and every attempt. Sort orders "
                   "every page; clicking a column header only reorders the rows on this page.")
    else:
        st.info("No payments match these filters.")

    first_col, previous_col, position_col, jump_col, next_col, last_col = st.columns(
        [1, 1, 2, 1, 1, 1], vertical_alignment="center")
    first_col.button("First", key="payments_first", disabled=state.page <= 1, on_click=go_to_page, args=(1,),
                     icon=":material/first_page:")
    previous_col.button("Previous", key="payments_previous", disabled=state.page <= 1,
                        on_click=go_to_page, args=(state.page - 1,), icon=":material/chevron_left:")
    position_col.markdown(f"Page {fmt.count(state.page)} of {fmt.count(found.pages)}")
    jump_key = f"payments_jump_{state.page}_{found.pages}"
    jump_col.number_input("Go to page", key=jump_key, min_value=1, max_value=max(1, found.pages), value=state.page,
                          step=1, on_change=jump_to_page, args=(jump_key,), label_visibility="collapsed",
                          help="Type a page number and press Enter.")
    next_col.button("Next", key="payments_next", disabled=state.page >= found.pages,
                    on_click=go_to_page, args=(state.page + 1,), icon=":material/chevron_right:")
    last_col.button("Last", key="payments_last", disabled=state.page >= found.pages,
                    on_click=go_to_page, args=(found.pages,), icon=":material/last_page:")
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
