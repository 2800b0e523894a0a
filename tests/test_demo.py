"""The demo generator: deterministic, exactly N rows, and coherent like real Stripe data."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from paydash.decline_codes import CATEGORIES, DECLINE_CODES
from paydash.queries.dates import DateRange
from paydash.queries.overview import overview
from paydash.sources.demo import DEFAULT_INCIDENTS, FUNNELS, FX_TO_USD, DemoSpec, build_demo_database, generate_payments, to_plain_strings
from paydash.warehouse.contract import check_contract
from paydash.warehouse.load import read_meta
from paydash.warehouse.schema import ID_SKETCH_COLUMNS, OPTIONAL_PAYMENT_COLUMNS, PAYMENT_COLUMNS

END = date(2024, 3, 31)  # a fixed end, so the data does not depend on today's date
SPEC = DemoSpec(payments=20_000, days=30, seed=7, end=END)


def frame(spec: DemoSpec) -> pd.DataFrame:
    return to_plain_strings(generate_payments(spec)).to_pandas()


@pytest.fixture(scope="module", params=["UTC", "America/New_York"])
def demo(request) -> tuple[DemoSpec, pd.DataFrame]:
    spec = DemoSpec(payments=SPEC.payments, days=SPEC.days, seed=SPEC.seed, end=END, tz=request.param)
    return spec, frame(spec)


def test_same_seed_same_table_and_another_seed_another() -> None:
    small = DemoSpec(payments=3_000, days=20, seed=11, end=END)
    assert generate_payments(small).equals(generate_payments(small))
    other = generate_payments(DemoSpec(payments=3_000, days=20, seed=12, end=END))
    assert not generate_payments(small).equals(other)


@pytest.mark.parametrize("n", [1, 2, 7, 999, 5_000])
def test_exactly_n_rows(n) -> None:
    assert generate_payments(DemoSpec(payments=n, days=10, seed=3, end=END)).num_rows == n


def test_refuses_zero_payments() -> None:
    with pytest.raises(ValueError):
        generate_payments(DemoSpec(payments=0, end=END))


def test_columns_are_the_contract(demo) -> None:
    _, df = demo
    assert list(df.columns) == [name for name, _ in PAYMENT_COLUMNS + OPTIONAL_PAYMENT_COLUMNS + ID_SKETCH_COLUMNS]
    assert len(df) == SPEC.payments


def test_a_customer_keeps_one_card_with_its_last_four_digits(demo) -> None:
    _, df = demo
    assert df["card_last4"].str.fullmatch(r"[0-9]{4}").all()
    per_customer = df.groupby("customer_id")[["card_last4", "card_brand"]].nunique()
    assert (per_customer == 1).all().all()
    assert df["card_last4"].nunique() > 1000  # not one number for everyone


def test_unique_ids_in_time_order(demo) -> None:
    _, df = demo
    assert df["charge_id"].is_unique
    assert df["charge_id"].str.startswith("ch_").all() and df["payment_intent_id"].str.startswith("pi_").all()
    assert df["customer_id"].str.startswith("cus_").all()
    assert df["created_at"].is_monotonic_increasing  # stored in time order (DuckDB zone maps)


def test_attempts_are_ranked_by_time_within_each_intent(demo) -> None:
    _, df = demo
    ordered = df.sort_values(["payment_intent_id", "created_at", "attempt_number"])
    rank = ordered.groupby("payment_intent_id").cumcount() + 1
    assert (ordered["attempt_number"].to_numpy() == rank.to_numpy()).all()
    assert set(df["attempt_number"].unique()) == {1, 2, 3}
    # one customer, funnel and amount per intent
    per_intent = df.groupby("payment_intent_id")[["customer_id", "funnel_name", "amount_usd", "card_brand"]].nunique()
    assert (per_intent == 1).all().all()
    # a retry only follows a failure
    prev_status = ordered.groupby("payment_intent_id")["status"].shift()
    assert set(prev_status[ordered["attempt_number"] > 1].unique()) <= {"failed"}


def test_failure_fields_follow_the_decline_code_table(demo) -> None:
    _, df = demo
    failed = df[df["status"] == "failed"]
    assert len(failed) > 500
    assert failed["failure_code"].notna().all()
    for code, group in failed.groupby("failure_code"):
        entry = DECLINE_CODES[code]
        assert set(group["failure_category"]) == {entry.category}
        assert set(group["recovery_action"]) == {CATEGORIES[entry.category][0]}
    assert failed["failure_category"].nunique() >= 6
    others = df[df["status"] != "failed"]
    assert others[["failure_code", "failure_category", "recovery_action"]].isna().all().all()
    assert set(df["status"]) <= {"succeeded", "failed", "pending"}
    assert (df["is_successful"] == (df["status"] == "succeeded")).all()


def test_amounts_currencies_funnels(demo) -> None:
    _, df = demo
    amounts = df["amount_usd"].map(Decimal)
    assert (amounts > 0).all()
    assert all(a == a.quantize(Decimal("0.01")) for a in amounts.head(500))
    assert set(df["currency"]) <= set(FX_TO_USD) and df["currency"].nunique() >= 4
    assert set(df["funnel_name"]) == {f for f, _ in FUNNELS}
    assert df["card_brand"].nunique() >= 4 and df["card_country"].nunique() >= 6
    # customers buy again
    assert df.groupby("customer_id")["payment_intent_id"].nunique().max() > 1


def test_local_calendar_fields_match_created_at(demo) -> None:
    spec, df = demo
    local = df["created_at"].dt.tz_localize("UTC").dt.tz_convert(spec.tz)
    assert (local.dt.date == df["created_date"]).all()
    assert (local.dt.hour == df["hour_of_day"]).all()
    assert (local.dt.day_name() == df["day_of_week"]).all()
    assert df["created_date"].min() >= END - timedelta(days=spec.days - 1)
    assert df["created_date"].max() <= END


def test_incident_day_has_a_visibly_higher_failure_rate(demo) -> None:
    spec, df = demo
    firsts = df[df["attempt_number"] == 1]
    rate = firsts.groupby("created_date")["status"].apply(lambda s: (s == "failed").mean())
    incident_days = {END - timedelta(days=i.days_before_end) for i in DEFAULT_INCIDENTS}
    outage = END - timedelta(days=DEFAULT_INCIDENTS[0].days_before_end)  # the issuer outage, 3 h at 14:00
    normal = rate[[d not in incident_days for d in rate.index]]
    assert rate[outage] > 1.3 * normal.median()
    assert rate[outage] > normal.max()

    # inside the outage's hours, failures are several times the usual rate, with its codes
    window = firsts[(firsts["created_date"] == outage) & firsts["hour_of_day"].between(14, 16)]
    failed = window[window["status"] == "failed"]
    assert len(failed) / len(window) > 2 * normal.median()
    assert failed["failure_code"].isin([c for c, _ in DEFAULT_INCIDENTS[0].codes]).mean() > 0.6


def test_some_first_failures_are_recovered(demo) -> None:
    _, df = demo
    first_failed = set(df.loc[(df["attempt_number"] == 1) & (df["status"] == "failed"), "payment_intent_id"])
    won = set(df.loc[(df["attempt_number"] > 1) & (df["status"] == "succeeded"), "payment_intent_id"])
    assert won <= first_failed
    share = len(won) / len(first_failed)
    assert 0.1 < share < 0.9


def test_build_demo_database(databases) -> None:  # noqa: ANN001
    # the whole path the CLI takes: generate, load, daily mart by SQL, indexes, meta
    spec = DemoSpec(payments=4_000, days=20, seed=5, end=END)
    db = databases.isolated()
    writer = db.warehouse(read_only=False)
    summary = build_demo_database(writer, spec, show_progress=False)
    writer.dispose()
    assert summary["payments"] == 4_000
    assert (summary["start"], summary["end"]) == ((END - timedelta(days=19)).isoformat(), END.isoformat())

    wh = databases.track(db.warehouse())
    assert check_contract(wh).ok
    assert read_meta(wh)["built_by"] == "paydash demo" and read_meta(wh)["seed"] == "5"
    df = frame(spec)
    amounts = df["amount_usd"].map(Decimal)
    with wh.read() as conn:
        result = overview(conn, wh.marts, DateRange(END - timedelta(days=19), END))["current"]
    assert result["attempts"] == 4_000
    assert result["successful"] == int((df["status"] == "succeeded").sum())
    assert result["failed"] == int((df["status"] == "failed").sum())
    assert result["revenue_usd"] == amounts[df["status"] == "succeeded"].sum()
    assert result["failed_amount_usd"] == amounts[df["status"] == "failed"].sum()
    assert summary["daily_rows"] == len(df.groupby(["created_date", "funnel_name"]))


def test_generation_is_vectorised_enough_for_the_test_suite() -> None:
    # Not a timing assertion: a smoke check that a mid-size demo generates at all in-process.
    table = generate_payments(DemoSpec(payments=50_000, days=60, seed=1, end=END))
    assert table.num_rows == 50_000
    assert np.unique(table.column("charge_id").to_numpy(zero_copy_only=False)).size == 50_000
