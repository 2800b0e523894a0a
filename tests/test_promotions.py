"""Promotions queries on a hand-computed dataset, on both engines: codes, a code's customers, usage filters, export."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest

from builders import charge
from customer_marts import build
from paydash.errors import InvalidInput
from paydash.queries import promotions as pq
from paydash.queries.dates import DateRange


def code(pid, name, created, percent=None, amount=None, active=True, expires=None, redeemed=0):  # noqa: ANN001, ANN201
    return {"promotion_code_id": pid, "code": name, "coupon_id": "co_" + pid, "percent_off": percent,
            "amount_off_usd": Decimal(amount) if amount else None, "active": active, "max_redemptions": None,
            "times_redeemed": redeemed, "created_at": created, "expires_at": expires}


def use(uid, pid, customer, action, at, discount=None, reason=None):  # noqa: ANN001, ANN201
    return {"usage_id": uid, "promotion_code_id": pid, "code": {"promo_1": "WELCOME10", "promo_2": "SAVE5"}[pid],
            "customer_id": customer, "action": action, "occurred_at": datetime.fromisoformat(at),
            "checkout_session_id": "cs_" + uid, "invoice_id": None,
            "discount_usd": Decimal(discount) if discount else None, "failure_reason": reason}


CODES = [
    code("promo_1", "WELCOME10", datetime(2026, 1, 1), percent=10.0, redeemed=3),
    code("promo_2", "SAVE5", datetime(2026, 2, 1), amount="5.00", active=False, expires=datetime(2026, 3, 1), redeemed=1),
    code("promo_3", "=EVIL()", datetime(2026, 3, 1), percent=50.0),
]
USAGE = [
    use("u1", "promo_1", "cus_A", "validated", "2026-01-10 09:58", "2.00"),
    use("u2", "promo_1", "cus_A", "applied", "2026-01-10 10:00", "2.00"),
    use("u3", "promo_1", "cus_B", "validated", "2026-01-31 23:00", "10.00"),
    use("u4", "promo_1", "cus_B", "cleared", "2026-01-31 23:05"),
    use("u5", "promo_1", "cus_B", "applied", "2026-02-15 12:00", "10.00"),
    use("u6", "promo_1", "cus_A", "applied", "2026-03-01 12:00", "3.00"),
    use("u7", "promo_2", "cus_C", "failed", "2026-03-05 12:00", reason="expired"),
    use("u8", "promo_2", "cus_A", "applied", "2026-02-10 12:00", "5.00"),
]
CUSTOMERS = [{"customer_id": "cus_A", "email": "ada@example.com", "name": "Ada", "created_at": datetime(2026, 1, 1)}]


@pytest.fixture
def wh(databases):  # noqa: ANN001, ANN201
    return build(databases, [charge("ch_1", "2026-01-10 10:00", customer_id="cus_A")], customers=CUSTOMERS,
                 codes=CODES, usage=USAGE)


def test_codes_with_their_customers_and_uses(wh) -> None:  # noqa: ANN001
    with wh.read() as conn:
        found = pq.promotion_codes(conn, wh.marts)
    assert found.total == 3 and found.pages == 1
    got = [(r["promotion_code_id"], r["code"], r["customers"], r["uses"], r["validated"], r["cleared"], r["failed"], r["discount_usd"])
           for r in found.rows]
    assert got == [
        ("promo_3", "=EVIL()", 0, 0, 0, 0, 0, Decimal("0.00")),
        ("promo_2", "SAVE5", 1, 1, 0, 0, 1, Decimal("5.00")),
        ("promo_1", "WELCOME10", 2, 3, 2, 1, 0, Decimal("15.00")),
    ]
    assert found.rows[1]["amount_off_usd"] == Decimal("5.00") and found.rows[1]["active"] is False
    assert found.rows[2]["last_used_at"] == datetime(2026, 3, 1, 12)


def test_code_detail_and_customers(wh) -> None:  # noqa: ANN001
    with wh.read() as conn:
        detail = pq.code_detail(conn, wh.marts, "promo_1")
        missing = pq.code_detail(conn, wh.marts, "promo_'; --")
        people = pq.code_customers(conn, wh.marts, "promo_1", with_profiles=True)
    assert missing is None
    assert (detail["code"], detail["uses"], detail["customers"], detail["percent_off"]) == ("WELCOME10", 3, 2, 10.0)
    assert people.total == 2
    assert [(r["customer_id"], r["uses"], r["validated"], r["cleared"], r["discount_usd"], r["first_at"], r["last_at"], r["name"])
            for r in people.rows] == [
        ("cus_A", 2, 1, 0, Decimal("5.00"), datetime(2026, 1, 10, 9, 58), datetime(2026, 3, 1, 12), "Ada"),
        ("cus_B", 1, 1, 1, Decimal("10.00"), datetime(2026, 1, 31, 23), datetime(2026, 2, 15, 12), None),
    ]


@pytest.mark.parametrize(
    "filters, expected",
    [
        (dict(), ["u6", "u5", "u4", "u3", "u2", "u1"]),
        (dict(customer_id="cus_B"), ["u5", "u4", "u3"]),
        (dict(action="applied"), ["u6", "u5", "u2"]),
        (dict(date_range=DateRange(date(2026, 1, 31), date(2026, 2, 15))), ["u5", "u4", "u3"]),
        # Auckland is UTC+13: Jan 31 23:00 UTC is Feb 1 there
        (dict(date_range=DateRange(date(2026, 2, 1), date(2026, 2, 1), "Pacific/Auckland")), ["u4", "u3"]),
        (dict(customer_id="cus_B", action="applied"), ["u5"]),
        (dict(customer_id="'; DROP TABLE x; --"), []),
        (dict(customer_id="%"), []),
        (dict(customer_id="cus_"), []),
    ],
)
def test_usage_history_filters(wh, filters: dict, expected: list[str]) -> None:  # noqa: ANN001
    with wh.read() as conn:
        found = pq.usage_history(conn, wh.marts, pq.UsageFilters("promo_1", **filters))
    assert [r["usage_id"] for r in found.rows] == expected and found.total == len(expected)


def test_usage_history_pages_in_the_database(wh, monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.setattr(pq, "PAGE_SIZE", 4)
    with wh.read() as conn:
        first = pq.usage_history(conn, wh.marts, pq.UsageFilters("promo_1"), 1)
        second = pq.usage_history(conn, wh.marts, pq.UsageFilters("promo_1"), 2)
        beyond = pq.usage_history(conn, wh.marts, pq.UsageFilters("promo_1"), 3)
    assert (first.pages, [r["usage_id"] for r in first.rows]) == (2, ["u6", "u5", "u4", "u3"])
    assert [r["usage_id"] for r in second.rows] == ["u2", "u1"] and beyond.rows == []
    with pytest.raises(InvalidInput):
        pq.usage_history(None, wh.marts, pq.UsageFilters("promo_1"), 0)


def test_bad_filters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="action"):
        pq.UsageFilters("promo_1", action="deleted")
    with pytest.raises(InvalidInput, match="longer"):
        pq.UsageFilters("promo_1", customer_id="x" * 201)
    f = pq.usage_filters("promo_1", "  cus_A ", None, date(2026, 2, 3), None, "UTC")
    assert f == pq.UsageFilters("promo_1", "cus_A", None, DateRange(date(2026, 2, 3), date(2026, 2, 3)))


def export(wh, stmt) -> list[dict]:  # noqa: ANN001
    buffer = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, stmt, buffer.write)
    return list(csv.DictReader(io.StringIO(buffer.getvalue().decode())))


def test_exports_are_whole_and_formula_safe(wh) -> None:  # noqa: ANN001
    codes = export(wh, pq.codes_export_select(wh.marts))
    assert [r["code"] for r in codes] == ["'=EVIL()", "SAVE5", "WELCOME10"]
    assert (codes[1]["active"], codes[1]["amount_off_usd"], codes[1]["expires_at"]) == ("false", "5.00", "2026-03-01T00:00:00Z")
    usage = export(wh, pq.usage_export_select(wh.marts, pq.UsageFilters("promo_1", action="applied")))
    assert [(r["usage_id"], r["discount_usd"], r["occurred_at"]) for r in usage] == [
        ("u6", "3.00", "2026-03-01T12:00:00Z"), ("u5", "10.00", "2026-02-15T12:00:00Z"), ("u2", "2.00", "2026-01-10T10:00:00Z")]
    people = export(wh, pq.code_customers_export_select(wh.marts, "promo_1"))
    assert [(r["customer_id"], r["uses"]) for r in people] == [("cus_A", "2"), ("cus_B", "1")]
