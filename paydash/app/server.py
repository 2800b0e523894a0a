"""`paydash serve`: one ASGI application on one port, in this process.

Streamlit runs as an ASGI app (`st.App`, on uvicorn) with paydash's own routes and
middleware beside it:

- the dashboard pages (paydash/app/main.py), behind the session gate (http_auth.py);
- `GET/POST /auth/login`, `POST /auth/logout` (and `/auth/oidc/*` with an OIDC provider);
- `GET /healthz` (database, state store and receiver status; no sign-in) and Streamlit's
  own `/_stcore/health`;
- the Stripe receiver (`POST /webhooks/stripe`, `POST /events`, `GET /metrics`, as `paydash
  webhooks` serves them) when PAYDASH_STRIPE_WEBHOOK_SECRET or PAYDASH_EVENTS_TOKEN is set.
  On an embedded DuckDB file this process is then the file's only opener: the receiver holds
  it writable and the dashboard reads it through the same DuckDB instance (warehouse/engine.py).

The whole `Settings` is loaded once here (then `--db`, and the demo's one-run password) and
handed to the pages through `served.configure`. SIGTERM and SIGINT stop the server cleanly:
open requests finish, the receiver writes what it has queued, then the process exits.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import secrets
import signal
import socket
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from paydash.app import auth, http_auth, served
from paydash.errors import ConfigError, PaydashError
from paydash.settings import Settings, load_settings, raw_sources
from paydash.queries.admin import EXAMPLE_QUERIES

MAIN = Path(__file__).with_name("main.py")
RECEIVER_PATHS = ("/webhooks/stripe", "/events", "/metrics")
HEALTH_TIMEOUT = 15.0  # seconds /healthz waits for one ping before calling it down

log = logging.getLogger("paydash.serve")


def streamlit_options(port: int, address: str) -> dict[str, Any]:
    """Streamlit's configuration for `paydash serve` (over config.toml files)."""
    return {
        "server.headless": True,
        "server.port": port,
        "server.address": address,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "server.enableXsrfProtection": True,
        "browser.gatherUsageStats": False,
        # no tracebacks in the browser; they go to the server log
        "client.showErrorDetails": "none",
        "client.toolbarMode": "minimal",
        # the dataframe toolbar's "Download as CSV" does no formula neutralisation; every table
        # has paydash's own formula-safe export instead
        "client.disableDataExport": True,
        "global.developmentMode": False,
        "logger.hideWelcomeMessage": True,
    }


def demo_saved_queries(settings: Settings) -> Path | None:
    """The example saved queries for the demo's Data explorer, unless the team has its own file
    (PAYDASH_SAVED_QUERIES_FILE set anywhere settings come from, or a queries.toml here)."""
    if "PAYDASH_SAVED_QUERIES_FILE" in raw_sources() or Path(settings.saved_queries_file).exists():
        return None
    return EXAMPLE_QUERIES


def shown_address(address: str, port: int) -> str:
    host = "localhost" if address in ("0.0.0.0", "::", "") else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def receiver_enabled(settings: Settings) -> bool:
    return bool((settings.stripe_webhook_secret or "").strip() or (settings.events_token or "").strip())


def serve_settings(db: str | None = None, demo_login: bool = False) -> Settings:
    """The whole settings of this run: environment, .env and secrets.toml, then --db (and, for
    the demo, its example saved queries)."""
    settings = load_settings()
    if db:
        settings = settings.replace(database_url=db)
    if demo_login:
        examples = demo_saved_queries(settings)
        if examples is not None:
            settings = settings.replace(saved_queries_file=str(examples))
    return settings


def _login_or_demo(settings: Settings, store, demo_login: bool) -> tuple[Settings, str | None, auth.LoginConfig | None]:  # noqa: ANN001
    """Refuse to start without a way to sign in, except for the demo (a password for this run only)."""
    try:
        config = auth.login_config(settings, store.users.all())
    except PaydashError as exc:
        if settings.password or auth.oidc_configured(settings):
            print(f"warning: {exc}; nobody can sign in until it answers", file=sys.stderr, flush=True)
            return settings, None, None
        raise ConfigError(f"refusing to start the dashboard: {exc}") from exc
    if config.configured:
        return settings, None, config
    if not demo_login:
        raise ConfigError(f"refusing to start the dashboard: {auth.NOT_CONFIGURED}")
    password = secrets.token_urlsafe(12)
    settings = settings.replace(password=password)
    return settings, password, auth.login_config(settings, {})


# -- /healthz ----------------------------------------------------------------------------------
def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:400]


class Health:
    """What /healthz checks: the dashboard's database, the state store, the receiver."""

    def __init__(self, settings: Settings, store, receiver=None) -> None:  # noqa: ANN001
        from paydash.warehouse.engine import Warehouse

        self.settings = settings
        self.store = store
        self.receiver = receiver
        self.warehouse = Warehouse(settings.database_url, settings, read_only=True)

    async def _check(self, ping) -> dict[str, Any]:  # noqa: ANN001
        try:
            seconds = await asyncio.wait_for(run_in_threadpool(ping), HEALTH_TIMEOUT)
        except asyncio.TimeoutError:
            return {"ok": False, "error": f"no answer within {HEALTH_TIMEOUT:g} s"}
        except Exception as exc:  # noqa: BLE001 - reported, one line (the messages hide passwords)
            return {"ok": False, "error": _one_line(exc)}
        return {"ok": True, "ms": round(seconds * 1000, 1)}

    async def endpoint(self, request: Request) -> JSONResponse:
        database, state = await asyncio.gather(self._check(self.warehouse.ping), self._check(self.store.ping))
        body: dict[str, Any] = {"ok": database["ok"] and state["ok"], "database": database, "state": state}
        if self.receiver is not None:
            body["receiver"] = self.receiver.status()
        return JSONResponse(body, status_code=200 if body["ok"] else 503, headers={"Cache-Control": "no-store"})

    def close(self) -> None:
        self.warehouse.dispose()


# -- the application ---------------------------------------------------------------------------
def build_app(settings: Settings, store, on_failed=None, alerts_interval: float | None = None):  # noqa: ANN001, ANN201
    """The served application: `st.App(main.py)` with paydash's routes, middleware and lifespan, and
    the receiver's service (None without a webhook secret or events token).

    `on_failed(message)` is called when the receiver cannot start (the server should then stop);
    without it the error is raised. With `alerts_interval` (seconds) the alert rules are evaluated
    in this process too (`paydash serve --alerts`)."""
    import streamlit as st

    from paydash.sources.stripe import webhooks as stripe_webhooks

    service = None
    # machine routes, open without a session (their own authentication: Stripe's signature, the
    # events bearer token), answered by PaydashMiddleware before Streamlit's stack
    machine: list[Route] = []
    if receiver_enabled(settings):
        service = stripe_webhooks.ReceiverService(settings)
        machine += stripe_webhooks.service_routes(service, settings)
    health = Health(settings, store, service)
    machine.append(Route("/healthz", health.endpoint, methods=["GET"]))
    gate = http_auth.Gate(settings, store)

    @asynccontextmanager
    async def lifespan(_app) -> AsyncIterator[dict[str, Any] | None]:  # noqa: ANN001
        if service is not None:
            try:
                started = await run_in_threadpool(service.start_or_retry)
            except PaydashError as exc:
                if on_failed is None:
                    raise
                on_failed(f"the webhook receiver cannot open the database: {exc}")
            else:
                if started:
                    log.info("receiving Stripe webhooks into %s", service.display_url)
        watcher = None
        if alerts_interval:
            from paydash.alerts.runner import WatchThread

            watcher = WatchThread(settings, alerts_interval)
            watcher.start()
        try:
            yield None
        finally:
            if watcher is not None:
                await run_in_threadpool(watcher.close)
            if service is not None:
                await run_in_threadpool(service.close)  # what is queued is written first
            health.close()

    app = st.App(MAIN, routes=[*http_auth.auth_routes(settings), Route("/overview", default_page, methods=["GET"])],
                 middleware=[Middleware(http_auth.PaydashMiddleware, gate=gate, machine_routes=machine)],
                 lifespan=lifespan)
    return app, service


async def default_page(request: Request) -> RedirectResponse:
    """`/overview` is the default page, which Streamlit serves at `/` only (elsewhere its frontend
    shows "Page not found" over it): a typed or shared /overview link goes there, query kept."""
    query = request.url.query
    return RedirectResponse("/" + (f"?{query}" if query else ""), status_code=308)


def _bind(address: str, port: int) -> socket.socket:
    """The listening socket; a busy port is an error (never a quiet move to the next one)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind((address, port))
        sock.listen(2048)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(f"port {port} on {address} is already in use; stop what uses it or choose "
                              "another with --port (or $PORT)") from None
        if exc.errno == errno.EACCES:
            raise ConfigError(f"not allowed to listen on port {port} of {address}; use a port above 1023") from None
        raise ConfigError(f"cannot listen on {address}:{port}: {exc.strerror or exc}") from None
    return sock


def _uvicorn_options() -> dict[str, Any]:
    """Streamlit's own websocket settings for uvicorn (message size, pings), when it offers them."""
    try:
        from streamlit.web.server.starlette.starlette_server import _get_uvicorn_config_kwargs

        options = dict(_get_uvicorn_config_kwargs())
    except Exception:  # noqa: BLE001 - a Streamlit without it: uvicorn's defaults
        options = {}
    options.update(access_log=False, use_colors=False)
    return options


def run_server(port: int = 8501, address: str = "0.0.0.0", db: str | None = None, demo_login: bool = False,
               alerts_interval: float | None = None) -> None:
    """Serve the dashboard until SIGTERM/SIGINT; refuse to start without a login, except for the demo.
    With `alerts_interval` (seconds), the alert rules run in this process too (`paydash serve --alerts`)."""
    import uvicorn
    from streamlit import config as st_config
    from streamlit.web import bootstrap

    from paydash.state import open_state

    settings = serve_settings(db, demo_login)
    if receiver_enabled(settings):
        from paydash.warehouse.engine import require_incremental_writes

        require_incremental_writes(settings.database_url, "the webhook receiver of `paydash serve` "
                                   "(PAYDASH_STRIPE_WEBHOOK_SECRET / PAYDASH_EVENTS_TOKEN is set)")
    http_auth.parse_proxies(settings.trusted_proxies)  # a bad entry stops the start, with its message
    if any((getattr(settings, n) or "").strip() for n in ("oidc_issuer", "oidc_client_id", "oidc_client_secret")):
        from paydash.app.oidc import oidc_config_problem

        problem = oidc_config_problem(settings)
        if problem:
            raise ConfigError(f"refusing to start the dashboard: {problem}")
    check_declared_pages(settings)  # a bad [[page]] stops the start, in one line
    store = open_state(settings)
    settings, demo_password, config = _login_or_demo(settings, store, demo_login)
    served.configure(settings)

    sock = _bind(address, port)
    port = sock.getsockname()[1]
    bootstrap.load_config_options(streamlit_options(port, address))
    st_config._server_mode = "asgi-server"

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("paydash").setLevel(logging.INFO)

    failure: list[str] = []
    url = shown_address(address, port)

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:  # noqa: ANN001
            await super().startup(sockets)
            if self.should_exit:
                return
            print(f"\npaydash is running at {url}", flush=True)
            if demo_password:
                print(f"demo login: password {demo_password}  (generated for this run only)", flush=True)
            elif config is not None and config.mode == "users":
                print("sign in with a user of the state store (`paydash users list`)", flush=True)
            elif config is not None and config.mode == "password":
                print("sign in with the team password (PAYDASH_PASSWORD)", flush=True)
            if config is not None and config.oidc:
                print(f"or sign in with {settings.oidc_provider_name} ({url}/auth/oidc/login)", flush=True)

    def failed(message: str) -> None:
        failure.append(message)
        server.should_exit = True

    if alerts_interval is not None:
        from paydash.alerts.rules import load_rules

        load_rules(settings)  # a broken rules file stops the start, with its message
    app, _service = build_app(settings, store, on_failed=failed, alerts_interval=alerts_interval)
    uv_config = uvicorn.Config(
        app, host=address, port=port, lifespan="on", proxy_headers=False,  # http_auth decides whom to believe
        log_level="warning", timeout_graceful_shutdown=20, **_uvicorn_options(),
    )
    server = Server(uv_config)
    # uvicorn re-raises the signal that stopped it once it is done: these make that a clean exit
    previous = {sig: signal.signal(sig, _quiet_exit) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if failure:
        raise PaydashError(failure[0])
    if not server.started:
        raise PaydashError("the dashboard did not start; see the messages above")


def check_declared_pages(settings: Settings) -> None:
    """Refuse to start on a bad declared page (docs/pages.md): the file, the page, the key and the fix.
    Columns are checked against the tables that exist; an unreachable database only postpones that."""
    from paydash.declared_pages import check_all, load_pages
    from paydash.warehouse.engine import Warehouse
    from paydash.queries.declared import read_columns

    pages = load_pages(settings)
    if all(page.shipped for page in pages.values()):
        return  # paydash's own pages are checked when opened
    wh = Warehouse(settings.database_url, settings, read_only=True)
    try:
        check_all(pages, lambda table: read_columns(wh, table))
    except ConfigError:
        raise
    except PaydashError as exc:
        print(f"warning: the declared pages' columns are not checked: {exc}", file=sys.stderr, flush=True)
    finally:
        wh.dispose()


def _quiet_exit(signum, frame) -> None:  # noqa: ANN001
    pass
