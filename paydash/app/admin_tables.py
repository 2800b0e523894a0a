"""The admin pages' results shaped into tables (pure; every text cell is plain text), and their CSV."""

from __future__ import annotations

from datetime import datetime

from typing import Any, Iterable

import pandas as pd

from paydash.app import format as fmt
from paydash.csv_safe import csv_bytes


def to_csv(df: pd.DataFrame) -> bytes:
    """A shown table as formula-safe CSV (the whole table: these are small)."""
    return csv_bytes([str(c) for c in df.columns], df.itertuples(index=False, name=None))


def table_counts(counts: Iterable[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Table": c.table,
                "Role": c.role,
                "Present": "yes" if c.present else "no",
                "Rows": c.rows,
                "Count": ("exact" if c.exact else "estimate (pg_class)") if c.present else "",
            }
            for c in counts
        ],
        columns=["Table", "Role", "Present", "Rows", "Count"],
    ).astype({"Rows": "Int64"})


def growth(rows: Iterable[Any]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Period": g.period, "Since": g.since.isoformat(), "New payments": g.new_payments,
          "New customers": g.new_customers} for g in rows],
        columns=["Period", "Since", "New payments", "New customers"],
    )


def quality_checks(q: Any) -> pd.DataFrame:
    rows = [
        ("Payments without a customer", q.payments_without_customer, "charge attempts with no customer_id"),
        ("Retries without a first attempt", q.retries_without_first_attempt,
         "payment intents with a retry in the window and no attempt 1 anywhere"),
        ("Duplicate charge ids", q.duplicate_charge_ids, "charge ids with more than one row in the window"),
        ("Duplicate customer ids", q.duplicate_customer_ids, "in the customers table (whole table)"),
        ("Daily mart disagrees with the charge mart", len(q.daily_mismatches),
         "dates whose attempts or revenue differ (all funnels)"),
    ]
    return pd.DataFrame(
        [{"Check": name, "Found": found, "Status": "not checked" if found is None else ("ok" if found == 0 else "problem"),
          "What it counts": what} for name, found, what in rows],
        columns=["Check", "Found", "Status", "What it counts"],
    ).astype({"Found": "Int64"})


def daily_mismatches(rows: Iterable[Any]) -> pd.DataFrame:
    def num(v: Any) -> float | None:
        return None if v is None else float(v)

    return pd.DataFrame(
        [{"Date": m.date.isoformat(), "Daily mart attempts": m.mart_attempts, "Charge mart attempts": m.charge_attempts,
          "Daily mart revenue (USD)": num(m.mart_revenue), "Charge mart revenue (USD)": num(m.charge_revenue)}
         for m in rows],
        columns=["Date", "Daily mart attempts", "Charge mart attempts", "Daily mart revenue (USD)",
                 "Charge mart revenue (USD)"],
    )


def key_values(values: dict[str, Any], key: str = "Name", value: str = "Value") -> pd.DataFrame:
    return pd.DataFrame([{key: fmt.text(k), value: fmt.text(v)} for k, v in values.items()], columns=[key, value])


def environment(rows: list[dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Setting": r["setting"], "Value": fmt.text(r["value"]), "Default": r["default"]} for r in rows],
        columns=["Setting", "Value", "Default"],
    )


def slow_queries(rows: Iterable[Any], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"Query": fmt.text(q.label), "ms": round(q.ms, 1), "When": fmt.local_time(q.at, tz),
          "Statement": fmt.text(q.statement)} for q in rows],
        columns=["Query", "ms", "When", "Statement"],
    )


def audit_entries(entries: Iterable[Any], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"When": fmt.local_time(e.at, tz), "User": fmt.text(e.username), "Action": fmt.text(e.action),
          "Detail": fmt.text(e.detail)} for e in entries],
        columns=["When", "User", "Action", "Detail"],
    )


def catalog_tables(columns: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per table: schema, name, number of columns."""
    counts: dict[tuple[str, str], int] = {}
    for c in columns:
        counts[(c["schema"], c["table"])] = counts.get((c["schema"], c["table"]), 0) + 1
    return pd.DataFrame(
        [{"Schema": fmt.text(s), "Table": fmt.text(t), "Columns": n} for (s, t), n in counts.items()],
        columns=["Schema", "Table", "Columns"],
    )


def catalog_columns(columns: list[dict[str, Any]], schema: str, table: str) -> pd.DataFrame:
    return pd.DataFrame(
        [{"#": c["position"], "Column": fmt.text(c["column"]), "Type": fmt.text(c["type"])}
         for c in columns if c["schema"] == schema and c["table"] == table],
        columns=["#", "Column", "Type"],
    )


def query_result(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    """A saved query's rows; column names made unique (SQL allows repeats, a table does not)."""
    names: list[str] = []
    for c in columns:
        name, n = str(c), 2
        while name in names:
            name, n = f"{c} ({n})", n + 1
        names.append(name)
    return pd.DataFrame([_plain_row(r) for r in rows], columns=names)


def _plain_row(row: tuple) -> list[Any]:
    out = []
    for v in row:
        if v is None or isinstance(v, (bool, int, float, str)):
            out.append(v)
        else:
            out.append(fmt.text(v))  # dates, decimals, lists, structs: shown as text
    return out


# -- Stripe sync health ------------------------------------------------------------------------------
def when_utc(value: Any) -> str:
    """A naive UTC datetime (or ISO text) as 'YYYY-MM-DD HH:MM:SS UTC'."""
    if value is None:
        return fmt.EMPTY
    if isinstance(value, str):
        return value.replace("T", " ").removesuffix("Z") + " UTC"
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def when_short(value: Any) -> str:
    """The same as 'Dec 04 23:00 UTC': short enough for a metric card (the full time in its help)."""
    if value is None:
        return fmt.EMPTY
    if isinstance(value, str):
        value = datetime.fromisoformat(value.removesuffix("Z"))
    return value.strftime("%b %d %H:%M UTC")


def sync_runs(runs: Iterable[dict[str, Any]]) -> pd.DataFrame:
    columns = ["Run", "Status", "Started", "Finished", "Objects read", "Events read", "Applied", "Never delivered", "Error"]
    return pd.DataFrame(
        [{
            "Run": r["run_id"], "Status": r["status"], "Started": when_utc(r["started_at"]), "Finished": when_utc(r["finished_at"]),
            "Objects read": ", ".join(f"{k} {v:,}" for k, v in r["objects"].items() if v) or fmt.EMPTY,
            "Events read": r["events_read"], "Applied": r["events_applied"], "Never delivered": r["events_missing"],
            "Error": (r["error"] or "").splitlines()[0][:300] if r["error"] else fmt.EMPTY,
        } for r in runs],
        columns=columns,
    ).astype({"Events read": "Int64", "Applied": "Int64", "Never delivered": "Int64"})


def sync_objects(objects: Iterable[dict[str, Any]]) -> pd.DataFrame:
    columns = ["Object type", "Synced until", "Window in progress", "Stored", "Count", "Cursor updated", "Table"]
    return pd.DataFrame(
        [{
            "Object type": o["object_type"], "Synced until": when_utc(o["synced_until"]),
            "Window in progress": f"{when_utc(o['window']['start'])} to {when_utc(o['window']['end'])}" if o["window"] else fmt.EMPTY,
            "Stored": o["stored"], "Count": "exact" if o["stored_exact"] else "estimate (pg_class)",
            "Cursor updated": when_utc(o["updated_at"]), "Table": o["table"],
        } for o in objects],
        columns=columns,
    ).astype({"Stored": "Int64"})


def undelivered_events(undelivered: dict[str, Any]) -> pd.DataFrame:
    return pd.DataFrame([{"Event type": t, "Events": n} for t, n in undelivered["by_type"].items()],
                        columns=["Event type", "Events"])
