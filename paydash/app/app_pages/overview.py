"""Overview: how much we took, how many payments failed and why, and what retries won back."""

from datetime import datetime, timezone

import streamlit as st

from paydash.app import charts, data, definitions, downloads, explorer, login, ranges, tables
from paydash.app import customer_views as views
from paydash.app import format as fmt

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
loaded = []

st.title("Overview")

# -- the URL is the shareable view: read it when it changed outside this page --------------------
def touched() -> None:
    # a choice made on the page wins over the URL of the same run, which can still be the one
    # before the last choice (the browser had not applied the last URL change yet)
    st.session_state["overview_touched"] = True


url = {key: st.query_params[key] for key in ranges.URL_KEYS if key in st.query_params}
choice_made = st.session_state.pop("overview_touched", False)
# another page ran in between: Streamlit forgot the widgets' values (the URL holds the view)
forgotten = "overview_funnel" not in st.session_state
if "overview_view" not in st.session_state or forgotten or (st.session_state.get("overview_url") != url and not choice_made):
    view, notes = ranges.view_from_params(url, tz)
    st.session_state["overview_preset"] = view.preset
    st.session_state["overview_custom"] = view.custom
    st.session_state["overview_funnel"] = view.funnel or ranges.ALL_FUNNELS
    st.session_state["overview_view"] = view
    st.session_state["overview_notes"] = notes
    st.session_state["overview_url"] = url
for note in st.session_state["overview_notes"]:
    st.warning(fmt.md_escape(note), icon=":material/link_off:")

# -- what to look at --------------------------------------------------------------------------
range_col, funnel_col, refresh_col = st.columns([3, 2, 2], vertical_alignment="bottom")
with range_col:
    preset = st.segmented_control("Date range", list(ranges.PRESETS), key="overview_preset", help=definitions.RANGE,
                                  on_change=touched)
    custom = None
    if preset == "Custom":
        if "overview_custom" not in st.session_state:  # Streamlit forgets a widget's value while it is hidden
            st.session_state["overview_custom"] = st.session_state["overview_view"].custom
        custom = st.date_input("Custom range", key="overview_custom", format="YYYY-MM-DD", on_change=touched)
with funnel_col:
    funnels = []
    with data.section("Funnels"):
        result = data.funnel_names(source)
        funnels = result.value
    current_funnel = st.session_state["overview_funnel"]
    # a funnel from a shared link stays selectable even when the data no longer has it
    funnel_choices = [ranges.ALL_FUNNELS, *funnels, *([current_funnel] if current_funnel not in (ranges.ALL_FUNNELS, *funnels) else [])]
    funnel = st.selectbox("Funnel", funnel_choices, key="overview_funnel", on_change=touched)
    funnel = None if funnel == ranges.ALL_FUNNELS else funnel
with refresh_col:
    st.button("Refresh", key="overview_refresh", on_click=data.refresh_overview, icon=":material/refresh:",
              help="Read the numbers again from the database.")
    loaded_slot = st.empty()

view = ranges.view_from_widgets(preset, custom, funnel)
st.session_state["overview_view"] = view
rng, range_note = ranges.chosen_range(preset, custom, tz)
if range_note:
    st.info(range_note)
# a range that holds today is today so far: both periods are cut at this minute (the cache key)
as_of = datetime.now(timezone.utc).replace(tzinfo=None, second=0, microsecond=0)
until, partial_day = rng.so_far(as_of).until, rng.so_far(as_of).partial_day
st.caption(ranges.comparison_caption(rng, as_of))

# -- the four cards -----------------------------------------------------------------------------
with data.section("Totals"):
    result = data.overview_totals(source, rng.start, rng.end, funnel, until)
    loaded.append(result.loaded_at)
    now, change = result.value["current"], result.value["change"]
    revenue, success, failed, attempts = st.columns(4, border=True)
    delta = fmt.relative_change(change["revenue_usd"])
    revenue.metric("Revenue", fmt.money_compact(now["revenue_usd"]), delta, help=definitions.REVENUE,
                   **fmt.delta_style(delta))
    revenue.caption(f"{fmt.money(now['revenue_usd'])} exactly")
    delta = fmt.points_change(change["success_rate"])
    success.metric("Success rate", fmt.percent(now["success_rate"]), delta, help=definitions.SUCCESS_RATE,
                   **fmt.delta_style(delta))
    delta = fmt.relative_change(change["failed"])
    failed.metric("Failed payments", fmt.count(now["failed"]), delta, help=definitions.FAILED,
                  **fmt.delta_style(delta, "inverse"))
    failed.caption(f"{fmt.money(now['failed_amount_usd'])} failed amount")
    delta = fmt.relative_change(change["attempts"])
    attempts.metric("Attempts", fmt.count(now["attempts"]), delta, help=definitions.ATTEMPTS,
                    **fmt.delta_style(delta))

# -- refunds and disputes (optional marts) ------------------------------------------------------
with data.section("Refunds and disputes"):
    result = data.overview_totals(source, rng.start, rng.end, funnel, until)  # cached: the same read as the cards above
    now, change = result.value["current"], result.value["change"]
    net, refunds, disputes, dispute_rate = st.columns(4, border=True)
    if now["refunds"] is None:
        for card, title in ((net, "Net revenue"), (refunds, "Refunds")):
            card.metric(title, fmt.EMPTY, help=definitions.NET_REVENUE if title == "Net revenue" else definitions.REFUNDS)
            card.caption(views.missing_mart("refunds", data.warehouse_table_name(source, "refunds")))
    else:
        delta = fmt.relative_change(change["net_revenue_usd"])
        net.metric("Net revenue", fmt.money_compact(now["net_revenue_usd"]), delta, help=definitions.NET_REVENUE,
                   **fmt.delta_style(delta))
        net.caption(f"{fmt.money(now['net_revenue_usd'])} exactly")
        delta = fmt.relative_change(change["refunds"])
        refunds.metric("Refunds", fmt.count(now["refunds"]), delta, help=definitions.REFUNDS,
                       **fmt.delta_style(delta, "inverse"))
        refunds.caption(f"{fmt.money(now['refunded_usd'])} refunded")
    if now["disputes"] is None:
        for card, title in ((disputes, "Disputes"), (dispute_rate, "Dispute rate")):
            card.metric(title, fmt.EMPTY, help=definitions.DISPUTES if title == "Disputes" else definitions.DISPUTE_RATE)
            card.caption(views.missing_mart("disputes", data.warehouse_table_name(source, "disputes")))
    else:
        delta = fmt.relative_change(change["disputes"])
        disputes.metric("Disputes", fmt.count(now["disputes"]), delta, help=definitions.DISPUTES,
                        **fmt.delta_style(delta, "inverse"))
        disputes.caption(f"{fmt.money(now['disputed_usd'])} disputed")
        delta = fmt.points_change(change["dispute_rate"], 2)
        dispute_rate.metric("Dispute rate", fmt.percent(now["dispute_rate"], 2), delta, help=definitions.DISPUTE_RATE,
                            **fmt.delta_style(delta, "inverse"))

# -- charts -------------------------------------------------------------------------------------
daily_col, donut_col = st.columns([3, 2])
with daily_col, data.section("Daily revenue and success rate"):
    st.subheader("Revenue and success rate by day")
    result = data.daily_series(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    st.vega_lite_chart(spec=charts.daily_revenue(result.value, partial_day and partial_day.isoformat()),
                       key="overview_daily", width="stretch")

with donut_col, data.section("Failures by category"):
    st.subheader("Failures by category", help=definitions.FAILED)
    result = data.failure_breakdown(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    breakdown = result.value
    if breakdown["failures"]:
        def category_link(category: str | None) -> str | None:
            return explorer.failures_link(rng, funnel, failure_category=category) if category else None

        st.vega_lite_chart(spec=charts.failure_donut(breakdown["by_category"], category_link), key="overview_donut",
                           width="stretch")
        links = [(c["failure_category"], category_link(c["failure_category"])) for c in breakdown["by_category"]]
        st.markdown("See the payments: " + " · ".join(f"[{fmt.md_escape(name)}]({href})" for name, href in links if href),
                    help="The failed payments of this range in each category, in the explorer.")
    else:
        st.info("No failed payments in this range.")

with data.section("Recovery"):
    st.subheader("Recovery through retries", help=definitions.RECOVERY_RATE)
    result = data.recovery_trend(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    recovered = result.value
    numbers_col, trend_col = st.columns([2, 3])
    rate, acceptance = numbers_col.columns(2)
    rate.metric("Recovery rate", fmt.percent(recovered["recovery_rate"]), help=definitions.RECOVERY_RATE)
    acceptance.metric("Payment acceptance", fmt.percent(recovered["payment_acceptance"]), help=definitions.ACCEPTANCE)
    won, lost = numbers_col.columns(2)
    won.metric("Recovered revenue", fmt.money_compact(recovered["recovered_usd"]), help=definitions.RECOVERED)
    lost.metric("Unrecovered amount", fmt.money_compact(recovered["unrecovered_usd"]), help=definitions.UNRECOVERED)
    trend_col.vega_lite_chart(spec=charts.recovery_trend(recovered["by_day"]), key="overview_recovery", width="stretch")

# the whole width, rows tall enough to wrap: the meaning and the action are read, not cut
with data.section("Top failure reasons"):
    st.subheader("Top failure reasons", help=definitions.TOP_REASONS)
    result = data.failure_breakdown(source, rng.start, rng.end, funnel)
    top_reasons = tables.top_failure_reasons(
        result.value["by_code"], link=lambda code: explorer.failures_link(rng, funnel, failure_code=code or None))
    st.dataframe(
        top_reasons,
        key="overview_reasons",
        hide_index=True, placeholder=fmt.EMPTY,
        width="stretch",
        height="content",
        row_height=tables.WRAPPING_ROW_HEIGHT,
        column_config={
            "Failure reason": st.column_config.TextColumn(width=150),
            "Category": st.column_config.TextColumn(width=120),
            "Failures": st.column_config.NumberColumn(format="localized", width=70),
            "Lost amount (USD)": st.column_config.NumberColumn(format="dollar", width=105),
            "Share": st.column_config.NumberColumn(**fmt.PERCENT_COLUMN, width=60),
            "Recommended action": st.column_config.TextColumn(width=135),
            "Meaning": st.column_config.TextColumn(width=200),
            "Payments": st.column_config.LinkColumn(display_text="View payments", width=95,
                                                    help="The failed payments of this range with this reason"),
        },
    )
    downloads.frame_download(st, top_reasons.drop(columns="Payments"), "Download CSV", "top-failure-reasons", "overview_reasons_csv")

with st.expander("How these numbers are defined", icon=":material/help:"):
    st.table({"Metric": list(definitions.ALL), "Definition": list(definitions.ALL.values())})

if loaded:
    loaded_slot.caption(f"Data loaded {fmt.loaded_at(min(loaded), tz)}")

# -- keep the URL in step, so the view can be shared --------------------------------------------------
params = ranges.view_to_params(view)
if params != url:
    st.query_params.from_dict(params)
st.session_state["overview_url"] = params
