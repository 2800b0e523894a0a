"""System (admins): is the database healthy, how much data is there, is it consistent, who did what."""

from datetime import date

import streamlit as st

from paydash.app import admin_data, admin_tables, data, login
from paydash.app import format as fmt

settings = data.settings()
user = login.require_admin(settings)
source = data.Source.from_settings(settings)
data.outage_banner(source, user)  # an unreachable database is said once, here
tz = source.timezone
today = admin_data.today(source)
AUDIT = admin_data.audit
NOTICE = "system_notice"


def refresh() -> None:
    for read in (admin_data.table_counts, admin_data.growth, admin_data.quality, admin_data.sync_health):
        read.clear()


def clear_cache() -> None:
    admin_data.clear_caches()
    admin_data.record(settings, user.username, AUDIT.CLEAR_CACHE, "every cached read and the database engines")
    st.session_state[NOTICE] = ("success", "The cache is cleared: every page reads the database again.")


def test_connection() -> None:
    result = admin_data.test_connection(source)
    outcome = f"ok in {result.ms:.0f} ms" if result.ok else f"failed: {result.message}"
    admin_data.record(settings, user.username, AUDIT.TEST_CONNECTION, f"{result.where}: {outcome}")
    st.session_state[NOTICE] = ("success", f"A new connection to {fmt.md_escape(result.where)} answered in {result.ms:.0f} ms.") \
        if result.ok else ("error", f"A new connection failed: {fmt.md_escape(result.message)}")


def report_download(kind: str):  # noqa: ANN201
    def build() -> bytes:
        report = admin_data.system_report(settings, source, user.username)
        admin_data.record(settings, user.username, AUDIT.SYSTEM_REPORT, f"{kind} report downloaded")
        text = admin_data.health.report_json(report) if kind == "json" else admin_data.health.report_markdown(report)
        return text.encode()

    return admin_data.deferred_csv(build, "system report")


def csv_download(df, name: str, key: str) -> None:  # noqa: ANN001
    admin_data.csv_download(settings, user.username, df, name, key)


st.title("System")
title_col, refresh_col = st.columns([5, 1], vertical_alignment="bottom")
title_col.caption("For admins: health, data volume and quality, versions, the slowest recent queries and the audit log.")
refresh_col.button("Refresh", key="system_refresh", on_click=refresh, icon=":material/refresh:",
                   help="Read the counts and checks again from the database.")
if NOTICE in st.session_state:
    kind, message = st.session_state.pop(NOTICE)
    (st.success if kind == "success" else st.error)(message)

# -- health --------------------------------------------------------------------------------------
st.header("Health")
db = admin_data.database_health(source)
db_col, redis_col = st.columns(2)
db_col.metric(f"Database ({db.dialect})", f"{db.ms:.0f} ms" if db.ok else "unreachable",
              help="Time of a trivial query through the dashboard's connection pool.")
db_col.caption(fmt.md_escape(db.where))
if not db.ok and not db.unreachable:  # unreachable: the banner at the top says it, with the fix
    db_col.error(fmt.md_escape(db.message))
redis = admin_data.redis_health(settings)
if redis is None:
    redis_col.metric("Redis", "not configured", help="Set PAYDASH_REDIS_URL (redis://host:6379/0) to check it here.")
else:
    redis_col.metric("Redis", f"{redis.ms:.0f} ms" if redis.ok else "unreachable", help="Time of a PING on a new connection.")
    redis_col.caption(fmt.md_escape(f"{redis.where}, version {redis.version or 'unknown'}"))
    if not redis.ok:
        redis_col.error(fmt.md_escape(redis.message))

# -- Stripe sync health ----------------------------------------------------------------------------
SEVERITY = {"error": (st.error, ":material/error:"), "warning": (st.warning, ":material/warning:"),
            "info": (st.info, ":material/info:")}
st.header("Stripe sync health")
with data.section("Stripe sync health"):
    sync = admin_data.sync_health(source)
    health = sync.value
    if not health["present"]:
        st.info(fmt.md_escape(health["message"][0].upper() + health["message"][1:] + "."), icon=":material/sync_disabled:")
    else:
        for problem in health["problems"]:
            show, icon = SEVERITY[problem["severity"]]
            show(f"{fmt.md_escape(problem['problem'])}  \n**Fix:** {fmt.md_escape(problem['fix'])}", icon=icon)
        if not health["problems"]:
            st.success("No problem found: the last sync completed and nothing is missing.", icon=":material/check_circle:")
        webhooks = health["webhooks"] or {}
        newest = webhooks.get("newest") or {}
        complete_col, sync_col, event_col, lag_col = st.columns(4)
        complete_col.metric("Known complete at", admin_tables.when_short(health["data_complete_at"]),
                            help="The newest of the last complete sync's end and the newest delivered webhook event: "
                                 f"{admin_tables.when_utc(health['data_complete_at'])}.")
        sync_col.metric("Last complete sync", admin_tables.when_short(health["last_complete_at"]),
                        help=f"{admin_tables.when_utc(health['last_complete_at'])}")
        event_col.metric("Newest webhook event", admin_tables.when_short(newest.get("received_at")),
                         help=f"{newest['id']} ({newest['type']}), received {admin_tables.when_utc(newest.get('received_at'))}"
                         if newest else "No webhook event was delivered yet.")
        lag = webhooks.get("median_lag_seconds_last_hour")
        lag_col.metric("Receiver lag, last hour", fmt.EMPTY if lag is None else f"{lag:,.1f} s",
                       help="Median of received minus created of the events delivered in the last hour "
                            f"({fmt.count(webhooks.get('events_last_hour'))} events; "
                            f"{fmt.count(webhooks.get('events_last_24h'))} in the last 24 hours).")
        st.subheader("Runs")
        runs_df = admin_tables.sync_runs(health["runs"])
        st.dataframe(runs_df, key="system_sync_runs", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
        st.caption("The last runs of `paydash sync`, newest first: running, complete, failed (with the error) or "
                   "interrupted (stopped, or found running by the next run).")
        st.subheader("Object types")
        objects_df = admin_tables.sync_objects(health["objects"])
        st.dataframe(objects_df, key="system_sync_objects", hide_index=True, placeholder=fmt.EMPTY, width="stretch",
                     column_config={"Stored": st.column_config.NumberColumn(format="localized")})
        reconcile = health["reconcile"]
        st.caption("Synced until: every object created before it has been read. " + (
            f"The reconcile pass has read the Events API up to {admin_tables.when_utc(reconcile['synced_until'])}."
            if reconcile else "The reconcile pass (`paydash sync --reconcile`) has not run yet."))
        undelivered = health["undelivered"]
        if undelivered["count"]:
            st.subheader("Events never delivered by a webhook")
            st.dataframe(admin_tables.undelivered_events(undelivered), key="system_sync_undelivered", hide_index=True,
                         width="stretch", placeholder=fmt.EMPTY)
            st.caption("Read through the Events API, never delivered; newest: "
                       + ", ".join(fmt.md_escape(e["id"]) for e in undelivered["newest"]))
        csv_download(runs_df, "sync-runs", "system_sync_runs_csv")
    st.caption(f"Loaded {fmt.loaded_at(sync.loaded_at, tz)}; `paydash sync status` prints the same.")

# -- tables -------------------------------------------------------------------------------------
st.header("Tables")
with data.section("Row counts"):
    counts = admin_data.table_counts(source)
    df = admin_tables.table_counts(counts.value)
    st.dataframe(df, key="system_tables", hide_index=True, placeholder=fmt.EMPTY, width="stretch",
                 column_config={"Rows": st.column_config.NumberColumn(format="localized")})
    estimated = [c for c in counts.value if c.present and not c.exact]
    st.caption(f"Every table paydash reads. Counts are exact" + (
        f", except {len(estimated)} large PostgreSQL table(s) shown with the planner's estimate (pg_class, as of the "
        f"last ANALYZE): an exact count(*) reads the whole table." if estimated else ".")
        + f" Loaded {fmt.loaded_at(counts.loaded_at, tz)}")
    csv_download(df, "tables", "system_tables_csv")

# -- growth -------------------------------------------------------------------------------------
st.header("Growth")
with data.section("Growth"):
    result = admin_data.growth(source, today)
    rows, from_totals = result.value
    cols = st.columns(len(rows))
    for col, g in zip(cols, rows):
        col.metric(f"New payments, {g.period.lower()}", fmt.count(g.new_payments))
        col.metric(f"New customers, {g.period.lower()}", fmt.count(g.new_customers))
    df = admin_tables.growth(rows)
    st.caption(
        f"Whole days in {tz}, today included. New payments: charge attempts created in the period. New customers: "
        "customers whose first charge attempt falls in the period"
        + (" (from the customer-totals mart)." if from_totals else " (from the charge mart).")
        + f" Loaded {fmt.loaded_at(result.loaded_at, tz)}"
    )
    csv_download(df, "growth", "system_growth_csv")

# -- data quality -------------------------------------------------------------------------------
st.header("Data quality")
days = st.segmented_control("Check the last", admin_data.system.QUALITY_WINDOWS, default=admin_data.system.QUALITY_DAYS,
                            format_func=lambda d: f"{d} day" + ("s" if d > 1 else ""), key="system_quality_days")
days = days or admin_data.system.QUALITY_DAYS
with data.section("Data-quality checks"):
    q = admin_data.quality(source, today, days)
    checks = q.value
    df = admin_tables.quality_checks(checks)
    st.dataframe(df, key="system_quality", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
    st.caption(f"Checked the charge attempts of the last {checks.days} day(s), since {checks.since} ({tz}), so the checks stay "
               f"fast on large marts; pick a longer window above. Loaded {fmt.loaded_at(q.loaded_at, tz)}")
    csv_download(df, "data-quality", "system_quality_csv")
    if checks.daily_mismatches:
        st.subheader("Dates where the daily mart disagrees with the charge mart")
        mismatches = admin_tables.daily_mismatches(checks.daily_mismatches)
        st.dataframe(mismatches, key="system_mismatches", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
        st.caption("Rebuild the daily mart from the charge mart (dbt run, or `paydash demo` for demo data).")
        csv_download(mismatches, "daily-mismatches", "system_mismatches_csv")

# -- versions and environment ---------------------------------------------------------------------
st.header("Versions and environment")
versions_col, env_col = st.columns([1, 2])
with versions_col:
    df = admin_tables.key_values(admin_data.versions(db), "Component", "Version")
    st.dataframe(df, key="system_versions", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
    csv_download(df, "versions", "system_versions_csv")
with env_col:
    df = admin_tables.environment(admin_data.health.environment(settings))
    st.dataframe(df, key="system_environment", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
    st.caption("Secrets show only whether they are set; URLs hide their password.")
    csv_download(df, "environment", "system_environment_csv")

# -- slowest recent queries -----------------------------------------------------------------------
st.header("Slowest recent queries")
slow = admin_data.slowest_queries()
df = admin_tables.slow_queries(slow, tz)
st.dataframe(df, key="system_slow", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
st.caption("Timed by the query layer in this server process (the last 500 statements, parameters left out).")
csv_download(df, "slow-queries", "system_slow_csv")

# -- actions ---------------------------------------------------------------------------------------
st.header("Actions")
clear_col, test_col, json_col, md_col = st.columns(4)
clear_col.button("Clear the cache", key="system_clear_cache", on_click=clear_cache, icon=":material/delete_sweep:")
test_col.button("Test the connection", key="system_test_connection", on_click=test_connection, icon=":material/cable:")
json_col.download_button("System report (JSON)", data=report_download("json"), file_name=f"paydash-system-{date.today():%Y%m%d}.json",
                         mime="application/json", key="system_report_json", on_click="ignore", icon=":material/download:")
md_col.download_button("System report (Markdown)", data=report_download("markdown"),
                       file_name=f"paydash-system-{date.today():%Y%m%d}.md", mime="text/markdown",
                       key="system_report_md", on_click="ignore", icon=":material/download:")

# -- audit log -------------------------------------------------------------------------------------
st.header("Audit log")
PAGE = "system_audit_page"


def audit_page(n: int) -> None:
    st.session_state[PAGE] = n


log = admin_data.audit_log(settings)
with data.section("Audit log"):
    choices = log.choices()
    user_col, action_col, dates_col = st.columns(3)
    who = user_col.selectbox("User", ["Everyone", *choices["username"]], key="system_audit_user", on_change=audit_page, args=(1,))
    action = action_col.selectbox("Action", ["Every action", *choices["action"]], key="system_audit_action",
                                  on_change=audit_page, args=(1,))
    picked = dates_col.date_input("Dates", value=(), key="system_audit_dates", format="YYYY-MM-DD", on_change=audit_page,
                                  args=(1,))
    picked = [d for d in (picked or ()) if isinstance(d, date)]
    audit_filter = AUDIT.AuditFilter(
        username=None if who == "Everyone" else who,
        action=None if action == "Every action" else action,
        date_range=AUDIT.day_range(min(picked), max(picked), tz) if picked else None,
    )
    found = log.page(audit_filter, st.session_state.get(PAGE, 1))
    st.markdown(f"**{fmt.count(found.total)}** entries")
    st.dataframe(admin_tables.audit_entries(found.entries, tz), key="system_audit", hide_index=True, placeholder=fmt.EMPTY, width="stretch")
    prev_col, pos_col, next_col, export_col = st.columns([1, 2, 1, 2], vertical_alignment="center")
    prev_col.button("Previous", key="system_audit_previous", disabled=found.page <= 1, on_click=audit_page,
                    args=(found.page - 1,), icon=":material/chevron_left:")
    pos_col.markdown(f"Page {fmt.count(found.page)} of {fmt.count(found.pages)}")
    next_col.button("Next", key="system_audit_next", disabled=found.page >= found.pages, on_click=audit_page,
                    args=(found.page + 1,), icon=":material/chevron_right:")

    def audit_csv() -> bytes:
        body = b"".join(log.csv_chunks(audit_filter))
        admin_data.record(settings, user.username, AUDIT.EXPORT, f"audit log CSV, {found.total} entries")
        return body

    export_col.download_button(f"Download CSV ({fmt.quantity(found.total, 'entry', 'entries')})", data=admin_data.deferred_csv(audit_csv, "audit log"),
                               file_name=f"paydash-audit-{date.today():%Y%m%d}.csv", mime="text/csv", key="system_audit_csv",
                               on_click="ignore", icon=":material/download:", disabled=not found.total)
    st.caption(f"Sign-ins, failed sign-ins, exports and admin actions, newest first; times in {tz}. "
               f"Stored in the state store {fmt.md_escape(log.where)}, outside the warehouse.")
