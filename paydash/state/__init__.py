"""The state store: everything paydash writes outside the warehouse, in one place.

Users, sessions, sign-in failures and lockouts, the audit log, and the alert runner's
state, history and outbox live in one SQLAlchemy database (PAYDASH_STATE_URL): a SQLite
file by default, PostgreSQL where several processes (two `serve` replicas, `alerts watch`)
must share it. Tables are declared in code and versioned with migrations; the old local
files (data/users.json, data/audit.sqlite, data/alerts.sqlite) are imported once.

Nothing here holds a password (argon2 hashes only) or a raw session token (SHA-256 only).

Public API (the contract other layers code against):

    store = open_state(settings)            # one StateStore per URL per process (cached)
    store.ping() -> float                   # seconds; raises StateUnavailable
    store.display_url -> str                # password hidden

    store.users.all() -> dict[str, User]
    store.users.get(name) -> User | None
    store.users.add(name, password, role, now=None) -> User      # ends their sessions on a role/password change
    store.users.remove(name) -> None                             # ends their sessions; InvalidInput if absent

    token = store.sessions.create(username, role, method, now)   # raw token for the cookie; only its hash is stored
    store.sessions.get(token, now, rules, touch=True) -> SessionLookup   # .session or .problem (why it ended)
    store.sessions.end(token) ; store.sessions.end_user(username) -> int

    store.throttle.retry_after(username, address, now, rules) -> float   # 0 when this client may try
    store.throttle.failed(username, address, now, rules) -> float        # seconds refused from now on (0: not yet)
    store.throttle.succeeded(username, address)

    store.audit   -> the audit log (record, page, choices, csv_chunks)
    store.alerts  -> the alert runner's state (load, save, pending, due, mark, outbox,
                     current_states, history, for_dashboard)
"""

from paydash.state.models import ROLES, TEAM_USER, Session, SessionLookup, SessionRules, ThrottleRules, User
from paydash.state.store import StateStore, StateUnavailable, close_all, display_url, open_state

__all__ = ["ROLES", "TEAM_USER", "Session", "SessionLookup", "SessionRules", "StateStore", "StateUnavailable",
           "ThrottleRules", "User", "close_all", "display_url", "open_state"]
