"""Every setting paydash reads, declared once.

Values come from, lowest priority first: the declared default, `.streamlit/secrets.toml`,
a `.env` file in the working directory, then the process environment. In secrets.toml a
setting may be written either as its environment name at the top level
(`PAYDASH_DATABASE_URL = "..."`) or by its short name in a `[paydash]` table
(`database_url = "..."`).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from dotenv import dotenv_values

from paydash.errors import ConfigError


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Callable[[str], Any] = str
    secret: bool = False

    @property
    def env(self) -> str:
        return "PAYDASH_" + self.name.upper()


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive whole number")
    return value


def _boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError("use true or false")


def _timezone(text: str) -> str:
    try:
        ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown timezone {text!r}; use an IANA name such as UTC or Europe/Berlin")
    return text


def _fx_rates(text: str) -> str:
    parse_fx_rates(text)  # validates
    return text


def parse_fx_rates(text: str) -> dict[str, float]:
    """'eur=1.08, jpy=0.0067' -> {'eur': 1.08, 'jpy': 0.0067} (USD per unit of currency)."""
    rates: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        code, sep, value = part.partition("=")
        code = code.strip().lower()
        if not sep or len(code) != 3 or not code.isalpha():
            raise ValueError(f"{part!r} is not CURRENCY=RATE; write e.g. eur=1.08,gbp=1.27")
        try:
            rate = float(value)
        except ValueError:
            raise ValueError(f"rate {value.strip()!r} of {code} is not a number") from None
        if not rate > 0 or rate == float("inf"):
            raise ValueError(f"rate of {code} must be a positive number")
        rates[code] = rate
    return rates


def _metadata_key(text: str) -> str:
    if not text.strip():
        raise ValueError("must not be blank")
    return text.strip()


def _http_url(text: str) -> str:
    if not text.strip().lower().startswith(("http://", "https://")):
        raise ValueError("must be an http:// or https:// URL")
    return text.strip()


def _table_name(text: str) -> str:
    from paydash.warehouse.schema import split_table_name

    split_table_name(text)  # validates
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "database_url",
        "data/paydash.duckdb",
        "Where the marts live: a SQLAlchemy URL (postgresql://user@host/db; ClickHouse: "
        "clickhouse://user:pass@host:8123/db, or chdb:///path for embedded ClickHouse, docs/scaling.md) "
        "or the path of an embedded DuckDB file. Relative paths are relative to the working directory.",
    ),
    Setting(
        "payments_table",
        "mart_stripe_payments",
        "Charge mart, one row per charge attempt; may be schema-qualified "
        "(analytics.mart_stripe_payments).",
        _table_name,
    ),
    Setting(
        "daily_table",
        "mart_stripe_payments_daily",
        "Daily mart, one row per (date, funnel_name); may be schema-qualified.",
        _table_name,
    ),
    Setting(
        "first_failures_table",
        "",
        "Optional mart paydash builds beside its own marts: one row per payment intent whose "
        "first attempt failed, with whether and when a retry won it. When present, recovery "
        "reads it instead of joining the charge mart with itself; dbt users need not build it. "
        "Default: mart_stripe_first_failures in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "operations_events_table",
        "",
        "Optional mart of checkout, retry and receipt events for the Operations page and the alerts; filled by the webhook receiver, `POST /events` and the demo. Default: mart_operations_events in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "customers_table",
        "",
        "Optional customers table (names and emails) for the Customers page; filled by `paydash sync` and the demo. The page works without it. Default: mart_stripe_customers in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "promotion_codes_table",
        "",
        "Optional mart of promotion codes for the Promotions page; filled by `paydash sync` and the demo. Default: mart_stripe_promotion_codes in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "promotion_usage_table",
        "",
        "Optional mart of promotion-code usage (validated, applied, cleared, failed) for the Promotions page. Default: mart_stripe_promotion_usage in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "refunds_table",
        "",
        "Optional mart of refunds (one row per refund) for the Overview's refunds and net revenue and a payment's detail; filled by `paydash sync` and the demo. The pages work without it. Default: mart_stripe_refunds in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "disputes_table",
        "",
        "Optional mart of disputes (one row per dispute) for the Overview's disputes and dispute rate and a payment's detail; filled by `paydash sync` and the demo. The pages work without it. Default: mart_stripe_disputes in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "rollup_table",
        "",
        "Optional marts paydash builds beside its own: charges per UTC hour and every filter "
        "dimension (this name), and the Overview's totals per hour and funnel (this name + "
        "_hourly). When present, the Overview in any whole-hour timezone, the failure breakdown, "
        "the explorer's counts and filter options read them; dbt users need not build them "
        "(`paydash check` says what they would speed up). Default: mart_stripe_payment_rollup "
        "in the charge mart's schema.",
        _table_name,
    ),
    Setting(
        "timezone",
        "UTC",
        "Reporting timezone (IANA name): date ranges are whole days in it, and the daily "
        "mart's dates are taken to be in it.",
        _timezone,
    ),
    Setting(
        "cache_ttl_overview",
        300,
        "Seconds the dashboard keeps an Overview query result before reading again.",
        _positive_int,
    ),
    Setting(
        "cache_ttl_explorer",
        60,
        "Seconds the dashboard keeps a Payments explorer result before reading again.",
        _positive_int,
    ),
    Setting(
        "connect_timeout",
        5,
        "Seconds to wait for a database connection before reporting it unreachable.",
        _positive_int,
    ),
    Setting(
        "statement_timeout",
        30,
        "Seconds a single query may run before it is cancelled.",
        _positive_int,
    ),
    Setting(
        "pool_size",
        5,
        "Database connections kept open by one process.",
        _positive_int,
    ),
    Setting(
        "operations_refresh",
        60,
        "Seconds between the Operations page's automatic refreshes while its refresh toggle is on. A refresh "
        "is not activity: an untouched Operations tab still signs out after PAYDASH_SESSION_IDLE_TIMEOUT.",
        _positive_int,
    ),
    # -- dashboard login (paydash/app/auth.py) --------------------------------------
    Setting(
        "password",
        "",
        "Shared team password for the dashboard (everyone signs in as `team`, role admin). "
        "Ignored once named users exist (`paydash users add`, kept in the state store). Set it in the environment or "
        "`.streamlit/secrets.toml`, never in code.",
        secret=True,
    ),
    Setting(
        "users_file",
        "data/users.json",
        "Where an older paydash kept the named users (JSON, argon2 hashes): imported once into the state store "
        "(PAYDASH_STATE_URL) when it exists, then left alone. Users are managed with `paydash users add`, "
        "`remove` and `list`. Relative to the working directory.",
    ),
    Setting(
        "session_max_age",
        43_200,
        "Seconds a dashboard sign-in lasts at most, however active (12 hours).",
        _positive_int,
    ),
    Setting(
        "session_idle_timeout",
        1_800,
        "Seconds without any interaction after which a dashboard sign-in ends (30 minutes).",
        _positive_int,
    ),
    Setting(
        "login_max_failures",
        5,
        "Failed sign-ins for one user name (or the team password) from one client address, within "
        "PAYDASH_LOGIN_FAILURE_WINDOW, after which that client is refused (429) for PAYDASH_LOGIN_LOCKOUT "
        "seconds; other clients are not.",
        _positive_int,
    ),
    Setting(
        "login_address_max_failures",
        50,
        "Failed sign-ins from one client address within an hour, whatever the user names, after which that "
        "address is refused until the hour has passed.",
        _positive_int,
    ),
    Setting(
        "login_failure_window",
        300,
        "Seconds over which failed sign-ins are counted for the lockout.",
        _positive_int,
    ),
    Setting(
        "login_lockout",
        300,
        "Seconds a locked-out user is refused, even with the right password.",
        _positive_int,
    ),
    Setting(
        "state_url",
        "data/state.sqlite",
        "Where paydash keeps what is not warehouse data: users, sessions, sign-in failures and lockouts, the "
        "audit log and the alert runner's state. The path of a SQLite file (default; relative to the working "
        "directory) or a PostgreSQL URL (postgresql://user:pass@host/db), which several processes (`serve` "
        "replicas, `alerts watch`) share. Never holds a password or a raw session token.",
        secret=True,
    ),
    Setting(
        "cookie_secure",
        False,
        "true: the sign-in cookie is sent over https only, even when paydash itself sees plain http behind a "
        "TLS-terminating proxy. It is always Secure when the request came over https.",
        _boolean,
    ),
    Setting(
        "trusted_proxies",
        "",
        "Comma-separated addresses (or CIDR ranges) of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto paydash believes; the client address of every other request is the socket's peer.",
    ),
    # -- sign-in with the team's identity provider (OIDC; paydash/app/oidc.py) ----------
    Setting(
        "oidc_issuer",
        "",
        "Issuer URL of the team's OpenID Connect provider (its /.well-known/openid-configuration is read); "
        "set with the client id and secret to offer 'Sign in with ...' at /auth/oidc/login.",
        _http_url,
    ),
    Setting("oidc_client_id", "", "Client id of paydash's application at the OIDC provider."),
    Setting("oidc_client_secret", "", "Client secret of paydash's application at the OIDC provider.", secret=True),
    Setting(
        "oidc_allowed_domains",
        "",
        "Comma-separated email domains whose users may sign in through the OIDC provider (viewer role), e.g. "
        "example.com; empty: only the admin emails below.",
    ),
    Setting(
        "oidc_admin_emails",
        "",
        "Comma-separated emails that sign in through the OIDC provider with the admin role.",
    ),
    Setting("oidc_provider_name", "your identity provider", "Name shown on the sign-in button of the OIDC provider."),
    # -- admin pages: System, Data explorer, audit log (docs/admin.md) ----------------
    Setting(
        "audit_log_file",
        "data/audit.sqlite",
        "Where an older paydash kept the audit log (SQLite): imported once into the state store "
        "(PAYDASH_STATE_URL), which now holds it, when it exists, then left alone. Relative to the working directory.",
    ),
    Setting(
        "redis_url",
        "",
        "Redis the System page checks (health and response time), e.g. redis://127.0.0.1:6379/0; "
        "empty: no Redis is shown.",
        secret=True,
    ),
    Setting(
        "saved_queries_file",
        "queries.toml",
        "TOML file of the Data explorer's saved queries ([[query]] tables with name, description, sql); "
        "they run read-only with the limits below. Relative to the working directory.",
    ),
    Setting(
        "pages_file",
        "",
        "TOML file of pages declared in configuration ([[page]] tables: name, title, table, search, filters, "
        "order_by, ...; docs/pages.md), added to paydash's own Disputes, Refunds, Checkout sessions and Invoices "
        "pages (a page of the same name replaces paydash's). Checked when `paydash serve` starts. Relative to the "
        "working directory.",
    ),
    Setting(
        "explorer_database_url",
        "",
        "Database the Data explorer's saved queries run on, if not PAYDASH_DATABASE_URL: on PostgreSQL "
        "give it a login role without superuser or server-file rights (the explorer refuses one that has "
        "them). Default: PAYDASH_DATABASE_URL.",
        secret=True,
    ),
    Setting(
        "explorer_max_rows",
        1_000,
        "Most rows a saved query returns in the Data explorer (the database stops after one more).",
        _positive_int,
    ),
    Setting(
        "explorer_timeout",
        10,
        "Seconds a saved query may run in the Data explorer before the database cancels it.",
        _positive_int,
    ),
    Setting(
        "export_max_rows",
        1_000_000,
        "Most payments one CSV download from the dashboard may hold (the file is built in the "
        "server's memory); larger exports go through `paydash export payments`.",
        _positive_int,
    ),
    # -- Stripe data: transform and webhook receiver (paydash/sources/) --------------
    Setting(
        "fx_rates",
        "",
        "USD per unit of each currency, for charges whose balance transaction did not settle in USD "
        "(or is not known yet): `eur=1.08,gbp=1.27,jpy=0.0067`. A charge in a currency missing here "
        "gets an empty amount_usd and a warning naming the currency. See docs/stripe.md.",
        _fx_rates,
    ),
    Setting(
        "metadata_funnel_key",
        "funnel_name",
        "Key of a Stripe charge's (else its payment intent's) metadata that holds the acquisition "
        "funnel (funnel_name in the charge mart).",
        _metadata_key,
    ),
    Setting(
        "metadata_profile_key",
        "profile_id",
        "Key of a Stripe charge's (else its payment intent's) metadata that holds your own user or "
        "profile id (profile_id in the charge mart).",
        _metadata_key,
    ),
    Setting(
        "stripe_webhook_secret",
        "",
        "Signing secret(s) of the Stripe webhook endpoint (`whsec_...`) that `paydash webhooks` "
        "checks every delivery against; several, comma-separated, while a secret is being rolled.",
        secret=True,
    ),
    Setting(
        "webhook_tolerance",
        300,
        "Seconds a webhook's signed timestamp may be older (or newer) than the receiver's clock "
        "before the delivery is refused.",
        _positive_int,
    ),
    Setting(
        "webhook_max_body",
        1_048_576,
        "Largest webhook request body, in bytes, the receiver reads; larger deliveries get 413.",
        _positive_int,
    ),
    Setting(
        "events_token",
        "",
        "Bearer token your services send to `POST /events` on the receiver (`Authorization: Bearer ...`) to "
        "record operations events; unset, the endpoint answers 404. Use a long random value.",
        secret=True,
    ),
    Setting(
        "events_max_body",
        262_144,
        "Largest `POST /events` request body, in bytes; larger requests get 413.",
        _positive_int,
    ),
    Setting(
        "stripe_api_key",
        "",
        "Stripe API key `paydash sync` reads the account with: a restricted key (`rk_live_...`) with read "
        "access to charges, payment intents, balance transactions, customers, refunds, disputes, checkout "
        "sessions, promotion codes, coupons and invoices is enough (the sync only lists). Never logged.",
        secret=True,
    ),
    Setting(
        "stripe_sync_lookback",
        86_400,
        "Seconds before the last sync's end that the next `paydash sync` reads again, to pick up recent "
        "objects whose state changed since (a payment retried, a checkout session completed). Older changes "
        "reach the marts through the webhook receiver, or `paydash sync --since DATE`.",
        _positive_int,
    ),
    Setting(
        "duckdb_shared",
        False,
        "true: every paydash process opens the embedded DuckDB file only for the length of one "
        "query or transaction, and waits while another holds it. Only for separate processes on one file: "
        "`paydash webhooks`, `sync` or `alerts watch` running beside `paydash serve` (set it for all of them; "
        "DuckDB lets one process write and then no other open the file); costs a file open per query. Not "
        "needed when `paydash serve` receives the webhooks itself (PAYDASH_STRIPE_WEBHOOK_SECRET): the receiver "
        "and the dashboard share the file in one process. Not needed on PostgreSQL.",
        _boolean,
    ),
    Setting(
        "write_lock_wait",
        10,
        "Seconds a write waits for another process to release an embedded DuckDB file; after that "
        "the webhook receiver answers 503 and Stripe delivers the event again later.",
        _positive_int,
    ),
    # -- alerts (paydash/alerts/, docs/alerts.md) ---------------------------------------------
    Setting(
        "alert_rules_file",
        "",
        "TOML file of alert rules (docs/alerts.md). Default: the rules shipped with paydash "
        "(`paydash alerts rules` prints them).",
    ),
    Setting(
        "alert_state_file",
        "data/alerts.sqlite",
        "Where an older paydash kept the alert runner's state, history and outbox (SQLite): imported once into "
        "the state store (PAYDASH_STATE_URL), which now holds them, when it exists, then left alone.",
    ),
    Setting("slack_webhook_url", "", "Slack incoming-webhook URL the Slack alert rules post to.", secret=True),
    Setting("pagerduty_routing_key", "", "Integration (routing) key of the PagerDuty service the PagerDuty alert "
            "rules page (Events API v2).", secret=True),
    Setting("pagerduty_events_url", "https://events.pagerduty.com/v2/enqueue", "PagerDuty Events API v2 endpoint.",
            _http_url),
    Setting("opsgenie_api_key", "", "Opsgenie API key (of an API integration) for the Opsgenie alert rules.",
            secret=True),
    Setting("opsgenie_url", "https://api.opsgenie.com/v2/alerts", "Opsgenie Alert API endpoint "
            "(EU accounts: https://api.eu.opsgenie.com/v2/alerts).", _http_url),
    Setting("dashboard_url", "http://localhost:8501", "Public URL of the dashboard, for the links in alert "
            "messages (they open its Operations view).", _http_url),
    Setting("alert_http_timeout", 10, "Seconds an alert delivery waits for PagerDuty, Slack or Opsgenie before "
            "retrying.", _positive_int),
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


@dataclass(frozen=True)
class Settings:
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        if name in BY_NAME:
            return self.values.get(name, BY_NAME[name].default)
        raise AttributeError(name)

    def replace(self, **changes: Any) -> "Settings":
        merged = dict(self.values)
        for name, value in changes.items():
            if name not in BY_NAME:
                raise AttributeError(name)
            if value is not None:
                merged[name] = value
        return Settings(merged)


def _read_secrets(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML ({exc}); fix or remove it")
    found: dict[str, str] = {}
    for setting in SETTINGS:
        if setting.env in data:
            found[setting.env] = str(data[setting.env])
        section = data.get("paydash")
        if isinstance(section, dict) and setting.name in section:
            found[setting.env] = str(section[setting.name])
    return found


def raw_sources(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment-style values merged from secrets.toml, .env and the environment."""
    cwd = cwd or Path.cwd()
    merged: dict[str, str] = {}
    merged.update(_read_secrets(cwd / ".streamlit" / "secrets.toml"))
    env_file = cwd / ".env"
    if env_file.is_file():
        merged.update({k: v for k, v in dotenv_values(env_file).items() if v not in (None, "")})
    # an empty variable means unset (docker-compose passes `NAME=` for one): it must not
    # hide a value from .env or secrets.toml
    merged.update({k: v for k, v in (os.environ if environ is None else environ).items() if v != ""})
    return merged


def load_settings(cwd: Path | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    raw = raw_sources(cwd, environ)
    values: dict[str, Any] = {}
    for setting in SETTINGS:
        if setting.env not in raw or raw[setting.env] == "":
            continue
        try:
            values[setting.name] = setting.parse(raw[setting.env])
        except (ValueError, ConfigError) as exc:  # ConfigError: from the table-name check
            raise ConfigError(f"{setting.env}={raw[setting.env]!r} is not valid: {exc}")
    return Settings(values)


def raw_value(name: str, cwd: Path | None = None) -> str | None:
    """A PAYDASH_* value not declared above (used by later layers for their own secrets)."""
    return raw_sources(cwd).get(name)


def settings_markdown() -> str:
    """The configuration reference, as written in docs/configuration.md."""
    lines = ["| environment variable | default | meaning |", "|---|---|---|"]
    for s in SETTINGS:
        default = "(none)" if s.default in (None, "") else f"`{s.default}`"
        lines.append(f"| `{s.env}` | {default} | {s.help} |")
    return "\n".join(lines)
