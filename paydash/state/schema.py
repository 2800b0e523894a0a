"""The state store's tables (declared here, in code) and the ordered migrations that create them.

Every table is prefixed `paydash_` so the store can share a PostgreSQL database with other
things. `paydash_state_version` holds one row per migration applied; `MIGRATIONS` is the
ordered list of steps: a new step is appended, never edited once released. Times are epoch
seconds (floats) where the store computes with them (sessions, throttle) and UTC text where
they are shown as they are (audit log, alert state: the same text the old files held).
"""

from __future__ import annotations

from typing import Callable

import sqlalchemy as sa

metadata = sa.MetaData()

state_version = sa.Table(
    "paydash_state_version", metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("applied_at", sa.Float, nullable=False),
)

state_imports = sa.Table(
    "paydash_state_imports", metadata,
    sa.Column("kind", sa.String(20), primary_key=True),  # users | audit | alerts
    sa.Column("path", sa.String(1000), primary_key=True),  # the resolved path of the old file
    sa.Column("imported_at", sa.Float, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
)

users = sa.Table(
    "paydash_users", metadata,
    sa.Column("username", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("password_hash", sa.Text, nullable=False),  # argon2 only
    sa.Column("created_at", sa.String(40), nullable=False, server_default=""),
)

sessions = sa.Table(
    "paydash_sessions", metadata,
    sa.Column("token_hash", sa.String(64), primary_key=True),  # SHA-256 hex of the cookie's token
    sa.Column("username", sa.String(200), nullable=False, index=True),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("method", sa.String(20), nullable=False),
    sa.Column("signed_in_at", sa.Float, nullable=False),
    sa.Column("last_seen", sa.Float, nullable=False),
)

login_failures = sa.Table(
    "paydash_login_failures", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("address", sa.String(100), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_paydash_login_failures_pair", "username", "address", "at"),
    sa.Index("ix_paydash_login_failures_address", "address", "at"),
)

lockouts = sa.Table(
    "paydash_lockouts", metadata,
    sa.Column("username", sa.String(200), primary_key=True),
    sa.Column("address", sa.String(100), primary_key=True),
    sa.Column("until", sa.Float, nullable=False),
)

audit_log = sa.Table(
    "paydash_audit_log", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.String(32), nullable=False),  # UTC 'YYYY-MM-DD HH:MM:SS.ffffff' (sorts as time)
    sa.Column("username", sa.String(200), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("detail", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_paydash_audit_at", "at"),
    sa.Index("ix_paydash_audit_user_at", "username", "at"),
    sa.Index("ix_paydash_audit_action_at", "action", "at"),
)

alert_rule_state = sa.Table(
    "paydash_alert_rule_state", metadata,
    sa.Column("rule", sa.String(200), primary_key=True),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("since", sa.String(32)),  # UTC 'YYYY-MM-DD HH:MM:SS'
    sa.Column("breach_since", sa.String(32)),
    sa.Column("clear_since", sa.String(32)),
    sa.Column("dedup_key", sa.String(300)),
    sa.Column("value", sa.Float),
    sa.Column("volume", sa.Integer, nullable=False, server_default="0"),
    sa.Column("evaluated_at", sa.String(32)),
    sa.Column("channel", sa.String(50)),
)

alert_transitions = sa.Table(
    "paydash_alert_transitions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("from_state", sa.String(20), nullable=False),
    sa.Column("to_state", sa.String(20), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("value", sa.Float),
    sa.Column("dedup_key", sa.String(300)),
)

alert_outbox = sa.Table(
    "paydash_alert_outbox", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("channel", sa.String(50), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("at", sa.String(32), nullable=False),
    sa.Column("dedup_key", sa.String(300), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, server_default="pending"),  # pending | sent | failed
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", sa.String(32)),
    sa.Column("last_error", sa.Text),
    sa.Column("sent_at", sa.String(32)),
    sa.Index("ix_paydash_alert_outbox_pending", "status", "id"),
)


# -- migrations ------------------------------------------------------------------------------
def _v1(conn: sa.Connection) -> None:
    for table in (state_imports, users, sessions, login_failures, lockouts, audit_log,
                  alert_rule_state, alert_transitions, alert_outbox):
        table.create(conn, checkfirst=True)


# (version, description, step): applied in order, each in its own transaction with its version row
MIGRATIONS: list[tuple[int, str, Callable[[sa.Connection], None]]] = [
    (1, "users, sessions, sign-in failures and lockouts, audit log, alert state", _v1),
]
LATEST = MIGRATIONS[-1][0]
