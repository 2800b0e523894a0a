"""Sync health: is the Stripe data complete, and if not, what is missing and what failed
(`paydash sync status`, the System page's "Stripe sync health"; docs/stripe.md).

Pure: a connection, the tables, what of them exists (`SyncScope`) and the time in; a plain
dict out (datetimes naive UTC; jsonout writes them as ISO). Reads the sync's bookkeeping
(paydash_sync_runs, paydash_sync_state), the raw tables' counts and stripe_events:

- runs: the last RUNS, newest first, with their status (running | complete | failed |
  interrupted), error, objects read per type and what the reconcile pass found;
- objects: each object type's cursor (synced_until, a window in progress) and stored rows;
- webhooks: the newest delivered event, the receiver's lag (delivered_at - created: of the
  newest event, and the median over the last hour), events delivered in the last hour and day;
- undelivered: events read through the Events API that no webhook ever delivered;
- problems: one line each with a severity and the fix, most severe first.

Written once for every engine. On a database without the sync's tables (never synced, or
ClickHouse, where the sync does not run) the answer says so: `present` is False.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Collection

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Connection

from paydash.queries import system
from paydash.warehouse.engine import INCREMENTAL_WRITE_DIALECTS
from paydash.warehouse.raw import RawTables, raw_tables
from paydash.warehouse.schema import display_name
from paydash.warehouse.stripe_objects import ObjectTables, object_tables

RUNS = 20  # runs shown, newest first
UNDELIVERED_IDS = 5  # newest ids of undelivered events shown
EXACT_COUNT_LIMIT = 1_000_000  # above this a PostgreSQL table's rows are the planner's estimate (as on System)
STATUSES = ("running", "complete", "failed", "interrupted")
SEVERITIES = ("error", "warning", "info")  # most severe first
# the sync_state rows that are not object types
MARTS_ROW, EVENTS_ROW = "marts", "events"


@dataclass(frozen=True)
class Thresholds:
    # no complete run nor delivered event for longer: stale (as the default alert rule stripe_data_stale)
    stale_after: timedelta = timedelta(hours=26)
    stuck_after: timedelta = timedelta(minutes=30)  # a `running` run without progress for longer: probably dead
    marts_grace: timedelta = timedelta(minutes=10)  # stored objects waiting for the marts longer than this: behind


@dataclass(frozen=True)
class SyncTables:
    raw: RawTables
    objects: ObjectTables

    @classmethod
    def in_schema(cls, schema: str | None) -> "SyncTables":
        return cls(raw_tables(schema), object_tables(schema))

    @classmethod
    def of(cls, wh) -> "SyncTables":  # noqa: ANN001 - a Warehouse
        """Where the sync and the receiver write: the charge mart's schema."""
        return cls.in_schema(wh.marts.payments.schema)

    @property
    def by_type(self) -> dict[str, sa.Table]:
        """Object type (as `paydash sync` names it in paydash_sync_state) -> its raw table."""
        o, r = self.objects, self.raw
        return {
            "customers": o.customers, "coupons": o.coupons, "promotion_codes": o.promotion_codes,
            "payment_intents": r.payment_intents, "charges": r.charges, "refunds": o.refunds,
            "disputes": o.disputes, "checkout_sessions": o.checkout_sessions, "invoices": o.invoices,
        }


@dataclass(frozen=True)
class SyncScope:
    """What of the tables exists: table display names, and the columns of the two tables that
    grew columns (a database a newer paydash has not migrated yet lacks them)."""

    tables: frozenset[str]
    run_columns: frozenset[str] = frozenset()
    event_columns: frozenset[str] = frozenset()
    synced_engine: bool = True  # an engine the sync and the receiver write (not ClickHouse)

    def has(self, table: sa.Table) -> bool:
        return display_name(table) in self.tables


def scope_of(wh, tables: SyncTables) -> SyncScope:  # noqa: ANN001 - a Warehouse
    """The scope of a warehouse (three catalog queries)."""
    present = frozenset(wh.table_names())
    runs, events = tables.objects.sync_runs, tables.raw.events

    def columns(table: sa.Table) -> frozenset[str]:
        return frozenset(wh.columns_of(table)) if display_name(table) in present else frozenset()

    return SyncScope(present, columns(runs), columns(events), wh.dialect in INCREMENTAL_WRITE_DIALECTS)


# -- helpers ----------------------------------------------------------------------------------
def _iso(ts: int | None) -> str | None:
    """unix seconds -> ISO 8601 UTC ('2026-12-04T10:00:00Z')."""
    if ts is None:
        return None
    return datetime.fromtimestamp(int(ts), timezone.utc).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def _json(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _ago(delta: timedelta) -> str:
    """'3 min', '5 h', '2 days'."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7_200:
        return f"{seconds // 60} min"
    if seconds < 172_800:
        return f"{seconds // 3_600} h"
    return f"{seconds // 86_400} days"


def _at(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "never"


def _problem(severity: str, text: str, fix: str) -> dict[str, str]:
    return {"severity": severity, "problem": text, "fix": fix}


def _column(table: sa.Table, name: str, present: Collection[str]) -> sa.ColumnElement:
    """The column when the database has it, else a typed NULL under its name."""
    column = table.c[name]
    return column if name in present else sa.null().cast(column.type).label(name)


# -- parts ------------------------------------------------------------------------------------
RUN_FIELDS = ("run_id", "status", "started_at", "updated_at", "finished_at", "error", "objects", "events_read",
              "events_applied", "events_missing", "missing", "reconciled")


def recent_runs(conn: Connection, tables: SyncTables, scope: SyncScope, limit: int = RUNS) -> list[dict[str, Any]]:
    runs = tables.objects.sync_runs
    stmt = (sa.select(*(_column(runs, name, scope.run_columns) for name in RUN_FIELDS))
            .order_by(runs.c.started_at.desc(), runs.c.run_id.desc()).limit(limit))
    out = []
    for row in conn.execute(stmt).mappings():
        run = dict(row)
        run["objects"] = _json(run["objects"])
        run["missing"] = _json(run["missing"])
        out.append(run)
    return out


def last_complete_at(conn: Connection, tables: SyncTables) -> datetime | None:
    runs = tables.objects.sync_runs
    return conn.execute(sa.select(func.max(runs.c.finished_at)).where(runs.c.status == "complete")).scalar()


def _state_rows(conn: Connection, tables: SyncTables) -> dict[str, dict[str, Any]]:
    s = tables.objects.sync_state
    return {row["object_type"]: dict(row) for row in conn.execute(sa.select(s)).mappings()}


def object_types(conn: Connection, tables: SyncTables, scope: SyncScope, states: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each object type's cursor and stored rows (planner estimates above EXACT_COUNT_LIMIT on PostgreSQL)."""
    by_type = tables.by_type
    counts = {c.table: c for c in system.table_counts(conn, [(t, name) for name, t in by_type.items()],
                                                      set(scope.tables), EXACT_COUNT_LIMIT)}
    out = []
    for name, table in by_type.items():
        state = states.get(name) or {}
        count = counts[display_name(table)]
        window = None
        if state.get("window_end") is not None:
            window = {"start": _iso(state.get("window_start")), "end": _iso(state["window_end"]),
                      "starting_after": state.get("starting_after")}
        out.append({
            "object_type": name,
            "table": display_name(table),
            "synced_until": _iso(state.get("synced_until")),
            "window": window,  # a window a run is reading (or a killed run left half read)
            "read": state.get("objects"),  # objects read through the API in all
            "updated_at": state.get("updated_at"),
            "stored": count.rows if count.present else 0,
            "stored_exact": count.exact,
        })
    return out


def webhooks(conn: Connection, tables: SyncTables, scope: SyncScope, now: datetime) -> dict[str, Any]:
    """The newest delivered event, the receiver's lag and the events delivered lately."""
    e = tables.raw.events
    delivered_at = e.c.delivered_at if "delivered_at" in scope.event_columns else e.c.received_at
    delivered = delivered_at.is_not(None)
    newest = conn.execute(
        sa.select(e.c.id, e.c.type, e.c.created, delivered_at.label("received_at"))
        .where(delivered).order_by(delivered_at.desc(), e.c.id.desc()).limit(1)
    ).mappings().first()
    lag = (func.extract("epoch", delivered_at) - e.c.created)
    hour = now - timedelta(hours=1)
    row = conn.execute(sa.select(
        func.count().filter(delivered_at >= hour).label("last_hour"),
        func.count().label("last_24h"),
        func.percentile_cont(0.5).within_group(lag).filter(delivered_at >= hour).label("median_lag"),
    ).where(delivered_at >= now - timedelta(hours=24), delivered_at <= now)).mappings().one()
    newest_event = None
    if newest is not None:
        newest_event = {"id": newest["id"], "type": newest["type"], "created": _iso(newest["created"]),
                        "received_at": newest["received_at"]}
    return {
        "newest": newest_event,
        "lag_seconds": None if newest is None else round(
            (newest["received_at"] - datetime(1970, 1, 1)).total_seconds() - newest["created"], 1),
        "median_lag_seconds_last_hour": None if row["median_lag"] is None else round(float(row["median_lag"]), 1),
        "events_last_hour": int(row["last_hour"] or 0),
        "events_last_24h": int(row["last_24h"] or 0),
    }


def undelivered(conn: Connection, tables: SyncTables, scope: SyncScope) -> dict[str, Any]:
    """Events read through the Events API that no webhook ever delivered."""
    e = tables.raw.events
    if not {"source", "delivered_at"} <= scope.event_columns:
        return {"count": 0, "by_type": {}, "newest": []}
    where = sa.and_(e.c.source == "api", e.c.delivered_at.is_(None))
    by_type = {t: int(n) for t, n in conn.execute(
        sa.select(e.c.type, func.count()).where(where).group_by(e.c.type).order_by(func.count().desc(), e.c.type))}
    newest = [dict(r, created=_iso(r["created"])) for r in conn.execute(
        sa.select(e.c.id, e.c.type, e.c.created).where(where).order_by(e.c.created.desc(), e.c.id.desc())
        .limit(UNDELIVERED_IDS)).mappings()]
    return {"count": sum(by_type.values()), "by_type": by_type, "newest": newest}


def marts_lag(conn: Connection, tables: SyncTables, scope: SyncScope, states: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """How far the marts are: built through `transformed_through` (the sync builds them at the end
    of a run, from the raw rows loaded since), and the objects queued for them (what the receiver
    and reconciliation stored; refreshed within about a second)."""
    transformed = (states.get(MARTS_ROW) or {}).get("transformed_through")
    queued, oldest = 0, None
    q = tables.raw.refresh_queue
    if scope.has(q):
        queued, oldest = conn.execute(sa.select(func.count(), func.min(q.c.queued_at))).one()
    return {"transformed_through": transformed, "queued": int(queued or 0), "oldest_queued_at": oldest}


# -- the whole ------------------------------------------------------------------------------------
NO_SYNC = ("no Stripe sync has run against this database (its tables paydash_sync_runs and paydash_sync_state "
           "are not there); run `paydash sync` to load the account, and `paydash serve` or `paydash webhooks` "
           "to receive its events")
NOT_SYNCED_ENGINE = ("paydash's Stripe sync and webhook receiver do not write to this database's engine (they write "
                     "DuckDB and PostgreSQL), so it has no sync status: its marts come from dbt or a pipeline of your own "
                     "(docs/scaling.md); run `paydash sync status` against the DuckDB or PostgreSQL database the sync loads")


def sync_health(conn: Connection, tables: SyncTables, scope: SyncScope, now: datetime,
                thresholds: Thresholds = Thresholds()) -> dict[str, Any]:
    """Everything `paydash sync status` shows, as a plain dict (`now`: naive UTC)."""
    runs_there = scope.has(tables.objects.sync_runs) and scope.has(tables.objects.sync_state)
    events_there = scope.has(tables.raw.events)
    out: dict[str, Any] = {
        "as_of": now, "present": runs_there or events_there, "message": None, "problems": [], "runs": [],
        "last_complete_at": None, "data_complete_at": None, "objects": [], "never_populated": [], "reconcile": None,
        "marts": None, "webhooks": None, "undelivered": {"count": 0, "by_type": {}, "newest": []},
        "stale_after_hours": thresholds.stale_after.total_seconds() / 3600,
    }
    if not out["present"]:
        out["message"] = NO_SYNC if scope.synced_engine else NOT_SYNCED_ENGINE
        return out
    states: dict[str, dict[str, Any]] = {}
    if runs_there:
        out["runs"] = recent_runs(conn, tables, scope)
        out["last_complete_at"] = last_complete_at(conn, tables)
        states = _state_rows(conn, tables)
        events_state = states.get(EVENTS_ROW)
        if events_state:
            out["reconcile"] = {"synced_until": _iso(events_state.get("synced_until")),
                                "starting_after": events_state.get("starting_after"),
                                "events": events_state.get("objects"), "updated_at": events_state.get("updated_at")}
    out["objects"] = object_types(conn, tables, scope, states)
    out["never_populated"] = [o["object_type"] for o in out["objects"] if not o["stored"]]
    out["marts"] = marts_lag(conn, tables, scope, states)
    if events_there:
        out["webhooks"] = webhooks(conn, tables, scope, now)
        out["undelivered"] = undelivered(conn, tables, scope)
    newest_event = (out["webhooks"] or {}).get("newest") or {}
    known = [t for t in (out["last_complete_at"], newest_event.get("received_at")) if t is not None]
    out["data_complete_at"] = max(known) if known else None
    out["problems"] = problems(out, runs_there, now, thresholds)
    return out


def problems(health: dict[str, Any], runs_there: bool, now: datetime, thresholds: Thresholds) -> list[dict[str, str]]:
    """One line per problem with its fix, most severe first."""
    found: list[dict[str, str]] = []
    runs = health["runs"]
    # the newest run that ended (a run still running has not said yet)
    last = next((r for r in runs if r["status"] != "running"), None)
    if last is not None and last["status"] in ("failed", "interrupted"):
        error = (last["error"] or "no error recorded").splitlines()[0][:300]
        found.append(_problem(
            "error", f"the last sync ({last['run_id']}, started {_at(last['started_at'])}) {last['status']}: {error}",
            "fix the cause and run `paydash sync` again: it resumes after the last page it stored"))
    def progress(run: dict[str, Any]) -> datetime:
        return run["updated_at"] or run["started_at"]

    stuck = [r for r in runs if r["status"] == "running" and now - progress(r) > thresholds.stuck_after]
    for run in stuck:
        found.append(_problem(
            "warning", f"sync {run['run_id']} is recorded as running but has made no progress for "
            f"{_ago(now - progress(run))} (started {_at(run['started_at'])}): its process probably died",
            "if no `paydash sync` process is alive, run `paydash sync`: it marks that run interrupted and resumes"))
    running = any(r["status"] == "running" and r not in stuck for r in runs)
    complete_at = health["data_complete_at"]
    if runs_there and health["last_complete_at"] is None:
        first = min((r["started_at"] for r in runs), default=None)
        # nothing ever complete for longer than the stale threshold: as stale as it gets
        severity = "info" if first is None else (
            "error" if complete_at is None and now - first > thresholds.stale_after else "warning")
        found.append(_problem(
            severity, "no sync has completed yet" + (
                f" (the first started {_at(first)})" if first else " (none has started)"),
            "run `paydash sync` until it prints `sync complete`" if runs else "run `paydash sync`"))
    if not runs_there:
        found.append(_problem(
            "info", "no `paydash sync` has run against this database: only the webhook receiver writes here, so objects "
            "created before it started, and changes it missed, are not loaded",
            "run `paydash sync` (a restricted key with read access is enough), then schedule it"))
    if complete_at is not None and now - complete_at > thresholds.stale_after:
        found.append(_problem(
            "error", f"Stripe data is stale: nothing known complete for {_ago(now - complete_at)} (last complete sync "
            f"{_at(health['last_complete_at'])}, newest webhook event {_at(((health['webhooks'] or {}).get('newest') or {}).get('received_at'))})",
            "run `paydash sync` (schedule it), and check that the webhook receiver is up and registered in Stripe"))
    last_complete = next((r for r in runs if r["status"] == "complete"), None)
    if last_complete is not None and last_complete["reconciled"] is False:
        found.append(_problem(
            "info", f"the last complete sync ({last_complete['run_id']}) did not read the Events API: changes to objects "
            "it had read before (a dispute closing, a refund failing, a session expiring) reach paydash only through "
            "webhooks",
            "give the API key read access to Events (a restricted key: Events, read), or keep the webhook receiver up"))
    missing = health["undelivered"]
    if missing["count"]:
        kinds = ", ".join(f"{n} {t}" for t, n in list(missing["by_type"].items())[:5])
        found.append(_problem(
            "warning", f"{missing['count']:,} events were read through the Events API but never delivered by a "
            f"webhook ({kinds})",
            "check the webhook endpoint in the Stripe dashboard (its URL, that it is enabled, the events it sends) "
            "and PAYDASH_STRIPE_WEBHOOK_SECRET; `paydash sync --reconcile` keeps applying what it misses"))
    if health["never_populated"] and health["last_complete_at"] is not None:
        found.append(_problem(
            "info", f"never populated: {', '.join(health['never_populated'])}",
            "normal when the account has none; otherwise give the API key read access to them and read them again "
            "with `paydash sync --since YYYY-MM-DD` (the account's first day)"))
    marts = health["marts"] or {}
    transformed = marts.get("transformed_through")
    # a run that stored pages, then ended without building the marts (they are built at its end)
    if last is not None and last["status"] != "complete" and not running and any(last["objects"].values()) \
            and (transformed is None or transformed < last["started_at"]):
        found.append(_problem(
            "warning", f"the marts are behind the raw tables: run {last['run_id']} stored objects and ended before "
            f"building them (marts built through {_at(transformed)})",
            "run `paydash sync` (it builds the marts at its end) or `paydash rebuild-marts`"))
    oldest = marts.get("oldest_queued_at")
    if oldest is not None and now - oldest > thresholds.marts_grace:
        found.append(_problem(
            "warning", f"{marts['queued']:,} stored objects have waited {_ago(now - oldest)} for the marts",
            "check the webhook receiver's log for a marts refresh error (its /healthz says `marts_refresh_error`), "
            "then restart it or run `paydash rebuild-marts`"))
    found.sort(key=lambda p: SEVERITIES.index(p["severity"]))
    return found
