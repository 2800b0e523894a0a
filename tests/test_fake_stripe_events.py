"""The fake Stripe API's event log and GET /v1/events (tests/fake_stripe_api.py), the base of the
reconciliation tests: paging, filters, 30-day retention by an injectable clock, immutable snapshots,
per-key permissions, list endpoints showing the changed state, signed delivery. Fast: a small account."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from fake_stripe_api import RETENTION, Account, Clock, FakeStripe, deliver, deliver_all

SK = "sk_test_fakesecret000000000000"
RK = "rk_test_fakerestricted0000000000"
NO_EVENTS = "rk_test_noevents0000000000000000"
T0 = 1_780_000_000
DAY = 86_400
SECRET = "whsec_test_secret"


def scenario() -> tuple[Account, Clock]:
    """A generated account, then eight days of changes (several in the same second)."""
    clock = Clock(T0)
    acct = Account.generate(80, seed=3, end=T0 - 3600, days=10, now=clock)
    assert acct.events == []  # generated objects record no events by default
    customers = acct.ids("customer")
    succeeded = acct.ids("charge", status="succeeded")
    for day in range(8):
        clock.set(T0 + day * DAY)
        acct.update(customers[day], name=f"Renamed {day}")
        acct.refund_charge(succeeded[2 * day], amount=100)
        acct.dispute_charge(succeeded[2 * day + 1])  # same second as the refund
        clock.advance(3600)
        acct.add("customer", email=f"new{day}@example.com", name=f"New {day}")
    clock.set(T0 + 8 * DAY)
    return acct, clock


@pytest.fixture
def fake() -> Any:
    acct, clock = scenario()
    server = FakeStripe(acct, restricted_keys={RK: {}, NO_EVENTS: {"events": False}})
    server.start()
    server.clock = clock
    yield server
    server.stop()


def get(fake: FakeStripe, path: str, key: str = RK, **params: Any) -> httpx.Response:
    return httpx.get(fake.url + path, params=params, headers={"Authorization": f"Bearer {key}"}, timeout=10)


def ok(fake: FakeStripe, path: str, **params: Any) -> dict:
    r = get(fake, path, **params)
    assert r.status_code == 200, r.text
    return r.json()


def newest_first(acct: Account) -> list[str]:
    return [e.id for e in sorted(acct.events, key=lambda e: (e.created, e.seq), reverse=True)]


def walk(fake: FakeStripe, limit: int, **params: Any) -> list[str]:
    seen: list[str] = []
    while True:
        page = ok(fake, "/v1/events", limit=limit, **params, **({"starting_after": seen[-1]} if seen else {}))
        seen += [e["id"] for e in page["data"]]
        if not page["has_more"]:
            return seen


def test_the_scenario_recorded_what_stripe_sends(fake: FakeStripe) -> None:
    types = [e.type for e in fake.account.events]
    assert types.count("customer.updated") == 8 and types.count("customer.created") == 8
    assert types.count("refund.created") == 8 and types.count("charge.refunded") == 8
    assert types.count("charge.dispute.created") == 8
    event = ok(fake, "/v1/events", limit=1)["data"][0]
    assert set(event) == {"id", "object", "api_version", "created", "livemode", "pending_webhooks", "request",
                          "type", "data"}
    assert (event["object"], event["api_version"], event["livemode"], event["pending_webhooks"]) == \
        ("event", "2024-06-20", False, 1)
    assert event["request"] == {"id": None, "idempotency_key": None}
    assert event == ok(fake, f"/v1/events/{event['id']}")


@pytest.mark.parametrize("limit", [1, 7, 10, 100])
def test_paging_newest_first_is_complete_without_duplicates(fake: FakeStripe, limit: int) -> None:
    expected = newest_first(fake.account)
    assert walk(fake, limit) == expected
    assert ok(fake, "/v1/events")["data"][0]["id"] == expected[0] and len(ok(fake, "/v1/events")["data"]) == 10


def test_paging_backwards_with_ending_before(fake: FakeStripe) -> None:
    expected = newest_first(fake.account)
    oldest = expected[-1]
    seen: list[str] = []
    cursor = oldest
    while True:
        page = ok(fake, "/v1/events", limit=6, ending_before=cursor)
        ids = [e["id"] for e in page["data"]]
        assert ids == [i for i in expected if i in ids]  # each page newest first
        seen = ids + seen
        if not page["has_more"]:
            break
        cursor = ids[0]
    assert seen == expected[:-1]
    both = get(fake, "/v1/events", starting_after=expected[3], ending_before=expected[1])
    assert both.status_code == 400


def test_created_filters(fake: FakeStripe) -> None:
    events = fake.account.events
    mid = T0 + 3 * DAY
    for op, keep in (("gte", lambda c: c >= mid), ("gt", lambda c: c > mid), ("lt", lambda c: c < mid),
                     ("lte", lambda c: c <= mid)):
        got = walk(fake, 5, **{f"created[{op}]": mid})
        assert got == [i for i in newest_first(fake.account) if keep(fake.account.events_by_id[i].created)]
        assert got, op
    window = walk(fake, 100, **{"created[gte]": T0 + DAY, "created[lt]": T0 + 2 * DAY})
    assert len(window) == len([e for e in events if T0 + DAY <= e.created < T0 + 2 * DAY]) == 5
    assert get(fake, "/v1/events", **{"created[gte]": "soon"}).status_code == 400


def test_type_filters(fake: FakeStripe) -> None:
    acct = fake.account
    dp = acct.ids("dispute", status="needs_response")[0]
    acct.close_dispute(dp, status="lost")
    disputes = walk(fake, 3, type="charge.dispute.*")
    assert disputes and {acct.events_by_id[i].type for i in disputes} == {"charge.dispute.created",
                                                                           "charge.dispute.closed"}
    assert walk(fake, 3, type="charge.dispute.closed") == [i for i in disputes
                                                          if acct.events_by_id[i].type == "charge.dispute.closed"]
    # `charge.*` takes the dispute events too, as Stripe's wildcard does
    assert set(disputes) <= set(walk(fake, 100, type="charge.*"))
    two = walk(fake, 4, **{"types[]": ["refund.created", "customer.created"]})
    assert len(two) == 16 and two == [i for i in newest_first(acct)
                                      if acct.events_by_id[i].type in ("refund.created", "customer.created")]
    assert walk(fake, 100, **{"types[0]": "refund.created"}) == walk(fake, 100, type="refund.created")
    assert get(fake, "/v1/events", type="refund.created", **{"types[]": "customer.created"}).status_code == 400
    assert ok(fake, "/v1/events", type="no.such.type")["data"] == []


def test_retention_is_thirty_days_by_the_clock(fake: FakeStripe) -> None:
    acct, clock = fake.account, fake.clock
    first = newest_first(acct)[-1]
    assert first in walk(fake, 100)
    clock.set(acct.events_by_id[first].created + RETENTION)  # exactly 30 days old: still served
    assert first in walk(fake, 100)
    clock.advance(1)
    served = walk(fake, 100)
    assert first not in served
    assert served == [i for i in newest_first(acct) if acct.events_by_id[i].created >= clock() - RETENTION]
    gone = get(fake, f"/v1/events/{first}")
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "resource_missing"
    expired_cursor = get(fake, "/v1/events", starting_after=first)
    assert expired_cursor.status_code == 400
    assert expired_cursor.json()["error"] == {"type": "invalid_request_error", "code": "resource_missing",
                                              "param": "starting_after", "message": f"No such event: '{first}'"}
    clock.advance(30 * DAY)
    assert ok(fake, "/v1/events")["data"] == [] and ok(fake, "/v1/events")["has_more"] is False
    assert len(acct.events_since(None)) == len(acct.events)  # the log itself keeps them (for delivery)


def test_snapshots_do_not_change_with_the_object(fake: FakeStripe) -> None:
    acct, clock = fake.account, fake.clock
    dp = acct.ids("dispute", status="needs_response")[0]
    re_ = acct.ids("refund", status="pending")[0]
    mark = acct.latest_event_id()
    clock.advance(60)
    acct.update(dp, status="under_review")
    clock.advance(60)
    closed = acct.close_dispute(dp, status="won")
    failed = acct.fail_refund(re_)
    updated, closed_again = acct.events_since(mark, type="charge.dispute.*")
    assert updated["type"] == "charge.dispute.updated" and updated["data"]["object"]["status"] == "under_review"
    assert updated["data"]["previous_attributes"] == {"status": "needs_response"}
    assert closed_again == closed and closed["type"] == "charge.dispute.closed"
    assert closed["data"]["previous_attributes"] == {"status": "under_review"}
    assert closed["created"] == updated["created"] + 60 == clock()
    assert failed["type"] == "refund.failed" and failed["data"]["object"]["status"] == "failed"
    assert failed["data"]["object"]["failure_reason"] == "expired_or_canceled_card"
    # a field the object did not have before shows as null, as Stripe shows it
    assert failed["data"]["previous_attributes"] == {"status": "pending", "failure_reason": None}
    # served later, each event still shows the object as it was
    served = {e["id"]: e for e in ok(fake, "/v1/events", limit=100, type="charge.dispute.*")["data"]}
    assert served[updated["id"]]["data"]["object"]["status"] == "under_review"
    # what a caller does to a returned event changes nothing in the log
    updated["data"]["object"]["status"] = "scribbled"
    assert acct.event(updated["id"])["data"]["object"]["status"] == "under_review"
    # a creation event recorded before any change shows the created state
    dp_new = acct.dispute_charge(acct.ids("charge", status="succeeded")[-1])
    [created] = acct.events_since(closed["id"], type="charge.dispute.created")
    acct.close_dispute(dp_new, status="lost")
    assert acct.event(created["id"])["data"]["object"]["status"] == "needs_response"
    assert "previous_attributes" not in created["data"]


def test_list_endpoints_show_the_new_state(fake: FakeStripe) -> None:
    acct = fake.account
    dp, re_, cs = (acct.ids("dispute", status="needs_response")[0], acct.ids("refund", status="pending")[0],
                   acct.ids("checkout.session", status="open")[0])
    acct.close_dispute(dp, status="lost")
    acct.fail_refund(re_)
    expired = acct.expire_checkout_session(cs)
    assert expired["type"] == "checkout.session.expired"
    with pytest.raises(ValueError):
        acct.expire_checkout_session(cs)

    def listed(path: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        after = None
        while True:
            page = ok(fake, path, limit=100, **({"starting_after": after} if after else {}))
            out.update((o["id"], o) for o in page["data"])
            if not page["has_more"]:
                return out
            after = page["data"][-1]["id"]

    assert listed("/v1/disputes")[dp]["status"] == "lost"
    assert listed("/v1/refunds")[re_]["status"] == "failed"
    assert listed("/v1/checkout/sessions")[cs]["status"] == "expired"
    # a refund made through the scenario is listed, and its charge shows it refunded
    charge = acct.ids("charge", status="succeeded")[-2]
    refund = acct.refund_charge(charge)
    assert listed("/v1/refunds")[refund]["charge"] == charge
    ch = listed("/v1/charges")[charge]
    assert ch["refunded"] is True and ch["amount_refunded"] == ch["amount"]


def test_a_key_without_the_events_permission_gets_403(fake: FakeStripe) -> None:
    for path in ("/v1/events", f"/v1/events/{newest_first(fake.account)[0]}"):
        refused = get(fake, path, key=NO_EVENTS)
        assert refused.status_code == 403
        error = refused.json()["error"]
        assert error["type"] == "invalid_request_error" and "rak_event_read" in error["message"]
        assert "does not have the required permissions" in error["message"] and NO_EVENTS not in error["message"]
    assert get(fake, "/v1/charges", key=NO_EVENTS).status_code == 200
    assert get(fake, "/v1/events", key=RK).status_code == 200
    assert get(fake, "/v1/events", key=SK).status_code == 200
    fake.permissions[RK]["events"] = False  # may change while running
    assert get(fake, "/v1/events", key=RK).status_code == 403


def test_the_existing_constructor_still_works() -> None:
    acct = Account.generate(10, seed=1, end=T0, days=2)
    with FakeStripe(acct) as server:
        r = httpx.get(server.url + "/v1/events", headers={"Authorization": f"Bearer {RK}"}, timeout=10)
        assert r.status_code == 200 and r.json() == {"object": "list", "data": [], "has_more": False,
                                                     "url": "/v1/events"}


def test_generation_is_deterministic_and_has_open_states() -> None:
    a = Account.generate(40, seed=9, end=T0, days=5)
    b = Account.generate(40, seed=9, end=T0, days=5)
    assert [(r.id, r.created, r.f) for r in a.records["dispute"]] == [(r.id, r.created, r.f) for r in b.records["dispute"]]
    for acct in (a, Account.generate(3000, seed=2, end=T0, days=30)):
        assert len(acct.ids("dispute", status="needs_response")) >= 2
        assert acct.ids("dispute", status="under_review")
        assert len(acct.ids("refund", status="pending")) >= 2
        assert len(acct.ids("checkout.session", status="open")) >= 2
    with_events = Account.generate(40, seed=9, end=T0, days=5, events=True)
    kinds = {e.type for e in with_events.events}
    assert {"charge.succeeded", "customer.created", "payment_intent.created", "refund.created"} <= kinds
    assert sorted(with_events.by_id) == sorted(a.by_id)  # recording changes no object


def test_stripe_python_pages_the_fake_events(fake: FakeStripe) -> None:
    import stripe

    client = stripe.StripeClient(RK, base_addresses={"api": fake.url}, max_network_retries=0)
    got = [e.id for e in client.v1.events.list(params={"limit": 4}).auto_paging_iter()]
    assert got == newest_first(fake.account)
    assert client.v1.events.retrieve(got[0]).type == fake.account.events_by_id[got[0]].type
    with pytest.raises(stripe.PermissionError):
        stripe.StripeClient(NO_EVENTS, base_addresses={"api": fake.url}, max_network_retries=0).v1.events.list()


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict, str]] = []

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802
        from fake_stripe_api import _sign

        body = self.rfile.read(int(self.headers["content-length"]))
        header = self.headers.get("Stripe-Signature") or ""
        parts = dict(p.split("=", 1) for p in header.split(","))
        good = parts.get("v1") == _sign(body, SECRET, int(parts.get("t", "0")))
        if good:
            _Receiver.received.append((json.loads(body), header))
        self.send_response(200 if good else 400)
        self.send_header("Content-Length", "0")
        self.end_headers()


def test_deliver_signs_like_stripe(fake: FakeStripe) -> None:
    try:
        from paydash.sources.stripe.webhooks import verify_signature
    except ImportError:
        from paydash.sources.stripe_webhooks import verify_signature
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        _Receiver.received.clear()
        acct = fake.account
        mark = acct.latest_event_id()
        acct.close_dispute(acct.ids("dispute", status="needs_response")[0])
        acct.fail_refund(acct.ids("refund", status="pending")[0])
        missed = acct.events_since(mark)
        assert [e["type"] for e in missed] == ["charge.dispute.closed", "refund.failed"]
        assert deliver_all(url, missed, SECRET) == [200, 200]
        assert deliver(url, missed[0], "whsec_wrong") == 400
        assert [e for e, _ in _Receiver.received] == missed
        for event, header in _Receiver.received:  # paydash's own check accepts the signature
            payload = json.dumps(event).encode()
            t = int(header.split(",")[0][2:])
            assert verify_signature(payload, header, [SECRET], 300, now=t + 1) == t
        assert acct.events_since(acct.latest_event_id()) == []
    finally:
        server.shutdown()
        server.server_close()
