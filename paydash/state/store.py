"""`StateStore`: one SQLAlchemy database for everything paydash writes outside the warehouse.

PAYDASH_STATE_URL is either the path of a SQLite file (the default, data/state.sqlite,
relative to the working directory; WAL and a busy timeout so several processes share it)
or a PostgreSQL URL (postgresql://user:pass@host/db), which several processes on several
machines share. The store connects lazily: the first operation (or `ping`) applies the
migrations and imports the old local files once; a store that cannot be reached raises
`StateUnavailable`, a one-line message naming the store and the fix.

SQLite write transactions start with BEGIN IMMEDIATE, so two processes that read then write
queue on the busy timeout instead of failing on a stale snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from paydash.errors import ConfigError, PaydashError
from paydash.state import schema

if TYPE_CHECKING:
    from paydash.state.alerts import AlertStore
    from paydash.state.audit import AuditLog
    from paydash.state.sessions import SessionStore
    from paydash.state.throttle import Throttle
    from paydash.state.users import UserStore

log = logging.getLogger("paydash.state")

_PG_SCHEMES = {"postgres", "postgresql", "postgresql+psycopg", "postgresql+psycopg2"}
SQLITE_BUSY_TIMEOUT = 30.0  # seconds a writer waits for another process's transaction


class StateUnavailable(PaydashError):
    """The state store cannot be reached or used; the message names it and the fix."""


# -- URLs ------------------------------------------------------------------------------------
def normalize_state_url(url_or_path: str, cwd: Path | None = None) -> str:
    """A SQLAlchemy URL from PAYDASH_STATE_URL: a PostgreSQL URL, a sqlite:/// URL or a file path."""
    text = str(url_or_path or "").strip()
    if not text:
        raise ConfigError("PAYDASH_STATE_URL is empty; set it to a file path (data/state.sqlite) "
                          "or a PostgreSQL URL (postgresql://user:pass@host/db)")
    if "://" not in text:
        path = Path(text).expanduser()
        if not path.is_absolute():
            path = (cwd or Path.cwd()) / path
        return f"sqlite:///{path.resolve()}"
    scheme, rest = text.split("://", 1)
    if scheme in _PG_SCHEMES:
        return "postgresql+psycopg://" + rest
    if scheme in ("sqlite", "sqlite+pysqlite"):
        if not rest.startswith("/") or rest in ("/", "/:memory:"):
            raise ConfigError(f"PAYDASH_STATE_URL {text!r} names no file; give the path of a SQLite file "
                              "(data/state.sqlite) or a PostgreSQL URL")
        return "sqlite:///" + rest.removeprefix("/")
    raise ConfigError(f"PAYDASH_STATE_URL has an unsupported scheme {scheme!r}; use the path of a SQLite file "
                      "(data/state.sqlite) or postgresql://user:pass@host:5432/db")


def display_url(url: str) -> str:
    """The store for messages: a SQLite file's path, or the PostgreSQL URL without its password."""
    try:
        parsed = make_url(url)
    except Exception:  # noqa: BLE001 - never let a message fail
        return "the configured state store"
    if parsed.get_backend_name() == "sqlite":
        return str(parsed.database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=True)


def _first_line(exc: BaseException) -> str:
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip()
    return text.splitlines()[0].strip() if text else type(inner).__name__


# -- the store -------------------------------------------------------------------------------
class StateStore:
    """The state database of one URL. Thread-safe; one per URL per process via `open_state`."""

    def __init__(self, url: str, connect_timeout: float = 5) -> None:
        self.url = normalize_state_url(url)
        self.display_url = display_url(self.url)
        self.is_sqlite = make_url(self.url).get_backend_name() == "sqlite"
        self.connect_timeout = connect_timeout
        self._engine: sa.Engine | None = None
        self._ready = False
        self._lock = threading.RLock()
        self._legacy_pending: dict[tuple[str, str], Path] = {}
        self._legacy_seen: set[tuple[str, str]] = set()
        self._last_prune: dict[str, float] = {}

    # -- parts ---------------------------------------------------------------------------------
    @cached_property
    def users(self) -> "UserStore":
        from paydash.state.users import UserStore

        return UserStore(self)

    @cached_property
    def sessions(self) -> "SessionStore":
        from paydash.state.sessions import SessionStore

        return SessionStore(self)

    @cached_property
    def throttle(self) -> "Throttle":
        from paydash.state.throttle import Throttle

        return Throttle(self)

    @cached_property
    def audit(self) -> "AuditLog":
        from paydash.state.audit import AuditLog

        return AuditLog(self)

    @cached_property
    def alerts(self) -> "AlertStore":
        from paydash.state.alerts import AlertStore

        return AlertStore(self)

    # -- engine --------------------------------------------------------------------------------
    @property
    def engine(self) -> sa.Engine:
        with self._lock:
            if self._engine is None:
                self._engine = self._create_engine()
            return self._engine

    def _create_engine(self) -> sa.Engine:
        if not self.is_sqlite:
            return sa.create_engine(
                self.url, pool_pre_ping=True, pool_size=3, max_overflow=7, pool_recycle=1800,
                connect_args={"connect_timeout": max(1, int(self.connect_timeout)),
                              "application_name": "paydash-state"},
            )
        path = Path(make_url(self.url).database)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateUnavailable(f"the state store {self.display_url} cannot be created ({exc.strerror}); "
                                   "set PAYDASH_STATE_URL to a writable path") from None
        engine = sa.create_engine(self.url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" below decides how transactions start
            cursor = dbapi_conn.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")  # readers never block the writer of another process
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.close()

        @sa.event.listens_for(engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            immediate = conn.get_execution_options().get("paydash_write", False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    # -- transactions --------------------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[sa.Connection]:
        """A connection in one write transaction, committed on success (errors translated)."""
        self._ensure_ready()
        with self._translated():
            with self.engine.connect().execution_options(paydash_write=True) as conn, conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A connection in one read transaction (errors translated)."""
        self._ensure_ready()
        with self._translated():
            with self.engine.connect() as conn, conn.begin():
                yield conn

    @contextmanager
    def _raw_write(self) -> Iterator[sa.Connection]:
        # for migrations and imports: no readiness check, errors left to the caller
        with self.engine.connect().execution_options(paydash_write=True) as conn, conn.begin():
            yield conn

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except PaydashError:
            raise
        except (sa.exc.OperationalError, sa.exc.InterfaceError) as exc:
            raise self._unavailable(exc) from exc
        except sa.exc.SQLAlchemyError as exc:
            raise PaydashError(f"the state store {self.display_url} refused an operation ({_first_line(exc)}); "
                               "check PAYDASH_STATE_URL and the store's disk or server") from exc

    def _unavailable(self, exc: BaseException) -> StateUnavailable:
        if self.is_sqlite:
            return StateUnavailable(f"the state store {self.display_url} cannot be used ({_first_line(exc)}); "
                                    "set PAYDASH_STATE_URL to a writable file path, or check the disk")
        return StateUnavailable(f"the state store {self.display_url} is unreachable ({_first_line(exc)}); "
                                "start the PostgreSQL server or fix PAYDASH_STATE_URL")

    def ping(self) -> float:
        """Seconds one round trip takes; StateUnavailable when the store cannot be used."""
        start = time.perf_counter()
        with self.read() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()
        return time.perf_counter() - start

    def close(self) -> None:
        """Close this process's connections (the store opens them again when used)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._ready = False

    def prune_due(self, what: str, now: float, every: float = 60.0) -> bool:
        """True at most once per `every` seconds of `now` per kind, so old rows are pruned now and then."""
        with self._lock:
            last = self._last_prune.get(what)
            if last is not None and 0 <= now - last < every:
                return False
            self._last_prune[what] = now
            return True

    # -- migrations and the one-time import ------------------------------------------------------
    def add_legacy(self, kind: str, path: str | Path) -> None:
        """An old local file (users, audit, alerts) to import once, at the next use."""
        resolved = Path(path).expanduser().resolve()
        key = (kind, str(resolved))
        with self._lock:
            if key not in self._legacy_seen and key not in self._legacy_pending:
                self._legacy_pending[key] = resolved

    def _ensure_ready(self) -> None:
        if self._ready and not self._legacy_pending:
            return
        with self._lock:
            with self._translated():
                if not self._ready:
                    self._migrate()
                    self._ready = True
                if self._legacy_pending:
                    from paydash.state import legacy

                    for key, path in list(self._legacy_pending.items()):
                        legacy.import_file(self, key[0], path)
                        self._legacy_seen.add(key)
                        del self._legacy_pending[key]

    def _migrate(self) -> None:
        version = schema.state_version
        for attempt in range(5):
            try:
                with self._raw_write() as conn:
                    version.create(conn, checkfirst=True)
                break
            except (sa.exc.IntegrityError, sa.exc.ProgrammingError):  # another process created it just now
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        for number, description, step in schema.MIGRATIONS:
            for attempt in range(5):
                try:
                    with self._raw_write() as conn:
                        done = conn.execute(sa.select(version.c.version).where(version.c.version == number)).first()
                        if done:
                            break
                        step(conn)
                        conn.execute(version.insert().values(version=number, description=description,
                                                             applied_at=time.time()))
                        log.info("state store %s: applied migration %d (%s)", self.display_url, number, description)
                    break
                except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
                    # two processes migrating at once: the loser's transaction fails on the winner's
                    # table or version row; it rolls back and finds the step done on the next pass
                    if attempt == 4:
                        raise
                    time.sleep(0.05 * (attempt + 1))

    def version(self) -> int:
        """The latest migration applied (0 before the first use)."""
        with self.read() as conn:
            return int(conn.execute(sa.select(sa.func.max(schema.state_version.c.version))).scalar() or 0)


# -- one store per URL per process --------------------------------------------------------------
_stores: dict[str, StateStore] = {}
_stores_lock = threading.Lock()


def open_state(settings: Any) -> StateStore:
    """The state store of `settings.state_url` (cached per URL in this process); the old local files
    named by the settings (users_file, audit_log_file, alert_state_file) are imported at its next use
    if they exist and were never imported. Connects lazily: use `ping()` to check it."""
    url = normalize_state_url(settings.state_url)
    with _stores_lock:
        store = _stores.get(url)
        if store is None:
            store = _stores[url] = StateStore(url, connect_timeout=float(settings.connect_timeout))
    for kind, name in (("users", "users_file"), ("audit", "audit_log_file"), ("alerts", "alert_state_file")):
        path = getattr(settings, name, "")
        if path:
            store.add_legacy(kind, path)
    return store


def close_all() -> None:
    """Forget every cached store (tests; a process that forks)."""
    with _stores_lock:
        for store in _stores.values():
            store.close()
        _stores.clear()
