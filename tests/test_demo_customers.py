"""The demo's customers and promotion marts: coherent with the demo charges, seeded, built on both engines."""

from __future__ import annotations

from datetime import date

import pyarrow as pa
import pytest
import sqlalchemy as sa

from paydash.sources.demo import DemoSpec, build_demo_database, generate_payments
from paydash.sources.demo.customers import customer_numbers, generate_customer_marts
from paydash.warehouse.customer_totals import customer_months_select, customer_totals_select

END = date(2026, 3, 31)
SPEC = DemoSpec(payments=6_000, days=45, seed=3, end=END)


@pytest.fixture(scope="module")
def demo_wh(module_databases):  # noqa: ANN001, ANN201
    db = module_databases.isolated()
    writer = db.warehouse(read_only=False)
    build_demo_database(writer, SPEC, show_progress=False)
    writer.dispose()
    return module_databases.track(db.warehouse())


def scalar(wh, sql: str):  # noqa: ANN001, ANN201
    m = wh.marts
    names = {"payments": m.payments, "customers": m.customers, "codes": m.promotion_codes, "usage": m.promotion_usage,
             "totals": m.customer_totals}
    with wh.read() as conn:
        quote = conn.dialect.identifier_preparer
        return conn.execute(sa.text(sql.format(**{k: quote.format_table(t) for k, t in names.items()}))).scalar_one()


def test_every_charge_customer_has_one_row_created_before_their_first_charge(demo_wh) -> None:  # noqa: ANN001
    assert scalar(demo_wh, "SELECT count(DISTINCT customer_id) FROM {payments}") == scalar(demo_wh, "SELECT count(*) FROM {customers}")
    assert scalar(demo_wh, "SELECT count(DISTINCT customer_id) FROM {customers}") == scalar(demo_wh, "SELECT count(*) FROM {customers}")
    assert scalar(demo_wh, "SELECT count(*) FROM {payments} p WHERE NOT EXISTS "
                           "(SELECT 1 FROM {customers} c WHERE c.customer_id = p.customer_id)") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {customers} c JOIN (SELECT customer_id, min(created_at) AS first "
                           "FROM {payments} GROUP BY customer_id) f ON f.customer_id = c.customer_id "
                           "WHERE c.created_at >= f.first") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {customers} WHERE email NOT LIKE '%@example.com' OR name IS NULL") == 0
    assert scalar(demo_wh, "SELECT count(DISTINCT email) FROM {customers}") == scalar(demo_wh, "SELECT count(*) FROM {customers}")


def test_promotion_codes_and_their_usage_are_coherent(demo_wh) -> None:  # noqa: ANN001
    assert 20 <= scalar(demo_wh, "SELECT count(*) FROM {codes}") <= 40
    assert scalar(demo_wh, "SELECT count(*) FROM {codes} WHERE (percent_off IS NULL) = (amount_off_usd IS NULL)") == 0
    # used only after it was created, by customers of the charge mart, with a known action
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} u JOIN {codes} c ON c.promotion_code_id = u.promotion_code_id "
                           "WHERE u.occurred_at <= c.created_at OR u.code <> c.code") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} WHERE action NOT IN ('validated', 'applied', 'cleared', 'failed')") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} u WHERE NOT EXISTS "
                           "(SELECT 1 FROM {customers} c WHERE c.customer_id = u.customer_id)") == 0
    # an applied code: a successful charge of that customer within seconds after, discounted at most its amount
    applied = scalar(demo_wh, "SELECT count(*) FROM {usage} WHERE action = 'applied'")
    assert applied > 50
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} u WHERE action = 'applied' AND EXISTS (SELECT 1 FROM {payments} p "
                           "WHERE p.customer_id = u.customer_id AND p.status = 'succeeded' AND p.created_at > u.occurred_at "
                           "AND p.created_at <= u.occurred_at + INTERVAL '15 seconds' AND u.discount_usd > 0 "
                           "AND u.discount_usd <= p.amount_usd)") == applied
    # each applied use was validated first, in the same checkout session
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} u WHERE action = 'applied' AND NOT EXISTS (SELECT 1 FROM {usage} v "
                           "WHERE v.checkout_session_id = u.checkout_session_id AND v.action = 'validated' "
                           "AND v.occurred_at < u.occurred_at)") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} WHERE (action = 'failed') <> (failure_reason IS NOT NULL)") == 0
    assert scalar(demo_wh, "SELECT count(*) FROM {usage} WHERE action IN ('cleared', 'failed') AND discount_usd IS NOT NULL") == 0
    # Stripe's counter agrees with the applied rows, under any cap
    assert scalar(demo_wh, "SELECT count(*) FROM {codes} c WHERE times_redeemed <> (SELECT count(*) FROM {usage} u "
                           "WHERE u.promotion_code_id = c.promotion_code_id AND u.action = 'applied') "
                           "OR max_redemptions < times_redeemed") == 0
    for action in ("validated", "cleared", "failed"):
        assert scalar(demo_wh, f"SELECT count(*) FROM {{usage}} WHERE action = '{action}'") > 0


def test_the_customer_totals_mart_equals_the_aggregate(demo_wh) -> None:  # noqa: ANN001
    t = demo_wh.marts.customer_totals
    with demo_wh.read() as conn:
        stored = sorted(tuple(r) for r in conn.execute(sa.select(*t.c)))
        computed = sorted(tuple(r) for r in conn.execute(customer_totals_select(demo_wh.marts)))
    assert stored == computed and len(stored) > 1000
    m = demo_wh.marts.customer_months
    with demo_wh.read() as conn:
        stored = sorted(tuple(r) for r in conn.execute(sa.select(*m.c)))
        computed = sorted(tuple(r) for r in conn.execute(customer_months_select(demo_wh.marts)))
    assert stored == computed and len(stored) > 1000


def test_seeded_and_derived_from_the_charges() -> None:
    payments = generate_payments(DemoSpec(payments=3_000, days=30, seed=9, end=END))
    one, two = generate_customer_marts(payments, seed=9), generate_customer_marts(payments, seed=9)
    assert all(one[name].equals(two[name]) for name in one)
    other = generate_customer_marts(payments, seed=10)
    assert not other["customers"].equals(one["customers"])
    assert set(one["customers"]["customer_id"].to_pylist()) == set(payments["customer_id"].to_pylist())


def test_customer_numbers_read_from_demo_ids_or_hashed() -> None:
    demo_ids = pa.array(["cus_000003abcdefgh", "cus_00000Aabcdefgh", "cus_000003zzzzzzzz"])
    numbers, size = customer_numbers(demo_ids)
    assert list(numbers) == [3, 10, 3] and size == 11
    numbers, size = customer_numbers(pa.array(["cus_x", "cus_y", "cus_x"]))  # not the demo's layout
    assert list(numbers) == [0, 1, 0] and size == 2


@pytest.mark.parametrize("tz", ["UTC", "America/New_York"])
def test_the_demos_numpy_summaries_equal_the_sql_ones(databases, tz: str) -> None:  # noqa: ANN001
    """The demo writes the customer summaries from numpy; the warehouse's SQL must agree."""
    from paydash.sources.demo.customers import customer_summary_marts
    from paydash.warehouse import customer_totals, load

    payments = generate_payments(DemoSpec(payments=5_000, days=70, seed=4, end=END, tz=tz))
    db = databases.new()
    writer = db.warehouse(read_only=False)
    load.recreate_marts(writer)
    load.load_arrow(writer, writer.marts.payments, payments)
    with writer.write() as conn:
        customer_totals.create_customer_totals(conn, writer.marts)
        customer_totals.rebuild_customer_totals(conn, writer.marts)
        customer_totals.rebuild_customer_months(conn, writer.marts)
    writer.dispose()
    wh = databases.track(db.warehouse())
    summaries = customer_summary_marts(payments)
    for name in ("customer_totals", "customer_months"):
        table = getattr(wh.marts, name)
        with wh.read() as conn:
            stored = sorted(tuple(r) for r in conn.execute(sa.select(*table.c)))
        made = sorted(tuple(r.values()) for r in summaries[name].to_pylist())
        assert made == stored and len(made) > 500, name
