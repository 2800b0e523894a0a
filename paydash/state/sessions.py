"""Dashboard sessions in the state store: an opaque random token in the cookie, its SHA-256 here.

A session ends after `max_age` from sign-in whatever happens, or after `idle_timeout` without
activity; either way the row is deleted when found expired, and expired rows are pruned now
and then. Activity is a lookup with `touch=True` (a page, a click); an auto-refresh looks the
session up with `touch=False`, which never extends it. `last_seen` is written at most every
`rules.touch_every` seconds, to spare one write per click.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, get_args

import sqlalchemy as sa

from paydash.errors import InvalidInput
from paydash.state import schema
from paydash.state.models import Session, SessionLookup, SessionMethod, SessionRules

if TYPE_CHECKING:
    from paydash.state.store import StateStore

METHODS = get_args(SessionMethod)
ENDED = "Your session has ended; please sign in again."


def token_hash(token: str) -> str:
    """What the store keeps of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def session_problem(session: Session, now: float, rules: SessionRules) -> str:
    """Why the session is no longer valid, or '' while it is."""
    if now - session.signed_in_at >= rules.max_age:
        hours = rules.max_age / 3600
        return f"Your session ended after {hours:g} hours; please sign in again."
    if now - session.last_seen >= rules.idle_timeout:
        minutes = rules.idle_timeout / 60
        return f"Your session ended after {minutes:g} minutes without activity; please sign in again."
    return ""


def _session(row: sa.Row) -> Session:
    return Session(row.username, row.role, row.method, float(row.signed_in_at), float(row.last_seen), row.token_hash)


class SessionStore:
    """`store.sessions`."""

    def __init__(self, store: "StateStore") -> None:
        self._store = store

    def create(self, username: str, role: str, method: str, now: float) -> str:
        """A new session; returns the raw token for the cookie (only its hash is stored)."""
        if method not in METHODS:
            raise InvalidInput(f"session method {method!r} is not one of {', '.join(METHODS)}")
        token = secrets.token_urlsafe(32)
        with self._store.write() as conn:
            conn.execute(schema.sessions.insert().values(
                token_hash=token_hash(token), username=username, role=role, method=method,
                signed_in_at=float(now), last_seen=float(now)))
        return token

    def get(self, token: str | None, now: float, rules: SessionRules, touch: bool = True) -> SessionLookup:
        """The session of `token`, or why there is none. Expired sessions are deleted; `touch`
        records activity (never on an auto-refresh)."""
        if not token:
            return SessionLookup(None, "")
        t = schema.sessions
        digest = token_hash(token)
        with self._store.read() as conn:
            row = conn.execute(sa.select(t).where(t.c.token_hash == digest)).first()
        if row is None:
            self._maybe_prune(now, rules)
            return SessionLookup(None, ENDED)
        session = _session(row)
        problem = session_problem(session, now, rules)
        if problem:
            with self._store.write() as conn:
                conn.execute(t.delete().where(t.c.token_hash == digest))
            return SessionLookup(None, problem)
        if touch and now - session.last_seen >= rules.touch_every:
            with self._store.write() as conn:
                conn.execute(t.update().where(t.c.token_hash == digest, t.c.last_seen < now).values(last_seen=float(now)))
            session = replace(session, last_seen=float(now))
        self._maybe_prune(now, rules)
        return SessionLookup(session)

    def end(self, token: str | None) -> bool:
        """End the session of `token` (sign-out); True when there was one."""
        if not token:
            return False
        t = schema.sessions
        with self._store.write() as conn:
            return bool(conn.execute(t.delete().where(t.c.token_hash == token_hash(token))).rowcount)

    def end_user(self, username: str) -> int:
        """End every session of `username`; how many there were."""
        t = schema.sessions
        with self._store.write() as conn:
            return int(conn.execute(t.delete().where(t.c.username == username)).rowcount or 0)

    def count(self, username: str | None = None) -> int:
        """Sessions stored (of `username`), expired ones not yet pruned included."""
        t = schema.sessions
        query = sa.select(sa.func.count()).select_from(t)
        if username is not None:
            query = query.where(t.c.username == username)
        with self._store.read() as conn:
            return int(conn.execute(query).scalar() or 0)

    def prune(self, now: float, rules: SessionRules) -> int:
        """Delete the sessions past either limit; how many."""
        t = schema.sessions
        with self._store.write() as conn:
            return int(conn.execute(t.delete().where(sa.or_(t.c.signed_in_at <= now - rules.max_age,
                                                            t.c.last_seen <= now - rules.idle_timeout))).rowcount or 0)

    def _maybe_prune(self, now: float, rules: SessionRules) -> None:
        if self._store.prune_due("sessions", now, every=300.0):
            self.prune(now, rules)
