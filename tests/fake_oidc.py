"""A small but real OpenID Connect provider on 127.0.0.1 for the OIDC sign-in tests.

A threaded HTTP server serving what paydash uses of a provider:

- `GET /.well-known/openid-configuration` (discovery),
- `GET /authorize`: checks the client, redirect_uri, scope `openid` and a PKCE S256
  code_challenge, then auto-approves as `provider.email` and redirects back with a code and
  the state it was given,
- `POST /token`: authorization_code grant with client_secret_basic or client_secret_post;
  REFUSES (400 invalid_grant) a code_verifier that does not match the challenge, a reused
  code or another redirect_uri; answers an RS256 id_token (iss, sub, aud, exp, iat, nonce,
  email, email_verified, at_hash) signed with a key generated at start,
- `GET /jwks`, `GET /userinfo` (Bearer access token).

`provider.misbehave` holds switches for the negative tests: `audience` (another aud),
`expired`, `bad_signature` (signed with another key under the same kid), `unknown_kid`,
`nonce` (another nonce), `issuer` (another iss), `no_email_in_id_token` (email only from
/userinfo), `discovery_status` (e.g. 500), `hang_up_token` (the token endpoint closes the
connection without answering). `provider.token_requests` records every token
request's form (so a test can see the code_verifier paydash sent).

    with FakeOIDCProvider(client_id="paydash", client_secret="s3cret", email="ann@example.com") as idp:
        idp.issuer  # http://127.0.0.1:PORT
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import RSAKey

KID = "fake-oidc-key-1"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def s256(verifier: str) -> str:
    return _b64(hashlib.sha256(verifier.encode()).digest())


@dataclass
class Grant:
    client_id: str
    redirect_uri: str
    nonce: str | None
    code_challenge: str
    email: str
    email_verified: Any
    issued: float
    used: bool = False


@dataclass
class FakeOIDCProvider:
    client_id: str = "paydash-test"
    client_secret: str = "fake-oidc-client-secret"
    email: str = "ann@example.com"
    email_verified: Any = True  # None: claim left out
    misbehave: dict[str, Any] = field(default_factory=dict)
    token_requests: list[dict[str, str]] = field(default_factory=list)
    authorize_requests: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": KID, "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": KID})
        self.grants: dict[str, Grant] = {}
        self.access_tokens: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- running ---------------------------------------------------------------------------
    def start(self) -> "FakeOIDCProvider":
        provider = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet test output
                pass

            def do_GET(self) -> None:  # noqa: N802
                provider._handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                provider._handle(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-oidc").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "FakeOIDCProvider":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start() the provider first"
        return self._server.server_address[1]

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def reset(self, **changes: Any) -> None:
        """Back to good behaviour (then apply `changes` to the attributes), between tests."""
        self.misbehave = {}
        self.email = changes.pop("email", "ann@example.com")
        self.email_verified = changes.pop("email_verified", True)
        for name, value in changes.items():
            setattr(self, name, value)
        self.token_requests.clear()
        self.authorize_requests.clear()

    def discovery(self) -> dict[str, Any]:
        base = self.issuer
        return {
            "issuer": base,
            "authorization_endpoint": f"{base}/authorize",
            "token_endpoint": f"{base}/token",
            "jwks_uri": f"{base}/jwks",
            "userinfo_endpoint": f"{base}/userinfo",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "code_challenge_methods_supported": ["S256"],
            "grant_types_supported": ["authorization_code"],
        }

    # -- HTTP ------------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query))
        body = b""
        if method == "POST":
            body = handler.rfile.read(int(handler.headers.get("Content-Length") or 0))
        routes = {
            ("GET", "/.well-known/openid-configuration"): self._discovery,
            ("GET", "/authorize"): self._authorize,
            ("POST", "/token"): self._token,
            ("GET", "/jwks"): self._jwks,
            ("GET", "/userinfo"): self._userinfo,
        }
        if method == "POST" and url.path == "/token" and self.misbehave.get("hang_up_token"):
            handler.close_connection = True  # a provider that crashed mid-request: no answer at all
            return
        route = routes.get((method, url.path))
        if route is None:
            status, headers, payload = 404, {}, {"error": "not_found"}
        else:
            status, headers, payload = route(query, body, handler.headers)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        if not isinstance(payload, bytes):
            handler.send_header("Content-Type", "application/json")
        handler.send_header("Cache-Control", "no-store")
        for name, value in headers.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _discovery(self, query, body, headers):  # noqa: ANN001, ANN202
        status = self.misbehave.get("discovery_status")
        if status:
            return status, {}, {"error": "server_error"}
        return 200, {}, self.discovery()

    def _jwks(self, query, body, headers):  # noqa: ANN001, ANN202
        return 200, {}, {"keys": [self.key.as_dict(private=False)]}

    def _authorize(self, query, body, headers):  # noqa: ANN001, ANN202
        self.authorize_requests.append(dict(query))
        problem = None
        if query.get("client_id") != self.client_id:
            problem = "unknown client_id"
        elif not query.get("redirect_uri", "").startswith(("http://", "https://")):
            problem = "redirect_uri missing"
        elif query.get("response_type") != "code":
            problem = "response_type must be code"
        elif "openid" not in query.get("scope", "").split():
            problem = "scope must include openid"
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            problem = "PKCE S256 code_challenge required"
        if problem:
            # an authorization server does not redirect to an unchecked redirect_uri: it shows the error
            return 400, {"Content-Type": "text/plain"}, problem.encode()
        code = secrets.token_urlsafe(24)
        with self._lock:
            self.grants[code] = Grant(self.client_id, query["redirect_uri"], query.get("nonce"),
                                      query["code_challenge"], self.email, self.email_verified, time.time())
        params = {"code": code}
        if "state" in query:
            params["state"] = query["state"]
        return 302, {"Location": f"{query['redirect_uri']}?{urlencode(params)}"}, b""

    def _client_auth(self, form: dict[str, str], headers) -> tuple[str, str] | None:  # noqa: ANN001
        auth = headers.get("Authorization", "")
        if auth.startswith("Basic "):
            try:
                client_id, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
            except ValueError:
                return None
            return client_id, secret
        if "client_id" in form and "client_secret" in form:
            return form["client_id"], form["client_secret"]
        return None

    def _token(self, query, body, headers):  # noqa: ANN001, ANN202
        form = dict(parse_qsl(body.decode()))
        self.token_requests.append(dict(form, _auth=("basic" if headers.get("Authorization", "").startswith("Basic ")
                                                     else "post")))

        def refuse(error: str, description: str, status: int = 400):  # noqa: ANN202
            return status, {}, {"error": error, "error_description": description}

        client = self._client_auth(form, headers)
        if client is None or client[0] != self.client_id or not secrets.compare_digest(client[1], self.client_secret):
            return refuse("invalid_client", "client authentication failed", 401)
        if form.get("grant_type") != "authorization_code":
            return refuse("unsupported_grant_type", "only authorization_code")
        with self._lock:
            grant = self.grants.get(form.get("code", ""))
            if grant is None or grant.used or time.time() - grant.issued > 60:
                return refuse("invalid_grant", "unknown, used or expired code")
            grant.used = True
        if form.get("redirect_uri") != grant.redirect_uri:
            return refuse("invalid_grant", "redirect_uri differs from the authorization request")
        verifier = form.get("code_verifier", "")
        if not verifier or not secrets.compare_digest(s256(verifier), grant.code_challenge):
            return refuse("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(24)
        sub = "sub-" + hashlib.sha256(grant.email.encode()).hexdigest()[:16]
        self.access_tokens[access_token] = {"sub": sub, "email": grant.email, "email_verified": grant.email_verified}
        return 200, {}, {"access_token": access_token, "token_type": "Bearer", "expires_in": 3600,
                         "scope": "openid email profile", "id_token": self._id_token(grant, sub, access_token)}

    def _id_token(self, grant: Grant, sub: str, access_token: str) -> str:
        m = self.misbehave
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": m.get("issuer", self.issuer),
            "sub": sub,
            "aud": m.get("audience", self.client_id),
            "iat": now - 3600 if m.get("expired") else now,
            "exp": now - 600 if m.get("expired") else now + 300,
            "at_hash": _b64(hashlib.sha256(access_token.encode()).digest()[:16]),
        }
        nonce = m.get("nonce", grant.nonce)
        if nonce is not None:
            claims["nonce"] = nonce
        if not m.get("no_email_in_id_token"):
            claims["email"] = grant.email
            if grant.email_verified is not None:
                claims["email_verified"] = grant.email_verified
        key, kid = self.key, KID
        if m.get("bad_signature"):
            key = self.other_key
        if m.get("unknown_kid"):
            kid = "not-in-the-jwks"
        return jwt.encode({"alg": "RS256", "kid": kid, "typ": "JWT"}, claims, key)

    def _userinfo(self, query, body, headers):  # noqa: ANN001, ANN202
        auth = headers.get("Authorization", "")
        info = self.access_tokens.get(auth[7:]) if auth.startswith("Bearer ") else None
        if info is None:
            return 401, {"WWW-Authenticate": 'Bearer error="invalid_token"'}, {"error": "invalid_token"}
        return 200, {}, {k: v for k, v in info.items() if v is not None}


if __name__ == "__main__":  # try the flow by hand: python tests/fake_oidc.py you@example.com
    import sys

    with FakeOIDCProvider(email=sys.argv[1] if len(sys.argv) > 1 else "ann@example.com") as idp:
        print(f"PAYDASH_OIDC_ISSUER={idp.issuer} PAYDASH_OIDC_CLIENT_ID={idp.client_id} "
              f"PAYDASH_OIDC_CLIENT_SECRET={idp.client_secret}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
