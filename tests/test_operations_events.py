"""Operations events into the receiver: the Stripe mapping and POST /events (pure, then a real `paydash webhooks`),
and GET /metrics in the Prometheus text format."""

from __future__ import annotations

import json
import math
import re
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import sqlalchemy as sa

from paydash.sources.metrics import METRICS, prometheus_text
from paydash.sources.operations_events import InvalidEvents, parse_api_events, stripe_row
from stripe_objects import stripe_charge, stripe_event, stripe_payment_intent, ts
from test_webhooks import read, start_receiver

TOKEN = "ops-token-0123456789abcdef"
NOW = datetime(2026, 3, 2, 12, 0)


def checkout_session(session_id: str, created: str | int, payment_status: str = "paid", **fields) -> dict:  # noqa: ANN003
    """A Checkout Session shaped like Stripe's (the fields paydash reads, and a few more)."""
    created = created if isinstance(created, int) else ts(created)
    return {"id": session_id, "object": "checkout.session", "created": created, "expires_at": created + 1800,
            "mode": "payment", "status": "complete" if payment_status != "unpaid" else "open",
            "payment_status": payment_status, "payment_intent": fields.pop("payment_intent", None),
            "customer": fields.pop("customer", "cus_A"), "currency": "usd", "amount_total": 1999, **fields}


def invoice(invoice_id: str, created: str, attempt_count: int, **fields) -> dict:  # noqa: ANN003
    return {"id": invoice_id, "object": "invoice", "created": ts(created), "attempt_count": attempt_count,
            "payment_intent": fields.pop("payment_intent", None), "customer": "cus_A", "status": "open", **fields}


# -- the mapping, pure ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "type_, obj, expected",
    [
        ("checkout.session.created", checkout_session("cs_1", "2026-03-02 10:00", "unpaid", payment_intent="pi_1"),
         {"event_name": "checkout_started", "checkout_session_id": "cs_1", "payment_intent_id": "pi_1"}),
        ("checkout.session.completed", checkout_session("cs_1", "2026-03-02 10:00", "paid"),
         {"event_name": "checkout_completed", "outcome": "succeeded"}),
        ("checkout.session.completed", checkout_session("cs_1", "2026-03-02 10:00", "no_payment_required"),
         {"event_name": "checkout_completed", "outcome": "succeeded"}),
        ("checkout.session.completed", checkout_session("cs_1", "2026-03-02 10:00", "unpaid"), None),
        ("checkout.session.async_payment_succeeded", checkout_session("cs_1", "2026-03-02 10:00"),
         {"event_name": "checkout_completed", "outcome": "succeeded"}),
        ("checkout.session.async_payment_failed", checkout_session("cs_1", "2026-03-02 10:00", "unpaid"),
         {"event_name": "checkout_completed", "outcome": "failed", "error": "async_payment_failed"}),
        ("checkout.session.expired", checkout_session("cs_1", "2026-03-02 10:00", "unpaid"),
         {"event_name": "checkout_expired", "outcome": "expired"}),
        ("invoice.payment_failed", invoice("in_1", "2026-03-02 10:00", 3, payment_intent="pi_9"),
         {"event_name": "retry_completed", "attempt_number": 2, "outcome": "failed", "payment_intent_id": "pi_9"}),
        ("invoice.payment_failed", invoice("in_1", "2026-03-02 10:00", 1), None),  # a first attempt is no retry
        ("invoice.paid", invoice("in_1", "2026-03-02 10:00", 2), {"event_name": "retry_completed", "attempt_number": 1,
                                                                  "outcome": "succeeded"}),
        ("charge.succeeded", stripe_charge("ch_1", "2026-03-02 10:00"), None),
    ],
)
def test_stripe_events_map_to_operations_events(type_, obj, expected) -> None:
    row = stripe_row(stripe_event("evt_map", type_, obj, ts("2026-03-02 10:05")))
    if expected is None:
        assert row is None
        return
    assert {k: row.get(k) for k in expected} == expected
    assert row["event_id"] == "evt_map" and row["source"] == "stripe"
    assert row["occurred_at"] == datetime(2026, 3, 2, 10, 5)  # the event's created, UTC


# -- POST /events payloads, pure -------------------------------------------------------------------
GOOD = {"event_id": "ord-1", "event_name": "receipt_generated", "occurred_at": "2026-03-02T11:59:00Z",
        "receipt_id": "rcpt_1", "outcome": "succeeded", "duration_ms": 850,
        "properties": {"download_status": "downloaded", "edge_location": "fra1"}}


def test_valid_payloads_become_rows() -> None:
    [row] = parse_api_events(json.dumps(GOOD).encode(), now=NOW)
    assert row["occurred_at"] == datetime(2026, 3, 2, 11, 59) and row["source"] == "api"
    assert json.loads(row["properties"]) == GOOD["properties"]
    offset = dict(GOOD, occurred_at="2026-03-02T12:59:00+01:00", event_id="ord-2")
    rows = parse_api_events(json.dumps([GOOD, offset]).encode(), now=NOW)
    assert [r["occurred_at"] for r in rows] == [datetime(2026, 3, 2, 11, 59)] * 2


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"{not json", "not JSON"),
        (b"[]", "empty"),
        (b"[1]", "event 0 is not a JSON object"),
        (json.dumps(dict(GOOD, event_name="checkout_exploded")), "event_name 'checkout_exploded' is not one of"),
        (json.dumps({k: v for k, v in GOOD.items() if k != "event_id"}), "needs event_id"),
        (json.dumps(dict(GOOD, event_id="a b")), "letters, digits"),
        (json.dumps(dict(GOOD, event_id="x" * 300)), "at most 255"),
        (json.dumps(dict(GOOD, occurred_at="2026-03-02 11:59")), "no timezone"),
        (json.dumps(dict(GOOD, occurred_at="yesterday")), "not an ISO 8601"),
        (json.dumps(dict(GOOD, occurred_at=1700000000)), "ISO 8601 text"),
        (json.dumps(dict(GOOD, occurred_at="2026-03-02T13:00:00Z")), "in the future"),
        (json.dumps(dict(GOOD, outcome="maybe")), "outcome must be one of"),
        (json.dumps(dict(GOOD, duration_ms=-1)), "duration_ms"),
        (json.dumps(dict(GOOD, duration_ms="5")), "duration_ms"),
        (json.dumps(dict(GOOD, attempt_number=True)), "attempt_number"),
        (json.dumps(dict(GOOD, properties=[1])), "properties must be a JSON object"),
        (json.dumps(dict(GOOD, properties={"x": "y" * 9000})), "larger than 8192"),
        (json.dumps(dict(GOOD, source="stripe")), "unknown fields ['source']"),
        (json.dumps([GOOD] * 501), "at most 500"),
    ],
)
def test_malformed_payloads_are_refused_with_a_reason(payload, message) -> None:
    with pytest.raises(InvalidEvents, match=re.escape(message)):
        parse_api_events(payload if isinstance(payload, bytes) else payload.encode(), now=NOW)


# -- Prometheus text, pure --------------------------------------------------------------------------
SAMPLE = re.compile(r'^(paydash_[a-z_0-9]+)(\{window="\d+[mh]"\})? (NaN|-?\d+(\.\d+)?(e[+-]?\d+)?)$')


def test_prometheus_text_has_help_type_and_one_sample_per_metric() -> None:
    text = prometheus_text({"checkout_success_rate_15m": 0.5, "expired_sessions_1h": 12, "webhook_lag_seconds": None})
    assert text.endswith("\n")
    lines = text.splitlines()
    assert len(lines) == 3 * len(METRICS)
    for (name, _, _, _), (help_line, type_line, sample) in zip(METRICS, zip(*[iter(lines)] * 3)):
        assert help_line.startswith(f"# HELP {name} ") and type_line == f"# TYPE {name} gauge"
        assert SAMPLE.match(sample) and sample.startswith(name)
    assert 'paydash_checkout_success_rate{window="15m"} 0.5' in lines
    assert 'paydash_checkout_sessions_expired{window="1h"} 12' in lines
    assert 'paydash_webhook_lag_seconds{window="5m"} NaN' in lines


# -- a real receiver ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receiver(module_databases, tmp_path_factory):  # noqa: ANN001, ANN201
    db = module_databases.new()
    r = start_receiver(db, tmp_path_factory.mktemp("ops-receiver"), PAYDASH_EVENTS_TOKEN=TOKEN,
                       PAYDASH_EVENTS_MAX_BODY="20000")
    yield r
    r.stop()


def ops_rows(db, **where) -> list[dict]:  # noqa: ANN001, ANN003
    def build(wh, raw):  # noqa: ANN001, ANN202
        o = wh.marts.operations_events
        stmt = sa.select(o).order_by(o.c.event_id)
        for column, value in where.items():
            stmt = stmt.where(o.c[column] == value)
        return stmt
    columns = None

    def run(wh, raw):  # noqa: ANN001, ANN202
        nonlocal columns
        columns = [c.name for c in wh.marts.operations_events.columns]
        return build(wh, raw)

    rows = read(db, run)
    return [dict(zip(columns, r)) for r in rows]


def post_events(receiver, body: bytes, token: str | None = TOKEN) -> httpx.Response:  # noqa: ANN001
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return httpx.post(receiver.url + "/events", content=body, headers=headers, timeout=60)


def test_checkout_session_events_are_recorded_once_with_their_times(receiver) -> None:
    created = ts("2024-05-01 09:00")
    deliveries = [
        stripe_event("evt_cs_start", "checkout.session.created", checkout_session("cs_rec", created, "unpaid",
                                                                                  payment_intent="pi_rec")),
        stripe_event("evt_cs_done", "checkout.session.completed", checkout_session("cs_rec", created, "paid",
                                                                                   payment_intent="pi_rec"), created + 90),
        stripe_event("evt_cs_gone", "checkout.session.expired", checkout_session("cs_gone", created, "unpaid"), created + 1800),
        stripe_event("evt_cs_async", "checkout.session.async_payment_failed",
                     checkout_session("cs_async", created, "unpaid"), created + 60),
    ]
    before = datetime.now(timezone.utc).replace(tzinfo=None) - timedelta(seconds=1)
    for event in deliveries + deliveries[:1]:  # the first one delivered twice
        assert receiver.deliver(event).status_code == 200
    rows = {r["event_id"]: r for r in ops_rows(receiver.db) if r["event_id"].startswith("evt_cs_")}
    assert {k: (r["event_name"], r["checkout_session_id"], r["outcome"]) for k, r in rows.items()} == {
        "evt_cs_start": ("checkout_started", "cs_rec", None),
        "evt_cs_done": ("checkout_completed", "cs_rec", "succeeded"),
        "evt_cs_gone": ("checkout_expired", "cs_gone", "expired"),
        "evt_cs_async": ("checkout_completed", "cs_async", "failed"),
    }
    assert rows["evt_cs_done"]["occurred_at"] == datetime(2024, 5, 1, 9, 1, 30)
    assert all(r["source"] == "stripe" and r["received_at"] >= before for r in rows.values())


def test_payment_intent_and_invoice_retries(receiver) -> None:
    first = stripe_charge("ch_retry_1", "2024-05-02 10:00", "failed", payment_intent="pi_retry",
                          failure_code="card_declined", outcome_reason="insufficient_funds")
    second = stripe_charge("ch_retry_2", "2024-05-02 11:00", "succeeded", payment_intent="pi_retry")
    for i, charge in enumerate((first, second)):
        assert receiver.deliver(stripe_event(f"evt_retry_ch_{i}", f"charge.{charge['status']}", charge)).status_code == 200
    failed_pi = stripe_payment_intent("pi_retry", "2024-05-02 09:59", "requires_payment_method", latest_charge="ch_retry_1",
                                      last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"})
    won_pi = stripe_payment_intent("pi_retry", "2024-05-02 09:59", "succeeded", latest_charge="ch_retry_2",
                                   last_payment_error=None)
    assert receiver.deliver(stripe_event("evt_retry_pi_1", "payment_intent.payment_failed", failed_pi,
                                         ts("2024-05-02 10:00"))).status_code == 200
    assert receiver.deliver(stripe_event("evt_retry_pi_2", "payment_intent.succeeded", won_pi,
                                         ts("2024-05-02 11:00"))).status_code == 200
    dunning = invoice("in_retry", "2024-05-01 00:00", 3, payment_intent="pi_dunning")
    assert receiver.deliver(stripe_event("evt_retry_in", "invoice.payment_failed", dunning,
                                         ts("2024-05-03 00:00"))).status_code == 200
    # an intent's event before its latest charge's: that charge comes after the ones stored
    early = stripe_charge("ch_early_1", "2024-05-02 12:00", "failed", payment_intent="pi_early", failure_code="expired_card",
                          outcome_type="invalid")
    assert receiver.deliver(stripe_event("evt_early_ch", "charge.failed", early)).status_code == 200
    early_pi = stripe_payment_intent("pi_early", "2024-05-02 11:59", "requires_payment_method", latest_charge="ch_early_2",
                                     last_payment_error={"code": "card_declined", "decline_code": "do_not_honor"})
    assert receiver.deliver(stripe_event("evt_early_pi", "payment_intent.payment_failed", early_pi,
                                         ts("2024-05-02 13:00"))).status_code == 200
    rows = {r["event_id"]: r for r in ops_rows(receiver.db, event_name="retry_completed")}
    assert (rows["evt_early_pi"]["attempt_number"], rows["evt_early_pi"]["outcome"],
            rows["evt_early_pi"]["error"]) == (1, "failed", "do_not_honor")
    # the first attempt's failure is no retry; the second charge is retry 1
    assert "evt_retry_pi_1" not in rows
    assert (rows["evt_retry_pi_2"]["attempt_number"], rows["evt_retry_pi_2"]["outcome"]) == (1, "succeeded")
    assert (rows["evt_retry_in"]["attempt_number"], rows["evt_retry_in"]["outcome"],
            rows["evt_retry_in"]["payment_intent_id"]) == (2, "failed", "pi_dunning")


@pytest.mark.parametrize("case", ["no_token", "wrong_token", "wrong_scheme", "malformed", "bad_field", "oversized"])
def test_post_events_refusals_store_nothing(receiver, case) -> None:
    event_id = f"refused-{case}"
    body = json.dumps(dict(GOOD, event_id=event_id, occurred_at="2026-01-01T00:00:00Z")).encode()
    token: str | None = TOKEN
    if case == "no_token":
        token = None
    elif case == "wrong_token":
        token = TOKEN + "x"
    elif case == "malformed":
        body = body[:-5]
    elif case == "bad_field":
        body = json.dumps(dict(GOOD, event_id=event_id, event_name="DROP TABLE")).encode()
    elif case == "oversized":
        body = json.dumps([dict(GOOD, event_id=f"{event_id}-{i}") for i in range(200)]).encode()
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"{'Basic' if case == 'wrong_scheme' else 'Bearer'} {token}"
    response = httpx.post(receiver.url + "/events", content=body, headers=headers, timeout=60)
    expected = {"no_token": 401, "wrong_token": 401, "wrong_scheme": 401, "malformed": 400, "bad_field": 400,
                "oversized": 413}[case]
    assert response.status_code == expected, response.text
    assert response.json()["error"]
    assert [r for r in ops_rows(receiver.db) if r["event_id"].startswith(event_id)] == []
    assert TOKEN not in receiver.output()


def test_post_events_stores_once_and_metrics_reflect_them(receiver) -> None:
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    when = (now - timedelta(minutes=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    events = [
        {"event_id": "m-1", "event_name": "checkout_completed", "occurred_at": when, "outcome": "succeeded"},
        {"event_id": "m-2", "event_name": "checkout_completed", "occurred_at": when, "outcome": "succeeded"},
        {"event_id": "m-3", "event_name": "checkout_completed", "occurred_at": when, "outcome": "failed",
         "error": "card_declined"},
        {"event_id": "m-4", "event_name": "receipt_generated", "occurred_at": when, "outcome": "failed",
         "duration_ms": 4000, "properties": {"edge_location": "fra1"}},
    ]
    response = post_events(receiver, json.dumps(events).encode())
    assert response.status_code == 200, response.text
    assert response.json() == {"received": 4, "stored": 4, "duplicates": 0}
    again = post_events(receiver, json.dumps(events[:2]).encode())
    assert again.json() == {"received": 2, "stored": 0, "duplicates": 2}
    assert len([r for r in ops_rows(receiver.db) if r["event_id"].startswith("m-")]) == 4
    [stored] = ops_rows(receiver.db, event_id="m-4")
    assert (stored["source"], json.loads(stored["properties"]), stored["duration_ms"]) == ("api", {"edge_location": "fra1"}, 4000)

    asked = datetime.now(timezone.utc).replace(tzinfo=None)
    metrics = httpx.get(receiver.url + "/metrics", timeout=60)
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for line in metrics.text.splitlines():
        if not line.startswith("#"):
            assert SAMPLE.match(line), line
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['paydash_checkout_success_rate{window="15m"}'] == pytest.approx(2 / 3)
    assert samples['paydash_checkouts_completed{window="15m"}'] == 3
    assert samples['paydash_receipt_render_failures{window="5m"}'] == 1
    assert samples['paydash_receipt_render_p95_milliseconds{window="1h"}'] == 4000
    # the Stripe events of the tests above (created in 2024) were received within the last 5 minutes
    lags = [(r["received_at"] - r["occurred_at"]).total_seconds() for r in ops_rows(receiver.db, source="stripe")
            if r["received_at"] >= asked - timedelta(minutes=5)]
    lag = samples['paydash_webhook_lag_seconds{window="5m"}']
    assert (math.isnan(lag) and not lags) or lag == pytest.approx(max(lags), abs=0.01)


def test_post_events_is_off_without_a_token(module_databases, tmp_path) -> None:
    db = module_databases.new()
    receiver = start_receiver(db, tmp_path)
    try:
        response = post_events(receiver, json.dumps(GOOD).encode())
        assert response.status_code == 404
        assert "PAYDASH_EVENTS_TOKEN" in response.json()["error"]
        assert ops_rows(db) == []
    finally:
        receiver.stop()
