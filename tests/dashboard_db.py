"""The dashboard tests' database: demo payments plus a payment carrying HTML/JS payloads.

Shared by tests/app (AppTest) and tests/browser (Playwright), built with the package's own
demo generator (the same code as `paydash demo`).
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from builders import charge, rows_to_arrow
from paydash.settings import Settings
from paydash.sources.demo import DemoSpec, build_demo_database
from paydash.warehouse import load, transforms
from paydash.warehouse.engine import Warehouse

SCRIPT = "<script>alert(1)</script>"
IMG = "<img src=x onerror=alert(1)>"
HOSTILE_CHARGE = f"ch_{SCRIPT}"
HOSTILE_RETRY = f"ch_{IMG}"
HOSTILE_CUSTOMER = f"cus_{IMG}"
HOSTILE_FUNNEL = f"funnel {SCRIPT}"
HOSTILE_CODE = IMG


def hostile_rows(now: datetime) -> list[dict]:
    """A failed first attempt won by a retry, with payloads in every text column a page shows."""
    first = now - timedelta(minutes=30)
    common = dict(
        payment_intent_id=f"pi_{SCRIPT}",
        customer_id=HOSTILE_CUSTOMER,
        profile_id=f"prof {SCRIPT} {IMG}",
        funnel_name=HOSTILE_FUNNEL,
        card_brand="visa",
        card_country="US",
    )
    return [
        charge(HOSTILE_CHARGE, first, "failed", "66.60", failure_code=HOSTILE_CODE, attempt_number=1,
               failure_category=SCRIPT, **common),
        charge(HOSTILE_RETRY, first + timedelta(minutes=5), "succeeded", "66.60", attempt_number=2, **common),
    ]


def build_dashboard_database(path: Path, payments: int, seed: int = 7, days: int = 120) -> Path:
    """A DuckDB file with `payments` demo payments ending now, plus the hostile payment."""
    settings = Settings()
    wh = Warehouse(str(path), settings, read_only=False)
    try:
        build_demo_database(wh, DemoSpec(payments=payments, days=days, seed=seed), show_progress=False)
        now = datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)
        load.load_arrow(wh, wh.marts.payments, rows_to_arrow(hostile_rows(now)))
        with wh.write() as conn:
            transforms.rebuild_derived_marts(conn, wh.marts)
    finally:
        wh.dispose()
    return path
