"""Failed sign-ins, counted in the state store so every process sees the same counts.

Two limits (ThrottleRules):
- per (user name, client address): `max_failures` within `window` refuse that pair for
  `lockout` seconds. Another client signing in as the same user (or with the team password,
  user `team`) is not refused, so nobody can lock the team out from their own machine.
- per client address, whatever the user names: at most `address_max_failures` within
  `address_window`; beyond that the address is refused until the oldest of those failures
  leaves the window.

A success clears the pair's count (not the address's: one right password does not buy another
fifty guesses). The HTTP layer asks `retry_after` before checking a password and does not check
it while refused, so failures are only recorded for attempts that were checked.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from paydash.state import schema
from paydash.state.models import ThrottleRules
from paydash.state.users import normalize_username

if TYPE_CHECKING:
    from paydash.state.store import StateStore


def _key(username: str, address: str) -> tuple[str, str]:
    return normalize_username(username)[:200], (address or "unknown")[:100]


class Throttle:
    """`store.throttle`."""

    def __init__(self, store: "StateStore") -> None:
        self._store = store

    def retry_after(self, username: str, address: str, now: float, rules: ThrottleRules) -> float:
        """Seconds before this client may try this user name again (0: it may try now)."""
        user, addr = _key(username, address)
        with self._store.read() as conn:
            return self._refused(conn, user, addr, now, rules)

    def failed(self, username: str, address: str, now: float, rules: ThrottleRules) -> float:
        """Record a failed sign-in; the seconds this client is refused from now on (0: not yet)."""
        user, addr = _key(username, address)
        f, lk = schema.login_failures, schema.lockouts
        for attempt in range(3):
            try:
                with self._store.write() as conn:
                    conn.execute(f.insert().values(username=user, address=addr, at=float(now)))
                    since = now - rules.window
                    reset = conn.execute(sa.select(lk.c.until).where(lk.c.username == user, lk.c.address == addr)).scalar()
                    count = conn.execute(
                        sa.select(sa.func.count()).select_from(f).where(
                            f.c.username == user, f.c.address == addr, f.c.at > since,
                            *([f.c.at >= reset] if reset is not None else []))
                    ).scalar()
                    if count >= rules.max_failures:
                        self._set_until(conn, user, addr, now + rules.lockout)
                    refused = self._refused(conn, user, addr, now, rules)
                break
            except sa.exc.IntegrityError:  # another process wrote the same lockout row at the same moment
                if attempt == 2:
                    raise
        if self._store.prune_due("throttle", now):
            self.prune(now, rules)
        return refused

    def succeeded(self, username: str, address: str) -> None:
        """A right password: the pair's failures no longer count (the address's still do)."""
        user, addr = _key(username, address)
        f = schema.login_failures
        for attempt in range(3):
            try:
                with self._store.write() as conn:
                    last = conn.execute(sa.select(sa.func.max(f.c.at)).where(f.c.username == user, f.c.address == addr)).scalar()
                    if last is not None:
                        # the pair counts failures after its last one only (a lockout row already over)
                        self._set_until(conn, user, addr, float(last) + 1e-6)
                return
            except sa.exc.IntegrityError:  # another process wrote the same row at the same moment
                if attempt == 2:
                    raise

    def prune(self, now: float, rules: ThrottleRules) -> None:
        """Forget failures older than both windows, and lockouts over for longer than the window."""
        f, lk = schema.login_failures, schema.lockouts
        with self._store.write() as conn:
            conn.execute(f.delete().where(f.c.at <= now - max(rules.window, rules.address_window)))
            conn.execute(lk.delete().where(lk.c.until <= now - rules.window))

    # -- inside a transaction ---------------------------------------------------------------------
    @staticmethod
    def _set_until(conn: sa.Connection, user: str, addr: str, until: float) -> None:
        lk = schema.lockouts
        done = conn.execute(lk.update().where(lk.c.username == user, lk.c.address == addr).values(until=until)).rowcount
        if not done:
            conn.execute(lk.insert().values(username=user, address=addr, until=until))

    @staticmethod
    def _refused(conn: sa.Connection, user: str, addr: str, now: float, rules: ThrottleRules) -> float:
        f, lk = schema.login_failures, schema.lockouts
        until = conn.execute(sa.select(lk.c.until).where(lk.c.username == user, lk.c.address == addr)).scalar()
        pair = max(0.0, until - now) if until is not None else 0.0
        # the address is refused while `address_max_failures` failures lie within the window: until
        # the oldest of the latest that many leaves it
        oldest = conn.execute(
            sa.select(f.c.at).where(f.c.address == addr, f.c.at > now - rules.address_window)
            .order_by(f.c.at.desc()).limit(1).offset(rules.address_max_failures - 1)
        ).scalar()
        address = max(0.0, oldest + rules.address_window - now) if oldest is not None else 0.0
        return max(pair, address)
