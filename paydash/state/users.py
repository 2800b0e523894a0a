"""Named dashboard users (roles viewer, admin) in the state store, with argon2 password hashes only.

The module functions (name and password rules, hashing, verifying) are what the HTTP layer and
the CLI import; `UserStore` (`store.users`) keeps the users. Changing a user's role or password,
or removing the user, ends their sessions.
"""

from __future__ import annotations

from datetime import datetime, timezone
from functools import lru_cache
from typing import TYPE_CHECKING

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paydash.errors import InvalidInput
from paydash.state import schema
from paydash.state.models import ROLES, TEAM_USER, User

if TYPE_CHECKING:
    from paydash.state.store import StateStore

__all__ = ["MIN_PASSWORD_LENGTH", "ROLES", "TEAM_USER", "User", "UserStore", "hash_password", "normalize_username",
           "validate_password", "validate_role", "validate_username", "verify_password"]

MIN_PASSWORD_LENGTH = 8
_USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._@-")

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # verified when the user is unknown, so an unknown name costs as much as a wrong password
    return _hasher.hash("paydash: no such user")


def normalize_username(name: str) -> str:
    return (name or "").strip().lower()


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


def validate_role(role: str) -> str:
    if role not in ROLES:
        raise InvalidInput(f"role {role!r} is not one of {', '.join(ROLES)}")
    return role


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when `password` matches the argon2 `password_hash`. With no hash (an unknown user) a dummy
    hash is verified, so the answer takes as long either way; anything but an argon2 hash is refused."""
    try:
        _hasher.verify(password_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return password_hash is not None and password_hash != ""


def _user(row: sa.Row) -> User:
    return User(row.username, row.role, row.password_hash, row.created_at or "")


class UserStore:
    """`store.users`: the named users."""

    def __init__(self, store: "StateStore") -> None:
        self._store = store

    def all(self) -> dict[str, User]:
        """Every user by name (sorted by name)."""
        t = schema.users
        with self._store.read() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.username)).all()
        return {r.username: _user(r) for r in rows}

    def get(self, name: str) -> User | None:
        t = schema.users
        with self._store.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.username == normalize_username(name))).first()
        return _user(row) if row else None

    def exists(self) -> bool:
        """Whether any named user exists (then the team password is no longer accepted)."""
        with self._store.read() as conn:
            return conn.execute(sa.select(schema.users.c.username).limit(1)).first() is not None

    def add(self, name: str, password: str, role: str, now: datetime | None = None) -> User:
        """Add a user, or set a new password and role for an existing one (which ends their sessions
        when the role or the password changed)."""
        name = validate_username(name)
        validate_role(role)
        validate_password(password)
        new_hash = hash_password(password)
        created = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
        t, s = schema.users, schema.sessions
        with self._store.write() as conn:
            old = conn.execute(sa.select(t).where(t.c.username == name)).first()
            if old is None:
                user = User(name, role, new_hash, created)
                conn.execute(t.insert().values(username=name, role=role, password_hash=new_hash, created_at=created))
                return user
            user = User(name, role, new_hash, old.created_at or created)
            conn.execute(t.update().where(t.c.username == name).values(role=role, password_hash=new_hash))
            if old.role != role or not verify_password(old.password_hash, password):
                conn.execute(s.delete().where(s.c.username == name))
            return user

    def remove(self, name: str) -> None:
        """Remove a user and end their sessions; InvalidInput when there is no such user."""
        name = normalize_username(name)
        t, s = schema.users, schema.sessions
        with self._store.write() as conn:
            gone = conn.execute(t.delete().where(t.c.username == name)).rowcount
            if not gone:
                raise InvalidInput(f"no user {name!r} in the state store {self._store.display_url}; "
                                   "`paydash users list` shows who exists")
            conn.execute(s.delete().where(s.c.username == name))
