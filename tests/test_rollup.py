"""The rollup marts (paydash/warehouse/rollup.py): one definition per number.

Every query that can read the rollups gives the same answer with them (`rollup=True`) as from
the charge mart and the daily mart alone, on every engine, under hypothesis-generated charges,
refunds and disputes around the 2026 DST changes, in reporting and non-reporting timezones,
whole days and "today so far" (a cut inside an hour), and half-hour zones that fall back.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import charge, not_on_clickhouse, rows_to_arrow
from paydash.queries import failures, overview, payments, recovery
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters
from paydash.queries.sql import hour_split
from paydash.warehouse import load, rollup, transforms

# the windows the charges fall in: the US spring-forward (2026-03-08) and fall-back (2026-11-01)
WINDOWS = (datetime(2026, 3, 6), datetime(2026, 10, 30))
FAILURE_CODES = ("insufficient_funds", "do_not_honor", "expired_card", "processing_error")
ZONES = ("UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe")


@st.composite
def charges(draw):  # noqa: ANN001, ANN201
    window = draw(st.sampled_from(WINDOWS))
    mart_tz = draw(st.sampled_from(["UTC", "America/New_York"]))
    rows = []
    for i in range(draw(st.integers(0, 40))):
        status = draw(st.sampled_from(["succeeded", "succeeded", "failed", "pending"]))
        amount = draw(st.one_of(st.none(), st.decimals("0.01", "500", places=2)))
        # any minute, or one next to a whole or half hour, where local days of whole- and half-hour zones part
        minute = draw(st.one_of(st.integers(0, 59), st.sampled_from([0, 29, 30, 59])))
        # any hour, or one where a zone's local day starts (New York, Lord Howe, Kolkata, Berlin)
        hour = draw(st.one_of(st.integers(0, 5 * 24 - 1),
                              st.builds(lambda d, h: d * 24 + h, st.integers(0, 4), st.sampled_from([4, 5, 13, 18, 22, 23]))))
        created = window + timedelta(hours=hour, minutes=minute,
                                     seconds=draw(st.integers(0, 59)))
        row = charge(f"ch_{i:03d}", created, status, "0" if amount is None else amount, tz=mart_tz,
                     attempt_number=draw(st.integers(1, 3)),
                     failure_code=draw(st.sampled_from(FAILURE_CODES)) if status == "failed" else None,
                     funnel_name=draw(st.sampled_from(["main_funnel", "mobile_app"])),
                     card_brand=draw(st.sampled_from(["visa", "amex", "mastercard"])),
                     card_country=draw(st.sampled_from(["US", "DE"])), currency=draw(st.sampled_from(["usd", "eur"])))
        if amount is None:
            row["amount_usd"] = None
        rows.append(row)
    adjustments = {"refunds": [], "disputes": []}
    for kind in adjustments:
        for j in range(draw(st.integers(0, 8))):
            # mostly of charges in the mart, sometimes of one it does not have
            charge_id = f"ch_{draw(st.integers(0, max(0, len(rows) + 2))):03d}"
            created = window + timedelta(minutes=draw(st.integers(0, 5 * 24 * 60 - 1)))
            status = draw(st.sampled_from(["succeeded", "pending", "failed", "canceled"] if kind == "refunds"
                                          else ["needs_response", "won", "lost"]))
            row = {f"{'refund' if kind == 'refunds' else 'dispute'}_id": f"{kind[:2]}_{j}", "charge_id": charge_id,
                   "payment_intent_id": None, "amount_usd": draw(st.decimals("0.01", "200", places=2)), "currency": "usd",
                   "status": status, "reason": None, "created_at": created}
            if kind == "disputes":
                row["evidence_due_by"] = None
            adjustments[kind].append(row)
    return window, mart_tz, rows, adjustments


@st.composite
def questions(draw, window: datetime):  # noqa: ANN001, ANN201
    tz = draw(st.sampled_from(ZONES))
    start = window.date() + timedelta(days=draw(st.integers(-1, 4)))
    rng = DateRange(start, start + timedelta(days=draw(st.integers(0, 3))), tz)
    funnel = draw(st.sampled_from([None, "main_funnel", "mobile_app"]))
    now = None
    if draw(st.booleans()):
        low, high = rng.utc_bounds()
        now = low + timedelta(seconds=draw(st.integers(0, int((high - low).total_seconds()) - 1)))
    return rng, funnel, now


def _reload(writer, rows, adjustments) -> None:  # noqa: ANN001
    """The marts of `writer` holding exactly these rows, every derived mart rebuilt (as the demo does)."""
    m = writer.marts
    with writer.write() as conn:
        for table in (m.payments, m.refunds, m.disputes):
            conn.execute(table.delete())
    if rows:
        load.load_arrow(writer, m.payments, rows_to_arrow(rows))
    with writer.write() as conn:
        load.insert_rows(conn, m.refunds, adjustments["refunds"])
        load.insert_rows(conn, m.disputes, adjustments["disputes"])
        transforms.rebuild_derived_marts(conn, m)


@pytest.fixture(scope="module")
def writer(module_databases):  # noqa: ANN001, ANN201
    db = module_databases.new()
    wh = db.warehouse(read_only=False)
    load.recreate_marts(wh)
    with wh.write() as conn:
        for table in (wh.marts.refunds, wh.marts.disputes):
            table.create(conn)
        rollup.create_rollup(conn, wh.marts)
    module_databases.track(wh)
    return wh


FILTERS = (
    PaymentFilters(card_brand="amex"),
    PaymentFilters(status="failed", card_brand="amex"),
    PaymentFilters(failure_category="insufficient_funds", currency="EUR"),
    PaymentFilters(failure_code="do_not_honor", card_country="de", funnel="mobile_app"),
    PaymentFilters(status="pending"),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(data=st.data(), generated=charges())
def test_rollup_answers_equal_the_charge_marts(writer, data, generated) -> None:  # noqa: ANN001
    window, mart_tz, rows, adjustments = generated
    _reload(writer, rows, adjustments)
    m = writer.marts
    with writer.read() as conn:
        for _ in range(3):
            rng, funnel, now = data.draw(questions(window))
            both = {"with_refunds": True, "with_disputes": True, "mart_tz": mart_tz, "now": now}
            assert (overview.overview(conn, m, rng, funnel, rollup=True, **both)
                    == overview.overview(conn, m, rng, funnel, **both)), (rng, funnel, now)
            cut = rng.so_far(now) if now else rng
            assert (overview.daily_series(conn, m, cut, funnel, mart_tz, rollup=True)
                    == overview.daily_series(conn, m, cut, funnel, mart_tz)), (cut, funnel)
            assert (failures.failure_breakdown(conn, m, cut, funnel, rollup=True)
                    == failures.failure_breakdown(conn, m, cut, funnel)), (cut, funnel)
            for precomputed in (True, False):
                assert (recovery.recovery(conn, m, rng, funnel, precomputed, mart_tz, rollup=True)
                        == recovery.recovery(conn, m, rng, funnel, precomputed, mart_tz)), (rng, funnel)
            scope = payments.SearchScope(rollup=True)
            for f in (*FILTERS, PaymentFilters(card_brand="visa", date_range=rng, funnel=funnel)):
                assert (payments.count_payments(conn, m, f, mart_tz, scope=scope)
                        == payments.count_payments(conn, m, f, mart_tz)), f
        deep = PaymentFilters(card_brand="visa")
        assert (payments.payments_page(conn, m, deep, 3, page_size=4, scope=payments.SearchScope(rollup=True)).as_dict()
                == payments.payments_page(conn, m, deep, 3, page_size=4).as_dict())
        assert payments.filter_options(conn, m, rollup=True) == payments.filter_options(conn, m)


def test_whole_hour_zones_are_served_and_half_hour_zones_fall_back() -> None:
    # New York across both 2026 changes: every local day is whole UTC hours
    for day in (date(2026, 3, 8), date(2026, 11, 1)):
        split = hour_split(DateRange(day - timedelta(days=1), day + timedelta(days=1), "America/New_York"))
        assert split is not None and split[1] == split[2]
    assert hour_split(DateRange(date(2026, 3, 1), date(2026, 3, 31), "Europe/Berlin")) is not None
    # half-hour offsets (Kolkata), a half-hour DST shift (Lord Howe), a 45-minute zone (Kathmandu)
    assert hour_split(DateRange(date(2026, 3, 1), date(2026, 3, 2), "Asia/Kolkata")) is None
    assert hour_split(DateRange(date(2026, 4, 4), date(2026, 4, 6), "Australia/Lord_Howe")) is None
    assert hour_split(DateRange(date(2026, 3, 1), date(2026, 3, 2), "Asia/Kathmandu")) is None
    # a cut inside an hour: whole hours up to it, the rest from the charge mart
    cut = DateRange(date(2026, 3, 8), date(2026, 3, 8), "America/New_York", until=datetime(2026, 3, 8, 15, 37, 12))
    assert hour_split(cut) == (datetime(2026, 3, 8, 5), datetime(2026, 3, 8, 15), datetime(2026, 3, 8, 15, 37, 12))


def _new_york_rows() -> list[dict]:
    # around the spring-forward night: 03-08 04:30 UTC is 03-07 23:30 EST; 03-08 05:30 UTC is 03-08 00:30 EST
    return [
        charge("ch_1", "2026-03-08 04:30", "succeeded", "10.00", funnel_name="mobile_app"),
        charge("ch_2", "2026-03-08 05:30", "succeeded", "20.00", card_brand="amex"),
        charge("ch_3", "2026-03-08 07:10", "failed", "5.00", failure_code="insufficient_funds", card_brand="amex"),
        charge("ch_4", "2026-03-09 03:59", "succeeded", "40.00"),  # 03-08 23:59 EDT
        charge("ch_5", "2026-03-09 04:00", "succeeded", "80.00"),  # 03-09 00:00 EDT
    ]


def test_the_rollups_answer_without_the_charge_mart(databases) -> None:  # noqa: ANN001
    """Proof the rollups are read: with the charge mart emptied after they were built, the
    Overview in New York, failures, counts and options still have the numbers."""
    db = databases.new()
    wh = db.warehouse(read_only=False)
    databases.track(wh)
    load.recreate_marts(wh)
    load.load_arrow(wh, wh.marts.payments, rows_to_arrow(_new_york_rows()))
    with wh.write() as conn:
        transforms.rebuild_daily_mart(conn, wh.marts)
        rollup.create_rollup(conn, wh.marts)
        conn.execute(wh.marts.payments.delete())
    m = wh.marts
    rng = DateRange(date(2026, 3, 8), date(2026, 3, 8), "America/New_York")
    with wh.read() as conn:
        totals = overview.period_totals(conn, m, rng, rollup=True)
        assert (totals.attempts, totals.successful, totals.failed) == (3, 2, 1)
        assert (totals.revenue_usd, totals.failed_amount_usd) == (Decimal("60.00"), Decimal("5.00"))
        series = overview.daily_series(conn, m, DateRange(date(2026, 3, 7), date(2026, 3, 9), "America/New_York"),
                                       rollup=True)
        assert [d["attempts"] for d in series] == [1, 3, 1]
        assert failures.failure_breakdown(conn, m, rng, rollup=True)["failures"] == 1
        assert recovery.recovery(conn, m, rng, rollup=True)["payments"] == 3  # first attempts
        scope = payments.SearchScope(rollup=True)
        assert payments.count_payments(conn, m, PaymentFilters(card_brand="amex"), scope=scope) == 2
        assert payments.count_payments(conn, m, PaymentFilters(card_brand="amex", date_range=rng), scope=scope) == 2
        assert payments.filter_options(conn, m, rollup=True)["card_brand"] == ["amex", "visa"]
        # a half-hour zone is the charge mart's (now empty) to answer
        kolkata = DateRange(date(2026, 3, 8), date(2026, 3, 9), "Asia/Kolkata")
        assert overview.period_totals(conn, m, kolkata, rollup=True).attempts == 0
        # without the rollups (dbt marts): today's path, the charge mart
        assert overview.period_totals(conn, m, rng).attempts == 0


def test_a_refresh_from_a_day_equals_a_full_rebuild(databases) -> None:  # noqa: ANN001
    """The touched hours are rebuilt (as the Stripe transform and the webhook receiver refresh)."""
    db = databases.new()
    wh = db.warehouse(read_only=False)
    databases.track(wh)
    load.recreate_marts(wh)
    first = _new_york_rows()
    load.load_arrow(wh, wh.marts.payments, rows_to_arrow(first))
    m = wh.marts
    with wh.write() as conn:
        for table in (m.refunds, m.disputes):
            table.create(conn)
        transforms.rebuild_daily_mart(conn, m)
        transforms.rebuild_first_failures(conn, m)
        rollup.create_rollup(conn, m)
    later = [charge("ch_6", "2026-03-09 12:00", "failed", "7.00", failure_code="do_not_honor"),
             charge("ch_7", "2026-03-10 01:00", "succeeded", "9.00", card_brand="amex"),
             # a retry that wins back ch_3, a first attempt of the day before `since`
             charge("ch_8", "2026-03-09 15:00", "succeeded", "5.00", payment_intent_id="pi_3", attempt_number=2)]
    load.load_arrow(wh, m.payments, rows_to_arrow(later))
    refund = {"refund_id": "re_1", "charge_id": "ch_2", "payment_intent_id": None, "amount_usd": Decimal("3.00"),
              "currency": "usd", "status": "succeeded", "reason": None, "created_at": datetime(2026, 3, 9, 13, 5)}

    def contents(conn, table) -> list:  # noqa: ANN001
        return sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(table)))

    with wh.write() as conn:
        transforms.rebuild_derived_marts(conn, m, since=date(2026, 3, 9))
        load.insert_rows(conn, m.refunds, [refund])
        rollup.refresh_adjustments(conn, m, refund["created_at"])
        refreshed = [contents(conn, t) for t in m.rollups]
        rollup.rebuild_rollup(conn, m)
        assert [contents(conn, t) for t in m.rollups] == refreshed
        hourly = conn.execute(sa.select(m.hourly.c.funnel_name, m.hourly.c.refunds, m.hourly.c.refunded_usd)
                              .where(m.hourly.c.hour == datetime(2026, 3, 9, 13))).all()
        assert [(f, int(n), Decimal(usd)) for f, n, usd in hourly] == [("main_funnel", 1, Decimal("3.00"))]
        won = conn.execute(sa.select(m.hourly.c.first_failed, m.hourly.c.recovered, m.hourly.c.recovered_usd)
                           .where(m.hourly.c.hour == datetime(2026, 3, 8, 7))).all()
        assert [(int(a), int(b), Decimal(c)) for a, b, c in won] == [(1, 1, Decimal("5.00"))]


def test_the_stripe_transform_keeps_the_rollups_current(new_database, engine_kind: str) -> None:  # noqa: ANN001
    """The Stripe sync and webhook receiver's path: prepare_database makes the rollups, each
    incremental refresh (a late earlier attempt renumbering its retries, a retry winning back a
    first failure days later) leaves them as a full rebuild would, and the queries agree."""
    not_on_clickhouse(engine_kind, "the Stripe transform's incremental refresh is the sync's and the receiver's, which "
                      "refuse a ClickHouse URL (a ClickHouse pipeline writes the contract's marts; docs/scaling.md)")
    from stripe_objects import stripe_charge

    from paydash.sources.stripe.transform import TransformOptions, prepare_database, refresh_charges
    from paydash.warehouse.raw import upsert_objects

    options = TransformOptions(fx_rates={"eur": 1.08})
    db = new_database()
    wh = db.warehouse(read_only=False)
    raw = prepare_database(wh)
    m = wh.marts

    def load_charges(objects) -> None:  # noqa: ANN001
        with wh.write() as conn:
            refresh_charges(conn, m, raw, upsert_objects(conn, raw, objects, 1_800_000_000), options)

    try:
        assert wh.has_rollup(max_age=0)
        load_charges([stripe_charge("ch_2", "2026-03-07 22:05", "failed", payment_intent="pi_1",
                                    failure_code="insufficient_funds")])
        load_charges([stripe_charge("ch_9", "2026-03-08 06:30", "succeeded", 2500, "eur", payment_intent="pi_9")])
        # the first attempt arrives late; then a retry wins the intent back two days later
        load_charges([stripe_charge("ch_1", "2026-03-07 21:00", "failed", payment_intent="pi_1",
                                    failure_code="card_declined")])
        load_charges([stripe_charge("ch_3", "2026-03-09 10:00", "succeeded", payment_intent="pi_1")])

        def contents() -> list:
            with wh.read() as conn:
                return [sorted(tuple(str(v) for v in row) for row in conn.execute(sa.select(t))) for t in m.rollups]

        incremental = contents()
        with wh.write() as conn:
            rollup.rebuild_rollup(conn, m)
        assert contents() == incremental
        rng = DateRange(date(2026, 3, 7), date(2026, 3, 9), "America/New_York")
        with wh.read() as conn:
            assert (recovery.recovery(conn, m, rng, precomputed=True, rollup=True)
                    == recovery.recovery(conn, m, rng, precomputed=True))
            assert recovery.recovery(conn, m, rng, precomputed=True, rollup=True)["recovered"] == 1
            assert overview.overview(conn, m, rng, rollup=True) == overview.overview(conn, m, rng)
            assert (failures.failure_breakdown(conn, m, rng, rollup=True)
                    == failures.failure_breakdown(conn, m, rng))
    finally:
        wh.dispose()
