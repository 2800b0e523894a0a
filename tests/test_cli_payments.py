"""`paydash query payments` and `export payments` with the explorer's filters, sorting and
search, run as the installed command in a subprocess against a demo database on both
engines; the numbers are checked against plain SQL written here."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from builders import not_on_clickhouse, SUBPROCESS_ON_CHDB

PAYMENTS = 3_000


def paydash(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("paydash")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "paydash.cli"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    return subprocess.run([*command, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)


def as_json(tmp_path: Path, *args: str) -> dict:
    done = paydash(tmp_path, *args, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def demo(module_databases, tmp_path_factory) -> str:
    db = module_databases.isolated()
    not_on_clickhouse(db.kind, SUBPROCESS_ON_CHDB)
    target = str(tmp_path_factory.mktemp("cli") / "demo.duckdb") if db.kind == "duckdb" else db.url
    done = paydash(tmp_path_factory.mktemp("cwd"), "demo", "--no-serve", "--payments", str(PAYMENTS), "--db", target)
    assert done.returncode == 0, done.stderr
    return target


def sql(db: str, query: str, **params) -> list[tuple]:  # noqa: ANN003
    url = f"duckdb:///{db}" if "://" not in db else db.replace("postgresql://", "postgresql+psycopg://")
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(query), params)]
    finally:
        engine.dispose()


def test_filters_and_amount_order(demo, tmp_path) -> None:
    args = ["query", "payments", "--failure-category", "insufficient_funds", "--currency", "USD", "--min-amount", "10",
            "--max-amount", "$1,000", "--sort", "amount", "--db", demo]
    first = as_json(tmp_path, *args)
    (want,) = sql(demo, "SELECT count(*) FROM mart_stripe_payments WHERE failure_category = 'insufficient_funds' "
                        "AND currency = 'usd' AND amount_usd BETWEEN 10 AND 1000")[0]
    assert first["total"] == want > 0
    rows = first["rows"]
    assert all(r["failure_category"] == "insufficient_funds" and r["currency"] == "usd" for r in rows)
    amounts = [Decimal(str(r["amount_usd"])) for r in rows]
    assert amounts == sorted(amounts, reverse=True) and all(10 <= a <= 1000 for a in amounts)
    # the last page, smallest first, is the reverse of the start of the ascending order
    last = as_json(tmp_path, *args, "--page", str(first["pages"]))
    ascending = as_json(tmp_path, *args[:-2], "--asc", "--db", demo)
    tail = [r["charge_id"] for r in last["rows"]][::-1]
    assert tail == [r["charge_id"] for r in ascending["rows"]][: len(tail)]


def test_search_terms_and_fragments(demo, tmp_path) -> None:
    charge_id, last4 = sql(demo, "SELECT charge_id, card_last4 FROM mart_stripe_payments WHERE amount_usd > 50 "
                                 "ORDER BY charge_id LIMIT 1")[0]
    fragment = charge_id[-6:].upper()
    found = as_json(tmp_path, "query", "payments", "--search", fragment, "--db", demo)
    assert charge_id in [r["charge_id"] for r in found["rows"]]
    terms = as_json(tmp_path, "query", "payments", "--search", f"last4:{last4} amount:>50", "--db", demo)
    (want,) = sql(demo, "SELECT count(*) FROM mart_stripe_payments WHERE card_last4 = :l AND amount_usd > 50", l=last4)[0]
    assert terms["total"] == want >= 1 and all(Decimal(str(r["amount_usd"])) > 50 for r in terms["rows"])


def test_export_with_the_new_filters(demo, tmp_path) -> None:
    out = tmp_path / "us.csv"
    done = paydash(tmp_path, "export", "payments", "--card-country", "us", "--failure-code", "insufficient_funds",
                   "--out", str(out), "--db", demo)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(newline="")))
    (want,) = sql(demo, "SELECT count(*) FROM mart_stripe_payments WHERE card_country = 'US' "
                        "AND failure_code = 'insufficient_funds'")[0]
    assert len(rows) == want > 0
    assert {(r["card_country"], r["failure_code"]) for r in rows} == {("US", "insufficient_funds")}


@pytest.mark.parametrize(
    "args, needles",
    [
        (["--failure-category", "bank_said_no"], ["bank_said_no", "insufficient_funds"]),
        (["--min-amount", "lots"], ["lots", "amount"]),
        (["--min-amount", "50", "--max-amount", "10"], ["above"]),
        (["--sort", "price"], ["price", "created, amount"]),
        (["--search", "colour:red"], ["colour", "email:", "last4:", "amount:"]),
        (["--search", "amount:>>5"], ["amount"]),
    ],
)
def test_bad_options_get_one_clear_line(demo, tmp_path, args, needles) -> None:
    done = paydash(tmp_path, "query", "payments", *args, "--db", demo)
    assert done.returncode == 1 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    for needle in needles:
        assert needle in lines[0]
