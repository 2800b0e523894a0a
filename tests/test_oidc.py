"""Sign-in with the team's identity provider (OIDC, paydash/app/oidc.py).

The rules (who gets which role, what the configuration check says, the sealed flow cookie)
are tested as pure functions; the flow itself end to end: the real `paydash serve` on a
free port, a real fake provider on loopback (tests/fake_oidc.py), and an httpx client that
follows the redirects as a browser does: /auth/oidc/login -> the provider's /authorize ->
/auth/oidc/callback -> 303 with the `paydash_session` cookie -> `/` served. One Playwright
test does the same in Chromium.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from browser.dashboard_server import CHROMIUM, CHROMIUM_ARGS, IN_CI, Server, free_port, start_server
from dashboard_db import build_dashboard_database
from fake_oidc import FakeOIDCProvider, s256
from paydash.app import oidc
from paydash.settings import Settings
from paydash.state import open_state
from paydash.state.audit import AuditFilter
from paydash.state.models import SessionRules

ADMIN = "Boss@Corp.Test"  # written with capitals in the setting: emails compare lower-cased
BASE_SETTINGS = {
    "oidc_issuer": "https://idp.example.com",
    "oidc_client_id": "paydash",
    "oidc_client_secret": "s3cret",
    "oidc_allowed_domains": "example.com, @example.org",
    "oidc_admin_emails": f"{ADMIN},root@example.com",
}


def settings(**changes: str) -> Settings:
    return Settings({**BASE_SETTINGS, **changes})


# -- rules ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("email", "role"), [
    ("ann@example.com", "viewer"),
    ("  Ann@Example.COM ", "viewer"),
    ("bob@example.org", "viewer"),  # a domain written with its @
    ("boss@corp.test", "admin"),  # an admin email outside the allowed domains
    ("BOSS@corp.test", "admin"),
    ("root@example.com", "admin"),  # admin wins over the domain's viewer
    ("eve@other.test", None),
    ("eve@sub.example.com", None),  # subdomains are other domains
    ("eve@example.com.evil.test", None),
    ("example.com", None),
    ("@example.com", None),
    ("", None),
])
def test_role_for_email(email: str, role: str | None) -> None:
    assert oidc.oidc_role_for(email, settings()) == role


def test_a_session_stays_valid_only_while_its_email_gets_the_same_role() -> None:
    assert oidc.oidc_session_still_allowed("ann@example.com", "viewer", settings())
    assert not oidc.oidc_session_still_allowed("ann@example.com", "viewer", settings(oidc_allowed_domains="example.org"))
    assert not oidc.oidc_session_still_allowed("root@example.com", "viewer", settings())  # made admin since
    assert not oidc.oidc_session_still_allowed("boss@corp.test", "admin", settings(oidc_admin_emails=""))
    assert not oidc.oidc_session_still_allowed("ann@example.com", "viewer", settings(oidc_client_secret=""))


@pytest.mark.parametrize(("changes", "problem"), [
    ({}, None),
    ({"oidc_issuer": "", "oidc_client_id": "", "oidc_client_secret": ""}, None),  # off
    ({"oidc_client_secret": ""}, "PAYDASH_OIDC_CLIENT_SECRET is missing; set it, or unset PAYDASH_OIDC_ISSUER "
                                 "and PAYDASH_OIDC_CLIENT_ID"),
    ({"oidc_issuer": "", "oidc_client_id": ""}, "PAYDASH_OIDC_ISSUER and PAYDASH_OIDC_CLIENT_ID are missing"),
    ({"oidc_allowed_domains": "", "oidc_admin_emails": ""}, "lets no one in: set PAYDASH_OIDC_ALLOWED_DOMAINS"),
    ({"oidc_admin_emails": "bob"}, "PAYDASH_OIDC_ADMIN_EMAILS: 'bob' is not an email address"),
    ({"oidc_allowed_domains": "localhost"}, "PAYDASH_OIDC_ALLOWED_DOMAINS: 'localhost' is not an email domain"),
])
def test_configuration_check_names_what_is_missing(changes: dict, problem: str | None) -> None:
    found = oidc.oidc_config_problem(settings(**changes))
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
    assert oidc.oidc_enabled(settings(**changes)) == (not any(
        k in changes for k in ("oidc_issuer", "oidc_client_id", "oidc_client_secret")))


def test_the_flow_cookie_is_sealed() -> None:
    flow = {"state": "st4te", "nonce": "n0nce", "verifier": "v" * 64, "redirect_uri": "http://x/cb", "next": "/",
            "started": 1000.0}
    sealed = oidc.seal_flow(settings(), flow)
    assert oidc.open_flow(settings(), sealed, 1000.0 + 5) == flow
    for secret in ("st4te", "n0nce", "vvvv"):  # not readable by the browser
        assert secret not in sealed
    assert oidc.open_flow(settings(), sealed, 1000.0 + oidc.FLOW_LIFETIME + 1) is None  # too old
    assert oidc.open_flow(settings(oidc_client_secret="rolled"), sealed, 1005.0) is None  # other key
    flipped = sealed[:20] + ("A" if sealed[20] != "A" else "B") + sealed[21:]
    assert oidc.open_flow(settings(), flipped, 1005.0) is None  # altered
    assert oidc.open_flow(settings(), "", 1005.0) is None
    assert oidc.open_flow(settings(), "not base64 !!", 1005.0) is None


# -- end to end through `paydash serve` ----------------------------------------------------
@dataclass
class Dashboard:
    server: Server
    state: Settings  # the settings that open the same state store as the server

    @property
    def url(self) -> str:
        return self.server.url


@pytest.fixture(scope="module")
def idp() -> Iterator[FakeOIDCProvider]:
    with FakeOIDCProvider(client_id="paydash-test", client_secret="fake-oidc-secret-1234") as provider:
        yield provider


@pytest.fixture(autouse=True)
def _good_provider(request) -> None:  # noqa: ANN001
    if "idp" in request.fixturenames:
        request.getfixturevalue("idp").reset()


def serve_env(idp: FakeOIDCProvider, state: Path, **extra: str) -> dict[str, str]:
    return {
        "PAYDASH_PASSWORD": "oidc-test-team-password",
        "PAYDASH_STATE_URL": str(state),
        "PAYDASH_OIDC_ISSUER": idp.issuer,
        "PAYDASH_OIDC_CLIENT_ID": idp.client_id,
        "PAYDASH_OIDC_CLIENT_SECRET": idp.client_secret,
        "PAYDASH_OIDC_ALLOWED_DOMAINS": "example.com",
        "PAYDASH_OIDC_ADMIN_EMAILS": ADMIN,
        "PAYDASH_OIDC_PROVIDER_NAME": "Fake IdP",
        **extra,
    }


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:  # noqa: ANN001
    return build_dashboard_database(tmp_path_factory.mktemp("oidc-db") / "dash.duckdb", payments=300, days=30)


@pytest.fixture(scope="module")
def dashboard(idp: FakeOIDCProvider, db: Path, tmp_path_factory) -> Iterator[Dashboard]:  # noqa: ANN001
    work = tmp_path_factory.mktemp("oidc-serve")
    state = work / "state.sqlite"
    server = start_server(db, work, serve_env(idp, state))
    try:
        yield Dashboard(server, Settings({"state_url": str(state)}))
    finally:
        server.stop()


def client() -> httpx.Client:
    return httpx.Client(follow_redirects=False, timeout=30.0)


def to_provider(c: httpx.Client, dashboard: Dashboard, next_path: str = "/") -> httpx.Response:
    """GET /auth/oidc/login: the redirect to the provider's /authorize."""
    start = c.get(f"{dashboard.url}/auth/oidc/login", params={"next": next_path})
    assert start.status_code == 302, f"{start.status_code}: {start.text[:500]}\n{dashboard.server.output()[-3000:]}"
    return start


def approve(c: httpx.Client, start: httpx.Response) -> str:
    """The provider approves: the callback URL it sends the browser back to."""
    approved = c.get(start.headers["location"])
    assert approved.status_code == 302, approved.text
    return approved.headers["location"]


def sign_in(c: httpx.Client, dashboard: Dashboard, next_path: str = "/") -> httpx.Response:
    return c.get(approve(c, to_provider(c, dashboard, next_path)))


def problem_line(response: httpx.Response) -> str:
    found = re.search(r'<p class="problem">(.*?)</p>', response.text, re.S)
    assert found, response.text[:1000]
    return found.group(1)


def session_of(dashboard: Dashboard, response: httpx.Response):  # noqa: ANN201
    token = response.cookies.get("paydash_session")
    assert token, f"no session cookie: {response.status_code} {response.headers}"
    lookup = open_state(dashboard.state).sessions.get(token, time.time(), SessionRules(), touch=False)
    assert lookup.session is not None, lookup.problem
    return lookup.session


def failed_sign_ins(dashboard: Dashboard) -> list[tuple[str, str]]:
    page = open_state(dashboard.state).audit.page(AuditFilter(action="login_failed"), page_size=500)
    return [(e.username, e.detail) for e in page.entries]


def assert_is_served(c: httpx.Client, dashboard: Dashboard) -> None:
    page = c.get(f"{dashboard.url}/")
    assert page.status_code == 200, (page.status_code, page.headers.get("location"))


def test_a_viewer_signs_in_and_the_dashboard_is_served(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    with client() as stranger:
        refused = stranger.get(f"{dashboard.url}/")
        assert refused.status_code in (302, 303, 307) and "/auth/login" in refused.headers["location"]
    with client() as c:
        start = to_provider(c, dashboard, "/Payments?status=failed")
        authorize = parse_qs(urlsplit(start.headers["location"]).query)
        assert start.headers["location"].startswith(idp.issuer + "/authorize?")
        assert authorize["redirect_uri"] == [f"{dashboard.url}/auth/oidc/callback"]
        assert authorize["code_challenge_method"] == ["S256"] and authorize["nonce"][0] and authorize["state"][0]
        flow_cookie = start.headers["set-cookie"]
        assert "paydash_oidc_flow=" in flow_cookie and "HttpOnly" in flow_cookie and "Path=/auth/oidc" in flow_cookie
        assert "samesite=lax" in flow_cookie.lower()
        assert authorize["state"][0] not in flow_cookie  # sealed, not readable

        done = c.get(approve(c, start))
        assert done.status_code == 303, done.text[:500]
        assert done.headers["location"] in ("/Payments?status=failed", f"{dashboard.url}/Payments?status=failed")
        session = session_of(dashboard, done)
        assert (session.username, session.role, session.method) == ("ann@example.com", "viewer", "oidc")
        assert "paydash_oidc_flow" not in c.cookies  # used once, then dropped
        assert_is_served(c, dashboard)

        # PKCE: the verifier paydash sent matches the challenge it made
        verifier = idp.token_requests[-1]["code_verifier"]
        assert s256(verifier) == authorize["code_challenge"][0]
        assert idp.token_requests[-1]["_auth"] in ("basic", "post")


def test_an_admin_email_gets_admin(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    idp.reset(email="boss@corp.test")
    with client() as c:
        done = sign_in(c, dashboard)
        assert done.status_code == 303
        session = session_of(dashboard, done)
        assert (session.username, session.role, session.method) == ("boss@corp.test", "admin", "oidc")
        assert_is_served(c, dashboard)
    with client() as c:  # `next` elsewhere: signed in, but sent home, not to another site
        done = sign_in(c, dashboard, "https://evil.test/phish")
        assert done.status_code == 303 and done.headers["location"] in ("/", f"{dashboard.url}/")


def test_another_domain_is_refused(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    idp.reset(email="eve@other.test")
    with client() as c:
        done = sign_in(c, dashboard)
        assert done.status_code == 403
        assert "paydash_session" not in done.cookies
        assert problem_line(done) == ("your account (eve@other.test) is not allowed here; "
                                      "ask an admin to add your domain")
        assert 'href="/auth/login"' in done.text
        refused = c.get(f"{dashboard.url}/")
        assert refused.status_code in (302, 303, 307)
    assert ("eve@other.test", "oidc: email not allowed (domain or admin list)") in failed_sign_ins(dashboard)


def test_an_unverified_email_is_refused(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    idp.reset(email="ann@example.com", email_verified=False)
    with client() as c:
        done = sign_in(c, dashboard)
        assert done.status_code == 403 and "paydash_session" not in done.cookies
        assert "is not verified" in problem_line(done)


def test_the_email_may_come_from_userinfo(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    idp.misbehave["no_email_in_id_token"] = True
    with client() as c:
        done = sign_in(c, dashboard)
        assert done.status_code == 303
        assert session_of(dashboard, done).username == "ann@example.com"


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_a_tampered_state_is_refused(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    with client() as c:
        callback = approve(c, to_provider(c, dashboard))
        done = c.get(_with_query(callback, state="forged-state"))
        assert done.status_code == 400 and "paydash_session" not in done.cookies
        assert "does not match this sign-in (state)" in problem_line(done)
    assert not idp.token_requests  # refused before the code was exchanged
    with client() as other_browser:  # a callback without the flow cookie: started elsewhere
        callback = approve(other_browser, to_provider(other_browser, dashboard))
    with client() as c:
        done = c.get(callback)
        assert done.status_code == 400
        assert "was not started in this browser" in problem_line(done)
    assert any(detail == "oidc: state does not match the flow cookie" for _, detail in failed_sign_ins(dashboard))


def test_a_code_redeemed_with_another_flow_s_verifier_is_refused_by_the_provider(dashboard: Dashboard,
                                                                                   idp: FakeOIDCProvider) -> None:
    """A stolen code injected into another browser's sign-in: paydash sends that browser's PKCE
    verifier, which does not match the victim's challenge, so the provider refuses the code."""
    with client() as victim, client() as attacker:
        victim_callback = approve(victim, to_provider(victim, dashboard))
        attacker_callback = approve(attacker, to_provider(attacker, dashboard))
        stolen_code = parse_qs(urlsplit(victim_callback).query)["code"][0]
        done = attacker.get(_with_query(attacker_callback, code=stolen_code))
        assert done.status_code == 502 and "paydash_session" not in done.cookies
        assert problem_line(done) == ("your identity provider refused the sign-in: invalid_grant "
                                      "(PKCE verification failed); start again")
    sent = idp.token_requests[-1]
    assert sent["code"] == stolen_code and sent["code_verifier"]  # paydash did send a verifier
    assert ("(oidc)", "oidc: token request refused: invalid_grant (PKCE verification failed)") in failed_sign_ins(dashboard)


@pytest.mark.parametrize(("misbehave", "message"), [
    ({"audience": "another-app"}, "was issued for another application (audience)"),
    ({"expired": True}, "has expired"),
    ({"bad_signature": True}, "has a bad signature"),
    ({"unknown_kid": True}, "is signed with an unknown key"),
    ({"nonce": "someone-elses-nonce"}, "does not belong to this sign-in (nonce)"),
    ({"issuer": "http://127.0.0.1:1/another-issuer"}, "was issued by another provider (issuer)"),
])
def test_a_bad_id_token_is_refused_with_a_message(dashboard: Dashboard, idp: FakeOIDCProvider, misbehave: dict,
                                                 message: str) -> None:
    idp.misbehave.update(misbehave)
    with client() as c:
        done = sign_in(c, dashboard)
        assert done.status_code == 401 and "paydash_session" not in done.cookies
        line = problem_line(done)
        assert line.startswith("the sign-in token from your identity provider ") and message in line
        assert "Traceback" not in done.text
        refused = c.get(f"{dashboard.url}/")
        assert refused.status_code in (302, 303, 307)


def test_the_provider_saying_no_is_shown(dashboard: Dashboard) -> None:
    with client() as c:
        start = to_provider(c, dashboard)
        state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
        done = c.get(f"{dashboard.url}/auth/oidc/callback",
                     params={"error": "access_denied", "error_description": "The user said no", "state": state})
        assert done.status_code == 401
        assert problem_line(done) == "your identity provider did not sign you in: access_denied (The user said no)"


def test_a_provider_that_hangs_up_is_a_message(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    with client() as c:
        callback = approve(c, to_provider(c, dashboard))
        idp.misbehave["hang_up_token"] = True
        done = c.get(callback)
        assert done.status_code == 502
        assert problem_line(done).startswith("cannot reach your identity provider (")
        assert "Traceback" not in done.text


def test_an_unreachable_provider_is_a_message(db: Path, idp: FakeOIDCProvider, tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    env = serve_env(idp, tmp_path / "state.sqlite") | {"PAYDASH_OIDC_ISSUER": f"http://127.0.0.1:{port}"}
    server = start_server(db, tmp_path / "serve", env)
    try:
        with client() as c:
            done = c.get(f"{server.url}/auth/oidc/login")
            assert done.status_code == 502
            assert problem_line(done) == (f"cannot reach your identity provider (http://127.0.0.1:{port}): connection "
                                          "refused or host not found; try again in a moment, or sign in with a password")
            assert 'href="/auth/login"' in done.text
        entries = open_state(Settings({"state_url": str(tmp_path / "state.sqlite")})).audit.page(
            AuditFilter(action="login_failed")).entries
        assert entries and entries[0].detail.startswith("oidc: provider unreachable: discovery document")
    finally:
        server.stop()


def test_sessions_outlive_a_restart_only_while_their_email_keeps_its_role(db: Path, idp: FakeOIDCProvider,
                                                                        tmp_path: Path) -> None:
    state = tmp_path / "state.sqlite"
    first = start_server(db, tmp_path / "first", serve_env(idp, state))
    try:
        with client() as viewer, client() as admin:
            assert sign_in(viewer, Dashboard(first, Settings())).status_code == 303
            idp.reset(email="boss@corp.test")
            assert sign_in(admin, Dashboard(first, Settings())).status_code == 303
            first.stop()
            # restarted with example.com no longer allowed: the viewer's session ends, the admin's goes on
            second = start_server(db, tmp_path / "second", serve_env(idp, state, PAYDASH_OIDC_ALLOWED_DOMAINS="example.org"))
            try:
                assert_is_served(admin, Dashboard(second, Settings()))
                ended = viewer.get(f"{second.url}/")
                assert ended.status_code in (302, 303, 307) and "/auth/login" in ended.headers["location"]
            finally:
                second.stop()
    finally:
        first.stop()


def test_serve_refuses_a_half_set_up_provider(db: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PAYDASH_")}
    env.update({"PAYDASH_PASSWORD": "oidc-test-team-password", "PAYDASH_STATE_URL": str(tmp_path / "state.sqlite"),
                "PAYDASH_OIDC_ISSUER": "https://idp.example.com", "PAYDASH_OIDC_ALLOWED_DOMAINS": "example.com"})
    done = subprocess.run([sys.executable, "-m", "paydash.cli", "serve", "--address", "127.0.0.1", "--port",
                           str(free_port()), "--db", str(db)], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr + done.stdout
    assert ("sign-in with an identity provider is half set up: PAYDASH_OIDC_CLIENT_ID and "
            "PAYDASH_OIDC_CLIENT_SECRET are missing") in done.stderr


# -- in a browser ---------------------------------------------------------------------------
@pytest.mark.browser
def test_signing_in_with_the_provider_in_chromium(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: the OIDC browser test did NOT run (`apt-get install -y chromium`)"
        if IN_CI:
            pytest.fail("CI=true: " + message, pytrace=False)
        pytest.skip(message)
    import concurrent.futures

    # its own thread: the browser tests' Playwright keeps an event loop running on the main one,
    # and the sync API refuses to start inside it
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(_sign_in_with_the_provider_in_chromium, dashboard, idp).result()


def _sign_in_with_the_provider_in_chromium(dashboard: Dashboard, idp: FakeOIDCProvider) -> None:
    from playwright.sync_api import expect, sync_playwright

    idp.reset(email="boss@corp.test")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{dashboard.url}/auth/login?next=/", timeout=60_000)
            page.get_by_text("Fake IdP").click()
            page.wait_for_url(f"{dashboard.url}/**", timeout=60_000)
            expect(page.locator('[data-testid="stApp"]')).to_be_visible(timeout=60_000)
            assert "/auth/" not in page.url
            page.reload()  # still signed in
            expect(page.locator('[data-testid="stApp"]')).to_be_visible(timeout=60_000)
            assert "/auth/" not in page.url

            idp.reset(email="eve@other.test")
            refused = browser.new_page()
            refused.goto(f"{dashboard.url}/auth/oidc/login?next=/", timeout=60_000)
            expect(refused.locator("p.problem")).to_have_text(
                "your account (eve@other.test) is not allowed here; ask an admin to add your domain")
            refused.get_by_role("link", name="Back to sign in").click()
            refused.wait_for_url(f"{dashboard.url}/auth/login**")
        finally:
            browser.close()
