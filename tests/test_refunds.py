"""Refunds and disputes: the Overview's numbers and a payment's detail on hand-built marts (both
engines), the demo's refunds and disputes, and the Stripe transform's rows from Stripe's shapes."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from builders import as_utc, rows_to_arrow
from paydash.queries.dates import DateRange
from paydash.queries.overview import overview
from paydash.queries.payments import original_amount, payment_detail
from paydash.sources.demo import DemoSpec, generate_payments
from paydash.sources.demo.refunds import generate_refunds_disputes
from paydash.sources.stripe.marts import dispute_row, refund_row
from paydash.sources.stripe.transform import TransformOptions
from paydash.warehouse import load, transforms

RANGE = DateRange(date(2024, 3, 4), date(2024, 3, 6))  # previous period: 2024-03-01 .. 2024-03-03
FIXTURES = Path("/work/shared/reference/stripe/fixtures3.json")


def refund(refund_id: str, charge_id: str, created_at: str, amount: str, status: str = "succeeded",
           payment_intent_id: str | None = None, reason: str | None = "requested_by_customer", currency: str = "usd") -> dict:
    return {"refund_id": refund_id, "charge_id": charge_id, "payment_intent_id": payment_intent_id or f"pi_{charge_id[3:]}",
            "amount_usd": Decimal(amount), "currency": currency, "status": status, "reason": reason,
            "created_at": as_utc(created_at)}


def dispute(dispute_id: str, charge_id: str, created_at: str, amount: str, status: str = "needs_response",
            payment_intent_id: str | None = None, reason: str = "fraudulent") -> dict:
    created = as_utc(created_at)
    return {"dispute_id": dispute_id, "charge_id": charge_id, "payment_intent_id": payment_intent_id or f"pi_{charge_id[3:]}",
            "amount_usd": Decimal(amount), "currency": "usd", "status": status, "reason": reason,
            "created_at": created, "evidence_due_by": created + timedelta(days=8)}


def build(databases, payments: list[dict], refunds: list[dict] | None, disputes: list[dict] | None):  # noqa: ANN001, ANN201
    """A read-only warehouse with the charge and daily marts, and the refunds / disputes marts when given."""
    db = databases.new()
    writer = db.warehouse(read_only=False)
    try:
        load.recreate_marts(writer)
        load.load_arrow(writer, writer.marts.payments, rows_to_arrow(payments))
        with writer.write() as conn:
            transforms.rebuild_daily_mart(conn, writer.marts)
            for table, rows in ((writer.marts.refunds, refunds), (writer.marts.disputes, disputes)):
                if rows is not None:
                    table.create(conn)
                    load.insert_rows(conn, table, rows)
    finally:
        writer.dispose()
    return databases.track(db.warehouse())


@pytest.fixture
def payments(charge) -> list[dict]:  # noqa: ANN001
    return [
        charge("ch_p1", "2024-03-01 10:00", amount="50.00", payment_intent_id="pi_p1"),
        charge("ch_p2", "2024-03-02 10:00", amount="80.00", payment_intent_id="pi_p2"),
        charge("ch_c1", "2024-03-04 10:00", amount="100.00", payment_intent_id="pi_c1"),
        charge("ch_c2", "2024-03-04 11:00", "failed", "40.00", payment_intent_id="pi_c2", failure_code="insufficient_funds"),
        charge("ch_c3", "2024-03-04 12:00", amount="40.00", payment_intent_id="pi_c2", attempt_number=2),
        charge("ch_c4", "2024-03-05 09:00", amount="25.50", payment_intent_id="pi_c4", funnel_name="mobile_app"),
        charge("ch_c5", "2024-03-06 09:00", amount="10.00", payment_intent_id="pi_c5"),
    ]


@pytest.fixture
def refunds() -> list[dict]:
    return [
        # previous period: one refund of 20 of a charge in it
        refund("re_p1", "ch_p1", "2024-03-02 09:00", "20.00", payment_intent_id="pi_p1"),
        # a charge of the previous period refunded in the current one: counted by the refund's time
        refund("re_c1", "ch_p2", "2024-03-04 08:00", "80.00", payment_intent_id="pi_p2"),
        # partial refund of a retried payment
        refund("re_c2", "ch_c3", "2024-03-05 10:00", "15.00", payment_intent_id="pi_c2"),
        # pending counts (money is on its way back); failed and canceled do not
        refund("re_c3", "ch_c4", "2024-03-06 23:59:59", "5.50", "pending", payment_intent_id="pi_c4"),
        refund("re_c4", "ch_c1", "2024-03-06 12:00", "100.00", "failed", payment_intent_id="pi_c1"),
        refund("re_c5", "ch_c1", "2024-03-06 12:30", "100.00", "canceled", payment_intent_id="pi_c1"),
        # the day after the range
        refund("re_n1", "ch_c5", "2024-03-07 00:00:00", "10.00", payment_intent_id="pi_c5"),
    ]


@pytest.fixture
def disputes() -> list[dict]:
    return [
        dispute("dp_p1", "ch_p2", "2024-03-03 23:59:59", "80.00", "won", payment_intent_id="pi_p2"),
        dispute("dp_c1", "ch_c1", "2024-03-04 00:00:00", "100.00", "under_review", payment_intent_id="pi_c1"),
        dispute("dp_c2", "ch_c4", "2024-03-06 20:00", "25.50", "lost", payment_intent_id="pi_c4"),
        dispute("dp_n1", "ch_c5", "2024-03-07 00:00:01", "10.00", payment_intent_id="pi_c5"),
    ]


@pytest.mark.parametrize("mart_tz", ["UTC", "Europe/Berlin"], ids=["daily-mart", "charge-mart"])
def test_overview_counts_refunds_and_disputes_by_their_own_time(databases, payments, refunds, disputes, mart_tz) -> None:  # noqa: ANN001
    wh = build(databases, payments, refunds, disputes)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, mart_tz=mart_tz, with_refunds=True, with_disputes=True)
    now, before = result["current"], result["previous"]
    # current: revenue 100 + 40 + 25.50 + 10 = 175.50 over 4 successful attempts
    assert now["revenue_usd"] == Decimal("175.50") and now["successful"] == 4
    assert (now["refunds"], now["refunded_usd"]) == (3, Decimal("100.50"))  # 80 + 15 + 5.50
    assert now["net_revenue_usd"] == Decimal("75.00")
    assert (now["disputes"], now["disputed_usd"]) == (2, Decimal("125.50"))
    assert now["dispute_rate"] == pytest.approx(2 / 4)
    assert (before["refunds"], before["refunded_usd"], before["net_revenue_usd"]) == (1, Decimal("20.00"), Decimal("110.00"))
    assert (before["disputes"], before["disputed_usd"], before["dispute_rate"]) == (1, Decimal("80.00"), pytest.approx(1 / 2))
    change = result["change"]
    assert change["refunds"] == pytest.approx(2.0) and change["disputes"] == pytest.approx(1.0)
    assert change["net_revenue_usd"] == pytest.approx((75 - 110) / 110)
    assert change["dispute_rate"] == pytest.approx(0.0)  # in points: 0.5 - 0.5


def test_refunds_and_disputes_in_the_reporting_timezone(databases, payments, refunds, disputes) -> None:  # noqa: ANN001
    wh = build(databases, payments, refunds, disputes)
    berlin = DateRange(RANGE.start, RANGE.end, "Europe/Berlin")  # 2024-03-03 23:00 .. 2024-03-06 23:00 UTC
    with wh.read() as conn:
        now = overview(conn, wh.marts, berlin, mart_tz="UTC", with_refunds=True, with_disputes=True)["current"]
    # re_c3 (23:59:59 UTC on the 6th) is the 7th in Berlin; dp_p1 (23:59:59 UTC on the 3rd) is the 4th
    assert (now["refunds"], now["refunded_usd"]) == (2, Decimal("95.00"))
    assert (now["disputes"], now["disputed_usd"]) == (3, Decimal("205.50"))


def test_a_funnel_counts_the_refunds_and_disputes_of_its_charges(databases, payments, refunds, disputes) -> None:  # noqa: ANN001
    wh = build(databases, payments, refunds, disputes)
    with wh.read() as conn:
        now = overview(conn, wh.marts, RANGE, "mobile_app", mart_tz="UTC", with_refunds=True, with_disputes=True)["current"]
    assert (now["refunds"], now["refunded_usd"], now["net_revenue_usd"]) == (1, Decimal("5.50"), Decimal("20.00"))
    assert (now["disputes"], now["dispute_rate"]) == (1, pytest.approx(1.0))


def test_without_the_marts_the_fields_are_empty_and_the_rest_works(databases, payments) -> None:  # noqa: ANN001
    wh = build(databases, payments, None, None)
    assert not wh.has_table(wh.marts.refunds) and not wh.has_table(wh.marts.disputes)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, mart_tz="UTC")
        detail = payment_detail(conn, wh.marts, "ch_c3")
    for period in ("current", "previous"):
        assert {k: result[period][k] for k in ("refunds", "refunded_usd", "net_revenue_usd", "disputes",
                                               "disputed_usd", "dispute_rate")} == dict.fromkeys(
            ("refunds", "refunded_usd", "net_revenue_usd", "disputes", "disputed_usd", "dispute_rate"))
    assert result["current"]["revenue_usd"] == Decimal("175.50")
    assert detail["refunds"] is None and detail["disputes"] is None and detail["customer"] is None
    assert [e["id"] for e in detail["timeline"]] == ["ch_c2", "ch_c3"]


def test_payment_detail_has_its_intents_refunds_and_disputes_in_one_timeline(databases, payments, refunds, disputes) -> None:  # noqa: ANN001
    extra = [refund("re_c6", "ch_c3", "2024-03-04 12:00", "1.00", payment_intent_id="pi_c2")]  # same second as the charge
    wh = build(databases, payments, refunds + extra, disputes + [dispute("dp_c3", "ch_c3", "2024-03-08 10:00", "24.00",
                                                                          payment_intent_id="pi_c2")])
    with wh.read() as conn:
        detail = payment_detail(conn, wh.marts, "ch_c2", with_refunds=True, with_disputes=True)
    assert [r["refund_id"] for r in detail["refunds"]] == ["re_c6", "re_c2"]
    assert [d["dispute_id"] for d in detail["disputes"]] == ["dp_c3"]
    assert detail["disputes"][0]["evidence_due_by"] == datetime(2024, 3, 16, 10, 0)
    timeline = detail["timeline"]
    # time order; at the same second the attempt comes before its refund
    assert [(e["kind"], e["id"]) for e in timeline] == [
        ("attempt", "ch_c2"), ("attempt", "ch_c3"), ("refund", "re_c6"), ("refund", "re_c2"), ("dispute", "dp_c3")]
    assert [e["at"] for e in timeline] == sorted(e["at"] for e in timeline)
    assert timeline[0]["detail"] == "attempt 1: insufficient_funds"
    assert timeline[3]["detail"] == "of ch_c3: requested_by_customer"
    assert timeline[4]["detail"].endswith("evidence due by 2024-03-16 10:00 UTC")


@pytest.mark.parametrize(("usd", "currency", "rates", "expected"), [
    ("99.27", "cad", {"cad": 0.73}, ("135.99", 0.73)),
    ("10.05", "jpy", {"jpy": 0.0067}, ("1500", 0.0067)),  # zero-decimal: whole yen
    ("3.26", "kwd", {"kwd": 3.26}, ("1.000", 3.26)),  # three decimals
    ("12.34", "usd", {}, ("12.34", 1.0)),
    ("12.34", "USD", {}, ("12.34", 1.0)),
    ("12.34", "eur", {"gbp": 1.27}, None),  # no rate: not guessed
    (None, "eur", {"eur": 1.08}, None),
])
def test_original_amount_at_the_rate_used(usd, currency, rates, expected) -> None:  # noqa: ANN001
    got = original_amount(Decimal(usd) if usd else None, currency, rates)
    if expected is None:
        assert got is None
    else:
        assert (str(got["amount"]), got["usd_per_unit"]) == expected and got["currency"] == currency.lower()
        assert got["approximate"] == (currency.lower() != "usd")


# -- the demo --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo() -> tuple:
    spec = DemoSpec(payments=60_000, days=90, seed=3, end=date(2024, 6, 30))
    payments = generate_payments(spec)
    now = spec.resolved_now()
    return payments, now, generate_refunds_disputes(payments, now, spec.seed)


def test_demo_refunds_are_coherent_with_their_charges(demo) -> None:  # noqa: ANN001
    payments, now, made = demo
    charges = {r["charge_id"]: r for r in payments.select(["charge_id", "payment_intent_id", "status", "amount_usd",
                                                           "currency", "created_at"]).to_pylist()}
    refunds = made["refunds"].to_pylist()
    succeeded = sum(1 for c in charges.values() if c["status"] == "succeeded")
    assert 0.02 < len(refunds) / succeeded < 0.04  # a few percent of successful charges
    partial = 0
    for r in refunds:
        ch = charges[r["charge_id"]]
        assert ch["status"] == "succeeded" and ch["payment_intent_id"] == r["payment_intent_id"]
        assert Decimal("0.01") <= r["amount_usd"] <= ch["amount_usd"] and r["currency"] == ch["currency"]
        assert ch["created_at"] < r["created_at"] < now
        partial += r["amount_usd"] < ch["amount_usd"]
    assert 0.2 < partial / len(refunds) < 0.45
    assert [r["created_at"] for r in refunds] == sorted(r["created_at"] for r in refunds)
    assert len({r["refund_id"] for r in refunds}) == len(refunds)
    assert {r["status"] for r in refunds} <= {"succeeded", "pending", "failed", "canceled"}
    assert all(r["created_at"] > now - timedelta(days=1) for r in refunds if r["status"] == "pending")


def test_demo_disputes_progress_with_their_age(demo) -> None:  # noqa: ANN001
    payments, now, made = demo
    charges = {r["charge_id"]: r for r in payments.select(["charge_id", "status", "amount_usd", "created_at"]).to_pylist()}
    disputes = made["disputes"].to_pylist()
    succeeded = sum(1 for c in charges.values() if c["status"] == "succeeded")
    assert 0.001 < len(disputes) / succeeded < 0.006  # a fraction of a percent
    for d in disputes:
        ch = charges[d["charge_id"]]
        assert ch["status"] == "succeeded" and d["amount_usd"] == ch["amount_usd"]
        assert ch["created_at"] < d["created_at"] < now
        assert timedelta(days=7) <= d["evidence_due_by"] - d["created_at"] <= timedelta(days=10)
        open_for_evidence = now < d["evidence_due_by"]
        status = d["status"].removeprefix("warning_")
        if open_for_evidence:
            assert status == "needs_response"
        else:
            assert status in {"under_review", "won", "lost", "closed"}
    statuses = {d["status"] for d in disputes}
    assert {"needs_response", "under_review", "won", "lost"} <= statuses
    # nothing both fully refunded and disputed
    full = {r["charge_id"] for r in made["refunds"].to_pylist()
            if r["status"] == "succeeded" and r["amount_usd"] == charges[r["charge_id"]]["amount_usd"]}
    assert not full & {d["charge_id"] for d in disputes}


def test_the_demo_database_has_the_marts_and_its_rates(databases) -> None:  # noqa: ANN001
    from paydash.sources.demo import FX_TO_USD, build_demo_database

    db = databases.isolated()
    wh = db.warehouse(read_only=False)
    try:
        build_demo_database(wh, DemoSpec(payments=5_000, days=30, seed=2), show_progress=False)
        assert wh.has_table(wh.marts.refunds, max_age=0) and wh.has_table(wh.marts.disputes, max_age=0)
        assert load.conversion_rates(wh) == FX_TO_USD
        with wh.read() as conn:
            import sqlalchemy as sa

            n = conn.execute(sa.select(sa.func.count()).select_from(wh.marts.refunds)).scalar_one()
        assert n > 0
    finally:
        wh.dispose()


# -- the Stripe transform --------------------------------------------------------------------------
def _fixture(kind: str) -> dict:
    return json.loads(FIXTURES.read_text())["resources"][kind]


def test_refund_and_dispute_rows_from_stripes_shapes() -> None:
    options = TransformOptions(fx_rates={"eur": 1.08})
    ref, dis = _fixture("refund"), _fixture("dispute")
    # the fixtures carry no payment intent: it comes from the charge; USD as is
    charge = {"amount": 1000, "currency": "usd", "payment_intent_id": "pi_X", "amount_usd": Decimal("10.00")}
    row = refund_row(ref, charge, options)
    assert row == {"refund_id": ref["id"], "charge_id": ref["charge"], "payment_intent_id": "pi_X",
                   "amount_usd": Decimal("1.00"), "currency": "usd", "status": "succeeded", "reason": None,
                   "created_at": datetime(2009, 2, 13, 23, 31, 30)}
    row = dispute_row(dis, charge, options)
    assert row["dispute_id"] == dis["id"] and row["status"] == "warning_needs_response" and row["reason"] == "general"
    assert row["amount_usd"] == Decimal("10.00") and row["payment_intent_id"] == "pi_X"
    assert row["evidence_due_by"] == datetime(2024, 8, 14, 23, 59, 59)


@pytest.mark.parametrize(("obj", "charge", "expected"), [
    # in proportion to the charge's amount_usd (its settlement rate): a full refund nets it to zero
    ({"amount": 13599, "currency": "cad"}, {"amount": 13599, "currency": "cad", "amount_usd": Decimal("99.27")}, "99.27"),
    ({"amount": 5000, "currency": "cad"}, {"amount": 13599, "currency": "cad", "amount_usd": Decimal("99.27")}, "36.50"),
    ({"amount": 500, "currency": "jpy"}, {"amount": 1500, "currency": "jpy", "amount_usd": Decimal("10.05")}, "3.35"),
    # charge unknown, or its amount_usd empty: converted on its own
    ({"amount": 500, "currency": "eur"}, None, "5.40"),
    ({"amount": 500, "currency": "eur"}, {"amount": 500, "currency": "eur", "amount_usd": None}, "5.40"),
    ({"amount": 500, "currency": "chf"}, None, None),  # no rate: empty, with a warning
    ({"amount": None, "currency": "usd"}, None, None),
])
def test_refund_amount_usd(obj, charge, expected) -> None:  # noqa: ANN001
    row = refund_row({"id": "re_1", "object": "refund", "charge": "ch_1", "created": 1, **obj}, charge,
                     TransformOptions(fx_rates={"eur": 1.08}))
    assert row["amount_usd"] == (Decimal(expected) if expected else None)


def test_overview_json_keys_are_in_both_periods(databases, payments, refunds, disputes) -> None:  # noqa: ANN001
    wh = build(databases, payments, refunds, disputes)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, mart_tz="UTC", with_refunds=True, with_disputes=True)
    keys = {"refunds", "refunded_usd", "net_revenue_usd", "disputes", "disputed_usd", "dispute_rate"}
    assert keys <= set(result["current"]) and keys <= set(result["previous"]) and keys <= set(result["change"])


@pytest.mark.parametrize("funnel", [None, "mobile_app"])
def test_with_only_the_refunds_mart(databases, payments, refunds, funnel) -> None:  # noqa: ANN001
    wh = build(databases, payments, refunds, None)
    with wh.read() as conn:
        result = overview(conn, wh.marts, RANGE, funnel, mart_tz="UTC", with_refunds=True,
                          with_disputes=wh.has_table(wh.marts.disputes))
    now = result["current"]
    expected = (3, Decimal("100.50"), Decimal("75.00")) if funnel is None else (1, Decimal("5.50"), Decimal("20.00"))
    assert (now["refunds"], now["refunded_usd"], now["net_revenue_usd"]) == expected
    assert now["disputes"] is None and now["dispute_rate"] is None and result["change"]["disputes"] is None


# -- the page's pure parts -------------------------------------------------------------------------
def test_adjustment_lines_say_what_happened_to_the_money() -> None:
    from paydash.app.payment_view import adjustment_lines

    detail = {
        "refunds": [{"amount_usd": Decimal("10.00"), "status": "succeeded"}, {"amount_usd": Decimal("5.00"), "status": "failed"},
                    {"amount_usd": Decimal("2.50"), "status": "pending"}],
        "disputes": [{"amount_usd": Decimal("40.00"), "status": "needs_response", "reason": "fraudulent",
                      "evidence_due_by": datetime(2024, 3, 16, 10, 0)}],
    }
    assert adjustment_lines(detail) == [
        "Refunded $12.50 (2 refunds), latest pending.",
        "Disputed $40.00: needs\\_response (fraudulent), evidence due by 2024-03-16 10:00 UTC.",
    ]
    assert adjustment_lines({"refunds": None, "disputes": None}) == []


def test_links_carry_any_id_safely() -> None:
    from hypothesis import given
    from hypothesis import strategies as st

    from paydash.app.payment_view import page_url, stripe_url

    @given(st.text(min_size=1, max_size=60))
    def check(value: str) -> None:
        for url in (page_url("http://h/payments", "customers", {"customer": value}),
                    stripe_url({"payment_intent_id": value, "charge_id": "ch_1"})):
            # nothing that ends a Markdown link or starts HTML survives into the address
            assert not set(url.split("://", 1)[1]) & set('()[]<> "\n`\\')

    check()
