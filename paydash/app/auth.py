"""Who may open the dashboard: pure logic, no Streamlit, no HTTP.

Ways to sign in:

- named users with roles (viewer, admin) in the state store (`paydash users add`), argon2
  hashes only. Once there is one, the team password is no longer accepted;
- else a shared team password (PAYDASH_PASSWORD): everyone is user `team`, role admin;
- and, beside either, the team's OIDC identity provider when PAYDASH_OIDC_ISSUER is set
  (paydash/app/oidc.py): admins by email, viewers by email domain.

`still_allowed` says whether a stored session may go on: a removed user, a changed role, a
switch of login method or an email no longer allowed ends it. The store, the HTTP layer
(paydash/app/http_auth.py) and the pages call these; nothing here reads a clock or a request.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Literal

from paydash.state.models import ROLES, TEAM_USER, Session, User
from paydash.state.users import normalize_username, verify_password

__all__ = ["NOT_CONFIGURED", "ROLES", "TEAM_USER", "LoginConfig", "check_credentials", "login_config",
           "oidc_configured", "password_username", "still_allowed"]

LoginMode = Literal["users", "password"]


@dataclass(frozen=True)
class LoginConfig:
    """Which password login is configured (named users win over the team password), and whether
    the OIDC provider is offered beside it."""

    mode: LoginMode | None
    users: dict[str, User] = field(default_factory=dict)
    team_password: str = ""
    oidc: bool = False

    @property
    def configured(self) -> bool:
        return self.mode is not None or self.oidc


def oidc_configured(settings) -> bool:  # noqa: ANN001 - Settings
    """Sign-in with the identity provider is offered: issuer, client id and client secret all set
    (paydash/app/oidc.py says what is wrong with a half set-up)."""
    return all((getattr(settings, name) or "").strip() for name in ("oidc_issuer", "oidc_client_id", "oidc_client_secret"))


def login_config(settings, users: dict[str, User]) -> LoginConfig:  # noqa: ANN001 - Settings
    """From the settings and the named users in the state store (`store.users.all()`)."""
    oidc = oidc_configured(settings)
    if users:
        return LoginConfig("users", dict(users), oidc=oidc)
    if settings.password:
        return LoginConfig("password", {}, settings.password, oidc=oidc)
    return LoginConfig(None, {}, oidc=oidc)


NOT_CONFIGURED = (
    "no dashboard login is configured. Set a shared team password with PAYDASH_PASSWORD "
    "(in the environment or in .streamlit/secrets.toml), add named users with "
    "`paydash users add NAME --role admin`, or set PAYDASH_OIDC_ISSUER (with its client id and secret)."
)


def password_username(config: LoginConfig, username: str) -> str:
    """The user name a password sign-in is for (and throttled as): `team` with the team password."""
    return TEAM_USER if config.mode == "password" else normalize_username(username)


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
        # an unknown name verifies a dummy hash: as slow as a wrong password
        if verify_password(user.password_hash if user else None, password) and user is not None:
            return user
        return None
    return None


def still_allowed(session: Session, config: LoginConfig, settings=None) -> bool:  # noqa: ANN001 - Settings
    """Whether a stored session may go on under today's configuration: a removed user, a changed
    role, a switch of login method (team password <-> named users), an OIDC provider no longer
    configured or an email no longer allowed ends it."""
    if session.method == "password":
        return config.mode == "password" and session.username == TEAM_USER and session.role == "admin"
    if session.method == "user":
        if config.mode != "users":
            return False
        user = config.users.get(session.username)
        return user is not None and user.role == session.role
    if session.method == "oidc":
        if not config.oidc or settings is None:
            return False
        from paydash.app.oidc import oidc_session_still_allowed  # only with an OIDC session

        return oidc_session_still_allowed(session.username, session.role, settings)
    return False
