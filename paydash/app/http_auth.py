"""Sign-in at the HTTP layer of `paydash serve`: the session gate, the sign-in page, the cookie.

Every request passes `PaydashMiddleware` (a pure ASGI middleware, so websockets too) before
Streamlit or any route sees it:

- it adds the security headers to every HTTP response (no framing by other sites, no
  referrer to them, no MIME sniffing);
- it works out the client's address (the socket's peer; X-Forwarded-For only when the peer
  is one of PAYDASH_TRUSTED_PROXIES) and whether the request came over https;
- machine routes (`/healthz` and the webhook receiver's, which have their own
  authentication), for their own methods, are answered right there by their own router: no Streamlit session
  cookie, compression or page machinery on the hot path of a webhook;
- unless the path is public (`/auth/*`, Streamlit's assets and `/_stcore/health`), it looks up the `paydash_session`
  cookie in the state store (activity: `touch=True`) and checks the session is still allowed
  (auth.still_allowed). Without a valid session a page request is redirected (303) to
  `/auth/login?next=<where it was going>`, Streamlit's websocket is refused before it is
  accepted (so no Streamlit session exists for a stranger) and anything else gets 401.

The validated session is in `scope["state"]["paydash_session"]` for routes.

The cookie holds an opaque random token (only its SHA-256 is stored): HttpOnly, SameSite=Lax,
Path=/, Secure when the request came over https (or PAYDASH_COOKIE_SECURE), Max-Age the
session's absolute lifetime. POSTs to /auth/* from another site (Origin header) are refused.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Iterable
from urllib.parse import parse_qs, quote, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from paydash.app import auth, login_page
from paydash.errors import PaydashError
from paydash.settings import Settings
from paydash.state.models import Session, SessionRules, ThrottleRules

log = logging.getLogger("paydash.http")

SESSION_COOKIE = "paydash_session"
STATE_KEY = "paydash_http"  # scope["state"][STATE_KEY]: the Gate (settings, store, rules)
SESSION_KEY = "paydash_session"  # scope["state"][SESSION_KEY]: the validated Session
ADDRESS_KEY = "paydash_client"  # scope["state"][ADDRESS_KEY]: the client's address

SECURITY_HEADERS = (
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
)
_MAX_FORM_BYTES = 16_384
_STREAMLIT_PREFIXES = ("/_stcore/", "/static/", "/media/", "/component/", "/bidi-components/")
LOGOUT = "logout"  # audit action


# -- small pure helpers ---------------------------------------------------------------------
def safe_next(value: str | None) -> str:
    """`value` when it is a same-site relative path (with its query), else "/".

    Refused: absolute URLs, scheme-relative `//host`, backslashes (browsers read `/\\host` as
    `//host`), control characters, and anything not starting with a single `/`."""
    if not value or not isinstance(value, str) or len(value) > 2048:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/"
    if parts.path.startswith("/auth/"):
        return "/"  # never back into the sign-in flow itself
    return value


def parse_proxies(text: str | None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """PAYDASH_TRUSTED_PROXIES: addresses or CIDR ranges, comma-separated (bad entries are an error)."""
    networks = []
    for item in (text or "").split(","):
        item = item.strip()
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise PaydashError(f"PAYDASH_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR range "
                               "(e.g. 10.0.0.0/8, 192.168.1.10)") from None
    return networks


def _ip(text: str):  # noqa: ANN202
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _trusted(address: str, proxies: Iterable) -> bool:
    ip = _ip(address)
    if ip is None:
        return False
    if getattr(ip, "ipv4_mapped", None) is not None:
        ip = ip.ipv4_mapped
    return any(ip in net for net in proxies)


def _headers(scope: Scope, name: bytes) -> list[str]:
    return [v.decode("latin-1") for k, v in scope.get("headers", []) if k == name]


def _header(scope: Scope, name: bytes) -> str | None:
    values = _headers(scope, name)
    return values[0] if values else None


def client_address(scope: Scope, proxies: list) -> str:
    """The socket's peer; behind a trusted proxy, the rightmost X-Forwarded-For hop that is not
    itself a trusted proxy (the hops left of it are whatever the client wrote)."""
    client = scope.get("client")
    peer = client[0] if client else ""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for value in _headers(scope, b"x-forwarded-for") for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not _trusted(hop, proxies):
            return hop
    return hops[0] if hops else peer


def came_over_https(scope: Scope, proxies: list) -> bool:
    if scope.get("scheme") in ("https", "wss"):
        return True
    client = scope.get("client")
    if proxies and client and _trusted(client[0], proxies):
        proto = _header(scope, b"x-forwarded-proto")
        if proto and proto.split(",")[0].strip().lower() in ("https", "wss"):
            return True
    return False


def foreign_origin(scope: Scope, proxies: list | None = None) -> bool:
    """True when the request carries an Origin header of another origin than the host it was sent
    to (the Host header; behind a trusted proxy also its X-Forwarded-Host). No Origin: False (not
    a browser's cross-site request: browsers send Origin on every POST and websocket handshake)."""
    origin = _header(scope, b"origin")
    if origin is None:
        return False
    hosts = {(_header(scope, b"host") or "").strip().lower()}
    client = scope.get("client")
    if proxies and client and _trusted(client[0], proxies):
        forwarded = _header(scope, b"x-forwarded-host")
        if forwarded:
            hosts.add(forwarded.split(",")[0].strip().lower())
    parts = urlsplit(origin.strip())
    return not parts.scheme or not parts.netloc or parts.netloc.lower() not in hosts


def _cookie(scope: Scope, name: str) -> str | None:
    for value in _headers(scope, b"cookie"):
        for item in value.split(";"):
            key, sep, val = item.strip().partition("=")
            if sep and key == name:
                return val.strip().strip('"') or None
    return None


def ended_code(problem: str) -> str:
    """The sign-in page's ?ended= code for why a session ended (the store says it in words)."""
    lowered = problem.lower()
    if "without activity" in lowered:
        return "idle"
    if "hour" in lowered:
        return "expired"
    if "changed" in lowered:
        return "changed"
    return "ended"


# -- the gate -------------------------------------------------------------------------------------
@dataclass
class Gate:
    """Settings, state store and rules of the HTTP layer (one per served app)."""

    settings: Settings
    store: Any  # paydash.state.store.StateStore
    proxies: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.proxies = parse_proxies(self.settings.trusted_proxies)
        self.session_rules = SessionRules.from_settings(self.settings)
        self.throttle_rules = ThrottleRules.from_settings(self.settings)

    def is_public(self, path: str, method: str | None) -> bool:
        if path.startswith("/auth/"):
            return True
        if path.startswith("/static/") and method in ("GET", "HEAD"):
            # Streamlit's own scripts, styles and fonts: the same for everyone, no data in them. Open,
            # so the "session ended" message can still load a widget's script, and so asset
            # requests never count as activity (never renew a session)
            return True
        return path == "/_stcore/health"

    def login_config(self) -> auth.LoginConfig:
        return auth.login_config(self.settings, self.store.users.all())

    def validate(self, token: str | None, touch: bool = True) -> tuple[Session | None, str]:
        """The session of `token` if it may go on, else (None, why it ended: '' when there was none).
        Blocking (the store): call it in a thread."""
        if not token:
            return None, ""
        lookup = self.store.sessions.get(token, time.time(), self.session_rules, touch=touch)
        session = lookup.session
        if session is None:
            return None, lookup.problem
        if not auth.still_allowed(session, self.login_config(), self.settings):
            self.store.sessions.end(token)
            return None, "Your account has changed; please sign in again."
        return session, ""

    def cookie_secure(self, scope: Scope) -> bool:
        return bool(self.settings.cookie_secure) or came_over_https(scope, self.proxies)


_current: Gate | None = None


def current_gate(request: Request | None = None) -> Gate:
    """The gate of the served app (from the request's scope, else the one `PaydashMiddleware` made)."""
    if request is not None:
        gate = request.scope.get("state", {}).get(STATE_KEY)
        if gate is not None:
            return gate
    if _current is None:
        raise RuntimeError("paydash's HTTP layer is not installed (paydash serve installs it)")
    return _current


class PaydashMiddleware:
    """Security headers, client address and the session gate (see the module docstring)."""

    def __init__(self, app: ASGIApp, gate: Gate, machine_routes: Iterable[Route] = ()) -> None:
        global _current
        self.app = app
        self.gate = gate
        routes = list(machine_routes)
        # path -> its methods; other methods on those paths meet the gate like any other request
        self.machine_paths = {route.path: route.methods or set() for route in routes}
        self.machine = Router(routes=routes)
        _current = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state[STATE_KEY] = self.gate
        state[ADDRESS_KEY] = client_address(scope, self.gate.proxies)
        if kind == "http":
            send = _with_security_headers(send)
            if scope.get("method") in self.machine_paths.get(scope.get("path"), ()):
                await self.machine(scope, receive, send)
                return
        elif foreign_origin(scope, self.gate.proxies):
            # a websocket opened by another site's page (even another port of this host, which
            # shares the cookie): refused before accept, whatever Streamlit's own check allows
            await send({"type": "websocket.close", "code": 1008})
            return
        path = scope.get("path", "/")
        if self.gate.is_public(path, scope.get("method")):
            await self.app(scope, receive, send)
            return
        token = _cookie(scope, SESSION_COOKIE)
        try:
            session, problem = await run_in_threadpool(self.gate.validate, token)
        except PaydashError as exc:  # the state store is down: nobody can be let in
            log.error("cannot check a session: %s", exc)
            await _refuse(scope, receive, send, 503, "Sign-in is unavailable: the state store cannot be reached. "
                                                      "Try again in a moment.")
            return
        if session is not None:
            state[SESSION_KEY] = session
            await self.app(scope, receive, send)
            return
        if kind == "websocket":
            # refused before accept: uvicorn answers the handshake with 403
            await send({"type": "websocket.close", "code": 1008})
            return
        if _wants_page(scope):
            target = scope.get("path", "/")
            if scope.get("query_string"):
                target += "?" + scope["query_string"].decode("latin-1")
            location = "/auth/login?next=" + quote(safe_next(target), safe="")
            if problem and token:
                location += "&ended=" + ended_code(problem)
            response = RedirectResponse(location, status_code=303)
            if token:
                response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax")
            response.headers["Cache-Control"] = "no-store"
            await response(scope, receive, send)
            return
        await _refuse(scope, receive, send, 401, "Sign in first: /auth/login")


def _wants_page(scope: Scope) -> bool:
    """A browser asking for a page (not one of Streamlit's API or asset requests)."""
    path = scope.get("path", "/")
    if not path.startswith(_STREAMLIT_PREFIXES):
        return True
    accept = _header(scope, b"accept") or ""
    return scope.get("method") in ("GET", "HEAD") and "text/html" in accept


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, text: str) -> None:
    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008 if status < 500 else 1013})
        return
    await Response(text + "\n", status_code=status, media_type="text/plain",
                   headers={"Cache-Control": "no-store"})(scope, receive, send)


def _with_security_headers(send: Send) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            headers += [(k, v) for k, v in SECURITY_HEADERS if k not in present]
            message = {**message, "headers": headers}
        await send(message)

    return sending


# -- sign-in and sign-out ----------------------------------------------------------------------
def _client(request: Request) -> str:
    return request.scope.get("state", {}).get(ADDRESS_KEY) or (request.client.host if request.client else "")


def _audit(gate: Gate, username: str, action: str, detail: str) -> None:
    try:
        gate.store.audit.record(username, action, detail)
    except Exception as exc:  # noqa: BLE001 - an audit write never breaks the sign-in it records
        log.warning("could not write the audit entry %s for %s: %s", action, username, exc)


async def start_session(request: Request, username: str, role: str, method: str, next_path: str | None) -> Response:
    """Create the session in the state store, record the audit `login`, set the cookie and
    answer 303 to the safe `next_path` (a same-site relative path, else "/"). Used by the
    password sign-in here and by the OIDC sign-in (paydash/app/oidc.py)."""
    gate = current_gate(request)
    address = _client(request)
    previous = request.cookies.get(SESSION_COOKIE)
    if previous:  # signing in again replaces the browser's session: the old one must not linger
        await run_in_threadpool(gate.store.sessions.end, previous)
    token = await run_in_threadpool(gate.store.sessions.create, username, role, method, time.time())
    await run_in_threadpool(_audit, gate, username, "login", f"role {role}, {method} sign-in from {address}")
    response = RedirectResponse(safe_next(next_path), status_code=303)
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(gate.settings.session_max_age), path="/",
        secure=gate.cookie_secure(request.scope), httponly=True, samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def _page(gate: Gate, config: auth.LoginConfig, next_path: str, status: int = 200, error: str = "",
          info: str = "", username: str = "", headers: dict[str, str] | None = None) -> HTMLResponse:
    oidc_name = gate.settings.oidc_provider_name if config.oidc else None
    if not config.configured:
        error = error or f"Sign-in is not available: {auth.NOT_CONFIGURED}"
    body = login_page.render(next_path=next_path, show_username=config.mode == "users",
                             show_password=config.mode is not None, oidc_name=oidc_name,
                             error=error, info=info, username=username)
    return HTMLResponse(body, status_code=status, headers={
        "Cache-Control": "no-store", "Content-Security-Policy": login_page.PAGE_CSP, **(headers or {})})


def _message(gate: Gate, code: str | None) -> str:
    if code == "idle":
        minutes = gate.session_rules.idle_timeout / 60
        return f"Your session ended after {minutes:g} minutes without activity; please sign in again."
    if code == "expired":
        hours = gate.session_rules.max_age / 3600
        return f"Your session ended after {hours:g} hours; please sign in again."
    return login_page.MESSAGES.get(code or "", "")


def _locked_message(seconds: float) -> str:
    minutes = max(1, math.ceil(seconds / 60))
    return (f"Too many failed sign-ins from your address: try again in {minutes} minute{'s' if minutes > 1 else ''}.")


def _retry_after(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _unavailable(exc: Exception) -> HTMLResponse:
    log.error("sign-in is unavailable: %s", exc)
    body = login_page.render(next_path="/", show_username=False, show_password=False,
                             error="Sign-in is unavailable right now (the state store cannot be reached). "
                                   "Try again in a moment.")
    return HTMLResponse(body, status_code=503, headers={"Cache-Control": "no-store", "Retry-After": "10",
                                                        "Content-Security-Policy": login_page.PAGE_CSP})


async def login_get(request: Request) -> Response:
    gate = current_gate(request)
    params = request.query_params
    next_path = safe_next(params.get("next"))
    try:
        session, _ = await run_in_threadpool(gate.validate, request.cookies.get(SESSION_COOKIE), False)
        if session is not None:  # already signed in: straight on
            return RedirectResponse(next_path, status_code=303, headers={"Cache-Control": "no-store"})
        config = await run_in_threadpool(gate.login_config)
    except PaydashError as exc:
        return _unavailable(exc)
    return _page(gate, config, next_path, info=_message(gate, params.get("ended")))


async def _form(request: Request) -> dict[str, str] | None:
    """The url-encoded form of a POST (None when it is not one, or too large)."""
    kind = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[0] for k, v in fields.items() if v}


def _cross_site() -> Response:
    return Response("Refused: this form was sent from another site.\n", status_code=403, media_type="text/plain")


async def login_post(request: Request) -> Response:
    gate = current_gate(request)
    if foreign_origin(request.scope, gate.proxies):
        return _cross_site()
    form = await _form(request)
    next_path = safe_next((form or {}).get("next") or request.query_params.get("next"))
    try:
        config = await run_in_threadpool(gate.login_config)
    except PaydashError as exc:
        return _unavailable(exc)
    if form is None:
        return _page(gate, config, next_path, status=400, error="Send the sign-in form (user name and password).")
    if config.mode is None:
        return _page(gate, config, next_path, status=401)
    typed = (form.get("username") or "").strip()
    password = form.get("password") or ""
    if config.mode == "users" and not typed:
        return _page(gate, config, next_path, status=401, error="Enter your user name and password.")
    username = auth.password_username(config, typed)
    address = _client(request)
    rules = gate.throttle_rules
    try:
        wait = await run_in_threadpool(gate.store.throttle.retry_after, username, address, time.time(), rules)
        if wait > 0:
            return _page(gate, config, next_path, status=429, error=_locked_message(wait), username=typed,
                         headers=_retry_after(wait))
        user = await run_in_threadpool(auth.check_credentials, config, typed, password)
        if user is None:
            wait = await run_in_threadpool(gate.store.throttle.failed, username, address, time.time(), rules)
            what = "password" if config.mode == "password" else "user name or password"
            detail = f"wrong {what} from {address}" + (f"; this address is refused for {math.ceil(wait)} s" if wait else "")
            await run_in_threadpool(_audit, gate, username or auth.TEAM_USER, "login_failed", detail)
            if wait > 0:
                return _page(gate, config, next_path, status=429, error=_locked_message(wait), username=typed,
                             headers=_retry_after(wait))
            return _page(gate, config, next_path, status=401, error=f"Wrong {what}.", username=typed)
        await run_in_threadpool(gate.store.throttle.succeeded, username, address)
        method = "password" if config.mode == "password" else "user"
        return await start_session(request, user.username, user.role, method, next_path)
    except PaydashError as exc:
        return _unavailable(exc)


async def logout_post(request: Request) -> Response:
    gate = current_gate(request)
    if foreign_origin(request.scope, gate.proxies):
        return _cross_site()
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        try:
            lookup = await run_in_threadpool(gate.store.sessions.get, token, time.time(), gate.session_rules, False)
            await run_in_threadpool(gate.store.sessions.end, token)
            if lookup.session is not None:
                await run_in_threadpool(_audit, gate, lookup.session.username, LOGOUT, f"from {_client(request)}")
        except PaydashError as exc:
            return _unavailable(exc)
    response = RedirectResponse("/auth/login?ended=signed_out", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=gate.cookie_secure(request.scope), httponly=True,
                           samesite="lax")
    response.headers["Cache-Control"] = "no-store"
    return response


def auth_routes(settings: Settings) -> list[Route]:
    """/auth/login (GET, POST), /auth/logout (POST), and /auth/oidc/* when PAYDASH_OIDC_ISSUER is set."""
    routes = [
        Route("/auth/login", login_get, methods=["GET"]),
        Route("/auth/login", login_post, methods=["POST"]),
        Route("/auth/logout", logout_post, methods=["POST"]),
    ]
    if auth.oidc_configured(settings):
        from paydash.app.oidc import oidc_routes  # Authlib only when it is used

        routes += oidc_routes(settings)
    return routes
