"""`paydash serve` over HTTP: the real command on a real port, as a browser or Stripe would reach it.

The sign-in gate, the sign-in page and its throttle, sessions in the state store (shared by two
servers, kept over a restart), Streamlit's websocket, the security headers, /healthz, and the
Stripe receiver on the dashboard's port on DuckDB and PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
import streamlit
import sqlalchemy as sa

from builders import not_on_clickhouse, pg_execute
from dashboard_db import build_dashboard_database
from paydash.settings import Settings
from paydash.sources.stripe.webhooks import sign
from paydash.state import open_state
from serve_process import Refused, clean_env, free_port, new_session_config, run_page, sign_in, start_serve
from stripe_objects import stripe_charge, stripe_event

PASSWORD = "team-password-for-http-tests"
SECRET = "whsec_serve_http_tests"
EVENTS_TOKEN = "events-token-for-http-tests-0123456789"
HEADERS = {
    "content-security-policy": "frame-ancestors 'self'",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


@pytest.fixture(scope="module")
def dashboard_db(tmp_path_factory) -> Path:  # noqa: ANN001
    return build_dashboard_database(tmp_path_factory.mktemp("serve-db") / "dashboard.duckdb", payments=1500, days=30)


@pytest.fixture(scope="module")
def served(dashboard_db: Path, tmp_path_factory):  # noqa: ANN001, ANN201
    """One server with the team password; tests use their own loopback source addresses."""
    server = start_serve(tmp_path_factory.mktemp("serve"), str(dashboard_db), {"PAYDASH_PASSWORD": PASSWORD})
    yield server
    server.stop()


def cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"paydash_session={token}"}


# one of the scripts Streamlit's frontend loads lazily (the name carries a content hash)
STREAMLIT_SCRIPT = next((Path(streamlit.__file__).parent / "static" / "static" / "js").glob("*.js")).name


def location(response: httpx.Response) -> str:
    assert response.status_code == 303, (response.status_code, response.text[:300])
    return response.headers["location"]


# -- the gate -------------------------------------------------------------------------------------
def test_a_stranger_is_sent_to_sign_in_and_gets_no_page_or_api(served) -> None:  # noqa: ANN001
    with served.client() as client:
        assert location(client.get("/")) == "/auth/login?next=%2F"
        deep = "/payments?status=failed&q=a%20b"
        assert location(client.get(deep)) == "/auth/login?next=" + quote(deep, safe="")
        # Streamlit's own API and assets without a session: 401, not a page
        assert client.get("/_stcore/host-config").status_code == 401
        # Streamlit's own scripts are the same for everyone (no data): open, and never a page
        asset = client.get("/static/js/" + STREAMLIT_SCRIPT)
        assert asset.status_code == 200 and "javascript" in asset.headers["content-type"]
        # a browser asking for a page under them is sent to sign in
        assert client.get("/_stcore/host-config", headers={"Accept": "text/html"}).status_code == 303
        # a forged cookie is no session
        forged = client.get("/", headers=cookie("not-a-session"))
        assert location(forged).startswith("/auth/login?next=%2F")
        # open to everyone: health checks and the sign-in page
        assert client.get("/_stcore/health").text.strip() == "ok"
        assert client.get("/healthz").json()["ok"] is True
        page = client.get("/auth/login?next=%2Fpayments")
        assert page.status_code == 200 and 'name="password"' in page.text
        assert 'name="username"' not in page.text  # the team password alone: no user name field
        assert "<script" not in page.text and "http" not in page.text.split("<main>")[0].split("<style>")[0]


def test_security_headers_on_every_response(served) -> None:  # noqa: ANN001
    token = sign_in(served, PASSWORD, source="127.0.0.9")
    with served.client() as client:
        responses = [client.get("/"), client.get("/auth/login"), client.get("/healthz"),
                     client.get("/", headers=cookie(token)),
                     client.get("/_stcore/health")]
    assert responses[3].status_code == 200 and "<html" in responses[3].text.lower()
    for response in responses:
        for name, value in HEADERS.items():
            assert response.headers.get(name) == value or (name == "content-security-policy"
                                                           and "frame-ancestors 'self'" in response.headers[name])


def test_a_deep_link_leads_back_where_it_pointed_after_sign_in(served) -> None:  # noqa: ANN001
    deep = "/payments?charge=ch_123&status=failed"
    with served.client("127.0.0.10") as client:
        login = location(client.get(deep))
        page = client.get(login)
        assert f'name="next" value="{deep.replace("&", "&amp;")}"' in page.text
        response = client.post("/auth/login", data={"password": PASSWORD, "next": deep})
        assert location(response) == deep
        set_cookie = response.headers["set-cookie"]
        assert set_cookie.startswith("paydash_session=")
        for attribute in ("HttpOnly", "Path=/", "SameSite=lax", "Max-Age=43200"):
            assert attribute in set_cookie
        assert "Secure" not in set_cookie  # plain http on loopback, no proxy trusted
        token = response.cookies["paydash_session"]
        assert client.get(deep, headers=cookie(token)).status_code == 200
        # signed in already: the sign-in page sends you straight on
        assert location(client.get("/auth/login?next=%2Foperations", headers=cookie(token))) == "/operations"
        # signing in again replaces the session (the old token ends)
        again = client.post("/auth/login", data={"password": PASSWORD}, headers=cookie(token))
        assert location(again) == "/" and again.cookies["paydash_session"] != token
        assert location(client.get("/", headers=cookie(token))).startswith("/auth/login")
        # X-Forwarded-Proto from a peer that is not a trusted proxy changes nothing
        forwarded = client.post("/auth/login", data={"password": PASSWORD}, headers={"X-Forwarded-Proto": "https"})
        assert "Secure" not in forwarded.headers["set-cookie"]
        # never to another site, nor back into the sign-in flow
        for unsafe in ("//evil.example/x", "https://evil.example/", "/\\evil.example", "/auth/logout", "payments"):
            assert location(client.post("/auth/login", data={"password": PASSWORD, "next": unsafe})) == "/"


def test_overview_by_its_name_goes_to_the_default_page(served) -> None:  # noqa: ANN001
    # Streamlit serves the default page at / only; /overview there would show "Page not found"
    with served.client("127.0.0.11") as client:
        assert location(client.get("/overview?range=7d")) == "/auth/login?next=" + quote("/overview?range=7d", safe="")
        token = client.post("/auth/login", data={"password": PASSWORD}).cookies["paydash_session"]
        moved = client.get("/overview?range=7d&funnel=a%20b", headers=cookie(token))
        assert (moved.status_code, moved.headers["location"]) == (308, "/?range=7d&funnel=a%20b")
        moved = client.get("/overview", headers=cookie(token))
        assert (moved.status_code, moved.headers["location"]) == (308, "/")


def test_a_wrong_password_shows_the_page_again_with_a_message(served) -> None:  # noqa: ANN001
    with served.client("127.0.0.11") as client:
        response = client.post("/auth/login", data={"password": "not the password", "next": "/operations"})
    assert response.status_code == 401
    assert "Wrong password." in response.text and 'value="/operations"' in response.text
    assert "set-cookie" not in response.headers
    audit = open_state(Settings({"state_url": str(served.workdir / "data" / "state.sqlite")})).audit
    entries = [e for e in audit.page(_filter()).entries if e.action == "login_failed"]
    assert any("127.0.0.11" in e.detail for e in entries)


def _filter():  # noqa: ANN202
    from paydash.state.audit import AuditFilter

    return AuditFilter()


def test_a_form_from_another_site_is_refused(served) -> None:  # noqa: ANN001
    with served.client("127.0.0.12") as client:
        response = client.post("/auth/login", data={"password": PASSWORD}, headers={"Origin": "https://evil.example"})
        assert response.status_code == 403 and "set-cookie" not in response.headers
        same = client.post("/auth/login", data={"password": PASSWORD}, headers={"Origin": served.url})
        assert same.status_code == 303


def test_the_throttle_locks_out_one_client_not_the_team(served) -> None:  # noqa: ANN001
    with served.client("127.0.0.2") as attacker:
        statuses = [attacker.post("/auth/login", data={"password": f"guess-{i}"}).status_code for i in range(5)]
        assert statuses == [401, 401, 401, 401, 429]
        refused = attacker.post("/auth/login", data={"password": PASSWORD})  # even the right one, now
        assert refused.status_code == 429 and "set-cookie" not in refused.headers
        assert 240 <= int(refused.headers["retry-after"]) <= 300
        assert "try again in 5 minutes" in refused.text
    # the rest of the team signs in with the same team password from their own address
    with served.client("127.0.0.3") as colleague:
        assert location(colleague.post("/auth/login", data={"password": PASSWORD})) == "/"


def test_x_forwarded_for_is_ignored_from_a_peer_that_is_not_a_trusted_proxy(served) -> None:  # noqa: ANN001
    with served.client("127.0.0.4") as client:
        statuses = [client.post("/auth/login", data={"password": "wrong"},
                                headers={"X-Forwarded-For": f"10.9.9.{i}"}).status_code for i in range(5)]
    assert statuses[-1] == 429  # every attempt counted against the socket's peer, whatever the header said


def test_sign_out_ends_the_session_on_the_server(served) -> None:  # noqa: ANN001
    token = sign_in(served, PASSWORD, source="127.0.0.13")
    with served.client("127.0.0.13") as client:
        assert client.get("/", headers=cookie(token)).status_code == 200
        # from another site: refused, the session goes on
        foreign = client.post("/auth/logout", headers={**cookie(token), "Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert client.get("/", headers=cookie(token)).status_code == 200
        out = client.post("/auth/logout", headers=cookie(token))
        assert location(out) == "/auth/login?ended=signed_out"
        assert 'paydash_session=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
        assert "You are signed out." in client.get("/auth/login?ended=signed_out").text
        # the old cookie, replayed, is no session any more
        again = client.get("/payments", headers=cookie(token))
        assert location(again).startswith("/auth/login?next=%2Fpayments")
        with pytest.raises(Refused) as refused:
            run_page(served, token)
        assert refused.value.status == 403
    audit = open_state(Settings({"state_url": str(served.workdir / "data" / "state.sqlite")})).audit
    assert any(e.action == "logout" and "127.0.0.13" in e.detail for e in audit.page(_filter()).entries)


def test_streamlits_websocket_needs_a_session_and_the_same_origin(served) -> None:  # noqa: ANN001
    with pytest.raises(Refused) as stranger:
        run_page(served, None)
    assert stranger.value.status == 403
    token = sign_in(served, PASSWORD, source="127.0.0.14")
    for origin in ("https://evil.example", f"http://127.0.0.1:{free_port()}", "null"):
        with pytest.raises(Refused) as foreign:
            run_page(served, token, origin=origin)
        assert foreign.value.status == 403, origin
    page = run_page(served, token, origin=served.url)  # the dashboard's own page
    assert b"Overview" in page


def test_the_table_toolbar_offers_no_csv_download(served) -> None:  # noqa: ANN001
    """client.disableDataExport as the browser receives it (its "Download as CSV" skips neutralisation)."""
    config = new_session_config(served, sign_in(served, PASSWORD, source="127.0.0.15"))
    assert config.disable_data_export is True
    assert config.gather_usage_stats is False


# -- named users and a trusted proxy ------------------------------------------------------------------
def test_named_users_and_a_trusted_proxy(dashboard_db: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "users"
    state = Settings({"state_url": str(workdir / "data" / "state.sqlite")})
    store = open_state(state)
    store.users.add("alice", "alice-password-1", "admin")
    store.users.add("victor", "victor-password-1", "viewer")
    server = start_serve(workdir, str(dashboard_db), {"PAYDASH_PASSWORD": PASSWORD,
                                                      "PAYDASH_TRUSTED_PROXIES": "127.0.0.7, 10.1.0.0/16"})
    try:
        with server.client("127.0.0.7") as proxy:
            page = proxy.get("/auth/login")
            assert 'name="username"' in page.text
            # once named users exist the team password is not accepted
            team = proxy.post("/auth/login", data={"password": PASSWORD}, headers={"X-Forwarded-For": "192.0.2.1"})
            assert team.status_code == 401 and "Enter your user name" in team.text
            # through the proxy: the client is the rightmost hop that is not a trusted proxy
            for i in range(5):
                wrong = proxy.post("/auth/login", data={"username": "alice", "password": f"x{i}"},
                                   headers={"X-Forwarded-For": "203.0.113.9, 192.0.2.66, 10.1.2.3"})
            assert wrong.status_code == 429
            # another client behind the same proxy, same user: not locked out
            ok = proxy.post("/auth/login", data={"username": "ALICE", "password": "alice-password-1"},
                            headers={"X-Forwarded-For": "192.0.2.77", "X-Forwarded-Proto": "https"})
            assert location(ok) == "/"
            assert "Secure" in ok.headers["set-cookie"]  # https as the trusted proxy saw it
            # the spoofable leftmost hop changed, the real client did not: still locked
            spoofed = proxy.post("/auth/login", data={"username": "alice", "password": "alice-password-1"},
                                 headers={"X-Forwarded-For": "198.51.100.1, 192.0.2.66"})
            assert spoofed.status_code == 429
        entries = store.audit.page(_filter()).entries
        assert any(e.action == "login_failed" and "192.0.2.66" in e.detail for e in entries)
        # a role change ends the session at its next request
        viewer = sign_in(server, "victor-password-1", username="victor", source="127.0.0.8")
        with server.client("127.0.0.8") as client:
            assert client.get("/", headers=cookie(viewer)).status_code == 200
            store.users.add("victor", "victor-password-1", "admin")
            assert location(client.get("/", headers=cookie(viewer))).startswith("/auth/login")
    finally:
        assert server.stop() == 0, server.output()


# -- /healthz -------------------------------------------------------------------------------------
def test_healthz_is_503_while_the_database_is_down_and_the_receiver_answers_503(tmp_path: Path) -> None:
    closed = free_port()
    server = start_serve(tmp_path / "pg-down", f"postgresql://paydash:s3cretpw@127.0.0.1:{closed}/none",
                         {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_STRIPE_WEBHOOK_SECRET": SECRET,
                          "PAYDASH_CONNECT_TIMEOUT": "2"})
    try:
        with server.client() as client:
            health = client.get("/healthz")
            assert health.status_code == 503
            body = health.json()
            assert body["ok"] is False and body["state"]["ok"] is True
            assert body["database"]["ok"] is False and "cannot reach the database" in body["database"]["error"]
            assert "\n" not in body["database"]["error"] and "s3cretpw" not in health.text
            assert body["receiver"]["ok"] is False
            payload = json.dumps(stripe_event("evt_down", "charge.succeeded",
                                              stripe_charge("ch_down", int(time.time()) - 60))).encode()
            delivery = client.post("/webhooks/stripe", content=payload,
                                   headers={"Stripe-Signature": f"t={int(time.time())},v1={sign(payload, SECRET, int(time.time()))}"})
            assert delivery.status_code == 503  # Stripe delivers it again later
            assert location(client.get("/")).startswith("/auth/login")  # the gate does not need the warehouse
        assert "s3cretpw" not in server.output()
    finally:
        assert server.stop() == 0, server.output()


def test_healthz_is_503_while_the_state_store_is_down(dashboard_db: Path, tmp_path: Path) -> None:
    server = start_serve(tmp_path / "state-down", str(dashboard_db), {
        "PAYDASH_PASSWORD": PASSWORD, "PAYDASH_CONNECT_TIMEOUT": "2",
        "PAYDASH_STATE_URL": f"postgresql://paydash:s3cretpw@127.0.0.1:{free_port()}/state"})
    try:
        with server.client() as client:
            health = client.get("/healthz")
            assert health.status_code == 503
            body = health.json()
            assert body["database"]["ok"] is True and body["state"]["ok"] is False
            assert "s3cretpw" not in health.text and "\n" not in body["state"]["error"]
            # nobody can be let in without the store: said plainly, not a traceback
            assert location(client.get("/")).startswith("/auth/login")
            assert client.get("/", headers=cookie("some-token")).status_code == 503
            page = client.get("/auth/login")
            assert page.status_code == 503 and "state store cannot be reached" in page.text
            assert client.post("/auth/login", data={"password": PASSWORD}).status_code == 503
        assert "Traceback" not in server.output()
    finally:
        assert server.stop() == 0, server.output()


# -- the receiver on the dashboard's port -----------------------------------------------------------
def _deliver(client: httpx.Client, event: dict, secret: str = SECRET) -> httpx.Response:
    payload = json.dumps(event).encode()
    now = int(time.time())
    return client.post("/webhooks/stripe", content=payload,
                       headers={"Stripe-Signature": f"t={now},v1={sign(payload, secret, now)}",
                                "Content-Type": "application/json"})


def _paydash(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "paydash.cli", *args], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=300)


def test_webhooks_on_the_dashboards_port_reach_the_dashboard(new_database, tmp_path: Path) -> None:  # noqa: ANN001
    db = new_database()
    not_on_clickhouse(db.kind, "the webhook receiver does not run on ClickHouse: `paydash serve` refuses to start it "
                      "on a ClickHouse URL (and a served subprocess could not open the session's chdb directory)")
    tables = {"PAYDASH_PAYMENTS_TABLE": db.settings.payments_table, "PAYDASH_DAILY_TABLE": db.settings.daily_table}
    # a payments read is cached 1 s, so a read made before the marts caught up is soon made again
    env = {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_STRIPE_WEBHOOK_SECRET": SECRET, "PAYDASH_CACHE_TTL_EXPLORER": "1",
           "PAYDASH_EVENTS_TOKEN": EVENTS_TOKEN, **tables}
    workdir = tmp_path / "hooks"
    if db.kind == "duckdb":
        assert not Path(db.url.removeprefix("duckdb:///")).exists()  # serve creates the tables on a new file
    server = start_serve(workdir, db.url, env)
    created = int(time.time()) - 600
    try:
        with server.client() as client:
            # public for Stripe's POST only; anything else meets the sign-in gate
            assert location(client.get("/webhooks/stripe")) == "/auth/login?next=%2Fwebhooks%2Fstripe"
            first = stripe_charge("ch_served_1", created, "failed", payment_intent="pi_served", failure_code="card_declined")
            won = stripe_charge("ch_served_2", created + 60, payment_intent="pi_served")
            answers = [_deliver(client, stripe_event("evt_served_1", "charge.failed", first)),
                       _deliver(client, stripe_event("evt_served_2", "charge.succeeded", won)),
                       _deliver(client, stripe_event("evt_served_1", "charge.failed", first))]
            assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
            assert [a.json()["duplicate"] for a in answers] == [False, False, True]
            assert _deliver(client, stripe_event("evt_bad", "charge.failed", first), "whsec_wrong").status_code == 400
            # POST /events and GET /metrics as `paydash webhooks` serves them (their own authentication)
            receipt = json.dumps({"event_id": "ord-served-1", "event_name": "receipt_generated",
                                  "occurred_at": "2026-03-02T11:59:00Z", "outcome": "succeeded"})
            assert client.post("/events", content=receipt, headers={"Authorization": "Bearer wrong"}).status_code == 401
            posted = [client.post("/events", content=receipt, headers={"Authorization": f"Bearer {EVENTS_TOKEN}"})
                      for _ in range(2)]
            assert [p.json() for p in posted] == [{"received": 1, "stored": 1, "duplicates": 0},
                                                  {"received": 1, "stored": 0, "duplicates": 1}]
            metrics = client.get("/metrics")
            assert metrics.status_code == 200 and "# TYPE" in metrics.text
            # the dashboard reads what the receiver wrote, in the same process (DuckDB: the same file)
            health = client.get("/healthz").json()
            assert health["ok"] is True and health["receiver"]["ok"] is True, health
            token = sign_in(server, PASSWORD)
            deadline = time.monotonic() + 60
            while b"ch_served_2" not in (page := run_page(server, token, "payments")) and time.monotonic() < deadline:
                time.sleep(1)  # the marts follow the stored events within about a second
            assert b"ch_served_2" in page
    finally:
        assert server.stop() == 0, server.output()
    # once stopped (receiver flushed), the CLI sees both payments, each stored once
    shown = _paydash("query", "payment", "ch_served_1", "--json", "--db", db.url, env=tables, cwd=workdir)
    assert shown.returncode == 0, shown.stderr
    detail = json.loads(shown.stdout)
    assert [row["charge_id"] for row in detail["retry_history"]] == ["ch_served_1", "ch_served_2"]
    assert detail["payment_outcome"] == "recovered"
    from paydash.warehouse.engine import Warehouse
    from paydash.warehouse.raw import raw_tables

    wh = Warehouse(db.url, db.settings)
    try:
        with wh.read() as conn:
            events = raw_tables(wh.marts.payments.schema).events
            assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 2
    finally:
        wh.dispose()


# -- state shared by servers ------------------------------------------------------------------------
@pytest.fixture
def pg_state(pg_url: str):  # noqa: ANN201
    """A PostgreSQL database of its own for one state store."""
    name = f"{sa.make_url(pg_url).database}_state_{free_port()}"
    pg_execute(pg_url, f'CREATE DATABASE "{name}"')
    yield sa.make_url(pg_url).set(database=name).render_as_string(False)
    from paydash.state.store import close_all

    close_all()
    pg_execute(pg_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.postgres
def test_two_servers_on_one_postgresql_state_store_share_sessions_and_lockouts(
        dashboard_db: Path, pg_state: str, tmp_path: Path) -> None:
    env = {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_STATE_URL": pg_state}
    one = start_serve(tmp_path / "one", str(dashboard_db), env)
    try:
        two = start_serve(tmp_path / "two", str(dashboard_db), env)
        try:
            token = sign_in(one, PASSWORD, source="127.0.0.20")
            with two.client("127.0.0.20") as client:
                assert client.get("/", headers=cookie(token)).status_code == 200
            with one.client("127.0.0.21") as attacker:
                assert [attacker.post("/auth/login", data={"password": "no"}).status_code for _ in range(5)][-1] == 429
            with two.client("127.0.0.21") as attacker:
                assert attacker.post("/auth/login", data={"password": PASSWORD}).status_code == 429
            with two.client("127.0.0.22") as colleague:
                assert colleague.post("/auth/login", data={"password": PASSWORD}).status_code == 303
            with two.client("127.0.0.20") as client:  # signed out on one server: out on both
                assert client.post("/auth/logout", headers=cookie(token)).status_code == 303
            with one.client("127.0.0.20") as client:
                assert location(client.get("/", headers=cookie(token))).startswith("/auth/login")
        finally:
            assert two.stop() == 0, two.output()
    finally:
        assert one.stop() == 0, one.output()


def test_a_restarted_server_keeps_everyone_signed_in(dashboard_db: Path, tmp_path: Path) -> None:
    workdir = tmp_path / "restart"
    env = {"PAYDASH_PASSWORD": PASSWORD}
    first = start_serve(workdir, str(dashboard_db), env)
    try:
        token = sign_in(first, PASSWORD)
    finally:
        assert first.stop() == 0, first.output()
    second = start_serve(workdir, str(dashboard_db), env, port=first.port)
    try:
        with second.client() as client:
            assert client.get("/payments", headers=cookie(token)).status_code == 200
    finally:
        assert second.stop() == 0, second.output()
    # nothing in the state store holds the token itself
    raw = (workdir / "data" / "state.sqlite").read_bytes()
    assert token.encode() not in raw and PASSWORD.encode() not in raw


def test_a_busy_port_is_an_error_not_another_port(dashboard_db: Path, tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1",
                               "--port", str(port), "--db", str(dashboard_db)], cwd=tmp_path,
                              env=clean_env(PAYDASH_PASSWORD=PASSWORD), capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.strip() == (f"error: port {port} on 127.0.0.1 is already in use; stop what uses it or "
                                   "choose another with --port (or $PORT)")


def test_with_the_receiver_serve_refuses_a_duckdb_file_another_process_holds(tmp_path: Path) -> None:
    """On the embedded file, serve with the receiver must be its only opener: said at start, in one line."""
    path = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys; c = duckdb.connect(sys.argv[1]); print('held', flush=True); "
                               "sys.stdin.read()", str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run([sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1", "--port",
                               str(free_port()), "--db", str(path)], cwd=tmp_path, capture_output=True, text=True,
                              env=clean_env(PAYDASH_PASSWORD=PASSWORD, PAYDASH_STRIPE_WEBHOOK_SECRET=SECRET), timeout=120)
    finally:
        holder.stdin.close()
        holder.wait(30)
    assert done.returncode == 1
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith("error: the webhook receiver cannot open the database: the DuckDB file")
    assert "locked by another process" in error and "Traceback" not in done.stderr
    assert "paydash is running at" not in done.stdout


def test_serve_with_alerts_evaluates_the_rules_beside_the_receiver_on_one_duckdb_file(tmp_path: Path) -> None:
    """On an embedded DuckDB file the served receiver holds, no other process may open the file:
    `paydash serve --alerts` evaluates the rules in the same process, through the same instance."""
    workdir = tmp_path / "alerts"
    db = workdir / "paydash.duckdb"  # new: serve creates the tables the receiver writes
    server = start_serve(workdir, str(db), {"PAYDASH_PASSWORD": PASSWORD, "PAYDASH_STRIPE_WEBHOOK_SECRET": SECRET},
                         args=("--alerts", "--alerts-interval", "1"))
    store = open_state(Settings({"state_url": str(workdir / "data" / "state.sqlite")})).alerts
    try:
        deadline = time.monotonic() + 90
        evaluated: list = []
        while not evaluated and time.monotonic() < deadline:
            evaluated = [s for s in store.current_states() if s["evaluated_at"]]
            time.sleep(0.5)
        assert evaluated, f"no rule was evaluated:\n{server.output()[-3000:]}"
        with server.client() as client:
            charge = stripe_charge("ch_alerts_1", int(time.time()) - 60, "failed", payment_intent="pi_alerts",
                                   failure_code="card_declined")
            assert _deliver(client, stripe_event("evt_alerts_1", "charge.failed", charge)).status_code == 200
        first = {s["rule"]: s["evaluated_at"] for s in evaluated}
        later: dict = {}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # evaluations go on beside the receiver's writes
            later = {s["rule"]: s["evaluated_at"] for s in store.current_states()}
            if any(later[r] != first[r] for r in first if r in later):
                break
            time.sleep(0.5)
        assert any(later.get(r) != first[r] for r in first), "the rules were evaluated only once"
        assert "evaluation failed" not in server.output(), server.output()[-3000:]
    finally:
        assert server.stop() in (0, None)
    assert "Traceback" not in server.output()


def test_make_demo_builds_serves_on_port_and_its_printed_login_signs_in(tmp_path: Path) -> None:
    """What `make demo` runs: `paydash demo` with $PORT, as a subprocess; the printed address and
    one-run password are the real ones."""
    import os
    import re
    import signal

    port = free_port()
    log = tmp_path / "demo.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "paydash.cli", "demo", "--payments", "3000", "--days", "10"],
                                   cwd=tmp_path, env={**clean_env(), "PORT": str(port)}, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "demo login: password" not in log.read_text():
            assert process.poll() is None, f"paydash demo exited with {process.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        assert f"paydash is running at http://127.0.0.1:{port}" in text
        password = re.search(r"demo login: password (\S+)", text).group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            assert location(client.get("/payments")) == "/auth/login?next=%2Fpayments"
            signed = client.post("/auth/login", data={"password": password, "next": "/payments"})
            assert location(signed) == "/payments"
            assert client.get("/payments").status_code == 200  # the cookie opens the page
            assert client.get("/healthz").json()["ok"] is True
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=60)
    assert process.returncode == 0, log.read_text()[-2000:]
    assert "Traceback" not in log.read_text()
