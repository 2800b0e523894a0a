"""Explorer filters: pure translation to SQL, URL/CLI parameters, and search text safety.

The pure half (no database) is a table of inputs and the SQL they must produce. The
property half throws any text at the search box on both engines, through a writable
connection on purpose: if a text ever reached the SQL unbound, the canary table would go.
"""

from __future__ import annotations

import io
import re
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from builders import charge
from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange, today_in
from paydash.queries.filters import (
    EARLIEST,
    MAX_SEARCH_LENGTH,
    SEARCH_COLUMNS,
    PaymentFilters,
    conditions,
    PaymentSort,
    filters_from_params,
    filters_to_params,
    search_columns,
    sort_from_params,
    sort_to_params,
)
from paydash.queries.payments import count_payments, export_select, payments_page
from paydash.queries.search import MIN_FRAGMENT, Term, like_escape, parse_search
from paydash.warehouse.schema import marts

T = marts().payments
# the default dialect spells ILIKE as lower() LIKE lower()
_LIKE = "lower(mart_stripe_payments.{0}) LIKE lower(:{0}_1) ESCAPE '\\'"


def sql_of(filters: PaymentFilters) -> tuple[list[str], dict]:
    out, params = [], {}
    for cond in conditions(filters, T):
        compiled = cond.compile()  # the default dialect: engine-neutral SQL text
        out.append(compiled.string)
        params.update(compiled.params)
    return out, params


@pytest.mark.parametrize(
    "filters, sql, params",
    [
        (PaymentFilters(), [], {}),
        (PaymentFilters(status="failed"), ["mart_stripe_payments.status = :status_1"], {"status_1": "failed"}),
        (PaymentFilters(funnel="mobile_app"), ["mart_stripe_payments.funnel_name = :funnel_name_1"], {"funnel_name_1": "mobile_app"}),
        (PaymentFilters(card_brand="visa"), ["mart_stripe_payments.card_brand = :card_brand_1"], {"card_brand_1": "visa"}),
        (PaymentFilters(search="ch_123"), [_LIKE.format("charge_id")], {"charge_id_1": "%ch\\_123%"}),
        (PaymentFilters(search="PY_12"), [_LIKE.format("charge_id")], {"charge_id_1": "%PY\\_12%"}),
        (PaymentFilters(search="pi_9"), [_LIKE.format("payment_intent_id")], {"payment_intent_id_1": "%pi\\_9%"}),
        (PaymentFilters(search=" cus_7 "), [_LIKE.format("customer_id")], {"customer_id_1": "%cus\\_7%"}),
        (
            PaymentFilters(search="u-4"),
            ["mart_stripe_payments.charge_id = :charge_id_1 OR mart_stripe_payments.payment_intent_id = :payment_intent_id_1 "
             "OR mart_stripe_payments.customer_id = :customer_id_1 OR mart_stripe_payments.profile_id = :profile_id_1"],
            {"charge_id_1": "u-4", "payment_intent_id_1": "u-4", "customer_id_1": "u-4", "profile_id_1": "u-4"},
        ),
        (PaymentFilters(search="amount:>=100.5 currency:EUR"),
         ["mart_stripe_payments.amount_usd >= :amount_usd_1", "mart_stripe_payments.currency = :currency_1"],
         {"amount_usd_1": Decimal("100.5"), "currency_1": "eur"}),
        (PaymentFilters(search="x1 last4:4242 status:FAILED"),
         ["mart_stripe_payments.charge_id = :charge_id_1 OR mart_stripe_payments.payment_intent_id = :payment_intent_id_1 "
          "OR mart_stripe_payments.customer_id = :customer_id_1 OR mart_stripe_payments.profile_id = :profile_id_1",
          "mart_stripe_payments.card_last4 = :card_last4_1", "mart_stripe_payments.status = :status_1"],
         {"charge_id_1": "x1", "payment_intent_id_1": "x1", "customer_id_1": "x1", "profile_id_1": "x1",
          "card_last4_1": "4242", "status_1": "failed"}),
        (PaymentFilters(failure_category="fraud_block", failure_code="fraudulent", currency=" EUR ", card_country="de",
                        min_amount=Decimal("5")),
         ["mart_stripe_payments.failure_category = :failure_category_1", "mart_stripe_payments.failure_code = :failure_code_1",
          "mart_stripe_payments.currency = :currency_1", "mart_stripe_payments.card_country = :card_country_1",
          "mart_stripe_payments.amount_usd >= :amount_usd_1"],
         {"failure_category_1": "fraud_block", "failure_code_1": "fraudulent", "currency_1": "eur", "card_country_1": "DE",
          "amount_usd_1": Decimal("5")}),
        (PaymentFilters(max_amount=Decimal("50")), ["mart_stripe_payments.amount_usd <= :amount_usd_1"],
         {"amount_usd_1": Decimal("50")}),
        (
            PaymentFilters(date_range=DateRange(date(2024, 3, 11), date(2024, 3, 12), "Europe/Berlin")),
            ["mart_stripe_payments.created_at >= :created_at_1 AND mart_stripe_payments.created_at < :created_at_2"],
            {"created_at_1": datetime(2024, 3, 10, 23), "created_at_2": datetime(2024, 3, 12, 23)},
        ),
        (PaymentFilters(status=" ", funnel="", card_brand="  ", search="\t"), [], {}),
    ],
    ids=["none", "status", "funnel", "brand", "charge", "py-upper", "intent", "customer", "any-id", "fields", "text-and-fields",
         "new-filters", "max-amount", "berlin-range", "blanks"],
)
def test_conditions(filters, sql, params) -> None:
    assert sql_of(filters) == (sql, params)


def test_several_filters_are_anded() -> None:
    stmt = sa.select(sa.func.count()).select_from(T).where(
        *conditions(PaymentFilters(status="failed", funnel="f", card_brand="visa"), T)
    )
    text = str(stmt.compile())
    assert text.count(" AND ") == 2 and " OR " not in text


@pytest.mark.parametrize("text", ["'; DROP TABLE x; --", "100%", "a_b", "back\\slash", 'quo"te', "ünï©ødé ✓"])
def test_search_text_is_always_a_bound_parameter(text) -> None:
    sql, params = sql_of(PaymentFilters(search=text))
    assert text not in " ".join(sql)
    # short text is compared exactly; longer text as a LIKE pattern that escapes % _ and backslash
    assert set(params.values()) == ({text} if len(text) < MIN_FRAGMENT else {"%" + like_escape(text) + "%"})


@pytest.mark.parametrize(
    "text, columns",
    [("ch_1", ("charge_id",)), ("py_1", ("charge_id",)), ("pi_1", ("payment_intent_id",)),
     ("cus_1", ("customer_id",)), ("prof_1", SEARCH_COLUMNS), ("1234", SEARCH_COLUMNS), ("CH_1", ("charge_id",))],
)
def test_search_columns(text, columns) -> None:
    assert search_columns(text) == columns


def test_invalid_filters_are_refused() -> None:
    with pytest.raises(InvalidInput, match="refunded"):
        PaymentFilters(status="refunded")
    with pytest.raises(InvalidInput, match=str(MAX_SEARCH_LENGTH)):
        PaymentFilters(search="x" * (MAX_SEARCH_LENGTH + 1))
    PaymentFilters(search="x" * MAX_SEARCH_LENGTH)  # the limit itself is fine


# -- parameters (URL query string, CLI options) ------------------------------------------
def test_filters_from_params() -> None:
    f = filters_from_params(
        {"status": "failed", "from": "2024-03-01", "to": "2024-03-05", "funnel": ["mobile_app"],
         "card_brand": "visa", "search": " cus_1 "},
        "Europe/Berlin",
    )
    assert f == PaymentFilters(status="failed", date_range=DateRange(date(2024, 3, 1), date(2024, 3, 5), "Europe/Berlin"),
                               funnel="mobile_app", card_brand="visa", search="cus_1")


def test_open_ended_dates() -> None:
    today = today_in("UTC")
    since = filters_from_params({"from": "2024-03-01"}, "UTC").date_range
    assert (since.start, since.end) == (date(2024, 3, 1), max(date(2024, 3, 1), today))
    until = filters_from_params({"to": "2024-03-05"}, "UTC").date_range
    assert (until.start, until.end) == (EARLIEST, date(2024, 3, 5))
    future = filters_from_params({"from": (today + timedelta(days=3)).isoformat()}, "UTC").date_range
    assert future.start == future.end == today + timedelta(days=3)
    assert filters_from_params({"from": "", "to": None, "status": []}, "UTC") == PaymentFilters()


@pytest.mark.parametrize(
    "params, message",
    [({"from": "2024-13-01"}, "from"), ({"to": "yesterday"}, "to"), ({"from": "2024-03-05", "to": "2024-03-01"}, "before"),
     ({"status": "refunded"}, "status")],
)
def test_bad_params(params, message) -> None:
    with pytest.raises(InvalidInput, match=message):
        filters_from_params(params, "UTC")


def test_params_round_trip() -> None:
    params = {"status": "pending", "from": "2024-01-01", "to": "2024-01-31", "funnel": "paid_social",
              "card_brand": "amex", "search": "ch_1"}
    assert filters_to_params(filters_from_params(params, "UTC")) == params
    assert filters_to_params(PaymentFilters(search="  ")) == {}


# -- any search text is safe, on both engines ----------------------------------------------
ROWS = [
    charge("ch_a1", "2024-03-04 10:00", customer_id="cus_a", profile_id="prof_%", payment_intent_id="pi_a"),
    charge("ch_a2", "2024-03-04 11:00", "failed", customer_id="cus_a", profile_id="o'brien", payment_intent_id="pi_a"),
    charge("ch_b1", "2024-03-04 12:00", customer_id="cus_b", profile_id="back\\slash", payment_intent_id="pi_b"),
    charge("ch_c1", "2024-03-04 13:00", customer_id="cus_c", profile_id="ünï©ødé", payment_intent_id="pi_c"),
    charge("ch_d1", "2024-03-04 14:00", customer_id="cus_d", profile_id="=cmd|' /C calc'!A0", payment_intent_id="pi_d"),
]
IDS = sorted({r[c] for r in ROWS for c in SEARCH_COLUMNS})
NASTY = [
    "'; DROP TABLE x; --", "\"; DROP TABLE x; --", "' OR '1'='1", "%", "_", "%%", "cus_%", "ch_a_", "prof\\_%",
    "\\", "\\\\", "'", "''", '"', "--", "/*", "*/", ";", "$1", "?", ":name", ":x", "%s", "{}", "ünï©ødé",
    "o'brien", "O'BRIEN", "back\\slash", "prof_%", "CUS_A", " cus_a ", "\tcus_a\n", "🙂", "\u202e", "a" * 200,
]


@pytest.fixture(scope="module")
def searchable(module_databases):
    """A writable warehouse over ROWS, with a canary table `x` that injected SQL would drop."""
    read_only = module_databases.build(ROWS)
    wh = module_databases.track(type(read_only)(read_only.url, read_only.settings, read_only=False))
    with wh.write() as conn:
        conn.execute(sa.text("CREATE TABLE IF NOT EXISTS x (id integer)"))
        conn.execute(sa.text("TRUNCATE TABLE x"))  # (ClickHouse refuses a DELETE without WHERE)
        conn.execute(sa.text("INSERT INTO x VALUES (1)"))
    return wh


search_texts = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40),
    st.sampled_from(NASTY),
    st.sampled_from(IDS),
    st.builds(lambda i, pad, tail: pad + i[: len(i) - tail] + ("%" if tail else "") + pad,
              st.sampled_from(IDS), st.sampled_from(["", " ", "\n"]), st.integers(0, 2)),
)


def _matches(row: dict, needle: str) -> bool:
    """The search's free text: an id equal to it if one exists, else from 4 characters any id containing it, any case."""
    columns = search_columns(needle)
    exact = [c for c in columns if any(r[c] == needle for r in ROWS)]
    if exact or len(needle) < MIN_FRAGMENT:
        return needle in (row[c] for c in exact)
    return any(needle.lower() in row[c].lower() for c in columns)


def _check_search(wh, text: str) -> None:
    filters = PaymentFilters(search=text)
    needle = text.strip()
    try:
        parse_search(needle)
    except InvalidInput:
        with wh.read() as conn, pytest.raises(InvalidInput, match="fields: email:"):
            payments_page(conn, wh.marts, filters)
        return
    want = sorted(r["charge_id"] for r in ROWS if not needle or _matches(r, needle))
    with wh.write() as conn:
        page = payments_page(conn, wh.marts, filters)
        total = count_payments(conn, wh.marts, filters)
        out = io.BytesIO()
        wh.copy_csv(conn, export_select(wh.marts, filters), out.write)
    assert sorted(r["charge_id"] for r in page.rows) == want
    assert total == page.total == len(want)
    assert len(out.getvalue().decode().splitlines()) == 1 + len(want)
    with wh.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM x")).scalar_one() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(wh.marts.payments)).scalar_one() == len(ROWS)


@pytest.mark.parametrize("text", NASTY)
def test_nasty_search_texts(searchable, text) -> None:
    _check_search(searchable, text)


def test_exact_ids_are_found(searchable) -> None:
    _check_search(searchable, "o'brien")
    with searchable.read() as conn:
        assert [r["charge_id"] for r in payments_page(conn, searchable.marts, PaymentFilters(search="o'brien")).rows] == ["ch_a2"]
        assert count_payments(conn, searchable.marts, PaymentFilters(search="%")) == 0
        assert count_payments(conn, searchable.marts, PaymentFilters(search="prof_%")) == 1
        assert count_payments(conn, searchable.marts, PaymentFilters(search="cus_a")) == 2


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=search_texts)
def test_property_any_search_text_is_safe(searchable, text) -> None:
    _check_search(searchable, text)


# -- the search grammar, pure ------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, terms",
    [
        ("", ()),
        ("  ch_3AbC  ", (Term("text", "ch_3AbC"),)),
        ("Jenny Rosen", (Term("text", "Jenny Rosen"),)),
        ("12:30", (Term("text", "12:30"),)),  # a colon after a digit is text, not a field
        (":name", (Term("text", ":name"),)),
        ("EMAIL:Jenny@Example.com", (Term("email", "jenny@example.com"),)),
        ("last4:4242", (Term("last4", "4242"),)),
        ("amount:100", (Term("amount", "100"),)),
        ("amount:>100", (Term("amount", "100", ">"),)),
        ("amount:>=99.5", (Term("amount", "99.5", ">="),)),
        ("amount:<$1,000", (Term("amount", "1000", "<"),)),
        ("amount:<=0.5", (Term("amount", "0.5", "<="),)),
        ("currency:EUR country:de", (Term("currency", "eur"), Term("country", "DE"))),
        ("code:Insufficient_Funds category:FRAUD_BLOCK status:Failed",
         (Term("code", "insufficient_funds"), Term("category", "fraud_block"), Term("status", "failed"))),
        ("cus_1 status:failed  x", (Term("text", "cus_1 x"), Term("status", "failed"))),
        ('code:"do not honor"', (Term("code", "do not honor"),)),
        ("status:failed status:pending", (Term("status", "failed"), Term("status", "pending"))),
    ],
)
def test_parse_search(text, terms) -> None:
    assert parse_search(text).terms == terms


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour:red", "no field 'colour'; fields: email:, last4:, amount:, currency:, country:, code:, category:, status:"),
        ("http://example.com", "no field 'http'"),
        ("status:", "status: needs a value"),
        ("last4:42", "not four digits"),
        ("last4:abcd", "not four digits"),
        ("amount:>>1", "not an amount"),
        ("amount:1e5", "not an amount"),
        ("amount:NaN", "not an amount"),
        ("amount:-5", "not an amount"),
        ("amount:99999999999", "larger than any charge"),
        ("currency:euro", "three-letter"),
        ("country:USA", "two-letter"),
        ("category:bank", "not a failure category"),
        ("status:refunded", "not one of succeeded, failed, pending"),
    ],
)
def test_parse_search_refuses_with_what_would_work(text, message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        parse_search(text)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=60))
def test_property_parse_search_never_fails_unexpectedly(text) -> None:
    try:
        search = parse_search(text)
    except InvalidInput as exc:
        assert str(exc) and "\n" not in str(exc)[:1]
        return
    assert sum(t.field == "text" for t in search.terms) <= 1
    for term in search.terms:
        assert term.field == "text" or term.field in ("email", "last4", "amount", "currency", "country", "code",
                                                       "category", "status")
        assert term.value == term.value.strip() and term.value


@pytest.mark.parametrize("text", ["100%", "a_b_c", "back\\slash", "%_\\", "50% off_"])
def test_like_escape_makes_wildcards_literal(text) -> None:
    # (what LIKE does with the pattern is checked on both engines in test_explorer_sort_search)
    escaped = like_escape(text)
    assert escaped.replace("\\%", "").replace("\\_", "").replace("\\\\", "").count("%") == 0
    assert escaped.replace("\\%", "").replace("\\_", "").replace("\\\\", "").count("_") == 0


def test_new_params_round_trip() -> None:
    params = {"failure_category": "fraud_block", "failure_code": "fraudulent", "currency": "eur", "card_country": "DE",
              "min_amount": "10", "max_amount": "99.99", "search": "amount:>5 last4:4242"}
    assert filters_to_params(filters_from_params(params, "UTC")) == params
    assert filters_from_params({"currency": "EUR", "card_country": "de", "min_amount": "$1,000"}, "UTC") == PaymentFilters(
        currency="eur", card_country="DE", min_amount=Decimal("1000"))


@pytest.mark.parametrize(
    "params, message",
    [({"failure_category": "nope"}, "failure category 'nope'"), ({"min_amount": "ten"}, "min amount 'ten'"),
     ({"min_amount": "20", "max_amount": "10"}, "above the maximum"), ({"search": "foo:bar"}, "no field 'foo'")],
)
def test_bad_new_params(params, message) -> None:
    with pytest.raises(InvalidInput, match=re.escape(message)):
        filters_from_params(params, "UTC")


@pytest.mark.parametrize(
    "params, sort",
    [({}, PaymentSort()), ({"sort": "amount"}, PaymentSort("amount")), ({"asc": "1"}, PaymentSort("created", True)),
     ({"sort": "amount", "asc": "1"}, PaymentSort("amount", True))],
)
def test_sort_params_round_trip(params, sort) -> None:
    assert sort_from_params(params) == sort and sort_to_params(sort) == params


def test_bad_sort_params() -> None:
    with pytest.raises(InvalidInput, match="created, amount"):
        sort_from_params({"sort": "price"})
    with pytest.raises(InvalidInput, match="asc"):
        sort_from_params({"asc": "sideways"})
