"""The data contract: a database holding only the two marts, made with plain DDL as a dbt
project makes them, is enough; `check_contract` says what is missing.

The daily mart here has a count column per failure category named the way a dbt project
might (`card_declined_failures`), not the way paydash's own transform names them.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from builders import charge
from paydash.queries.dates import DateRange
from paydash.queries.failures import failure_breakdown
from paydash.queries.filters import PaymentFilters
from paydash.queries.overview import daily_series, overview
from paydash.queries.payments import count_payments, export_select, filter_options, payment_detail, payments_page
from paydash.queries.recovery import recovery
from paydash.warehouse.contract import check_contract
from paydash.warehouse.id_sketch import SKETCH_COLUMNS, sketch

PAYMENTS_DDL = """CREATE TABLE {table} (
    charge_id text NOT NULL, payment_intent_id text, customer_id text, profile_id text,
    status text, is_successful boolean, amount_usd numeric(12,2), currency text,
    failure_code text, failure_category text, recovery_action text, attempt_number integer,
    created_at timestamp, created_date date, hour_of_day integer, day_of_week text,
    funnel_name text, card_brand text, card_country text
)"""
CATEGORY_COUNTS = ("card_declined", "insufficient_funds", "expired_card", "fraud_block", "processing_error")
DAILY_DDL = """CREATE TABLE {table} (
    date date, funnel_name text, total_attempts bigint, successful_payments bigint,
    failed_payments bigint, gross_revenue_usd numeric(14,2), failed_revenue_usd numeric(14,2),
    success_rate double precision, """ + ", ".join(f"{c}_failures bigint" for c in CATEGORY_COUNTS) + ")"

RANGE = DateRange(date(2024, 3, 4), date(2024, 3, 5))


def rows():
    return [
        charge("ch_1", "2024-03-04 10:00", amount="100.00", payment_intent_id="pi_1"),
        charge("ch_2", "2024-03-04 11:00", "failed", "40.00", payment_intent_id="pi_2", failure_code="insufficient_funds"),
        charge("ch_3", "2024-03-04 12:00", "succeeded", "40.00", payment_intent_id="pi_2", attempt_number=2),
        charge("ch_4", "2024-03-05 09:00", "failed", "25.00", payment_intent_id="pi_3", failure_code="expired_card",
               funnel_name="mobile_app", card_brand="amex"),
        charge("ch_5", "2024-03-05 10:00", "pending", "5.00", payment_intent_id="pi_4", funnel_name="mobile_app"),
        charge("ch_6", "2024-03-03 10:00", amount="70.00", payment_intent_id="pi_5"),  # the previous period
    ]


def literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, date):
        return f"DATE '{value.isoformat()}'"
    return "'" + str(value).replace("'", "''") + "'"


def daily_rows(charges) -> list[dict]:
    """The daily mart as a dbt model would aggregate it (written here, not paydash's transform)."""
    groups: dict = defaultdict(list)
    for r in charges:
        groups[(r["created_date"], r["funnel_name"])].append(r)
    out = []
    for (day, funnel), rs in sorted(groups.items()):
        ok = [r for r in rs if r["status"] == "succeeded"]
        bad = [r for r in rs if r["status"] == "failed"]
        row = {
            "date": day, "funnel_name": funnel, "total_attempts": len(rs), "successful_payments": len(ok),
            "failed_payments": len(bad), "gross_revenue_usd": sum((r["amount_usd"] for r in ok), Decimal("0.00")),
            "failed_revenue_usd": sum((r["amount_usd"] for r in bad), Decimal("0.00")),
            "success_rate": Decimal(len(ok)) / Decimal(len(rs)),
        }
        for c in CATEGORY_COUNTS:
            row[f"{c}_failures"] = sum(1 for r in bad if r["failure_category"] == c)
        out.append(row)
    return out


def insert(table: str, records: list[dict]) -> str:
    columns = list(records[0])
    values = ", ".join("(" + ", ".join(literal(r[c]) for c in columns) + ")" for r in records)
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"


@pytest.fixture
def dbt_database(new_database):
    """Only the two marts, in an `analytics`-style schema, made and filled with plain SQL."""
    from paydash.settings import Settings

    db = new_database()
    if db.kind == "duckdb":
        db.schema = "analytics"
        db.settings = Settings().replace(payments_table="analytics.mart_stripe_payments",
                                         daily_table="analytics.mart_stripe_payments_daily")
        db.execute("CREATE SCHEMA analytics")
    payments, daily = db.qualified("mart_stripe_payments"), db.qualified("mart_stripe_payments_daily")
    charges = rows()
    db.execute(PAYMENTS_DDL.format(table=payments), DAILY_DDL.format(table=daily),
               insert(payments, charges), insert(daily, daily_rows(charges)))
    return db


def test_only_the_two_marts_are_enough(dbt_database, databases) -> None:
    wh = databases.track(dbt_database.warehouse())
    assert check_contract(wh).ok, check_contract(wh).lines()
    with wh.read() as conn:
        # daily mart path (mart_tz == range tz) and charge mart path
        for mart_tz in ("UTC", "Europe/Berlin"):
            current = overview(conn, wh.marts, RANGE, mart_tz=mart_tz)["current"]
            assert (current["attempts"], current["successful"], current["failed"]) == (5, 2, 2)
            assert current["revenue_usd"] == Decimal("140.00") and current["failed_amount_usd"] == Decimal("65.00")
            assert overview(conn, wh.marts, RANGE, mart_tz=mart_tz)["previous"]["revenue_usd"] == Decimal("70.00")
            series = daily_series(conn, wh.marts, RANGE, "mobile_app", mart_tz=mart_tz)
            assert [(d["attempts"], d["failed"]) for d in series] == [(0, 0), (2, 1)]

        failures = failure_breakdown(conn, wh.marts, RANGE)
        assert [(c["failure_category"], c["failures"], c["failed_amount_usd"]) for c in failures["by_category"]] == [
            ("expired_card", 1, Decimal("25.00")), ("insufficient_funds", 1, Decimal("40.00"))]

        rec = recovery(conn, wh.marts, RANGE)
        assert (rec["payments"], rec["first_failed"], rec["recovered"]) == (4, 2, 1)
        assert rec["recovered_usd"] == Decimal("40.00") and rec["unrecovered_usd"] == Decimal("25.00")

        page = payments_page(conn, wh.marts, PaymentFilters(status="failed"))
        assert (page.total, [r["charge_id"] for r in page.rows]) == (2, ["ch_4", "ch_2"])
        assert count_payments(conn, wh.marts, PaymentFilters(card_brand="amex")) == 1
        detail = payment_detail(conn, wh.marts, "ch_3")
        assert [h["charge_id"] for h in detail["retry_history"]] == ["ch_2", "ch_3"]
        assert filter_options(conn, wh.marts)["funnel"] == ["main_funnel", "mobile_app"]

    out = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, export_select(wh.marts, PaymentFilters()), out.write)
    assert len(list(csv.DictReader(io.StringIO(out.getvalue().decode())))) == 6


def test_check_reports_a_good_database(make_warehouse) -> None:
    wh = make_warehouse(rows())
    report = check_contract(wh)
    assert report.ok and report.reachable
    text = "\n".join(report.lines())
    assert "mart_stripe_payments: ok (6 rows)" in text
    assert text.endswith("the data contract is met")


def test_check_reports_a_missing_table(new_database, databases) -> None:
    db = new_database()
    db.execute(PAYMENTS_DDL.format(table=db.qualified("mart_stripe_payments")))
    report = check_contract(databases.track(db.warehouse()))
    assert not report.ok
    daily = [t for t in report.tables if t.name.endswith("mart_stripe_payments_daily")][0]
    assert not daily.present
    text = "\n".join(report.lines())
    assert "mart_stripe_payments_daily: MISSING. Set PAYDASH_DAILY_TABLE" in text
    assert text.endswith("the data contract is NOT met")


def test_check_reports_missing_columns(new_database, databases) -> None:
    db = new_database()
    ddl = PAYMENTS_DDL.replace(" card_brand text,", "").replace("status text, ", "")
    db.execute(ddl.format(table=db.qualified("mart_stripe_payments")),
               DAILY_DDL.format(table=db.qualified("mart_stripe_payments_daily")))
    report = check_contract(databases.track(db.warehouse()))
    payments = [t for t in report.tables if t.name.endswith("mart_stripe_payments")][0]
    assert payments.missing_columns == ["status", "card_brand"]
    assert "missing columns status, card_brand" in "\n".join(report.lines())
    assert not report.ok


def test_check_reports_an_unreachable_database(tmp_path) -> None:
    from paydash.settings import Settings
    from paydash.warehouse.engine import Warehouse

    report = check_contract(Warehouse(str(tmp_path / "nope.duckdb"), Settings()))
    assert not report.reachable and not report.ok
    assert report.lines()[0].endswith("NOT REACHABLE")
    assert "paydash demo" in report.lines()[1]
    assert not (tmp_path / "nope.duckdb").exists()  # checking must not create the file


def test_check_says_what_the_search_needs_on_dbt_marts(dbt_database, databases) -> None:
    """No card_last4 and (on PostgreSQL) no trigram indexes: the contract is met, and `check`
    says what to add; once added, the notes go."""
    from paydash.warehouse import load

    wh = databases.track(dbt_database.warehouse())
    report = check_contract(wh)
    text = "\n".join(report.lines())
    assert report.ok and "the data contract is met" in text
    assert "note: " in text and "no card_last4 (optional)" in text and "last4:" in text
    if dbt_database.kind == "postgres":
        assert "no trigram index on charge_id, payment_intent_id, customer_id, profile_id" in text
        statements = [line for line in text.splitlines() if "gin_trgm_ops" in line][0].split("post-hooks): ")[1].split("; ")
        assert statements[0] == "CREATE EXTENSION IF NOT EXISTS pg_trgm"
        dbt_database.execute(*statements)  # as a dbt post-hook would run them
        assert load.missing_fragment_indexes(wh) == []
    sketches = []
    if dbt_database.kind == "duckdb":
        # the search's id sketches, with the SQL that computes them (paydash/warehouse/id_sketch.py)
        line = [line for line in text.splitlines() if "no id sketches" in line][0]
        sketches = re.findall(r"(list_reduce\(.*?\)) AS (\w+_sketch)", line.split("Add them to the model: ")[1])
        assert [column for _, column in sketches] == list(SKETCH_COLUMNS.values())
    else:
        assert "id sketches" not in text  # PostgreSQL's trigram indexes serve the search
    wh.dispose()  # DuckDB: let the plain SQL open the file
    table = dbt_database.qualified("mart_stripe_payments")
    dbt_database.execute(f"ALTER TABLE {table} ADD COLUMN card_last4 text",
                         *(f"ALTER TABLE {table} ADD COLUMN {column} BIGINT" for _, column in sketches),
                         *(f"UPDATE {table} SET {column} = {expression}" for expression, column in sketches))
    # what remains is what would speed the pages up (test_check_says_which_rollup_and_indexes_would_help)
    assert [line for line in check_contract(wh).lines() if line.startswith("note: ")
            and "no rollup marts" not in line and "lacks the indexes" not in line] == []
    if sketches:
        with wh.read() as conn:
            got = conn.execute(sa.select(*(wh.marts.payments.c[n] for n in (*SKETCH_COLUMNS, *SKETCH_COLUMNS.values())))).all()
        assert got and all(list(row[4:]) == [sketch(i) for i in row[:4]] for row in got)


def test_paydash_built_marts_serve_fragment_search_from_an_index(make_warehouse, charge) -> None:
    from paydash.queries.filters import PaymentFilters, conditions
    from paydash.warehouse import load

    wh = make_warehouse([charge(f"ch_{i:04d}AbCd", "2024-03-04 10:00") for i in range(50)])
    writer = type(wh)(wh.url, wh.settings, read_only=False)
    try:
        load.create_indexes(writer)
        assert load.missing_fragment_indexes(writer) == []
        if writer.dialect != "postgresql":
            return  # DuckDB scans: there is no index to use
        stmt = sa.select(sa.func.count()).select_from(wh.marts.payments).where(
            *conditions(PaymentFilters(search="0042abcd"), wh.marts.payments))
        with writer.write() as conn:
            conn.execute(sa.text("SET LOCAL enable_seqscan = off"))  # a tiny table: make the planner show its choice
            compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.execute(sa.text(f"EXPLAIN {compiled}")))
            assert conn.execute(stmt).scalar_one() == 1
        assert "_charge_id_trgm" in plan, plan
    finally:
        writer.dispose()


def test_check_says_which_rollup_and_indexes_would_help(dbt_database, databases) -> None:
    """dbt marts without the rollups (and on PostgreSQL without the scan indexes): `check` names
    them with the SQL to add; once added as it says, the notes go and the pages read them."""
    from paydash.warehouse import load

    wh = databases.track(dbt_database.warehouse())
    lines = check_contract(wh).lines()
    rollup_note = [line for line in lines if "no rollup marts" in line]
    assert len(rollup_note) == 1 and check_contract(wh).ok
    models = rollup_note[0].split("rebuilt with the charge mart: ")[1].split("; ")
    assert [m.split(" AS ")[0] for m in models] == [dbt_database.qualified("mart_stripe_payment_rollup"),
                                                   dbt_database.qualified("mart_stripe_payment_rollup_failures"),
                                                   dbt_database.qualified("mart_stripe_payment_rollup_hourly")]
    index_note = [line for line in lines if "lacks the indexes" in line]
    assert len(index_note) == (1 if dbt_database.kind == "postgres" else 0)
    wh.dispose()  # DuckDB: let the plain SQL open the file
    dbt_database.execute(*(f"CREATE TABLE {m}" for m in models))
    if index_note:
        dbt_database.execute(*index_note[0].split("post-hooks): ")[1].split("; "))
        assert load.missing_scan_indexes(wh) == []
    lines = check_contract(wh).lines()
    assert not [line for line in lines if "no rollup marts" in line or "lacks the indexes" in line]
    assert wh.has_rollup(max_age=0)
    with wh.read() as conn:
        berlin = DateRange(RANGE.start, RANGE.end, "Europe/Berlin")
        assert (overview(conn, wh.marts, berlin, mart_tz="UTC", rollup=True)
                == overview(conn, wh.marts, berlin, mart_tz="UTC"))
        assert failure_breakdown(conn, wh.marts, RANGE, rollup=True) == failure_breakdown(conn, wh.marts, RANGE)
