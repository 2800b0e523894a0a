"""Operations: is checkout healthy right now? For stand-up and on-call; refreshes itself every minute.

The refresh (PAYDASH_OPERATIONS_REFRESH seconds) reruns only the `live` fragment, so the
fragment checks the session itself on each run; a refresh is not activity (login.py), so an
untouched tab shows "session ended" once the idle limit has passed.
"""

from datetime import datetime, timezone

import streamlit as st

from paydash.app import data, downloads, login
from paydash.app import format as fmt
from paydash.app import operations_view as view

settings = data.settings()
user = login.require_user(settings)
source = data.Source.from_settings(settings)
tz = source.timezone
RANGES = {"Last 6 hours": (6, 1), "Last 24 hours": (24, 5), "Last 7 days": (168, 30)}  # hours, step in minutes
TARGET, P95_LIMIT = 0.97, 2_000

st.title("Operations")

range_col, auto_col, refresh_col = st.columns([3, 2, 2], vertical_alignment="bottom")
with range_col:
    chosen = st.segmented_control("Time range", list(RANGES), default="Last 24 hours", key="operations_range")
    hours, step = RANGES[chosen or "Last 24 hours"]
with auto_col:
    every = settings.operations_refresh
    auto = st.toggle("Refresh every minute" if every == 60 else f"Refresh every {every} seconds", value=True,
                     key="operations_auto", help=f"Re-reads the numbers every {every} seconds without reloading the page.")
with refresh_col:
    st.button("Refresh now", key="operations_refresh", on_click=data.refresh_operations, icon=":material/refresh:",
              help="Read the numbers again from the database.")


@st.fragment(run_every=every if auto else None)
def live() -> None:
    login.require_user(settings)  # an auto-refresh runs only this function: the session is checked here too
    # every read of this page is in this fragment, whose own runs (the auto-refresh) leave the rest of
    # the page alone: the page's one banner for an unreachable database is here, above the numbers
    data.outage_banner(source, user)
    missing = None
    with data.section("Operations events"):
        missing = data.operations_missing(source)
    if missing:
        st.warning(
            f"The Operations page needs the table **{fmt.md_escape(missing)}** (operations events), which is not in "
            "the database. Fill it with `paydash demo` (demo data), the webhook receiver `paydash webhooks` "
            "(Stripe checkout-session, payment-intent and invoice events) or `POST /events` on the receiver with "
            "PAYDASH_EVENTS_TOKEN set (your own services); or set PAYDASH_OPERATIONS_EVENTS_TABLE to where your "
            "events live. The other pages work without it. See docs/operations.md.",
            icon=":material/table_view:",
        )
        return
    with data.section("Operations"):
        now, from_data, latest = data.operations_now(source, datetime.now(timezone.utc).replace(tzinfo=None, second=0,
                                                                                               microsecond=0)).value
        if latest is None:
            st.info("The operations events table is empty: no checkout, retry or receipt event has been recorded yet.")
            return
        if from_data:
            st.info(
                f"The newest event is from {fmt.local_time(latest, tz)} ({tz}), older than now: the page shows the data "
                f"as of then ({fmt.local_time(now, tz)}), not the clock (demo or stale data).",
                icon=":material/history:",
            )
        result = data.operations_panels(source, now, hours, step)
        panels = result.value
        snap = panels["snapshot"]
        st.caption(f"As of {fmt.local_time(now, tz)} {tz}; data loaded {fmt.loaded_at(result.loaded_at, tz)}")

        tiles = st.columns(4, border=True)
        rate = snap["checkout_success_rate_15m"]
        tiles[0].metric("Checkout success (15 min)", fmt.percent(rate),
                        None if rate is None else f"{(rate - TARGET) * 100:+.1f} pp vs 97% target", help=view.SUCCESS_RATE)
        tiles[0].caption(fmt.quantity(snap['checkouts_completed_15m'], 'completed checkout'))
        tiles[1].metric("Sessions active", fmt.count(snap["active_sessions"]), help=view.ACTIVE)
        tiles[2].metric("Sessions pending", fmt.count(snap["pending_sessions"]), help=view.PENDING)
        slo = panels["slo"]
        tiles[3].metric("Expired without retry (24 h)", fmt.percent(slo["share"]),
                        None if slo["share"] is None else ("within the 5% goal" if slo["share"] < slo["goal"] else "over the 5% goal"),
                        delta_color="normal" if slo["share"] is None or slo["share"] < slo["goal"] else "inverse",
                        help=view.SLO)
        tiles = st.columns(4, border=True)
        tiles[0].metric("Expired sessions (1 h)", fmt.count(snap["expired_sessions_1h"]), help=view.EXPIRED)
        tiles[1].metric("Retry backlog", fmt.count(panels["backlog"]["backlog"]), help=view.BACKLOG)
        if panels["backlog"]["oldest_age_seconds"] is not None:
            tiles[1].caption(f"oldest waiting {view.seconds(panels['backlog']['oldest_age_seconds'])}")
        tiles[2].metric("Receipt render p95 (1 h)", view.milliseconds(snap["receipt_p95_ms_1h"]), help=view.RECEIPT_P95)
        tiles[3].metric("Webhook lag (5 min)", view.seconds(snap["webhook_lag_seconds"]), help=view.LAG)

        st.subheader("Checkout success rate, 15-minute rolling windows", help=view.SUCCESS_RATE)
        st.vega_lite_chart(spec=view.success_rate(panels["success"], tz, TARGET), key="operations_success", width="stretch")

        left, right = st.columns(2)
        with left:
            st.subheader("Expired sessions per hour", help=view.EXPIRED)
            st.vega_lite_chart(spec=view.expired_with_overrides(panels["hourly"], panels["overrides"], tz),
                               key="operations_expired", width="stretch")
        with right:
            st.subheader("Window extensions and manual overrides")
            st.vega_lite_chart(spec=view.extensions_and_overrides(panels["hourly"], tz), key="operations_extensions",
                               width="stretch")

        left, right = st.columns([3, 2])
        with left:
            st.subheader("Retry attempts and success rate", help=view.RETRIES)
            st.vega_lite_chart(spec=view.retries(panels["hourly"], tz), key="operations_retries", width="stretch")
        with right:
            st.subheader("Retry outcomes by retry number", help=view.HEATMAP)
            if panels["heatmap"]:
                st.vega_lite_chart(spec=view.retry_heatmap(panels["heatmap"]), key="operations_heatmap", width="stretch")
            else:
                st.info("No completed retries in this range.")

        st.subheader("Top 10 failure reasons, last 24 hours", help=view.REASONS)
        reasons = view.reasons_table(panels["reasons"], tz)
        st.dataframe(reasons, key="operations_reasons", hide_index=True, placeholder=fmt.EMPTY, width="stretch", height="content")
        downloads.frame_download(st, reasons, "Download CSV", "failure-reasons-24h", "operations_reasons_csv")

        left, right = st.columns(2)
        with left:
            st.subheader("Receipt render time p95", help=view.RECEIPT_P95)
            st.vega_lite_chart(spec=view.receipt_p95(panels["hourly"], tz, P95_LIMIT), key="operations_p95", width="stretch")
        with right:
            st.subheader("Receipt errors", help=view.RECEIPT_ERRORS)
            st.vega_lite_chart(spec=view.receipt_failures(panels["hourly"], tz), key="operations_receipt_errors",
                               width="stretch")
            if panels["receipt_errors"]:
                errors = view.receipt_errors_table(panels["receipt_errors"], tz)
                st.dataframe(errors, key="operations_receipt_error_table", hide_index=True, placeholder=fmt.EMPTY, width="stretch", height="content")
                downloads.frame_download(st, errors, "Download CSV", "receipt-errors", "operations_receipt_errors_csv")

        st.subheader("Recent receipts")
        receipts = view.receipts_table(panels["receipts"], tz)
        st.dataframe(receipts, key="operations_receipts", hide_index=True, placeholder=fmt.EMPTY, width="stretch", height="content")
        downloads.frame_download(st, receipts, "Download CSV", "recent-receipts", "operations_receipts_csv")

        st.subheader("Webhook processing lag", help=view.LAG)
        if panels["lag"]:
            st.vega_lite_chart(spec=view.webhook_lag(panels["lag"], tz), key="operations_lag", width="stretch")
        else:
            st.info("No Stripe events were received in this range.")

        if panels["overrides"]:
            with st.expander(f"Manual overrides in this range ({len(panels['overrides'])})"):
                overrides = view.overrides_table(panels["overrides"], tz)
                st.dataframe(overrides, key="operations_overrides", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
                downloads.frame_download(st, overrides, "Download CSV", "manual-overrides", "operations_overrides_csv")

    # -- alert state and history: filled in by the alert runner (data.alert_state) -------------------
    st.subheader("Alerts")
    with data.section("Alert state and history"):
        alerts = data.alert_state(source)
        if alerts is None:
            st.caption("Alert state and history appear here once the alert runner (`paydash alerts watch`) is set up.")
        else:
            st.dataframe(alerts.value.get("rules", []), key="operations_alert_rules", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
            downloads.frame_download(st, alerts.value.get("rules", []), "Download CSV", "alert-rules", "operations_alert_rules_csv")
            st.dataframe(alerts.value.get("history", []), key="operations_alert_history", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
            downloads.frame_download(st, alerts.value.get("history", []), "Download CSV", "alert-history",
                                     "operations_alert_history_csv")


live()
