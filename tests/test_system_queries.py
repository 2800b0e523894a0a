"""The System page's queries on hand-built data with known problems, on DuckDB and PostgreSQL."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from paydash.queries import system
from paydash.warehouse.engine import Warehouse
from paydash.warehouse.schema import display_name

TODAY = date(2026, 3, 10)


def rows(charge):  # noqa: ANN001, ANN201
    """Twelve attempts with known problems; every customer id written out."""
    return [
        charge("ch_a1", "2026-03-10 09:00", customer_id="cus_A"),
        charge("ch_b1", "2026-03-05 10:00", customer_id="cus_B", amount="20.00"),
        charge("ch_c1", "2026-02-01 10:00", customer_id="cus_C"),  # an old customer ...
        charge("ch_c2", "2026-03-09 10:00", customer_id="cus_C"),  # ... who is back: not new
        charge("ch_n1", "2026-03-09 11:00", customer_id=None),  # payment without a customer
        charge("ch_e1", "2026-03-08 12:00", customer_id=""),  # payment without a customer
        charge("ch_r2", "2026-03-09 12:00", customer_id="cus_R", payment_intent_id="pi_orphan", attempt_number=2),
        charge("ch_f1", "2026-03-08 08:00", "failed", customer_id="cus_F", payment_intent_id="pi_ok"),
        charge("ch_f2", "2026-03-08 09:00", customer_id="cus_F", payment_intent_id="pi_ok", attempt_number=2),
        charge("ch_dup", "2026-03-07 10:00", customer_id="cus_G"),  # loaded twice
        charge("ch_dup", "2026-03-07 10:00", customer_id="cus_G"),
        charge("ch_d1", "2026-02-15 10:00", customer_id="cus_D"),
    ]


@pytest.fixture
def warehouse(make_warehouse, charge) -> Warehouse:  # noqa: ANN001
    return make_warehouse(rows(charge))


def write(wh: Warehouse, *statements: str) -> None:
    """Change the marts (before `wh` has connected: one DuckDB configuration per file and process)."""
    writer = Warehouse(wh.url, wh.settings, read_only=False)
    try:
        with writer.write() as conn:
            for statement in statements:
                if writer.dialect == "clickhouse" and statement.startswith("UPDATE "):
                    # a MergeTree changes rows by a mutation (UPDATE needs _block_number columns)
                    table, rest = statement.removeprefix("UPDATE ").split(" SET ", 1)
                    statement = f"ALTER TABLE {table} UPDATE {rest} SETTINGS mutations_sync = 1"
                conn.execute(sa.text(statement))
    finally:
        writer.dispose()


def test_row_counts(warehouse: Warehouse) -> None:
    m = warehouse.marts
    with warehouse.read() as conn:
        counts = system.row_counts(conn, [m.payments, m.daily])
    assert counts[display_name(m.payments)] == 12
    # one daily row per (date, funnel): all rows share main_funnel, 7 distinct dates
    assert counts[display_name(m.daily)] == 7


def test_growth_from_the_charge_mart(warehouse: Warehouse) -> None:
    with warehouse.read() as conn:
        growth = system.growth(conn, warehouse.marts, TODAY, "UTC")
    assert [(g.period, g.since, g.new_payments, g.new_customers) for g in growth] == [
        ("Today", date(2026, 3, 10), 1, 1),  # cus_A
        ("Last 7 days", date(2026, 3, 4), 10, 5),  # A, B, R, F, G; C was seen before
        ("Last 30 days", date(2026, 2, 9), 11, 6),  # and D
    ]


def test_growth_days_are_local_days(warehouse: Warehouse) -> None:
    # 09:00 UTC on 2026-03-10 is still 2026-03-10 in Tokyo (18:00), and the 2026-03-09 12:00 UTC
    # attempt is 21:00 in Tokyo: today in Tokyo holds one payment, yesterday's are not today's
    with warehouse.read() as conn:
        growth = system.growth(conn, warehouse.marts, TODAY, "Asia/Tokyo")
    assert growth[0].new_payments == 1


def test_quality_finds_the_known_problems(warehouse: Warehouse) -> None:
    write(
        warehouse,
        f"UPDATE {display_name(warehouse.marts.daily)} SET total_attempts = total_attempts + 5 WHERE date = DATE '2026-03-08'",
        f"UPDATE {display_name(warehouse.marts.daily)} SET gross_revenue_usd = gross_revenue_usd + 0.01 WHERE date = DATE '2026-03-07'",
        f"DELETE FROM {display_name(warehouse.marts.daily)} WHERE date = DATE '2026-03-05'",
    )
    with warehouse.read() as conn:
        q = system.quality(conn, warehouse.marts, TODAY, "UTC", days=7)
    assert q.since == date(2026, 3, 4) and q.days == 7
    assert q.payments_without_customer == 2
    assert q.retries_without_first_attempt == 1
    assert q.duplicate_charge_ids == 1
    assert q.duplicate_customer_ids is None
    assert [(m.date, m.mart_attempts, m.charge_attempts, m.mart_revenue, m.charge_revenue) for m in q.daily_mismatches] == [
        (date(2026, 3, 8), 8, 3, Decimal("20.00"), Decimal("20.00")),  # 3 attempts, 2 succeeded at 10.00
        (date(2026, 3, 7), 2, 2, Decimal("20.01"), Decimal("20.00")),
        (date(2026, 3, 5), None, 1, None, Decimal("20.00")),
    ]
    assert q.problems == 2 + 1 + 1 + 3


def test_quality_is_bounded_to_its_window(warehouse: Warehouse) -> None:
    with warehouse.read() as conn:
        q = system.quality(conn, warehouse.marts, TODAY, "UTC", days=1)
    assert (q.payments_without_customer, q.retries_without_first_attempt, q.duplicate_charge_ids, q.daily_mismatches) == (
        0, 0, 0, [])


def test_clean_data_has_no_problems(make_warehouse, charge) -> None:  # noqa: ANN001
    wh = make_warehouse([charge("ch_1", "2026-03-09 10:00", "failed", customer_id="cus_1", payment_intent_id="pi_1"),
                         charge("ch_2", "2026-03-09 11:00", customer_id="cus_1", payment_intent_id="pi_1", attempt_number=2)])
    with wh.read() as conn:
        assert system.quality(conn, wh.marts, TODAY, "UTC", days=7).problems == 0


def test_with_a_customers_table(warehouse: Warehouse) -> None:
    c = warehouse.marts.customers
    writer = Warehouse(warehouse.url, warehouse.settings, read_only=False)
    try:
        with writer.write() as conn:
            c.create(conn)
            conn.execute(c.insert(), [
                {"customer_id": "cus_A", "email": "a@example.com", "name": "A", "created_at": datetime(2026, 3, 10, 8)},
                {"customer_id": "cus_X", "email": "x@example.com", "name": "X", "created_at": datetime(2026, 3, 6, 8)},
                {"customer_id": "cus_X", "email": "x2@example.com", "name": "X", "created_at": datetime(2026, 3, 6, 9)},
            ])
    finally:
        writer.dispose()
    with warehouse.read() as conn:
        q = system.quality(conn, warehouse.marts, TODAY, "UTC", days=7, customers_table=True)
    assert q.duplicate_customer_ids == 1


def test_growth_from_a_table_of_first_payments_agrees_with_the_charge_mart(warehouse: Warehouse) -> None:
    """A customer-totals mart (customer_id, first_payment_at) built from the same charges gives the same counts."""
    p = warehouse.marts.payments
    first = sa.Table("first_payments_test", sa.MetaData(), sa.Column("customer_id", sa.Text),
                     sa.Column("first_payment_at", sa.DateTime), schema=p.schema)
    write(warehouse, f"CREATE TABLE {display_name(first)} AS SELECT customer_id, min(created_at) AS first_payment_at "
                     f"FROM {display_name(p)} GROUP BY customer_id")
    with warehouse.read() as conn:
        from_mart = system.growth(conn, warehouse.marts, TODAY, "UTC")
        from_table = system.growth(conn, warehouse.marts, TODAY, "UTC", first_payments=first)
    assert from_table == from_mart
    assert [g.new_customers for g in from_table] == [1, 5, 6]


def test_catalog_lists_the_marts_and_their_columns(warehouse: Warehouse) -> None:
    with warehouse.read() as conn:
        catalog = system.catalog(conn)
        version = system.server_version(conn)
    p = warehouse.marts.payments
    mine = [c for c in catalog if c["table"] == p.name and (p.schema is None or c["schema"] == p.schema)]
    assert [c["column"] for c in mine] == [col.name for col in p.columns]
    assert version


@pytest.mark.parametrize("engine_kind", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
def test_postgres_estimated_counts_come_from_the_planner(warehouse: Warehouse) -> None:
    from builders import pg_execute

    m = warehouse.marts
    with warehouse.read() as conn:
        never_analyzed = system.estimated_row_counts(conn, [m.payments])
    pg_execute(warehouse.url, f"ANALYZE {display_name(m.payments)}")
    with warehouse.read() as conn:
        analyzed = system.estimated_row_counts(conn, [m.payments])
    assert never_analyzed[display_name(m.payments)] in (None, 12)  # load.py may have analyzed it already
    assert analyzed == {display_name(m.payments): 12}
