"""Who may open the dashboard: pure logic, no Streamlit.

Two ways to sign in:

- a shared team password (PAYDASH_PASSWORD): everyone is user `team` with role admin;
- named users with roles (viewer, admin) in a JSON users file outside the warehouse
  (PAYDASH_USERS_FILE), holding argon2 hashes only. Once that file has users, the team
  password is no longer accepted.

`Throttle` locks a user out after repeated failures; `Session` expires after an absolute
lifetime or when idle. Time is passed in (`now`, epoch seconds), so tests need no clock.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import tempfile
import threading
from collections import deque
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paydash.errors import ConfigError, InvalidInput

ROLES = ("viewer", "admin")
TEAM_USER = "team"
MIN_PASSWORD_LENGTH = 8
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._@-")

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # verified when the user is unknown, so an unknown name costs as much as a wrong password
    return _hasher.hash("paydash: no such user")


# -- users file ----------------------------------------------------------------------------
@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str
    created_at: str = ""


def normalize_username(name: str) -> str:
    return name.strip().lower()


def validate_username(name: str) -> str:
    name = normalize_username(name)
    if not name or len(name) > 64 or not set(name) <= _USERNAME_CHARS:
        raise InvalidInput(
            f"user name {name!r} is not valid: use 1-64 lower-case letters, digits, '.', '_', '-' or '@'"
        )
    return name


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidInput(f"the password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def load_users(path: Path) -> dict[str, User]:
    """The users in `path` by name; a missing file means no users."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"cannot read the users file {path}: {exc.strerror}; check PAYDASH_USERS_FILE")
    try:
        data = json.loads(text)
        users = {}
        for entry in data.get("users", []):
            user = User(
                username=str(entry["username"]),
                role=str(entry["role"]),
                password_hash=str(entry["password_hash"]),
                created_at=str(entry.get("created_at", "")),
            )
            if user.role not in ROLES:
                raise ValueError(f"user {user.username!r} has unknown role {user.role!r}")
            users[user.username] = user
        return users
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ConfigError(
            f"the users file {path} is not valid ({exc}); fix it or recreate it with `paydash users add`"
        )


def save_users(path: Path, users: dict[str, User]) -> None:
    """Write the users file atomically, readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"users": [asdict(u) for u in sorted(users.values(), key=lambda u: u.username)]}
    fd, tmp = tempfile.mkstemp(prefix=".users-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as out:
            json.dump(payload, out, indent=2)
            out.write("\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def add_user(path: Path, username: str, password: str, role: str, now: datetime | None = None) -> User:
    """Add a user, or replace the password and role of an existing one."""
    username = validate_username(username)
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    validate_password(password)
    users = load_users(path)
    created = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    user = User(username, role, hash_password(password), users[username].created_at if username in users else created)
    users[username] = user
    save_users(path, users)
    return user


def remove_user(path: Path, username: str) -> None:
    username = normalize_username(username)
    users = load_users(path)
    if username not in users:
        raise InvalidInput(f"no user {username!r} in {path}; `paydash users list` shows who exists")
    del users[username]
    save_users(path, users)


# -- which login is configured ------------------------------------------------------------
LoginMode = Literal["users", "password"]


@dataclass(frozen=True)
class LoginConfig:
    mode: LoginMode | None
    users: dict[str, User]
    team_password: str = ""

    @property
    def configured(self) -> bool:
        return self.mode is not None


def login_config(settings) -> LoginConfig:  # noqa: ANN001
    """Named users when the users file has any, else the team password, else nothing."""
    users = load_users(Path(settings.users_file))
    if users:
        return LoginConfig("users", users)
    if settings.password:
        return LoginConfig("password", {}, settings.password)
    return LoginConfig(None, {})


NOT_CONFIGURED = (
    "no dashboard login is configured. Set a shared team password with PAYDASH_PASSWORD "
    "(in the environment or in .streamlit/secrets.toml), or add named users with "
    "`paydash users add NAME --role admin`."
)


# -- checking a password ------------------------------------------------------------------
def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def check_credentials(config: LoginConfig, username: str, password: str) -> User | None:
    """The signed-in user when the credentials are right, else None (same cost either way)."""
    if config.mode == "password":
        # compare fixed-length digests so the time taken says nothing about the password
        if hmac.compare_digest(_digest(password), _digest(config.team_password)):
            return User(TEAM_USER, "admin", "")
        return None
    if config.mode == "users":
        user = config.users.get(normalize_username(username))
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        return user
    return None


# -- lockout ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ThrottleRules:
    max_failures: int = 5
    window: float = 300.0
    lockout: float = 300.0

    @classmethod
    def from_settings(cls, settings) -> "ThrottleRules":  # noqa: ANN001
        return cls(settings.login_max_failures, settings.login_failure_window, settings.login_lockout)


class Throttle:
    """Failed sign-ins per user name; `max_failures` within `window` lock it for `lockout`.

    One per server process (shared by every browser session), so opening a new tab does
    not reset the count. Thread-safe: Streamlit runs each session on its own thread.
    """

    def __init__(self) -> None:
        self._failures: dict[str, deque[float]] = {}
        self._locked_until: dict[str, float] = {}
        self._lock = threading.Lock()

    def locked_for(self, key: str, now: float) -> float:
        """Seconds `key` stays locked out (0 when it may try)."""
        with self._lock:
            until = self._locked_until.get(key, 0.0)
            if until <= now:
                self._locked_until.pop(key, None)
                return 0.0
            return until - now

    def failed(self, key: str, now: float, rules: ThrottleRules) -> bool:
        """Record a failure; True when it locks `key` out."""
        with self._lock:
            recent = self._failures.setdefault(key, deque())
            recent.append(now)
            while recent and recent[0] <= now - rules.window:
                recent.popleft()
            if len(recent) >= rules.max_failures:
                self._locked_until[key] = now + rules.lockout
                del self._failures[key]
                return True
            self._prune(now, rules)
            return False

    def succeeded(self, key: str) -> None:
        with self._lock:
            self._failures.pop(key, None)

    def _prune(self, now: float, rules: ThrottleRules) -> None:
        # keeps memory bounded when someone tries many different names
        if len(self._failures) > 10_000:
            for k in [k for k, q in self._failures.items() if not q or q[-1] <= now - rules.window]:
                del self._failures[k]


@dataclass(frozen=True)
class Attempt:
    user: User | None
    message: str  # why it was refused; empty on success


def attempt_login(config: LoginConfig, throttle: Throttle, rules: ThrottleRules, username: str, password: str, now: float) -> Attempt:
    """One sign-in attempt: lockout first (a locked user is refused even with the right password)."""
    if not config.configured:
        return Attempt(None, NOT_CONFIGURED)
    key = TEAM_USER if config.mode == "password" else normalize_username(username)
    if config.mode == "users" and not key:
        return Attempt(None, "Enter your user name and password.")
    locked = throttle.locked_for(key, now)
    if locked:
        return Attempt(None, _locked_message(locked))
    user = check_credentials(config, username, password)
    if user is None:
        if throttle.failed(key, now, rules):
            return Attempt(None, _locked_message(rules.lockout))
        what = "password" if config.mode == "password" else "user name or password"
        return Attempt(None, f"Wrong {what}.")
    throttle.succeeded(key)
    return Attempt(user, "")


def _locked_message(seconds: float) -> str:
    minutes = max(1, round(seconds / 60))
    return (
        f"Too many failed sign-ins for this user: try again in {minutes} minute{'s' if minutes > 1 else ''}."
    )


# -- sessions -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Session:
    username: str
    role: str
    signed_in_at: float
    last_seen: float

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def touched(self, now: float) -> "Session":
        return replace(self, last_seen=now)


def new_session(user: User, now: float) -> Session:
    return Session(user.username, user.role, now, now)


@dataclass(frozen=True)
class SessionRules:
    max_age: float = 12 * 3600.0
    idle_timeout: float = 30 * 60.0

    @classmethod
    def from_settings(cls, settings) -> "SessionRules":  # noqa: ANN001
        return cls(settings.session_max_age, settings.session_idle_timeout)


def session_problem(session: Session, now: float, rules: SessionRules) -> str:
    """Why the session is no longer valid, or '' while it is."""
    if now - session.signed_in_at >= rules.max_age:
        hours = rules.max_age / 3600
        return f"Your session ended after {hours:g} hours; please sign in again."
    if now - session.last_seen >= rules.idle_timeout:
        minutes = rules.idle_timeout / 60
        return f"Your session ended after {minutes:g} minutes without activity; please sign in again."
    return ""


def still_allowed(session: Session, config: LoginConfig) -> bool:
    """A removed user, a changed role or a switch of login method ends the session."""
    if config.mode == "password":
        return session.username == TEAM_USER
    if config.mode == "users":
        user = config.users.get(session.username)
        return user is not None and user.role == session.role
    return False
