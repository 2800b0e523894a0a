"""Promotions: promotion codes and their use; one code's customers and usage history."""

from dataclasses import replace
from datetime import date

import streamlit as st

from paydash.app import customer_views as views
from paydash.app import data, downloads, explorer, login
from paydash.app import format as fmt

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
STATE = "promotions_state"
loaded = []
DATE_HELP = "Whole days in the reporting timezone; leave empty for all dates."


def update(**changes) -> None:  # noqa: ANN003
    st.session_state[STATE] = replace(st.session_state[STATE], **changes)


def open_code(table_key: str, code_ids: list[str]) -> None:
    rows = st.session_state[table_key].selection["rows"]
    if rows:
        update(code=code_ids[rows[0]], customer=None, action=None, start=None, end=None, page=1)


def refresh() -> None:
    data.refresh_promotions()


def widgets_from(state: views.PromotionsState) -> None:
    st.session_state["promotions_customer"] = state.customer or ""
    st.session_state["promotions_action"] = state.action or views.ANY_ACTION
    st.session_state["promotions_dates"] = tuple(d for d in (state.start, state.end) if d)


def download(column, label: str, total: int, what: str, table: str, *args, key: str, file: str) -> None:  # noqa: ANN001, ANN002
    downloads.table_download(column, settings, source, user.username, label, total, what, table, *args, key=key, file=file)


# -- the URL is the shareable state: read it when it changed outside this page ----------------------
url = {key: st.query_params[key] for key in views.PROMOTION_URL_KEYS if key in st.query_params}
if st.session_state.get("promotions_url") != url or STATE not in st.session_state:
    state, notes = views.promotions_state(url)
    st.session_state[STATE] = state
    st.session_state["promotions_codes_page"] = 1
    widgets_from(state)
    st.session_state["promotions_notes"] = notes
    st.session_state["promotions_url"] = url

title_col, refresh_col = st.columns([5, 2], vertical_alignment="bottom")
title_col.title("Promotions")
with refresh_col:
    st.button("Refresh", key="promotions_refresh", on_click=refresh, icon=":material/refresh:",
              help="Read the promotion codes again from the database.")
    loaded_slot = st.empty()
for note in st.session_state["promotions_notes"]:
    st.warning(fmt.md_escape(note), icon=":material/link_off:")

present = None
with data.section("Promotion tables"):
    present = data.optional_marts(source)
    for mart in ("promotion_codes", "promotion_usage"):
        if not present[mart]:
            st.warning(views.missing_mart(mart, data.warehouse_table_name(source, mart)), icon=":material/table_view:")
ready = bool(present and present["promotion_codes"] and present["promotion_usage"])
if not ready:
    st.caption("The other pages work without these tables.")

# -- every code ------------------------------------------------------------------------------------------
if ready:
    with data.section("Promotion codes"):
        st.caption(views.USES)
        page = st.session_state["promotions_codes_page"]
        result = data.promotion_codes(source, page)
        loaded.append(result.loaded_at)
        codes = result.value
        count_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
        count_col.markdown(f"**{fmt.count(codes.total)}** {fmt.plural(codes.total, 'promotion code')}")
        if codes.total:
            download(export_col, f"Download CSV ({fmt.quantity(codes.total, 'code')})", codes.total, "codes", "promotion_codes",
                     key="promotions_codes_export", file="promotion-codes")
            table_key = f"promotions_codes_table_{page}"
            code_ids = [r["promotion_code_id"] for r in codes.rows]
            st.dataframe(views.code_rows(codes.rows, tz), key=table_key, hide_index=True, placeholder=fmt.EMPTY, width="stretch", height="content",
                         on_select=lambda: open_code(table_key, code_ids), selection_mode="single-row",
                         column_config={"Discount given (USD)": st.column_config.NumberColumn(format="dollar"),
                                        "Created": st.column_config.TextColumn(f"Created ({tz})"),
                                        "Customers": st.column_config.NumberColumn(help=views.USES, format="localized"),
                                        "Uses": st.column_config.NumberColumn(help=views.USES, format="localized"),
                                        **{name: st.column_config.NumberColumn(format="localized")
                                           for name in ("Validated", "Cleared", "Failed")}})
            st.caption("Select a row to open the code.")
        else:
            st.info("No promotion codes yet.")
        if codes.pages > 1:
            prev_col, page_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
            prev_col.button("Previous", key="promotions_codes_previous", disabled=page <= 1, icon=":material/chevron_left:",
                            on_click=lambda: st.session_state.update(promotions_codes_page=page - 1))
            page_col.markdown(f"Page {fmt.count(page)} of {fmt.count(codes.pages)}")
            next_col.button("Next", key="promotions_codes_next", disabled=page >= codes.pages, icon=":material/chevron_right:",
                            on_click=lambda: st.session_state.update(promotions_codes_page=page + 1))

# -- one code ---------------------------------------------------------------------------------------------
state = st.session_state[STATE]
if ready and state.code:
    with data.section("Promotion code"):
        st.divider()
        result = data.promotion_code(source, state.code)
        loaded.append(result.loaded_at)
        code = result.value
        head, close = st.columns([5, 1], vertical_alignment="bottom")
        close.button("Close", key="promotions_close", icon=":material/close:",
                     on_click=lambda: update(code=None, customer=None, action=None, start=None, end=None, page=1))
        if code is None:
            head.subheader("Promotion code")
            st.warning(f"No promotion code {fmt.md_escape(state.code)} was found.", icon=":material/search_off:")
        else:
            head.subheader(f"Code {fmt.md_escape(code['code'])}")
            uses, customers_card, failed, discount = st.columns(4, border=True)
            uses.metric("Uses", fmt.count(code["uses"]), help=views.USES)
            customers_card.metric("Customers", fmt.count(code["customers"]), help=views.USES)
            failed.metric("Failed tries", fmt.count(code["failed"]))
            discount.metric("Discount given", fmt.money(code["discount_usd"]))
            st.dataframe(views.code_fields(code, tz), key="promotions_fields", hide_index=True, placeholder=fmt.EMPTY, width="stretch", height="content")

            st.markdown("**Customers** of this code, most uses first")
            if st.session_state.get("promotions_people_code") != state.code:
                st.session_state["promotions_people_code"] = state.code
                st.session_state["promotions_people_page"] = 1
            people_page = st.session_state["promotions_people_page"]
            result = data.promotion_customers(source, state.code, people_page)
            people = result.value
            people_count, people_export = st.columns([3, 2], vertical_alignment="bottom")
            people_count.markdown(f"**{fmt.count(people.total)}** {fmt.plural(people.total, 'customer')} used or tried it")
            if people.total:
                download(people_export, f"Download CSV ({fmt.quantity(people.total, 'customer')})", people.total, "customers",
                         "promotion_customers", state.code, key="promotions_customers_export", file="promotion-customers")
                st.dataframe(views.code_customer_rows(people.rows, tz), key="promotions_customers", hide_index=True, placeholder=fmt.EMPTY,
                             width="stretch", height="content" if len(people.rows) < 12 else 420,
                             column_config={"Discount (USD)": st.column_config.NumberColumn(format="dollar")})
            if people.pages > 1:
                prev_col, page_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
                prev_col.button("Previous", key="promotions_people_previous", disabled=people_page <= 1,
                                icon=":material/chevron_left:",
                                on_click=lambda: st.session_state.update(promotions_people_page=people_page - 1))
                page_col.markdown(f"Customers page {fmt.count(people_page)} of {fmt.count(people.pages)}")
                next_col.button("Next", key="promotions_people_next", disabled=people_page >= people.pages,
                                icon=":material/chevron_right:",
                                on_click=lambda: st.session_state.update(promotions_people_page=people_page + 1))

            st.markdown("**Usage history**, newest first")
            customer_col, action_col, dates_col = st.columns([2, 1, 2])
            customer_col.text_input("Customer", key="promotions_customer", max_chars=200, placeholder="Exact customer id (cus_...)")
            action_col.selectbox("Action", [views.ANY_ACTION, *data.USAGE_ACTIONS], key="promotions_action")
            dates_col.date_input("Dates", key="promotions_dates", format="YYYY-MM-DD", min_value=date(2000, 1, 1), help=DATE_HELP)
            picked = [d for d in (st.session_state["promotions_dates"] or ()) if isinstance(d, date)]
            action = st.session_state["promotions_action"]
            wanted = dict(customer=(st.session_state["promotions_customer"] or "").strip()[:200] or None,
                          action=None if action == views.ANY_ACTION else action,
                          start=min(picked) if picked else None, end=max(picked) if picked else None)
            if any(getattr(state, k) != v for k, v in wanted.items()):
                update(**wanted, page=1)
                state = st.session_state[STATE]
            filters = data.usage_filters(state.code, state.customer, state.action, state.start, state.end, tz)
            result = data.promotion_usage(source, filters, state.page)
            history = result.value
            if history.total and state.page > history.pages:
                update(page=history.pages)
                state = st.session_state[STATE]
                history = data.promotion_usage(source, filters, state.page).value
            count_col, export_col = st.columns([3, 2], vertical_alignment="bottom")
            count_col.markdown(f"**{fmt.count(history.total)}** matching uses")
            if history.total:
                download(export_col, f"Download CSV ({fmt.quantity(history.total, 'use')})", history.total, "uses", "promotion_usage",
                         filters, key="promotions_usage_export", file="promotion-usage")
                st.dataframe(views.usage_rows(history.rows, tz), key=f"promotions_usage_{state.page}", hide_index=True, placeholder=fmt.EMPTY,
                             width="stretch", height="content",
                             column_config={"Discount (USD)": st.column_config.NumberColumn(format="dollar"),
                                            "Time": st.column_config.TextColumn(f"Time ({tz})")})
            else:
                st.info("No uses of this code match these filters.")
            prev_col, page_col, next_col = st.columns([1, 2, 1], vertical_alignment="center")
            prev_col.button("Previous", key="promotions_previous", disabled=state.page <= 1, icon=":material/chevron_left:",
                            on_click=lambda: update(page=st.session_state[STATE].page - 1))
            page_col.markdown(f"Page {fmt.count(state.page)} of {fmt.count(history.pages)}")
            next_col.button("Next", key="promotions_next", disabled=state.page >= history.pages, icon=":material/chevron_right:",
                            on_click=lambda: update(page=st.session_state[STATE].page + 1))
            st.caption("Link to this code with these filters:")
            st.code(explorer.link(st.context.url or "", views.promotions_params(state)), language=None)

if loaded:
    loaded_slot.caption(f"Data loaded {fmt.loaded_at(min(loaded), tz)}")

# -- keep the URL in step, so the view can be shared -------------------------------------------------------
params = views.promotions_params(st.session_state[STATE])
if params != url:
    st.query_params.from_dict(params)
st.session_state["promotions_url"] = params
