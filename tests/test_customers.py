"""Customers queries on a hand-computed dataset, on both engines: totals, seek paging, search, deep dive, cohorts, export."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal

import pytest
import sqlalchemy as sa

from builders import charge
from customer_marts import build
from paydash.errors import InvalidInput
from paydash.queries import customers as cq
from paydash.warehouse import customer_totals

HOSTILE_NAME = '=HYPERLINK("http://evil.example","x")'


def payments(tz: str = "UTC") -> list[dict]:
    def c(*args, **kw):  # noqa: ANN002, ANN003, ANN202
        return charge(*args, tz=tz, **kw)

    return [
        # A: a failure won back by a retry, a success in February, a failure in March
        c("ch_a1", "2026-01-10 10:00", "failed", "20.00", customer_id="cus_A", payment_intent_id="pi_a1", attempt_number=1),
        c("ch_a2", "2026-01-10 10:05", "succeeded", "20.00", customer_id="cus_A", payment_intent_id="pi_a1", attempt_number=2),
        c("ch_a3", "2026-02-03 12:00", "succeeded", "30.00", customer_id="cus_A", payment_intent_id="pi_a2"),
        c("ch_a4", "2026-03-15 09:00", "failed", "15.00", customer_id="cus_A", payment_intent_id="pi_a3"),
        # B: first success at 23:30 UTC on Jan 31 (February in Auckland), March, and a pending attempt
        c("ch_b1", "2026-01-31 23:30", "succeeded", "100.00", customer_id="cus_B"),
        c("ch_b2", "2026-03-02 12:00", "succeeded", "5.00", customer_id="cus_B"),
        c("ch_b3", "2026-03-05 12:00", "pending", "7.00", customer_id="cus_B"),
        # C: only a failure, so no cohort
        c("ch_c1", "2026-02-10 12:00", "failed", "50.00", customer_id="cus_C"),
        # D: twice in February (one active month), then April; no customers-mart row
        c("ch_d1", "2026-02-20 12:00", "succeeded", "10.00", customer_id="cus_D"),
        c("ch_d2", "2026-02-25 12:00", "succeeded", "10.00", customer_id="cus_D"),
        c("ch_d3", "2026-04-01 12:00", "succeeded", "10.00", customer_id="cus_D"),
        # F: one small payment, a name a spreadsheet would run
        c("ch_f1", "2026-02-01 12:00", "succeeded", "1.00", customer_id="cus_F"),
        # no customer: left out of every customer number
        c("ch_x1", "2026-02-01 13:00", "succeeded", "999.00", customer_id=None),
    ]


CUSTOMERS = [
    {"customer_id": "cus_A", "email": "ada@example.com", "name": "Ada Lovelace", "created_at": datetime(2026, 1, 1)},
    {"customer_id": "cus_B", "email": "bob+test@example.com", "name": "Bob O'Brien", "created_at": datetime(2026, 1, 2)},
    {"customer_id": "cus_C", "email": "c_d%x@example.com", "name": "50% Off_Guy", "created_at": datetime(2026, 1, 3)},
    {"customer_id": "cus_E", "email": "eve@example.com", "name": "Eve No Payments", "created_at": datetime(2026, 1, 4)},
    {"customer_id": "cus_F", "email": "-f@example.com", "name": HOSTILE_NAME, "created_at": datetime(2026, 1, 5)},
]

EXPECTED = {
    "cus_A": dict(payments=3, attempts=4, successful=2, failed=2, revenue_usd=Decimal("50.00"), failure_rate=0.5,
                  first_payment_at=datetime(2026, 1, 10, 10), last_payment_at=datetime(2026, 3, 15, 9)),
    "cus_B": dict(payments=3, attempts=3, successful=2, failed=0, revenue_usd=Decimal("105.00"), failure_rate=0.0,
                  first_payment_at=datetime(2026, 1, 31, 23, 30), last_payment_at=datetime(2026, 3, 5, 12)),
    "cus_C": dict(payments=1, attempts=1, successful=0, failed=1, revenue_usd=Decimal("0.00"), failure_rate=1.0,
                  first_payment_at=datetime(2026, 2, 10, 12), last_payment_at=datetime(2026, 2, 10, 12)),
    "cus_D": dict(payments=3, attempts=3, successful=3, failed=0, revenue_usd=Decimal("30.00"), failure_rate=0.0,
                  first_payment_at=datetime(2026, 2, 20, 12), last_payment_at=datetime(2026, 4, 1, 12)),
    "cus_F": dict(payments=1, attempts=1, successful=1, failed=0, revenue_usd=Decimal("1.00"), failure_rate=0.0,
                  first_payment_at=datetime(2026, 2, 1, 12), last_payment_at=datetime(2026, 2, 1, 12)),
}
BY_REVENUE = ["cus_B", "cus_A", "cus_D", "cus_F", "cus_C"]
BY_LAST_PAYMENT = ["cus_D", "cus_A", "cus_B", "cus_C", "cus_F"]


@pytest.fixture(params=[True, False], ids=["totals-mart", "charge-mart"])
def wh(request, databases):  # noqa: ANN001, ANN201
    """With and without the customer-totals mart (and always with the customers mart)."""
    return build(databases, payments(), customers=CUSTOMERS, totals=request.param)


def page(wh, search=cq.CustomerSearch(), after=None, page_size=50, profiles=True):  # noqa: ANN001, ANN201, B008
    with wh.read() as conn:
        return cq.customers_page(conn, wh.marts, search, after, page_size,
                                 precomputed=wh.has_table(wh.marts.customer_totals, max_age=0), with_profiles=profiles)


def test_customer_totals_by_hand(wh) -> None:  # noqa: ANN001
    found = page(wh)
    assert found.total == 5 and found.next_key is None
    assert [r["customer_id"] for r in found.rows] == BY_REVENUE
    for row in found.rows:
        want = EXPECTED[row["customer_id"]]
        assert {k: row[k] for k in want} == want, row["customer_id"]
    names = {r["customer_id"]: r["name"] for r in found.rows}
    assert names["cus_A"] == "Ada Lovelace" and names["cus_D"] is None  # D has no customers-mart row


@pytest.mark.parametrize("sort, order", [("revenue", BY_REVENUE), ("last_payment", BY_LAST_PAYMENT)])
def test_seek_paging_visits_everyone_once_in_order(wh, sort: str, order: list[str]) -> None:  # noqa: ANN001
    seen, after = [], None
    for _ in range(10):
        found = page(wh, cq.CustomerSearch(sort=sort), after, page_size=2)
        assert found.total == 5 and found.pages == 1  # pages count PAGE_SIZE rows
        seen += [r["customer_id"] for r in found.rows]
        after = found.next_key
        if after is None:
            break
    assert seen == order


def test_ties_are_broken_by_customer_id(databases) -> None:  # noqa: ANN001
    rows = [charge(f"ch_{i}", "2026-02-01 12:00", "succeeded", "10.00", customer_id=f"cus_{i}") for i in range(7)]
    wh = build(databases, rows, totals=True)
    seen, after = [], None
    while True:
        found = page(wh, after=after, page_size=3, profiles=False)
        seen += [r["customer_id"] for r in found.rows]
        if found.next_key is None:
            break
        after = found.next_key
    assert seen == [f"cus_{i}" for i in reversed(range(7))]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("cus_A", ["cus_A"]),
        ("cus_D", ["cus_D"]),  # an exact id needs no customers-mart row
        ("ada", ["cus_A"]),  # name and email both match: listed once
        ("ADA LOVE", ["cus_A"]),
        ("bob+", ["cus_B"]),
        ("bob o'", ["cus_B"]),
        ("50%", ["cus_C"]),
        ("c_d%", ["cus_C"]),
        ("c%d", []),  # % is literal, not a wildcard
        ("c_x", []),
        ("_", []),
        ("%", []),
        ("/", []),  # the escape character itself
        ("\\", []),
        ("'; DROP TABLE mart_stripe_payments; --", []),
        ("eve", []),  # a customer without payments is not in the list
        ("cus_", []),  # ids match exactly, never by prefix
        ("=hyperlink", ["cus_F"]),
    ],
)
def test_search(wh, text: str, expected: list[str]) -> None:  # noqa: ANN001
    found = page(wh, cq.CustomerSearch(text))
    assert [r["customer_id"] for r in found.rows] == expected
    assert found.total == len(expected)
    assert page(wh).total == 5  # the charge mart is still there


def test_search_without_the_customers_mart_takes_exact_ids_only(databases) -> None:  # noqa: ANN001
    wh = build(databases, payments())
    assert not wh.has_table(wh.marts.customers, max_age=0)
    assert [r["customer_id"] for r in page(wh, cq.CustomerSearch("cus_B"), profiles=False).rows] == ["cus_B"]
    assert page(wh, cq.CustomerSearch("ada"), profiles=False).total == 0
    assert page(wh, profiles=False).rows[0].get("name") is None


def test_bad_search_and_sort_are_refused() -> None:
    with pytest.raises(InvalidInput, match="sort"):
        cq.CustomerSearch(sort="name; DROP")
    with pytest.raises(InvalidInput, match="longer"):
        cq.CustomerSearch("x" * 201)
    assert cq.like_prefix("a%b_c/d") == "a/%b/_c//d%"


def test_the_totals_mart_follows_the_charge_mart(databases) -> None:  # noqa: ANN001
    """rebuild_derived_marts(since=...) refreshes the touched customers; the mart equals the aggregate."""
    wh = build(databases, payments(), totals=True)
    writer = databases.track(wh.__class__(wh.url, wh.settings, read_only=False))
    from paydash.warehouse import load, transforms
    from builders import rows_to_arrow

    late = [charge("ch_a5", "2026-04-02 12:00", "succeeded", "40.00", customer_id="cus_A"),
            charge("ch_g1", "2026-04-02 13:00", "failed", "3.00", customer_id="cus_G")]
    load.load_arrow(writer, writer.marts.payments, rows_to_arrow(late))
    with writer.write() as conn:
        transforms.rebuild_derived_marts(conn, writer.marts, since=date(2026, 4, 2))
    writer.dispose()
    t, m = wh.marts.customer_totals, wh.marts.customer_months
    with wh.read() as conn:
        stored = sorted(tuple(r) for r in conn.execute(sa.select(*t.c)))
        computed = sorted(tuple(r) for r in conn.execute(customer_totals.customer_totals_select(wh.marts)))
        months = sorted(tuple(r) for r in conn.execute(sa.select(*m.c)))
        months_computed = sorted(tuple(r) for r in conn.execute(customer_totals.customer_months_select(wh.marts)))
    assert stored == computed and months == months_computed
    assert ("cus_G" not in {r[0] for r in months}) and ("cus_A", date(2026, 4, 1), date(2026, 1, 1), 1, Decimal("40.00")) in months
    a = next(r for r in stored if r[0] == "cus_A")
    assert a[5] == Decimal("90.00") and len(stored) == 6


def test_customer_detail_timeline(wh) -> None:  # noqa: ANN001
    with wh.read() as conn:
        detail = cq.customer_detail(conn, wh.marts, "cus_A", with_profile=True)
        nobody = cq.customer_detail(conn, wh.marts, "cus_nobody", with_profile=True)
        eve = cq.customer_detail(conn, wh.marts, "cus_E", with_profile=True)
        short = cq.customer_detail(conn, wh.marts, "cus_A", limit=2)
    assert nobody is None
    assert eve["totals"]["attempts"] == 0 and eve["profile"]["name"] == "Eve No Payments" and eve["timeline"] == []
    totals = detail["totals"]
    assert {k: totals[k] for k in EXPECTED["cus_A"]} == EXPECTED["cus_A"]
    assert totals["failed_amount_usd"] == Decimal("35.00") and totals["first_success_at"] == datetime(2026, 1, 10, 10, 5)
    assert detail["profile"]["email"] == "ada@example.com"
    timeline = detail["timeline"]
    assert [p["payment_intent_id"] for p in timeline] == ["pi_a3", "pi_a2", "pi_a1"]
    assert [p["outcome"] for p in timeline] == ["failed", "succeeded", "recovered"]
    assert [a["charge_id"] for a in timeline[2]["attempts"]] == ["ch_a1", "ch_a2"]
    assert timeline[2]["paid_usd"] == Decimal("20.00") and timeline[0]["paid_usd"] == Decimal("0.00")
    assert not detail["truncated"] and short["truncated"] and len(short["timeline"]) == 2


UTC_COHORTS = [
    (date(2026, 1, 1), 0, 2, 2, 1.0), (date(2026, 1, 1), 1, 1, 2, 0.5), (date(2026, 1, 1), 2, 1, 2, 0.5),
    (date(2026, 2, 1), 0, 2, 2, 1.0), (date(2026, 2, 1), 2, 1, 2, 0.5),
]
# Auckland is UTC+13 in these months: B's first success (Jan 31 23:30 UTC) is on Feb 1 there
AUCKLAND_COHORTS = [
    (date(2026, 1, 1), 0, 1, 1, 1.0), (date(2026, 1, 1), 1, 1, 1, 1.0),
    (date(2026, 2, 1), 0, 3, 3, 1.0), (date(2026, 2, 1), 1, 1, 3, 1 / 3), (date(2026, 2, 1), 2, 1, 3, 1 / 3),
]


def cohorts(wh, tz: str, mart_tz: str, since=None) -> list[tuple]:  # noqa: ANN001
    with wh.read() as conn:
        rows = cq.retention_cohorts(conn, wh.marts, tz, mart_tz, since, precomputed=wh.has_table(wh.marts.customer_months))
    return [(r["cohort_month"], r["months_since"], r["active_customers"], r["cohort_customers"], pytest.approx(r["share"]))
            for r in rows]


@pytest.mark.parametrize("totals", [True, False], ids=["totals-mart", "charge-mart"])
def test_cohorts_by_hand(databases, totals: bool) -> None:  # noqa: ANN001
    wh = build(databases, payments(), totals=totals)
    assert cohorts(wh, "UTC", "UTC") == UTC_COHORTS
    assert cohorts(wh, "UTC", "UTC", since=date(2026, 2, 14)) == UTC_COHORTS[3:]
    # another timezone than the mart's dates: converted per charge
    assert cohorts(wh, "Pacific/Auckland", "UTC") == AUCKLAND_COHORTS


def test_the_cells_of_the_current_month_are_partial(databases) -> None:  # noqa: ANN001
    wh = build(databases, payments(), totals=True)

    def partial(today):  # noqa: ANN001, ANN202
        with wh.read() as conn:
            rows = cq.retention_cohorts(conn, wh.marts, "UTC", "UTC", precomputed=True, today=today)
        return [(r["cohort_month"], r["months_since"]) for r in rows if r["partial"]]

    assert partial(date(2026, 3, 15)) == [(date(2026, 1, 1), 2)]  # January's cohort, two months on: March
    assert partial(date(2026, 2, 1)) == [(date(2026, 1, 1), 1), (date(2026, 2, 1), 0)]
    assert partial(date(2026, 4, 30)) == [(date(2026, 2, 1), 2)]
    assert partial(date(2027, 1, 1)) == partial(None) == []


@pytest.mark.parametrize("totals", [True, False], ids=["totals-mart", "charge-mart"])
def test_cohorts_from_a_mart_built_in_the_reporting_timezone(databases, totals: bool) -> None:  # noqa: ANN001
    wh = build(databases, payments(tz="Pacific/Auckland"), totals=totals)
    assert cohorts(wh, "Pacific/Auckland", "Pacific/Auckland") == AUCKLAND_COHORTS


def export(wh, stmt) -> list[dict]:  # noqa: ANN001
    buffer = io.BytesIO()
    with wh.read() as conn:
        wh.copy_csv(conn, stmt, buffer.write)
    return list(csv.DictReader(io.StringIO(buffer.getvalue().decode())))


def test_customers_export_is_the_whole_list_and_formula_safe(wh) -> None:  # noqa: ANN001
    precomputed = wh.has_table(wh.marts.customer_totals, max_age=0)
    rows = export(wh, cq.customers_export_select(wh.marts, cq.CustomerSearch(), precomputed, with_profiles=True))
    assert [r["customer_id"] for r in rows] == BY_REVENUE
    f = next(r for r in rows if r["customer_id"] == "cus_F")
    assert f["name"] == "'" + HOSTILE_NAME and f["email"] == "'-f@example.com"
    a = next(r for r in rows if r["customer_id"] == "cus_A")
    assert (a["revenue_usd"], a["payments"], a["first_payment_at"], float(a["failure_rate"])) == ("50.00", "3", "2026-01-10T10:00:00Z", 0.5)
    searched = export(wh, cq.customers_export_select(wh.marts, cq.CustomerSearch("ada", "last_payment"), precomputed, True))
    assert [r["customer_id"] for r in searched] == ["cus_A"]


def test_timeline_and_cohort_exports(databases) -> None:  # noqa: ANN001
    wh = build(databases, payments())
    rows = export(wh, cq.timeline_export_select(wh.marts, "cus_A"))
    assert [r["charge_id"] for r in rows] == ["ch_a4", "ch_a3", "ch_a2", "ch_a1"]
    assert rows[0]["created_at"] == "2026-03-15T09:00:00Z" and rows[0]["amount_usd"] == "15.00"
    grid = export(wh, cq.cohorts_export_select(wh.marts, "UTC", "UTC"))
    assert [(r["cohort_month"], r["months_since"], r["active_customers"], r["cohort_customers"]) for r in grid] == [
        (str(m), str(s), str(a), str(n)) for m, s, a, n, _ in UTC_COHORTS]
