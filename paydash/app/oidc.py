"""Sign in with the team's OpenID Connect identity provider (authorization code flow, PKCE S256).

`GET /auth/oidc/login?next=...` reads the provider's discovery document (cached), makes a
state, a nonce and a PKCE verifier, keeps them in a short-lived cookie sealed with a key
derived from the client secret (encrypted and authenticated: the browser can neither read nor
change them, and every `serve` replica with the same settings can open it), and redirects to
the provider. `GET /auth/oidc/callback` checks the state against that cookie, exchanges the
code at the token endpoint with the client secret and the PKCE verifier, validates the
id_token (signature against the provider's JWKS, iss, aud, exp, nonce) and maps the email to a
role: an email in PAYDASH_OIDC_ADMIN_EMAILS is admin, an email of a domain in
PAYDASH_OIDC_ALLOWED_DOMAINS is viewer, anyone else is refused. The session itself is opened
by `http_auth.start_session`, as for a password sign-in.

Authlib supplies the protocol parts (PKCE challenge, the authorization URL, client
authentication at the token endpoint, the OIDC id_token claims rules) and joserfc the JWS
signature check; HTTP goes through httpx directly (Authlib's httpx client warns about httpx
at import). Every failure is a small page with one line saying what went wrong, and an audit
`login_failed` entry with the reason; never a traceback.
"""

from __future__ import annotations

import base64
import hmac
import html
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import urlencode, urlsplit

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.auth import ClientAuth
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.core import CodeIDToken
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, InvalidClaimError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from paydash.settings import BY_NAME, Settings

log = logging.getLogger("paydash.oidc")

LOGIN_PATH = "/auth/oidc/login"
CALLBACK_PATH = "/auth/oidc/callback"
SIGN_IN_PAGE = "/auth/login"
METHOD = "oidc"
LOGIN_FAILED = "login_failed"  # the audit action of a refused sign-in
FLOW_COOKIE = "paydash_oidc_flow"
FLOW_COOKIE_PATH = "/auth/oidc"
FLOW_LIFETIME = 600  # seconds between leaving for the provider and coming back
HTTP_TIMEOUT = 10.0  # seconds for each request to the provider
DISCOVERY_TTL = 3600.0  # seconds the discovery document is kept
JWKS_REFRESH_MIN = 30.0  # an unknown key id re-reads the JWKS at most this often (key rotation)
LEEWAY = 60  # seconds of clock skew allowed on exp/iat
SCOPE = "openid email profile"
# asymmetric algorithms only: never "none", never HS256 keyed with a secret
_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")

StartSession = Callable[[Request, str, str, str, "str | None"], Awaitable[Response]]


# -- configuration -------------------------------------------------------------------------
def _items(text: str) -> list[str]:
    return [part.strip().lower() for part in (text or "").split(",") if part.strip()]


def allowed_domains(settings: Settings) -> frozenset[str]:
    return frozenset(d.lstrip("@") for d in _items(settings.oidc_allowed_domains))


def admin_emails(settings: Settings) -> frozenset[str]:
    return frozenset(_items(settings.oidc_admin_emails))


def _env(name: str) -> str:
    return BY_NAME[name].env


def oidc_missing(settings: Settings) -> list[str]:
    """Environment names of the three required OIDC settings that are not set."""
    return [_env(n) for n in ("oidc_issuer", "oidc_client_id", "oidc_client_secret") if not getattr(settings, n)]


def oidc_enabled(settings: Settings) -> bool:
    """Whether sign-in with the identity provider is offered (issuer, client id and secret all set)."""
    return not oidc_missing(settings)


def oidc_config_problem(settings: Settings) -> str | None:
    """One line on what is wrong with the OIDC settings, or None (also when OIDC is simply off)."""
    missing = oidc_missing(settings)
    if len(missing) == 3:
        return None
    if missing:
        present = [_env(n) for n in ("oidc_issuer", "oidc_client_id", "oidc_client_secret") if getattr(settings, n)]
        return (f"sign-in with an identity provider is half set up: {' and '.join(missing)} "
                f"{'is' if len(missing) == 1 else 'are'} missing; set {'it' if len(missing) == 1 else 'them'}, "
                f"or unset {' and '.join(present)} to turn OIDC sign-in off")
    for email in admin_emails(settings):
        if not _valid_email(email):
            return (f"{_env('oidc_admin_emails')}: {email!r} is not an email address; "
                    "write full addresses, comma-separated (alice@example.com,bob@example.com)")
    for domain in allowed_domains(settings):
        if "@" in domain or "." not in domain or any(c.isspace() for c in domain):
            return (f"{_env('oidc_allowed_domains')}: {domain!r} is not an email domain; "
                    "write domains, comma-separated (example.com,example.org)")
    if not admin_emails(settings) and not allowed_domains(settings):
        return (f"sign-in with an identity provider lets no one in: set {_env('oidc_allowed_domains')} "
                f"(e.g. example.com) or {_env('oidc_admin_emails')}")
    return None


def _valid_email(email: str) -> bool:
    local, at, domain = email.rpartition("@")
    return bool(at and local and domain) and "@" not in local and "." in domain and not any(c.isspace() for c in email)


def oidc_role_for(email: str, settings: Settings) -> str | None:
    """The role an identity-provider user with this email gets now: admin, viewer, or None (refused).

    Also what keeps an OIDC session valid: `auth.still_allowed` ends it when this no longer
    returns the session's role (the email's domain or admin entry was removed or changed).
    """
    email = (email or "").strip().lower()
    if not _valid_email(email):
        return None
    if email in admin_emails(settings):
        return "admin"
    if email.rpartition("@")[2] in allowed_domains(settings):
        return "viewer"
    return None


def oidc_session_still_allowed(username: str, role: str, settings: Settings) -> bool:
    """For a session opened with method "oidc": still offered, and the email still gets the same role."""
    return oidc_enabled(settings) and oidc_role_for(username, settings) == role


# -- failures ------------------------------------------------------------------------------
class SignInRefused(Exception):
    """A sign-in that cannot go on: `message` is the page's one line, `reason` the audit detail."""

    def __init__(self, message: str, reason: str, status: int = 400, who: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.status = status
        self.who = who


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · paydash</title>
<style>
body {{ font-family: system-ui, -apple-system, "Segoe UI", sans-serif; background: #f6f7f9; color: #1f2328; margin: 0; }}
main {{ max-width: 28rem; margin: 12vh auto; background: #fff; padding: 2rem; border-radius: 8px;
        box-shadow: 0 1px 3px rgba(0,0,0,.12); }}
h1 {{ font-size: 1.25rem; margin: 0 0 1rem; }}
p {{ line-height: 1.5; }}
a {{ color: #0b5cad; }}
</style></head>
<body><main>
<h1>{title}</h1>
<p class="problem">{message}</p>
<p><a href="{back}">Back to sign in</a></p>
</main></body></html>
"""


def problem_page(message: str, status: int, title: str = "Sign-in failed") -> HTMLResponse:
    body = _PAGE.format(title=html.escape(title), message=html.escape(message), back=SIGN_IN_PAGE)
    response = HTMLResponse(body, status_code=status)
    _no_store(response)
    return response


def _no_store(response: Response) -> None:
    response.headers["Cache-Control"] = "no-store"
    # the callback URL holds the code and the state: do not hand it to anyone
    response.headers["Referrer-Policy"] = "no-referrer"


def _audit_failure(settings: Settings, who: str, reason: str) -> None:
    try:
        from paydash.state import open_state

        open_state(settings).audit.record(who or "(oidc)", LOGIN_FAILED, f"oidc: {reason}"[:2000])
    except Exception:  # noqa: BLE001 - writing the audit entry never breaks the page it records
        log.exception("could not write the audit entry of a refused OIDC sign-in")


# -- the sealed flow cookie ----------------------------------------------------------------
def _flow_key(settings: Settings) -> bytes:
    material = "\n".join((settings.oidc_issuer, settings.oidc_client_id, settings.oidc_client_secret)).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"paydash oidc flow cookie v1").derive(material)


_AAD = b"paydash-oidc-flow"


def seal_flow(settings: Settings, flow: dict[str, Any]) -> str:
    nonce = os.urandom(12)
    sealed = AESGCM(_flow_key(settings)).encrypt(nonce, json.dumps(flow, separators=(",", ":")).encode(), _AAD)
    return base64.urlsafe_b64encode(nonce + sealed).decode().rstrip("=")


def open_flow(settings: Settings, value: str | None, now: float) -> dict[str, Any] | None:
    """The flow sealed in the cookie; None when absent, altered, sealed with other settings or too old."""
    if not value or len(value) > 4096:
        return None
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        flow = json.loads(AESGCM(_flow_key(settings)).decrypt(raw[:12], raw[12:], _AAD))
    except (ValueError, InvalidTag, TypeError):
        return None
    if not isinstance(flow, dict) or not isinstance(flow.get("started"), (int, float)):
        return None
    if not 0 <= now - flow["started"] <= FLOW_LIFETIME:
        return None
    return flow


# -- the provider --------------------------------------------------------------------------
@dataclass
class Provider:
    """The provider's discovery document and keys, cached per process."""

    issuer: str
    metadata: dict[str, Any] | None = None
    metadata_at: float = 0.0
    jwks: dict[str, Any] | None = None
    jwks_at: float = 0.0
    _clock: Callable[[], float] = field(default=time.monotonic, repr=False)

    @property
    def discovery_url(self) -> str:
        return self.issuer.rstrip("/") + "/.well-known/openid-configuration"

    async def _get_json(self, client: httpx.AsyncClient, url: str, what: str) -> dict[str, Any]:
        try:
            response = await client.get(url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise SignInRefused(
                f"cannot reach your identity provider ({_origin(url)}): {_reason(exc)}; try again in a moment, "
                "or sign in with a password", f"provider unreachable: {what} {url}: {_reason(exc)}", 502) from None
        if response.status_code != 200:
            raise SignInRefused(
                f"your identity provider answered {response.status_code} for its {what}; try again in a moment, "
                "or sign in with a password", f"provider answered {response.status_code} for {what} {url}", 502)
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise SignInRefused(f"your identity provider's {what} is not JSON; check PAYDASH_OIDC_ISSUER",
                                f"{what} {url} is not a JSON object", 502)
        return data

    async def discover(self, client: httpx.AsyncClient) -> dict[str, Any]:
        now = self._clock()
        if self.metadata is not None and now - self.metadata_at < DISCOVERY_TTL:
            return self.metadata
        data = await self._get_json(client, self.discovery_url, "discovery document")
        if str(data.get("issuer", "")).rstrip("/") != self.issuer.rstrip("/"):
            raise SignInRefused(
                "your identity provider's discovery document names another issuer; check PAYDASH_OIDC_ISSUER",
                f"discovery issuer {data.get('issuer')!r} is not {self.issuer!r}", 502)
        for key in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(data.get(key), str) or not data[key].startswith(("http://", "https://")):
                raise SignInRefused(f"your identity provider's discovery document has no {key}; check PAYDASH_OIDC_ISSUER",
                                    f"discovery document without {key}", 502)
        if self.metadata is None or self.metadata.get("jwks_uri") != data["jwks_uri"]:
            self.jwks = None
        self.metadata, self.metadata_at = data, now
        return data

    async def keys(self, client: httpx.AsyncClient, *, refresh: bool = False) -> KeySet:
        now = self._clock()
        if self.jwks is None or (refresh and now - self.jwks_at >= JWKS_REFRESH_MIN):
            metadata = await self.discover(client)
            data = await self._get_json(client, metadata["jwks_uri"], "signing keys (JWKS)")
            try:
                KeySet.import_key_set(data)
            except (JoseError, ValueError, KeyError, TypeError) as exc:
                raise SignInRefused("your identity provider's signing keys cannot be read; try again later",
                                    f"JWKS not readable: {exc}", 502) from None
            self.jwks, self.jwks_at = data, now
        return KeySet.import_key_set(self.jwks)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return f"no answer within {HTTP_TIMEOUT:g} s"
    if isinstance(exc, httpx.ConnectError):
        return "connection refused or host not found"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "it closed the connection without answering"
    return type(exc).__name__


# -- the flow ------------------------------------------------------------------------------
class OIDCFlow:
    def __init__(self, settings: Settings, start_session: StartSession | None = None) -> None:
        self.settings = settings
        self.provider = Provider(settings.oidc_issuer)
        self._start_session = start_session
        self._proxies: list | None = None

    def _client(self) -> httpx.AsyncClient:
        # trust_env: HTTPS_PROXY / NO_PROXY and SSL_CERT_FILE apply, as a team behind a proxy or its own CA needs
        return httpx.AsyncClient(timeout=HTTP_TIMEOUT, follow_redirects=False)

    def _https(self, request: Request) -> bool:
        # https as the browser sees it: the socket's scheme, or X-Forwarded-Proto from a trusted proxy
        from paydash.app.http_auth import came_over_https, parse_proxies

        if self._proxies is None:
            self._proxies = parse_proxies(self.settings.trusted_proxies)
        return came_over_https(request.scope, self._proxies)

    def _secure(self, request: Request) -> bool:
        return bool(self.settings.cookie_secure) or self._https(request)

    def redirect_uri(self, request: Request) -> str:
        """This request's origin (Host header; https when it came over https) + the callback path.
        The provider only accepts the redirect URIs registered there, so a forged Host goes nowhere."""
        base = request.base_url
        if self._https(request) and base.scheme == "http":
            base = base.replace(scheme="https")
        return str(base).rstrip("/") + CALLBACK_PATH

    async def _refused(self, request: Request, failure: SignInRefused, *, clear: bool) -> Response:
        log.warning("OIDC sign-in refused from %s: %s", request.client.host if request.client else "?", failure.reason)
        await run_in_threadpool(_audit_failure, self.settings, failure.who, failure.reason)
        response = problem_page(failure.message, failure.status,
                                "Not allowed here" if failure.status == 403 else "Sign-in failed")
        if clear:
            response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH, secure=self._secure(request),
                                   httponly=True, samesite="lax")
        return response

    def _not_offered(self) -> Response:
        return problem_page("Sign-in with an identity provider is not set up on this dashboard.", 404,
                            "Not available")

    # GET /auth/oidc/login
    async def login(self, request: Request) -> Response:
        if not oidc_enabled(self.settings):
            return self._not_offered()
        try:
            async with self._client() as client:
                metadata = await self.provider.discover(client)
        except SignInRefused as failure:
            return await self._refused(request, failure, clear=False)
        state, nonce, verifier = generate_token(32), generate_token(32), generate_token(64)
        redirect_uri = self.redirect_uri(request)
        url = prepare_grant_uri(
            metadata["authorization_endpoint"], self.settings.oidc_client_id, "code",
            redirect_uri=redirect_uri, scope=SCOPE, state=state, nonce=nonce,
            code_challenge=create_s256_code_challenge(verifier), code_challenge_method="S256",
        )
        flow = {"state": state, "nonce": nonce, "verifier": verifier, "redirect_uri": redirect_uri,
                "next": (request.query_params.get("next") or "")[:2000], "started": time.time()}
        response = RedirectResponse(url, status_code=302)
        _no_store(response)
        response.set_cookie(FLOW_COOKIE, seal_flow(self.settings, flow), max_age=FLOW_LIFETIME, path=FLOW_COOKIE_PATH,
                            secure=self._secure(request), httponly=True, samesite="lax")
        return response

    # GET /auth/oidc/callback
    async def callback(self, request: Request) -> Response:
        if not oidc_enabled(self.settings):
            return self._not_offered()
        try:
            flow = self._check_state(request)
            async with self._client() as client:
                email, role = await self._sign_in(client, request, flow)
        except SignInRefused as failure:
            return await self._refused(request, failure, clear=True)
        start_session = self._start_session
        if start_session is None:
            from paydash.app.http_auth import start_session
        response = await start_session(request, email, role, METHOD, flow.get("next") or None)
        response.delete_cookie(FLOW_COOKIE, path=FLOW_COOKIE_PATH, secure=self._secure(request),
                               httponly=True, samesite="lax")
        _no_store(response)
        return response

    def _check_state(self, request: Request) -> dict[str, Any]:
        params = request.query_params
        flow = open_flow(self.settings, request.cookies.get(FLOW_COOKIE), time.time())
        if params.get("error"):
            detail = (params.get("error_description") or "")[:200]
            text = params["error"][:100] + (f" ({detail})" if detail else "")
            raise SignInRefused(f"your identity provider did not sign you in: {text}",
                                f"provider returned error {text}", 401)
        if flow is None:
            raise SignInRefused(
                "this sign-in was not started in this browser or took longer than "
                f"{FLOW_LIFETIME // 60} minutes; start again", "no valid flow cookie (absent, altered or expired)")
        state = params.get("state") or ""
        if not hmac.compare_digest(state.encode(), str(flow["state"]).encode()):
            raise SignInRefused("the answer from your identity provider does not match this sign-in (state); start again",
                                "state does not match the flow cookie")
        if not params.get("code"):
            raise SignInRefused("your identity provider sent no authorization code; start again",
                                "callback without a code")
        return flow

    async def _sign_in(self, client: httpx.AsyncClient, request: Request, flow: dict[str, Any]) -> tuple[str, str]:
        metadata = await self.provider.discover(client)
        tokens = await self._exchange(client, metadata, request.query_params["code"], flow)
        claims = await self._validate(client, metadata, tokens, flow["nonce"])
        email = claims.get("email")
        if not email and metadata.get("userinfo_endpoint") and tokens.get("access_token"):
            email, verified = await self._userinfo(client, metadata, tokens["access_token"], claims["sub"])
            if verified is not None:
                claims = {**claims, "email_verified": verified}
        if not isinstance(email, str) or not email.strip():
            raise SignInRefused("your identity provider did not share your email address; ask its admin to allow "
                                "the email scope for paydash", "no email in the id_token or userinfo", 403)
        email = email.strip().lower()
        verified = claims.get("email_verified")
        if verified is not None and verified is not True and str(verified).lower() != "true":
            raise SignInRefused(f"your identity provider says the email {email} is not verified; verify it there "
                                "and sign in again", "email not verified", 403, who=email)
        role = oidc_role_for(email, self.settings)
        if role is None:
            raise SignInRefused(f"your account ({email}) is not allowed here; ask an admin to add your domain",
                                "email not allowed (domain or admin list)", 403, who=email)
        return email, role

    async def _exchange(self, client: httpx.AsyncClient, metadata: dict[str, Any], code: str,
                        flow: dict[str, Any]) -> dict[str, Any]:
        supported = metadata.get("token_endpoint_auth_methods_supported") or ["client_secret_basic"]
        method = "client_secret_basic" if "client_secret_basic" in supported else "client_secret_post"
        auth = ClientAuth(self.settings.oidc_client_id, self.settings.oidc_client_secret, method)
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": flow["redirect_uri"],
                "code_verifier": flow["verifier"]}
        url, headers, body = auth.prepare("POST", metadata["token_endpoint"],
                                          {"Content-Type": "application/x-www-form-urlencoded",
                                           "Accept": "application/json"}, urlencode(form))
        try:
            response = await client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SignInRefused(
                f"cannot reach your identity provider ({_origin(url)}): {_reason(exc)}; try again in a moment",
                f"token endpoint unreachable: {_reason(exc)}", 502) from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        if response.status_code != 200:
            error = str(data.get("error") or f"HTTP {response.status_code}")[:100]
            detail = str(data.get("error_description") or "")[:200]
            text = error + (f" ({detail})" if detail else "")
            raise SignInRefused(f"your identity provider refused the sign-in: {text}; start again",
                                f"token request refused: {text}", 502)
        if not isinstance(data.get("id_token"), str):
            raise SignInRefused("your identity provider sent no id_token; check that paydash's client there is an "
                                "OpenID Connect client with the openid scope", "token response without id_token", 502)
        return data

    async def _validate(self, client: httpx.AsyncClient, metadata: dict[str, Any], tokens: dict[str, Any],
                        nonce: str) -> dict[str, Any]:
        offered = metadata.get("id_token_signing_alg_values_supported") or ["RS256"]
        algorithms = [a for a in offered if a in _ALGORITHMS] or ["RS256"]
        registry = JWSRegistry(algorithms=algorithms, strict_check_header=False)
        try:
            try:
                token = jwt.decode(tokens["id_token"], await self.provider.keys(client), registry=registry)
            except InvalidKeyIdError:  # the provider may have rotated its keys since we read them
                token = jwt.decode(tokens["id_token"], await self.provider.keys(client, refresh=True), registry=registry)
        except BadSignatureError:
            raise SignInRefused("the sign-in token from your identity provider has a bad signature; start again",
                                "id_token signature invalid", 401) from None
        except InvalidKeyIdError:
            raise SignInRefused("the sign-in token from your identity provider is signed with an unknown key; "
                                "start again", "id_token signed with a key not in the JWKS", 401) from None
        except JoseError as exc:
            raise SignInRefused("the sign-in token from your identity provider cannot be read; start again",
                                f"id_token not decodable: {exc.error}", 401) from None
        options = {"iss": {"essential": True, "value": metadata["issuer"]},
                   "aud": {"essential": True, "value": self.settings.oidc_client_id}}
        params = {"nonce": nonce, "client_id": self.settings.oidc_client_id,
                  "access_token": tokens.get("access_token")}
        claims = CodeIDToken(token.claims, token.header, options, params)
        try:
            claims.validate(leeway=LEEWAY)
        except ExpiredTokenError:
            raise SignInRefused("the sign-in token from your identity provider has expired; check this server's "
                                "clock and start again", "id_token expired", 401) from None
        except MissingClaimError as exc:
            raise SignInRefused(f"the sign-in token from your identity provider has no {exc.claim} claim; start again",
                                f"id_token missing claim {exc.claim}", 401) from None
        except InvalidClaimError as exc:
            what = _CLAIM_PROBLEMS.get(exc.claim, f"has a bad {exc.claim} claim")
            raise SignInRefused(f"the sign-in token from your identity provider {what}; start again",
                                f"id_token invalid claim {exc.claim}", 401) from None
        return dict(claims)

    async def _userinfo(self, client: httpx.AsyncClient, metadata: dict[str, Any], access_token: str,
                        sub: str) -> tuple[Any, Any]:
        url = metadata["userinfo_endpoint"]
        try:
            response = await client.get(url, headers={"Authorization": f"Bearer {access_token}",
                                                      "Accept": "application/json"})
            data = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError):
            return None, None
        if not isinstance(data, dict) or data.get("sub") != sub:  # OIDC Core 5.3.2: must be the same user
            return None, None
        return data.get("email"), data.get("email_verified")


_CLAIM_PROBLEMS = {
    "aud": "was issued for another application (audience)",
    "iss": "was issued by another provider (issuer)",
    "nonce": "does not belong to this sign-in (nonce)",
    "azp": "was issued for another application (azp)",
    "iat": "was issued in the future; check this server's clock",
    "nbf": "is not valid yet; check this server's clock",
    "at_hash": "does not match its access token (at_hash)",
}


def oidc_routes(settings: Settings, *, start_session: StartSession | None = None) -> list[Route]:
    """`GET /auth/oidc/login` and `GET /auth/oidc/callback`, to mount beside the other /auth routes.

    They answer 404 with a short page when OIDC is not configured. `start_session` defaults to
    `paydash.app.http_auth.start_session`.
    """
    flow = OIDCFlow(settings, start_session)
    return [
        Route(LOGIN_PATH, flow.login, methods=["GET"], name="oidc_login"),
        Route(CALLBACK_PATH, flow.callback, methods=["GET"], name="oidc_callback"),
    ]
