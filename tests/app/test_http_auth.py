"""The HTTP layer's pure parts (paydash/app/http_auth.py): where `next` may lead, who the client is,
whether it came over https, whether a request comes from another site. The served behaviour is
tests/test_serve_http.py's."""

from __future__ import annotations

import pytest

from paydash.app import http_auth, login_page
from paydash.errors import PaydashError


def scope(peer: str = "127.0.0.1", scheme: str = "http", **headers: str) -> dict:
    return {"type": "http", "client": (peer, 50000), "scheme": scheme,
            "headers": [(k.replace("_", "-").lower().encode(), v.encode()) for k, v in headers.items()]}


@pytest.mark.parametrize("value, expected", [
    ("/payments?status=failed&q=a%20b", "/payments?status=failed&q=a%20b"),
    ("/", "/"),
    ("/operations#panel", "/operations#panel"),
    (None, "/"), ("", "/"), ("payments", "/"),
    ("//evil.example/x", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
    ("/%0d%0aSet-Cookie:x", "/%0d%0aSet-Cookie:x"),  # still encoded: a path, not a header
    ("/\r\nSet-Cookie: x", "/"), ("/\tx", "/"),
    ("/auth/logout", "/"), ("/auth/login?next=//evil", "/"),
    ("/" + "a" * 3000, "/"),
])
def test_safe_next_keeps_same_site_paths_only(value, expected) -> None:  # noqa: ANN001
    assert http_auth.safe_next(value) == expected


def test_the_client_is_the_peer_unless_the_peer_is_a_trusted_proxy() -> None:
    proxies = http_auth.parse_proxies("10.0.0.1, 192.168.0.0/16, ::1")
    # no proxies trusted: the header is whatever the client wrote
    assert http_auth.client_address(scope("203.0.113.5", X_Forwarded_For="1.2.3.4"), []) == "203.0.113.5"
    # a peer that is not trusted: its header is ignored
    assert http_auth.client_address(scope("203.0.113.5", X_Forwarded_For="1.2.3.4"), proxies) == "203.0.113.5"
    # from a trusted proxy: the rightmost hop that is not itself a trusted proxy
    assert http_auth.client_address(scope("10.0.0.1", X_Forwarded_For="6.6.6.6, 198.51.100.7, 192.168.3.4"),
                                    proxies) == "198.51.100.7"
    assert http_auth.client_address(scope("::1", X_Forwarded_For="198.51.100.8"), proxies) == "198.51.100.8"
    # a trusted proxy without the header: the proxy itself
    assert http_auth.client_address(scope("10.0.0.1"), proxies) == "10.0.0.1"
    # every hop trusted: the first one
    assert http_auth.client_address(scope("10.0.0.1", X_Forwarded_For="192.168.1.1"), proxies) == "192.168.1.1"


def test_https_is_the_socket_or_a_trusted_proxys_word() -> None:
    proxies = http_auth.parse_proxies("10.0.0.1")
    assert http_auth.came_over_https(scope(scheme="https"), [])
    assert not http_auth.came_over_https(scope(X_Forwarded_Proto="https"), [])
    assert not http_auth.came_over_https(scope("203.0.113.5", X_Forwarded_Proto="https"), proxies)
    assert http_auth.came_over_https(scope("10.0.0.1", X_Forwarded_Proto="https"), proxies)
    assert not http_auth.came_over_https(scope("10.0.0.1", X_Forwarded_Proto="http"), proxies)


def test_a_bad_trusted_proxy_entry_is_a_clear_error() -> None:
    with pytest.raises(PaydashError, match="'proxy.internal' is not an IP address or CIDR range"):
        http_auth.parse_proxies("10.0.0.1,proxy.internal")
    assert http_auth.parse_proxies(" , ") == []


@pytest.mark.parametrize("headers, foreign", [
    ({"Host": "dash.example.com"}, False),  # no Origin: not a browser's cross-site request
    ({"Host": "dash.example.com", "Origin": "https://dash.example.com"}, False),
    ({"Host": "dash.example.com", "Origin": "https://evil.example"}, True),
    ({"Host": "dash.example.com:8501", "Origin": "http://dash.example.com:9999"}, True),  # another port: another origin
    ({"Host": "dash.example.com", "Origin": "null"}, True),
])
def test_foreign_origin(headers, foreign) -> None:  # noqa: ANN001
    assert http_auth.foreign_origin(scope(**headers)) is foreign


def test_a_trusted_proxys_forwarded_host_counts_as_this_site() -> None:
    proxies = http_auth.parse_proxies("10.0.0.1")
    behind = scope("10.0.0.1", Host="127.0.0.1:8501", Origin="https://dash.example.com",
                   X_Forwarded_Host="dash.example.com")
    assert not http_auth.foreign_origin(behind, proxies)
    spoofed = scope("203.0.113.5", Host="127.0.0.1:8501", Origin="https://evil.example", X_Forwarded_Host="evil.example")
    assert http_auth.foreign_origin(spoofed, proxies)


def test_why_a_session_ended_becomes_a_fixed_code_not_text_from_the_url() -> None:
    from paydash.state.models import Session, SessionRules
    from paydash.state.sessions import ENDED, session_problem

    rules = SessionRules(max_age=3600, idle_timeout=60)
    idle = session_problem(Session("team", "admin", "password", 0.0, 0.0), 61.0, rules)
    old = session_problem(Session("team", "admin", "password", 0.0, 3599.0), 3600.0, rules)
    assert http_auth.ended_code(idle) == "idle" and http_auth.ended_code(old) == "expired"
    assert http_auth.ended_code(ENDED) == "ended"
    assert set(login_page.MESSAGES) >= {"idle", "expired", "ended", "changed", "signed_out"}


def test_the_sign_in_page_escapes_what_it_shows() -> None:
    page = login_page.render(next_path='/x"><script>alert(1)</script>', show_username=True, show_password=True,
                             oidc_name="<b>Okta</b>", error="<img src=x onerror=alert(1)>", username='"><svg>')
    assert "<script>alert" not in page and "<img" not in page and "<svg>" not in page and "<b>Okta" not in page
    assert 'href="/auth/oidc/login?next=%2Fx%22%3E%3Cscript' in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and 'value="&quot;&gt;&lt;svg&gt;"' in page
