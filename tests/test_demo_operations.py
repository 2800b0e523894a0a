"""Demo operations events: coherent with the demo payments, deterministic, and each incident breaks its alert rule once."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest

from paydash.sources.demo import DemoSpec, generate_payments, to_plain_strings
from paydash.sources.demo.operations import describe, generate_operations_events, incident_windows
from paydash.warehouse.schema import OPERATIONS_EVENT_COLUMNS, OPERATIONS_EVENT_NAMES

SPEC = DemoSpec(payments=150_000, days=60, seed=9, end=date(2026, 11, 20))


@pytest.fixture(scope="module")
def demo() -> tuple[pd.DataFrame, pd.DataFrame]:
    payments = generate_payments(SPEC)
    events = generate_operations_events(payments, SPEC)
    return to_plain_strings(payments).to_pandas(), to_plain_strings(events).to_pandas()


def test_columns_ids_and_order(demo) -> None:
    _, events = demo
    assert list(events.columns) == [c for c, _ in OPERATIONS_EVENT_COLUMNS]
    assert events["event_id"].is_unique and events["occurred_at"].is_monotonic_increasing
    assert set(events["event_name"]) == set(OPERATIONS_EVENT_NAMES)
    assert (events["received_at"] >= events["occurred_at"]).all()
    assert events["occurred_at"].max() < pd.Timestamp(SPEC.resolved_now())


def test_same_seed_same_events() -> None:
    small = DemoSpec(payments=5_000, days=20, seed=4, end=SPEC.end)
    payments = generate_payments(small)
    assert generate_operations_events(payments, small).equals(generate_operations_events(payments, small))


def test_events_belong_to_the_demo_payments(demo) -> None:
    payments, events = demo
    charges = payments.set_index(["payment_intent_id", "attempt_number"])
    linked = events.dropna(subset=["payment_intent_id"])
    assert linked["payment_intent_id"].isin(payments["payment_intent_id"]).all()
    assert (linked.merge(payments[["payment_intent_id", "customer_id"]].drop_duplicates(), on="payment_intent_id",
                         suffixes=("", "_mart"))
            .pipe(lambda m: (m["customer_id"] == m["customer_id_mart"]).all()))
    # every retry outcome is its charge's: retry n is the intent's attempt n + 1 (the retry storm aside)
    retries = events[(events["event_name"] == "retry_completed") & (events["properties"] == "{}")]
    keys = list(zip(retries["payment_intent_id"], retries["attempt_number"] + 1))
    assert (charges.loc[keys, "status"].to_numpy() == retries["outcome"].to_numpy()).all()
    # receipts only for successful payments, with download status and edge location
    receipts = events[(events["event_name"] == "receipt_generated") & events["payment_intent_id"].notna()]
    won = set(payments.loc[payments["status"] == "succeeded", "payment_intent_id"])
    assert receipts["payment_intent_id"].isin(won).all()
    assert receipts["properties"].str.contains('"edge_location"').all()
    # a session started before its checkout completed or expired
    sessions = events.dropna(subset=["checkout_session_id"]).groupby("checkout_session_id")
    first = sessions["event_name"].first()
    assert (first == "checkout_started").all()


def _per_minute(events: pd.DataFrame, mask: pd.Series, index: pd.DatetimeIndex, minutes: int) -> pd.Series:
    """Count of matching events in [t - minutes, t) at every minute t."""
    counts = events[mask].groupby(events.loc[mask, "occurred_at"].dt.floor("min")).size().reindex(index, fill_value=0)
    return counts.rolling(minutes, min_periods=1).sum().shift(1).fillna(0)


def _spans(mask: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    edges = mask.astype(int).diff().fillna(mask.astype(int))
    starts, ends = list(mask.index[edges == 1]), list(mask.index[edges == -1])
    return list(zip(starts, ends + [mask.index[-1]] * (len(starts) - len(ends))))


def test_each_incident_breaks_its_rule_once_and_normal_times_stay_clear(demo) -> None:
    _, e = demo
    index = pd.date_range(e["occurred_at"].min().floor("min"), e["occurred_at"].max().ceil("min"), freq="min")
    name, outcome = e["event_name"], e["outcome"]
    completed = _per_minute(e, name == "checkout_completed", index, 15)
    succeeded = _per_minute(e, (name == "checkout_completed") & (outcome == "succeeded"), index, 15)
    rate = (succeeded / completed).where(completed > 0)
    below = (rate < 0.97).astype(int).rolling(11).min() == 1  # under 97% at every minute for 10 minutes
    rules = {
        "checkout success < 97% for 10 min": below,
        "expired sessions > 10 in 1 h": _per_minute(e, name == "checkout_expired", index, 60) > 10,
        "retry failures > 5 in 15 min": _per_minute(e, (name == "retry_completed") & (outcome == "failed"), index, 15) > 5,
        "receipt failures > 3 in 5 min": _per_minute(e, (name == "receipt_generated") & (outcome == "failed"), index, 5) > 3,
    }
    windows = incident_windows(SPEC)
    expected = {
        "checkout success < 97% for 10 min": "issuer outage",
        "expired sessions > 10 in 1 h": "fraud wave",
        "retry failures > 5 in 15 min": "issuer outage",
        "receipt failures > 3 in 5 min": "receipt renderer outage",
    }
    for rule, fired in rules.items():
        spans = _spans(fired)
        assert len(spans) == 1, (rule, spans)
        start, end = spans[0]
        lo, hi = windows[expected[rule]]
        assert lo <= start <= lo + timedelta(minutes=30), (rule, start)
        assert end <= hi + timedelta(hours=1) and end - start > timedelta(minutes=10), (rule, start, end)
    # normal volume is healthy: outside the issuer outage every window with checkouts is at 100%
    lo, hi = windows["issuer outage"]
    outside = rate[(rate.index < lo) | (rate.index > hi + timedelta(minutes=15))].dropna()
    assert len(outside) > 1000 and (outside >= 0.98).all()
    assert [d["incident"] for d in describe(SPEC)] == ["issuer outage", "fraud wave", "3DS provider degradation",
                                                       "receipt renderer outage"]


def test_a_session_ends_at_most_once(demo) -> None:
    _, events = demo
    ends = events[events["event_name"].isin(["checkout_completed", "checkout_expired"])]
    assert ends["checkout_session_id"].notna().all()
    assert ends["checkout_session_id"].is_unique


def test_the_demo_refuses_to_overwrite_operations_events_it_did_not_build(new_database) -> None:
    from paydash.errors import PaydashError
    from paydash.sources.demo import build_demo_database

    db = new_database()
    db.execute(f"CREATE TABLE {db.qualified('mart_operations_events')} (event_id text)")
    wh = db.warehouse(read_only=False)
    try:
        with pytest.raises(PaydashError, match="not built by `paydash demo`"):
            build_demo_database(wh, DemoSpec(payments=500, days=5, seed=1, end=SPEC.end), show_progress=False)
    finally:
        wh.dispose()


def test_the_demo_database_holds_the_events_and_its_summary_counts_them(new_database) -> None:
    from paydash.queries.operations import latest_event_time
    from paydash.sources.demo import build_demo_database

    db = new_database()
    wh = db.warehouse(read_only=False)
    spec = DemoSpec(payments=3_000, days=10, seed=2, end=SPEC.end)
    try:
        summary = build_demo_database(wh, spec, show_progress=False)
        summary_again = build_demo_database(wh, spec, show_progress=False)  # a rebuild replaces them
    finally:
        wh.dispose()
    expected = generate_operations_events(generate_payments(spec), spec)
    assert summary["operations_events"] == summary_again["operations_events"] == expected.num_rows
    reader = db.warehouse()
    try:
        with reader.read() as conn:
            import sqlalchemy as sa

            count = conn.execute(sa.select(sa.func.count()).select_from(reader.marts.operations_events)).scalar_one()
            assert count == expected.num_rows
            assert latest_event_time(conn, reader.marts) == expected.column("occurred_at")[-1].as_py()
    finally:
        reader.dispose()
