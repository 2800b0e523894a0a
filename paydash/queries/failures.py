"""Why payments fail: failed attempts by category and by decline code."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from paydash.decline_codes import CATEGORIES
from paydash.queries.dates import DateRange
from paydash.queries.sql import hour_split, in_range, money, ratio
from paydash.warehouse.schema import Marts


def failure_breakdown(conn: Connection, marts: Marts, rng: DateRange, funnel: str | None = None,
                      rollup: bool = False) -> dict[str, Any]:
    """Failed attempts (status 'failed') in the range, by failure_category and by failure_code.

    Each code row carries its recovery_action; categories are the sum of their codes.
    Rows are ordered by count, most frequent first. With the rollup marts (`rollup`: its
    failures per hour, funnel and reason) and a
    range of whole UTC hours (any whole-hour timezone) its hours answer, and the charge mart
    only a range's last, partial hour.
    """
    p = marts.payments.c
    keys = (p.failure_category, p.failure_code, p.recovery_action)
    where = [p.status == "failed"] + ([p.funnel_name == funnel] if funnel else [])
    split = hour_split(rng) if rollup else None
    if split is None:
        stmt = (select(*keys, func.count().label("failures"),
                       func.coalesce(func.sum(p.amount_usd), 0).label("failed_amount_usd"))
                .where(*where, in_range(p.created_at, rng)).group_by(*keys))
    else:
        start, hour_stop, stop = split
        r = marts.rollup_failures.c
        parts = [select(r.failure_category, r.failure_code, r.recovery_action, r.failures.label("n"),
                        r.failed_amount_usd.label("usd"))
                 .where(r.hour >= start, r.hour < hour_stop, *([r.funnel_name == funnel] if funnel else []))]
        if hour_stop < stop:
            parts.append(select(*keys, sa.literal(1, sa.BigInteger).label("n"), p.amount_usd.label("usd"))
                         .where(*where, p.created_at >= hour_stop, p.created_at < stop))
        rows = (parts[0] if len(parts) == 1 else sa.union_all(*parts)).subquery("failed")
        stmt = (select(rows.c.failure_category, rows.c.failure_code, rows.c.recovery_action,
                       func.coalesce(func.sum(rows.c.n), 0).label("failures"),
                       func.coalesce(func.sum(rows.c.usd), 0).label("failed_amount_usd"))
                .group_by(rows.c.failure_category, rows.c.failure_code, rows.c.recovery_action))
    rows = conn.execute(stmt).all()
    total = sum(r.failures for r in rows)

    by_code = [
        {
            "failure_code": r.failure_code,
            "failure_category": r.failure_category or "other",
            "recovery_action": r.recovery_action or CATEGORIES.get(r.failure_category or "other", ("",))[0],
            "failures": int(r.failures),
            "failed_amount_usd": money(r.failed_amount_usd),
            "share": ratio(r.failures, total),
        }
        for r in rows
    ]
    by_code.sort(key=lambda r: (-r["failures"], str(r["failure_code"])))

    categories: dict[str, dict[str, Any]] = {}
    for r in by_code:
        cat = categories.setdefault(
            r["failure_category"],
            {
                "failure_category": r["failure_category"],
                "recovery_action": CATEGORIES.get(r["failure_category"], (r["recovery_action"],))[0],
                "failures": 0,
                "failed_amount_usd": money(0),
            },
        )
        cat["failures"] += r["failures"]
        cat["failed_amount_usd"] += r["failed_amount_usd"]
    by_category = sorted(categories.values(), key=lambda c: (-c["failures"], c["failure_category"]))
    for c in by_category:
        c["share"] = ratio(c["failures"], total)
    return {
        "from": rng.start.isoformat(),
        "to": rng.end.isoformat(),
        "failures": total,
        "failed_amount_usd": sum((c["failed_amount_usd"] for c in by_category), money(0)),
        "by_category": by_category,
        "by_code": by_code,
    }
