"""One JSON serialiser (paydash.jsonout) for `paydash ... --json` and the System page's report."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

from paydash import health, jsonout
from paydash.queries.payments import payment_detail
from builders import not_on_clickhouse, SUBPROCESS_ON_CHDB

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    name: str
    amount: Decimal


def test_values_become_plain_json() -> None:
    value = {
        "money": Decimal("1234.56"),
        "at": datetime(2026, 3, 1, 9, 30, 15, 123456),  # naive: UTC, as every stored time
        "local": datetime(2026, 3, 1, 9, 30, tzinfo=timezone(timedelta(hours=1))),
        "day": date(2026, 3, 1),
        "rate": 0.123456789,
        "nothing": float("nan"),
        "row": Row("a", Decimal("2.50")),
        "pair": ("x", 1),
        7: "key",
        "odd": Path("/tmp/x"),
    }
    assert jsonout.jsonable(value) == {
        "money": 1234.56, "at": "2026-03-01T09:30:15Z", "local": "2026-03-01T09:30:00+01:00", "day": "2026-03-01",
        "rate": 0.123456789, "nothing": None, "row": {"name": "a", "amount": 2.5}, "pair": ["x", 1], "7": "key",
        "odd": "/tmp/x",
    }
    text = jsonout.dumps(value)
    assert json.loads(text)["money"] == 1234.56 and "NaN" not in text


def test_cli_and_system_report_write_through_the_one_serialiser() -> None:
    # nobody keeps a serialiser of their own beside paydash.jsonout
    for path in (REPO / "paydash").rglob("*.py"):
        if path.name == "jsonout.py":
            continue
        names = {n.name for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.FunctionDef)}
        assert not {"jsonable", "to_jsonable"} & names, f"{path.relative_to(REPO)} defines its own JSON serialiser"
    for module in ("paydash/cli.py", "paydash/health.py"):
        tree = ast.parse((REPO / module).read_text())
        imported = {(n.module, a.name) for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert ("paydash", "jsonout") in imported, f"{module} must write JSON through paydash.jsonout"


def test_the_cli_prints_a_payment_exactly_as_the_report_writes_it(make_warehouse, charge) -> None:  # noqa: ANN001
    """`paydash query payment --json` (a subprocess) and the System report's JSON agree value for value:
    money, times and dates come out the same way in both."""
    wh = make_warehouse([
        charge("ch_1", "2026-03-01 10:00:07", "failed", "19.99", payment_intent_id="pi_1", failure_code="card_declined"),
        charge("ch_2", "2026-03-01 10:05:00", "succeeded", "19.99", payment_intent_id="pi_1", attempt_number=2),
    ])
    with wh.read() as conn:
        detail = payment_detail(conn, wh.marts, "ch_2", card_last4=wh.has_column(wh.marts.payments, "card_last4"))
    assert any(isinstance(v, Decimal) for v in detail.values()) and any(isinstance(v, datetime) for v in detail.values())
    not_on_clickhouse(wh.dialect, SUBPROCESS_ON_CHDB)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env["PAYDASH_PAYMENTS_TABLE"], env["PAYDASH_DAILY_TABLE"] = wh.settings.payments_table, wh.settings.daily_table
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "query", "payment", "ch_2", "--json", "--db", wh.url],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed == json.loads(jsonout.dumps(detail))
    assert printed == json.loads(health.report_json({"payment": detail}))["payment"]
    assert printed["amount_usd"] == 19.99 and printed["created_at"] == "2026-03-01T10:05:00Z"
