"""The Payments explorer: AND filters, newest-first pages of 50, keyset paging, detail, options.

Most tests share one module-scoped database per engine (`explorer`), a few hundred charges
laid out to stress paging: a busy hour holding several pages (many charges at the very same
second), charges exactly on hour boundaries, and charge ids whose order differs from time
order (so the charge_id tie-break matters).
"""

from __future__ import annotations

import math
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import charge
from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters
from paydash.queries.payments import (
    LIST_COLUMNS,
    PAGE_SIZE,
    count_payments,
    filter_options,
    payment_detail,
    payments_after,
    payments_page,
)

STATUSES = ("succeeded", "failed", "succeeded", "pending", "succeeded", "failed", "succeeded")
FUNNELS = ("main_funnel", "mobile_app", "paid_social")
BRANDS = ("visa", "mastercard", "amex", "visa", None)
N = 300


def explorer_rows() -> list[dict]:
    """N charges; ids are a permutation of time order, hex so every collation sorts them alike."""
    times: list[datetime] = []
    busy = datetime(2024, 3, 4, 10, 0, 0)
    times += [busy + timedelta(seconds=17 * (i // 4)) for i in range(130)]  # 4 charges per second stamp
    times += [datetime(2024, 3, 4, 9, 0, 0), datetime(2024, 3, 4, 11, 0, 0), datetime(2024, 3, 4, 9, 59, 59, 999999)]
    start = datetime(2024, 3, 1, 0, 0)
    while len(times) < N:
        times.append(start + timedelta(minutes=37 * len(times)))
    rows = []
    for k, created in enumerate(times):
        n = (k * 7919) % 4093
        status = STATUSES[k % len(STATUSES)]
        rows.append(
            charge(
                f"ch_{n:05x}",
                created,
                status,
                f"{(k * 13) % 300 + 0.5:.2f}",
                payment_intent_id=f"pi_{k // 3:05x}",
                customer_id=f"cus_{k % 11:03d}",
                profile_id=f"prof_{k % 7:03d}",
                funnel_name=FUNNELS[k % 3],
                card_brand=BRANDS[k % 5],
                failure_code="insufficient_funds" if k % 2 else "do_not_honor",
            )
        )
    return rows


ROWS = explorer_rows()


@pytest.fixture(scope="module")
def explorer(module_databases):
    return module_databases.build(ROWS)


def _utc(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz)).astimezone(timezone.utc).replace(tzinfo=None)


def expected(filters: PaymentFilters) -> list[str]:
    """Charge ids matching `filters`, newest first, computed in Python from ROWS."""
    f = filters.normalized()
    out = []
    for r in ROWS:
        if f.status and r["status"] != f.status:
            continue
        if f.funnel and r["funnel_name"] != f.funnel:
            continue
        if f.card_brand and r["card_brand"] != f.card_brand:
            continue
        if f.date_range is not None:
            lo = _utc(f.date_range.start, f.date_range.tz)
            hi = _utc(f.date_range.end + timedelta(days=1), f.date_range.tz)
            if not lo <= r["created_at"] < hi:
                continue
        if f.search and f.search not in (r["charge_id"], r["payment_intent_id"], r["customer_id"], r["profile_id"]):
            continue
        out.append(r)
    out.sort(key=lambda r: (r["created_at"], r["charge_id"]), reverse=True)
    return [r["charge_id"] for r in out]


def all_pages(conn, marts, filters: PaymentFilters, page_size: int = PAGE_SIZE, mart_tz: str | None = None) -> tuple[list[str], list]:
    first = payments_page(conn, marts, filters, 1, page_size, mart_tz=mart_tz)
    pages = [first]
    for number in range(2, first.pages + 1):
        pages.append(payments_page(conn, marts, filters, number, page_size, mart_tz=mart_tz))
    return [r["charge_id"] for p in pages for r in p.rows], pages


def test_the_dataset_stresses_paging() -> None:
    ids = [r["charge_id"] for r in ROWS]
    assert len(set(ids)) == N
    busy = [r for r in ROWS if r["created_at"].replace(minute=0, second=0, microsecond=0) == datetime(2024, 3, 4, 10)]
    assert len(busy) > 2 * PAGE_SIZE
    assert ids != sorted(ids) and ids != sorted(ids, reverse=True)


FILTER_CASES = {
    "none": PaymentFilters(),
    "status": PaymentFilters(status="failed"),
    "pending": PaymentFilters(status="pending"),
    "funnel": PaymentFilters(funnel="mobile_app"),
    "brand": PaymentFilters(card_brand="visa"),
    "day": PaymentFilters(date_range=DateRange(date(2024, 3, 4), date(2024, 3, 4))),
    "berlin-day": PaymentFilters(date_range=DateRange(date(2024, 3, 4), date(2024, 3, 4), "Europe/Berlin")),
    "all-and": PaymentFilters(status="succeeded", funnel="main_funnel", card_brand="visa",
                              date_range=DateRange(date(2024, 3, 1), date(2024, 3, 4))),
    "customer": PaymentFilters(search="cus_004"),
    "profile": PaymentFilters(search="prof_003"),
    "intent": PaymentFilters(search="pi_00010"),
    "charge": PaymentFilters(search=ROWS[5]["charge_id"]),
    "search-and-status": PaymentFilters(search="cus_004", status="failed"),
    "padded-search": PaymentFilters(search="  cus_004 "),
    "nothing": PaymentFilters(funnel="no_such_funnel"),
    "blank-strings": PaymentFilters(funnel="  ", card_brand="", search=" "),
}


# mart_tz=None counts in the charge mart; "UTC" (the daily mart's days) lets counts come from the daily mart
MART_TZ = pytest.mark.parametrize("mart_tz", [None, "UTC"], ids=["charge-mart-counts", "daily-mart-counts"])


@MART_TZ
@pytest.mark.parametrize("filters", FILTER_CASES.values(), ids=FILTER_CASES.keys())
def test_pages_partition_the_filtered_result_newest_first(explorer, filters, mart_tz) -> None:
    want = expected(filters)
    with explorer.read() as conn:
        got, pages = all_pages(conn, explorer.marts, filters, mart_tz=mart_tz)
        total = count_payments(conn, explorer.marts, filters, mart_tz=mart_tz)
    assert got == want
    assert total == len(want) == pages[0].total
    assert pages[0].pages == max(1, math.ceil(len(want) / PAGE_SIZE))
    assert all(len(p.rows) == PAGE_SIZE for p in pages[:-1])
    assert all(p.total == total and p.pages == pages[0].pages for p in pages)


def test_filters_really_filter(explorer) -> None:
    # guard against a test dataset where a filter matches everything or nothing
    sizes = {name: len(expected(f)) for name, f in FILTER_CASES.items()}
    assert sizes["none"] == N and sizes["nothing"] == 0 and sizes["blank-strings"] == N
    for name in ("status", "pending", "funnel", "brand", "day", "all-and", "customer", "search-and-status"):
        assert 0 < sizes[name] < N, name
    assert sizes["all-and"] < min(sizes["status"], sizes["funnel"], sizes["brand"])
    assert sizes["charge"] == 1 and sizes["intent"] == 3
    assert sizes["day"] != sizes["berlin-day"]


def test_page_rows_carry_the_list_columns(explorer) -> None:
    with explorer.read() as conn:
        page = payments_page(conn, explorer.marts, PaymentFilters(), 1)
    assert list(page.rows[0]) == list(LIST_COLUMNS)
    newest = max(ROWS, key=lambda r: (r["created_at"], r["charge_id"]))
    assert page.rows[0]["charge_id"] == newest["charge_id"]
    assert page.rows[0]["created_at"] == newest["created_at"]
    assert page.rows[0]["amount_usd"] == newest["amount_usd"]
    assert page.as_dict()["page_size"] == PAGE_SIZE


def test_page_past_the_end_is_empty_and_page_zero_is_refused(explorer) -> None:
    with explorer.read() as conn:
        past = payments_page(conn, explorer.marts, PaymentFilters(), 99)
        empty = payments_page(conn, explorer.marts, PaymentFilters(funnel="no_such_funnel"), 1)
        with pytest.raises(InvalidInput):
            payments_page(conn, explorer.marts, PaymentFilters(), 0)
    assert (past.total, past.pages, past.rows) == (N, math.ceil(N / PAGE_SIZE), [])
    assert (empty.total, empty.pages, empty.rows) == (0, 1, [])


@MART_TZ
@pytest.mark.parametrize("page_size", [1, 4, 7, 50])
def test_small_pages_inside_the_busy_hour(explorer, page_size, mart_tz) -> None:
    # Inside one hour with many charges at one second, every page size must still partition.
    filters = PaymentFilters(date_range=DateRange(date(2024, 3, 4), date(2024, 3, 4)))
    want = expected(filters)
    with explorer.read() as conn:
        got, _ = all_pages(conn, explorer.marts, filters, page_size, mart_tz)
    assert got == want


@pytest.mark.parametrize("filters", [PaymentFilters(), PaymentFilters(status="failed", funnel="main_funnel")], ids=["all", "filtered"])
def test_keyset_paging_walks_the_same_order(explorer, filters) -> None:
    want = expected(filters)
    got: list[str] = []
    after = None
    with explorer.read() as conn:
        for _ in range(N):  # bounded, in case paging never ends
            rows = payments_after(conn, explorer.marts, filters, after)
            if not rows:
                break
            assert len(rows) <= PAGE_SIZE
            got += [r["charge_id"] for r in rows]
            after = (rows[-1]["created_at"], rows[-1]["charge_id"])
    assert got == want


# -- property tests ----------------------------------------------------------------------
DAYS = [date(2024, 3, d) for d in range(1, 10)]


@st.composite
def explorer_filters(draw):
    status = draw(st.sampled_from([None, "succeeded", "failed", "pending"]))
    funnel = draw(st.sampled_from([None, *FUNNELS, "nope"]))
    brand = draw(st.sampled_from([None, "visa", "mastercard", "amex"]))
    rng = None
    if draw(st.booleans()):
        start = draw(st.sampled_from(DAYS))
        end = draw(st.sampled_from([d for d in DAYS if d >= start]))
        rng = DateRange(start, end, draw(st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"])))
    search = draw(st.one_of(st.none(), st.sampled_from(
        [r[c] for r in ROWS[::17] for c in ("charge_id", "payment_intent_id", "customer_id", "profile_id")])))
    return PaymentFilters(status=status, date_range=rng, funnel=funnel, card_brand=brand, search=search)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(filters=explorer_filters(), page_size=st.sampled_from([9, 50]), mart_tz=st.sampled_from([None, "UTC"]))
def test_property_pages_partition_and_counts_agree(explorer, filters, page_size, mart_tz) -> None:
    want = expected(filters)
    with explorer.read() as conn:
        got, pages = all_pages(conn, explorer.marts, filters, page_size, mart_tz)
        total = count_payments(conn, explorer.marts, filters, mart_tz=mart_tz)
    assert len(got) == len(set(got))  # no duplicates
    assert got == want  # no gaps, newest first
    assert total == pages[0].total == len(got)
    assert pages[0].pages == max(1, math.ceil(total / page_size))


# -- detail ------------------------------------------------------------------------------
def test_payment_detail_with_retry_history(make_warehouse) -> None:
    wh = make_warehouse([
        # inserted out of order on purpose
        charge("ch_r3", "2024-03-05 09:00", "succeeded", "42.00", payment_intent_id="pi_r", attempt_number=3,
               customer_id="cus_r", card_brand="amex", card_country="GB", currency="gbp"),
        charge("ch_r1", "2024-03-04 09:00", "failed", "42.00", payment_intent_id="pi_r", attempt_number=1,
               failure_code="insufficient_funds", customer_id="cus_r"),
        charge("ch_r2", "2024-03-04 21:00", "failed", "42.00", payment_intent_id="pi_r", attempt_number=2,
               failure_code="expired_card", customer_id="cus_r"),
        charge("ch_other", "2024-03-04 10:00", payment_intent_id="pi_other"),
    ])
    with wh.read() as conn:
        detail = payment_detail(conn, wh.marts, "ch_r1")
        last = payment_detail(conn, wh.marts, "ch_r3")
        missing = payment_detail(conn, wh.marts, "ch_nope")
    assert missing is None
    assert detail["charge_id"] == "ch_r1" and detail["status"] == "failed"
    assert detail["failure_category"] == "insufficient_funds" and detail["recovery_action"] == "retry_eligible"
    history = detail["retry_history"]
    assert [h["charge_id"] for h in history] == ["ch_r1", "ch_r2", "ch_r3"]
    assert [h["status"] for h in history] == ["failed", "failed", "succeeded"]
    assert [h["failure_category"] for h in history] == ["insufficient_funds", "expired_card", None]
    assert history[0]["created_at"] == datetime(2024, 3, 4, 9, 0)
    assert detail["payment_outcome"] == "recovered"
    assert last["retry_history"] == history
    assert (last["customer_id"], last["card_brand"], last["card_country"], last["currency"]) == ("cus_r", "amex", "GB", "gbp")


@pytest.mark.parametrize(
    "statuses, outcome",
    [(["succeeded"], "succeeded"), (["failed"], "failed"), (["failed", "failed"], "failed"),
     (["failed", "pending"], "pending"), (["pending"], "pending"), (["failed", "succeeded"], "recovered")],
)
def test_payment_outcome(make_warehouse, statuses, outcome) -> None:
    rows = [
        charge(f"ch_{i}", datetime(2024, 3, 4, 9) + timedelta(hours=i), s, payment_intent_id="pi_1", attempt_number=i + 1)
        for i, s in enumerate(statuses)
    ]
    wh = make_warehouse(rows)
    with wh.read() as conn:
        assert payment_detail(conn, wh.marts, "ch_0")["payment_outcome"] == outcome


def test_detail_of_a_charge_without_payment_intent(make_warehouse) -> None:
    wh = make_warehouse([charge("ch_lone", "2024-03-04 09:00", payment_intent_id=None) | {"payment_intent_id": None}])
    with wh.read() as conn:
        detail = payment_detail(conn, wh.marts, "ch_lone")
    assert [h["charge_id"] for h in detail["retry_history"]] == ["ch_lone"]


def test_filter_options(explorer) -> None:
    with explorer.read() as conn:
        options = filter_options(conn, explorer.marts)
    assert options == {
        "status": ["failed", "pending", "succeeded"],
        "funnel": sorted(FUNNELS),
        "card_brand": ["amex", "mastercard", "visa"],  # no null
        "failure_category": list(FAILURE_CATEGORIES),
        "failure_code": ["do_not_honor", "insufficient_funds"],
        "currency": ["usd"],
        "card_country": ["US"],
    }
