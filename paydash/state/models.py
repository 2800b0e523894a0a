"""The plain values the state store hands out (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ROLES = ("viewer", "admin")
TEAM_USER = "team"

# how a session was opened: the team password, a named user's password, the OIDC provider
SessionMethod = Literal["password", "user", "oidc"]


@dataclass(frozen=True)
class User:
    username: str
    role: str
    password_hash: str
    created_at: str = ""


@dataclass(frozen=True)
class Session:
    username: str
    role: str
    method: str
    signed_in_at: float  # epoch seconds
    last_seen: float  # epoch seconds
    token_hash: str = ""  # SHA-256 of the cookie's token (hex); the token itself is never stored

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class SessionLookup:
    session: Session | None
    problem: str = ""  # why there is no session ("" when there is one, or when no token was given)


@dataclass(frozen=True)
class SessionRules:
    max_age: float = 12 * 3600.0
    idle_timeout: float = 30 * 60.0
    touch_every: float = 15.0  # last_seen is written at most this often (one write per click is waste)

    @classmethod
    def from_settings(cls, settings) -> "SessionRules":  # noqa: ANN001
        return cls(float(settings.session_max_age), float(settings.session_idle_timeout))


@dataclass(frozen=True)
class ThrottleRules:
    max_failures: int = 5  # per (user name, client address) ...
    window: float = 300.0  # ... within this many seconds ...
    lockout: float = 300.0  # ... refuse that pair for this long
    address_max_failures: int = 50  # per client address, whatever the user names ...
    address_window: float = 3600.0  # ... within an hour

    @classmethod
    def from_settings(cls, settings) -> "ThrottleRules":  # noqa: ANN001
        return cls(int(settings.login_max_failures), float(settings.login_failure_window),
                   float(settings.login_lockout), int(settings.login_address_max_failures))
