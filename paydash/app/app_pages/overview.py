"""Overview: how much we took, how many payments failed and why, and what retries won back."""

import streamlit as st

from paydash.app import charts, data, definitions, downloads, explorer, login, tables
from paydash.app import format as fmt
from paydash.app.ranges import PRESETS, chosen_range

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
loaded = []

st.title("Overview")

# -- what to look at --------------------------------------------------------------------------
range_col, funnel_col, refresh_col = st.columns([3, 2, 2], vertical_alignment="bottom")
with range_col:
    preset = st.segmented_control("Date range", list(PRESETS), default="Last 30 days", key="overview_preset",
                                  help=definitions.RANGE)
    custom = None
    if preset == "Custom":
        custom = st.date_input("Custom range", value=(), key="overview_custom", format="YYYY-MM-DD")
with funnel_col:
    funnels = []
    with data.section("Funnels"):
        result = data.funnel_names(source)
        funnels = result.value
    funnel = st.selectbox("Funnel", ["All funnels", *funnels], key="overview_funnel")
    funnel = None if funnel == "All funnels" else funnel
with refresh_col:
    st.button("Refresh", key="overview_refresh", on_click=data.refresh_overview, icon=":material/refresh:",
              help="Read the numbers again from the database.")
    loaded_slot = st.empty()

rng, range_note = chosen_range(preset, custom, tz)
if range_note:
    st.info(range_note)
previous = rng.previous()
st.caption(
    f"{rng.start:%b %d, %Y} to {rng.end:%b %d, %Y} ({rng.days} days, {tz}), "
    f"compared with {previous.start:%b %d} to {previous.end:%b %d, %Y}"
)

# -- the four cards -----------------------------------------------------------------------------
with data.section("Totals"):
    result = data.overview_totals(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    now, change = result.value["current"], result.value["change"]
    revenue, success, failed, attempts = st.columns(4, border=True)
    revenue.metric("Revenue", fmt.money_compact(now["revenue_usd"]), fmt.relative_change(change["revenue_usd"]),
                   help=definitions.REVENUE)
    revenue.caption(f"{fmt.money(now['revenue_usd'])} exactly")
    success.metric("Success rate", fmt.percent(now["success_rate"]), fmt.points_change(change["success_rate"]),
                   help=definitions.SUCCESS_RATE)
    failed.metric("Failed payments", fmt.count(now["failed"]), fmt.relative_change(change["failed"]),
                  delta_color="inverse", help=definitions.FAILED)
    failed.caption(f"{fmt.money(now['failed_amount_usd'])} failed amount")
    attempts.metric("Attempts", fmt.count(now["attempts"]), fmt.relative_change(change["attempts"]),
                    help=definitions.ATTEMPTS)

# -- charts -------------------------------------------------------------------------------------
daily_col, donut_col = st.columns([3, 2])
with daily_col, data.section("Daily revenue and success rate"):
    st.subheader("Revenue and success rate by day")
    result = data.daily_series(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    st.vega_lite_chart(spec=charts.daily_revenue(result.value), key="overview_daily", width="stretch")

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

recovery_col, reasons_col = st.columns([2, 3])
with recovery_col, data.section("Recovery"):
    st.subheader("Recovery through retries", help=definitions.RECOVERY_RATE)
    result = data.recovery_trend(source, rng.start, rng.end, funnel)
    loaded.append(result.loaded_at)
    recovered = result.value
    rate, acceptance = st.columns(2)
    rate.metric("Recovery rate", fmt.percent(recovered["recovery_rate"]), help=definitions.RECOVERY_RATE)
    acceptance.metric("Payment acceptance", fmt.percent(recovered["payment_acceptance"]), help=definitions.ACCEPTANCE)
    won, lost = st.columns(2)
    won.metric("Recovered revenue", fmt.money_compact(recovered["recovered_usd"]), help=definitions.RECOVERED)
    lost.metric("Unrecovered amount", fmt.money_compact(recovered["unrecovered_usd"]), help=definitions.UNRECOVERED)
    st.vega_lite_chart(spec=charts.recovery_trend(recovered["by_day"]), key="overview_recovery", width="stretch")

with reasons_col, data.section("Top failure reasons"):
    st.subheader("Top failure reasons", help=definitions.TOP_REASONS)
    result = data.failure_breakdown(source, rng.start, rng.end, funnel)
    top_reasons = tables.top_failure_reasons(
        result.value["by_code"], link=lambda code: explorer.failures_link(rng, funnel, failure_code=code or None))
    st.dataframe(
        top_reasons,
        key="overview_reasons",
        hide_index=True,
        width="stretch",
        height="content",
        column_config={
            "Failures": st.column_config.NumberColumn(format="localized"),
            "Lost amount (USD)": st.column_config.NumberColumn(format="dollar"),
            "Share": st.column_config.NumberColumn(format="percent"),
            "Meaning": st.column_config.TextColumn(width="large"),
            "Payments": st.column_config.LinkColumn(display_text="View payments",
                                                    help="The failed payments of this range with this reason"),
        },
    )
    downloads.frame_download(st, top_reasons.drop(columns="Payments"), "Download CSV", "top-failure-reasons", "overview_reasons_csv")

with st.expander("How these numbers are defined", icon=":material/help:"):
    st.table({"Metric": list(definitions.ALL), "Definition": list(definitions.ALL.values())})

if loaded:
    loaded_slot.caption(f"Data loaded {fmt.loaded_at(min(loaded), tz)}")
