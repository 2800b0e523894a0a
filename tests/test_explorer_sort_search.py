"""The explorer's sorting, new filters and Stripe-like search, on both engines.

One module-scoped database per engine holds charges laid out to stress every paging path:
popular amounts shared by many charges (so a page starts deep inside one amount), unknown
amounts (last in either direction), many charges at the same second, ids whose order is
not time order. The paths for deep pages (day/hour seek, amount seek, the far end read
backwards) only run past DIRECT_OFFSET rows, so tests lower it to reach them with a few
hundred rows. Expected results are computed in Python from the rows.
"""

from __future__ import annotations

import io
import math
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import charge
from paydash.errors import InvalidInput
from paydash.queries import payments as payments_module
from paydash.queries.dates import DateRange
from paydash.queries.filters import PaymentFilters, PaymentSort, search_columns
from paydash.queries.payments import SearchScope, count_payments, export_select, payments_page
from paydash.queries.search import MIN_FRAGMENT, parse_search
from paydash.warehouse import transforms
from paydash.warehouse.id_sketch import id_sketches

N = 260
AMOUNTS = ("49.00", "9.99", "49.00", "299.00", "49.00", "19.99", "0.50", "49.00", "120.25")
CARDS = (("usd", "US"), ("eur", "DE"), ("gbp", "GB"), ("usd", "US"), ("jpy", "JP"))
CODES = ("insufficient_funds", "do_not_honor", "expired_card", "fraudulent")
STATUSES = ("succeeded", "failed", "succeeded", "pending", "failed")


def rows() -> list[dict]:
    out = []
    start = datetime(2024, 3, 1)
    for k in range(N):
        created = start + timedelta(minutes=41 * k) if k % 5 else datetime(2024, 3, 3, 12, 0, 0)  # a busy second
        n = (k * 7919) % 4093
        currency, country = CARDS[(k // 2) % len(CARDS)]
        amount = AMOUNTS[k % len(AMOUNTS)]
        row = charge(
            f"ch_{n:04x}Xy{k:03d}",
            created,
            STATUSES[k % len(STATUSES)],
            amount,
            payment_intent_id=f"pi_{k // 2:04x}Pq",
            customer_id=f"cus_{k % 13:03d}Zz",
            profile_id=f"prof_{k % 9}" if k % 17 else "o'brien%_\\",
            currency=currency,
            card_country=country,
            failure_code=CODES[k % len(CODES)],
            card_last4=f"{(k * 37) % 10:04d}",
        )
        if k % 31 == 0:
            row["amount_usd"] = None  # no USD rate known
        out.append(row)
    return out


ROWS = rows()


@pytest.fixture(scope="module")
def explorer(module_databases):
    return module_databases.build(ROWS)


SCOPE = SearchScope(card_last4=True)


# -- the reference: what the explorer must return, computed in Python ------------------------
def _text_matches(row: dict, text: str) -> bool:
    """An id equal to the text, if any row has one; else from 4 characters any id containing it, any case."""
    cols = search_columns(text)
    exact = [c for c in cols if any(r[c] == text for r in ROWS)]
    if exact or len(text) < MIN_FRAGMENT:
        return any(row[c] == text for c in exact)
    return any(row[c] is not None and text.lower() in row[c].lower() for c in cols)


def _term_matches(row: dict, term) -> bool:  # noqa: ANN001
    if term.field == "email":
        raise InvalidInput("this database has no customers mart (SCOPE)")
    if term.field == "amount":
        if row["amount_usd"] is None:
            return False
        a, v = row["amount_usd"], Decimal(term.value)
        return {"=": a == v, ">": a > v, ">=": a >= v, "<": a < v, "<=": a <= v}[term.op]
    column = {"last4": "card_last4", "currency": "currency", "country": "card_country", "code": "failure_code",
              "category": "failure_category", "status": "status"}[term.field]
    return row[column] == term.value


def expected(filters: PaymentFilters, sort: PaymentSort = PaymentSort()) -> list[str]:
    f = filters.normalized()
    search = parse_search(f.search)
    if any(t.field == "email" for t in search.fields()):  # refused whether or not a row gets that far
        raise InvalidInput("this database has no customers mart (SCOPE)")
    out = []
    for r in ROWS:
        checks = [
            (f.status, r["status"]), (f.funnel, r["funnel_name"]), (f.card_brand, r["card_brand"]),
            (f.failure_category, r["failure_category"]), (f.failure_code, r["failure_code"]),
            (f.currency, r["currency"]), (f.card_country, r["card_country"]),
        ]
        if any(want is not None and have != want for want, have in checks):
            continue
        if f.min_amount is not None and (r["amount_usd"] is None or r["amount_usd"] < f.min_amount):
            continue
        if f.max_amount is not None and (r["amount_usd"] is None or r["amount_usd"] > f.max_amount):
            continue
        if f.date_range is not None:
            lo, hi = f.date_range.utc_bounds()
            if not lo <= r["created_at"] < hi:
                continue
        if search.text is not None and not _text_matches(r, search.text):
            continue
        if not all([_term_matches(r, t) for t in search.fields()]):  # every term checked: email raises
            continue
        out.append(r)
    out.sort(key=lambda r: (r["created_at"], r["charge_id"]), reverse=not sort.ascending)
    if sort.key == "amount":
        known = [r for r in out if r["amount_usd"] is not None]
        known.sort(key=lambda r: r["amount_usd"], reverse=not sort.ascending)  # stable: time order within
        out = known + [r for r in out if r["amount_usd"] is None]
    return [r["charge_id"] for r in out]


def all_pages(conn, marts, filters, sort, page_size, mart_tz=None):  # noqa: ANN001, ANN201
    first = payments_page(conn, marts, filters, 1, page_size, mart_tz=mart_tz, sort=sort, scope=SCOPE)
    pages = [first] + [payments_page(conn, marts, filters, p, page_size, mart_tz=mart_tz, sort=sort, scope=SCOPE)
                       for p in range(2, first.pages + 1)]
    return [r["charge_id"] for p in pages for r in p.rows], pages


SORTS = {"newest": PaymentSort(), "oldest": PaymentSort("created", True),
         "largest": PaymentSort("amount"), "smallest": PaymentSort("amount", True)}
FILTERS = {
    "none": PaymentFilters(),
    "failed": PaymentFilters(status="failed"),
    "category": PaymentFilters(failure_category="insufficient_funds"),
    "category-daily": PaymentFilters(failure_category="card_declined", status="failed"),
    "code": PaymentFilters(failure_code="expired_card"),
    "currency": PaymentFilters(currency="EUR"),
    "country": PaymentFilters(card_country="jp"),
    "amount-range": PaymentFilters(min_amount=Decimal("9.99"), max_amount=Decimal("49")),
    "all-and": PaymentFilters(status="failed", currency="usd", min_amount=Decimal("10"),
                              date_range=DateRange(date(2024, 3, 1), date(2024, 3, 6))),
    "fragment": PaymentFilters(search="xY1"),  # short: exact only, matches nothing
    "fragment-4": PaymentFilters(search="XY12"),
    "fields": PaymentFilters(search="amount:>=49 currency:USD status:failed"),
}
# deep-page paths: 2000 = the real threshold (direct reads only), 0 = every page seeks, 3 = both
DIRECT = pytest.mark.parametrize("direct", [2000, 0, 3], ids=["direct", "seek", "mixed"])


def test_the_dataset_stresses_sorting() -> None:
    amounts = [r["amount_usd"] for r in ROWS]
    assert amounts.count(Decimal("49.00")) > 60 and amounts.count(None) > 5
    for name in ("failed", "category", "code", "currency", "country", "amount-range", "all-and", "fragment-4", "fields"):
        assert 0 < len(expected(FILTERS[name])) < N, name
    assert expected(FILTERS["fragment"]) == []


@DIRECT
@pytest.mark.parametrize("sort", SORTS.values(), ids=SORTS.keys())
@pytest.mark.parametrize("filters", FILTERS.values(), ids=FILTERS.keys())
def test_pages_partition_in_order(explorer, monkeypatch, filters, sort, direct) -> None:
    monkeypatch.setattr(payments_module, "DIRECT_OFFSET", direct)
    want = expected(filters, sort)
    with explorer.read() as conn:
        got, pages = all_pages(conn, explorer.marts, filters, sort, 23, mart_tz="UTC")
        total = count_payments(conn, explorer.marts, filters, mart_tz="UTC", scope=SCOPE)
    assert got == want  # every row exactly once, in order
    assert total == len(want) == pages[0].total
    assert pages[0].pages == max(1, math.ceil(len(want) / 23))
    assert all(len(p.rows) == 23 for p in pages[:-1])


@pytest.mark.parametrize("page", [1, 2, 5, 11, 12, 13])
@pytest.mark.parametrize("sort", SORTS.values(), ids=SORTS.keys())
def test_jumping_to_any_page(explorer, monkeypatch, sort, page) -> None:
    # the last page (12 of 260 / 23) and one past it, straight away, through each path
    monkeypatch.setattr(payments_module, "DIRECT_OFFSET", 1)
    want = expected(PaymentFilters(), sort)
    with explorer.read() as conn:
        got = payments_page(conn, explorer.marts, PaymentFilters(), page, 23, sort=sort)
    assert [r["charge_id"] for r in got.rows] == want[(page - 1) * 23: page * 23]
    assert (got.total, got.pages) == (N, 12)


@st.composite
def explorer_filters(draw):
    return PaymentFilters(
        status=draw(st.sampled_from([None, *set(STATUSES)])),
        failure_category=draw(st.sampled_from([None, "insufficient_funds", "card_declined", "expired_card"])),
        failure_code=draw(st.sampled_from([None, *CODES])),
        currency=draw(st.sampled_from([None, "usd", "EUR", "jpy"])),
        card_country=draw(st.sampled_from([None, "US", "de", "GB"])),
        min_amount=draw(st.sampled_from([None, Decimal("0"), Decimal("19.99"), Decimal("49")])),
        max_amount=draw(st.sampled_from([None, Decimal("49"), Decimal("1000")])),
        date_range=draw(st.sampled_from([None, DateRange(date(2024, 3, 2), date(2024, 3, 5), "Europe/Berlin")])),
        search=draw(st.sampled_from([None, "last4:0007", "amount:<20", "XY1", "pq", "cus_003zz", "country:us code:fraudulent"])),
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(filters=explorer_filters(), sort=st.sampled_from(list(SORTS.values())), page_size=st.sampled_from([7, 50]),
       direct=st.sampled_from([0, 5, 2000]), mart_tz=st.sampled_from([None, "UTC"]))
def test_property_counts_agree_with_rows_under_every_filter_and_sort(explorer, monkeypatch, filters, sort, page_size,
                                                                     direct, mart_tz) -> None:
    monkeypatch.setattr(payments_module, "DIRECT_OFFSET", direct)
    want = expected(filters, sort)
    with explorer.read() as conn:
        got, pages = all_pages(conn, explorer.marts, filters, sort, page_size, mart_tz)
        total = count_payments(conn, explorer.marts, filters, mart_tz=mart_tz, scope=SCOPE)
    assert got == want
    assert total == pages[0].total == len(got)


# -- search semantics against the database ----------------------------------------------------
SEARCHES = {
    "exact-charge": (ROWS[4]["charge_id"], [ROWS[4]["charge_id"]]),
    "upper-case-id": (ROWS[4]["charge_id"].upper(), [ROWS[4]["charge_id"]]),
    "id-tail": (ROWS[4]["charge_id"][-5:], None),
    "intent-fragment": ("0aPQ", None),
    "customer-fragment": ("007ZZ", None),
    "profile-literal": ("o'brien%_\\", None),
    "percent-is-literal": ("%_%_", []),
    "last4": ("last4:0007", None),
    "amount-gt": ("amount:>100", None),
    "amount-eq": ("amount:49", None),
    "currency-country": ("currency:EUR country:de", None),
    "code-category": ("code:fraudulent category:fraud_block", None),
    "text-and-field": ("cus_003ZZ status:failed", None),
}


@pytest.mark.parametrize("text, want", SEARCHES.values(), ids=SEARCHES.keys())
def test_search_semantics(explorer, text, want) -> None:
    filters = PaymentFilters(search=text)
    reference = expected(filters)
    if want is not None:
        assert reference == want
    else:
        assert reference, "the case should find something"
    with explorer.read() as conn:
        got, _ = all_pages(conn, explorer.marts, filters, PaymentSort(), 50)
        total = count_payments(conn, explorer.marts, filters, scope=SCOPE)
    assert got == reference and total == len(reference)


def test_last4_without_the_column_says_why(explorer) -> None:
    with explorer.read() as conn, pytest.raises(InvalidInput, match="card_last4"):
        payments_page(conn, explorer.marts, PaymentFilters(search="last4:4242"), scope=SearchScope())


def test_email_without_customers_mart_says_why(explorer) -> None:
    with explorer.read() as conn, pytest.raises(InvalidInput, match="customers mart"):
        payments_page(conn, explorer.marts, PaymentFilters(search="email:jenny"), scope=SCOPE)


def test_dbt_mart_without_card_last4_still_works(databases) -> None:
    """A charge mart made by someone else's DDL, without the optional column: pages, search,
    detail and export work; `last4:` says why it cannot search."""
    db = databases.new()
    names = ", ".join(f"{n} {t}" for n, t in (
        ("charge_id", "text"), ("payment_intent_id", "text"), ("customer_id", "text"), ("profile_id", "text"),
        ("status", "text"), ("is_successful", "boolean"), ("amount_usd", "numeric(12,2)"), ("currency", "text"),
        ("failure_code", "text"), ("failure_category", "text"), ("recovery_action", "text"), ("attempt_number", "integer"),
        ("created_at", "timestamp"), ("created_date", "date"), ("hour_of_day", "integer"), ("day_of_week", "text"),
        ("funnel_name", "text"), ("card_brand", "text"), ("card_country", "text")))
    payments_table = db.qualified("mart_stripe_payments")
    db.execute(f"CREATE TABLE {payments_table} ({names})",
               f"INSERT INTO {payments_table} VALUES ('ch_dbtAbCd1', 'pi_1', 'cus_1', NULL, 'failed', false, 12.50, 'usd', "
               "'expired_card', 'expired_card', 'request_new_card', 1, '2024-03-04 10:00:00', '2024-03-04', 10, 'Monday', "
               "'main_funnel', 'visa', 'US')")
    wh = databases.track(db.warehouse())
    assert not wh.has_column(wh.marts.payments, "card_last4")
    scope = SearchScope(card_last4=wh.has_column(wh.marts.payments, "card_last4"))
    with wh.read() as conn:
        assert [r["charge_id"] for r in payments_page(conn, wh.marts, PaymentFilters(search="ABCD1"), scope=scope).rows] == ["ch_dbtAbCd1"]
        assert payments_page(conn, wh.marts, PaymentFilters(), sort=PaymentSort("amount"), scope=scope).total == 1
        detail = payments_module.payment_detail(conn, wh.marts, "ch_dbtAbCd1")
        assert detail["amount_usd"] == Decimal("12.50") and "card_last4" not in detail
        out = io.BytesIO()
        wh.copy_csv(conn, export_select(wh.marts, PaymentFilters(search="code:expired_card"), scope=scope), out.write)
        assert out.getvalue().decode().count("ch_dbtAbCd1") == 1
        with pytest.raises(InvalidInput, match="no card_last4 column"):
            payments_page(conn, wh.marts, PaymentFilters(search="last4:4242"), scope=scope)


# -- hostile text through the whole search, on both engines -----------------------------------
@pytest.fixture(scope="module")
def canary(module_databases):
    """A writable warehouse over the same rows with a table `x` that injected SQL would drop."""
    read_only = module_databases.build(ROWS)
    wh = module_databases.track(type(read_only)(read_only.url, read_only.settings, read_only=False))
    with wh.write() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS x (id integer)"))
        conn.execute(sa.text("TRUNCATE TABLE x"))  # (ClickHouse refuses a DELETE without WHERE)
        conn.execute(sa.text("INSERT INTO x VALUES (1)"))
    return wh


HOSTILE = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30),
    st.builds(lambda field, value: f"{field}:{value}",
              st.sampled_from(["amount", "currency", "country", "code", "category", "status", "last4", "email", "nope"]),
              st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)),
    st.sampled_from(["%", "_%_", "\\", "\\%", "' OR '1'='1", "amount:>'1'", 'code:"a b', "XY1%", "pq_", "o'brien%_\\"]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=HOSTILE)
def test_property_hostile_search_text_is_literal(canary, text) -> None:
    filters = PaymentFilters(search=text)
    try:
        want = expected(filters)
    except InvalidInput:
        with canary.read() as conn, pytest.raises(InvalidInput):
            payments_page(conn, canary.marts, filters, scope=SCOPE)
        return
    with canary.write() as conn:
        page = payments_page(conn, canary.marts, filters, 1, 500, scope=SCOPE)
        out = io.BytesIO()
        canary.copy_csv(conn, export_select(canary.marts, payments_module.resolve_search(conn, canary.marts, filters, SCOPE),
                                            scope=SCOPE), out.write)
    assert [r["charge_id"] for r in page.rows] == want and page.total == len(want)
    assert len(out.getvalue().decode().splitlines()) == 1 + len(want)
    with canary.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x")).scalar_one() == 1


# -- id sketches: the same answers, fewer rows compared (paydash/warehouse/id_sketch.py) ------
SKETCHED = SearchScope(card_last4=True, id_sketches=True)


@pytest.fixture(scope="module")
def sketched(module_databases):
    """The rows with their id sketches, except every third row (written by something that does
    not fill them: NULL sketches, whose text must still be compared)."""
    return module_databases.build([{**r, **id_sketches(r)} if k % 3 else r for k, r in enumerate(ROWS)])


SKETCH_SEARCHES = ["XY12", "0aPQ", "007ZZ", ROWS[4]["charge_id"][-5:].swapcase(), ROWS[3]["charge_id"][-6:].upper(),
                   "o'brien%_\\", "%_%_", "zzzz", "ch_0", "prof_", "PQ status:failed", "xy1 amount:>100"]


@pytest.mark.parametrize("text", SKETCH_SEARCHES)
@pytest.mark.parametrize("sort", [PaymentSort(), PaymentSort("amount", True)], ids=["newest", "smallest"])
def test_id_sketches_find_what_the_text_finds(sketched, text, sort) -> None:
    filters = PaymentFilters(search=text)
    want = expected(filters, sort)
    with sketched.read() as conn:
        got, pages = all_pages(conn, sketched.marts, filters, sort, 7)
        sketched_pages = [payments_page(conn, sketched.marts, filters, p, 7, sort=sort, scope=SKETCHED)
                          for p in range(1, pages[0].pages + 1)]
        total = count_payments(conn, sketched.marts, filters, scope=SKETCHED)
    assert got == want
    assert [r["charge_id"] for p in sketched_pages for r in p.rows] == want
    assert sketched_pages[0].total == total == len(want)


def test_a_search_tests_the_sketch_before_the_text(module_databases) -> None:
    """A row whose sketch lacks the text's bits is not compared: the sketch is really used (and
    only where the scope says so)."""
    right = charge("ch_1TailQz", datetime(2024, 3, 1, 10), payment_intent_id="pi_1", customer_id="cus_1", profile_id="p1")
    wrong = charge("ch_2TailQz", datetime(2024, 3, 1, 11), payment_intent_id="pi_2", customer_id="cus_2", profile_id="p2")
    wh = module_databases.build([{**right, **id_sketches(right)}, {**wrong, **id_sketches(wrong), "charge_id_sketch": 0}])
    filters = PaymentFilters(search="tailqz")
    with wh.read() as conn:
        assert [r["charge_id"] for r in payments_page(conn, wh.marts, filters, scope=SKETCHED).rows] == ["ch_1TailQz"]
        assert [r["charge_id"] for r in payments_page(conn, wh.marts, filters, scope=SCOPE).rows] == ["ch_2TailQz", "ch_1TailQz"]


# -- the amount order counted from the amount-counts mart --------------------------------------
COUNTED = SearchScope(card_last4=True, amount_counts=True)


@pytest.fixture(scope="module")
def counted(module_databases):
    """The same rows with the amount-counts mart paydash builds beside the daily mart."""
    read_only = module_databases.build(ROWS)
    wh = module_databases.track(type(read_only)(read_only.url, read_only.settings, read_only=False))
    with wh.write() as conn:
        transforms.create_amount_counts(conn, wh.marts)
    return wh


MART_FILTERS = {
    "none": PaymentFilters(),
    "failed": PaymentFilters(status="failed"),
    "amount-range": FILTERS["amount-range"],
    "succeeded-days": PaymentFilters(status="succeeded", funnel="main_funnel",
                                     date_range=DateRange(date(2024, 3, 2), date(2024, 3, 8), "UTC")),
}


@DIRECT
@pytest.mark.parametrize("sort", [SORTS["largest"], SORTS["smallest"]], ids=["largest", "smallest"])
@pytest.mark.parametrize("filters", MART_FILTERS.values(), ids=MART_FILTERS.keys())
def test_amount_order_counted_from_the_amount_mart(counted, monkeypatch, filters, sort, direct) -> None:
    monkeypatch.setattr(payments_module, "DIRECT_OFFSET", direct)
    want = expected(filters, sort)
    with counted.read() as conn:
        assert payments_module._amount_mart_where(filters, counted.marts, "UTC", COUNTED) is not None
        first = payments_page(conn, counted.marts, filters, 1, 23, mart_tz="UTC", sort=sort, scope=COUNTED)
        pages = [first] + [payments_page(conn, counted.marts, filters, p, 23, mart_tz="UTC", sort=sort, scope=COUNTED)
                           for p in range(2, first.pages + 2)]  # and one past the last
    assert [r["charge_id"] for p in pages for r in p.rows] == want
    assert first.total == len(want) and pages[-1].rows == []


def test_the_amount_mart_answers_only_what_it_knows(counted) -> None:
    where = payments_module._amount_mart_where
    assert where(PaymentFilters(currency="usd"), counted.marts, "UTC", COUNTED) is None
    assert where(PaymentFilters(status="failed"), counted.marts, None, COUNTED) is None  # no timezone for its days
    assert where(PaymentFilters(status="failed"), counted.marts, "UTC", SCOPE) is None  # the warehouse lacks it
    berlin = PaymentFilters(date_range=DateRange(date(2024, 3, 2), date(2024, 3, 5), "Europe/Berlin"))
    assert where(berlin, counted.marts, "UTC", COUNTED) is None
    # and a stale mart shows: the counts come from it
    with counted.write() as conn:
        conn.execute(counted.marts.amount_counts.delete().where(counted.marts.amount_counts.c.status == "pending"))
        try:
            page = payments_page(conn, counted.marts, PaymentFilters(status="pending"), 1, 23, mart_tz="UTC",
                                 sort=SORTS["largest"], scope=COUNTED)
            assert page.total == 0
        finally:
            transforms.rebuild_amount_counts(conn, counted.marts)
