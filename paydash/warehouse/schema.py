"""The data contract's tables, declared in code (reflection is broken on duckdb-engine)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Double,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)

from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateColumn

from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.errors import ConfigError

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]*$")


def split_table_name(name: str) -> tuple[str | None, str]:
    """'analytics.mart' -> ('analytics', 'mart'); refuses anything that is not an identifier."""
    parts = name.strip().split(".")
    if len(parts) > 2 or not all(_IDENT.match(p) for p in parts):
        raise ConfigError(
            f"table name {name!r} is not valid: use letters, digits and underscores, "
            "optionally schema-qualified (analytics.mart_stripe_payments)"
        )
    return (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0])


# Ids are unique random-looking strings: DuckDB's string compression gains little on them
# and costs every query that hashes or joins them (measured at 10M payments: the recovery
# join 152 ms compressed vs 86 ms uncompressed), so tables paydash creates keep them plain.
UNCOMPRESSED_ON_DUCKDB = {"charge_id", "payment_intent_id", "customer_id", "profile_id"}


@compiles(CreateColumn, "duckdb")
def _duckdb_column(element, compiler, **kw):  # noqa: ANN001, ANN202
    text = compiler.visit_create_column(element, **kw)
    compression = element.element.info.get("duckdb_compression")
    return f"{text} USING COMPRESSION {compression}" if compression else text


# Column order is the contract's order (docs/data-contract.md).
PAYMENT_COLUMNS: tuple[tuple[str, object], ...] = (
    ("charge_id", Text),
    ("payment_intent_id", Text),
    ("customer_id", Text),
    ("profile_id", Text),
    ("status", Text),
    ("is_successful", Boolean),
    ("amount_usd", Numeric(12, 2)),
    ("currency", Text),
    ("failure_code", Text),
    ("failure_category", Text),
    ("recovery_action", Text),
    ("attempt_number", Integer),
    ("created_at", DateTime),
    ("created_date", Date),
    ("hour_of_day", Integer),
    ("day_of_week", Text),
    ("funnel_name", Text),
    ("card_brand", Text),
    ("card_country", Text),
)

# Optional charge-mart columns: declared (paydash's own marts have them) but not required by
# the contract; a query that needs one asks the warehouse whether the mart has it
# (Warehouse.has_column) and says what to add when it does not.
OPTIONAL_PAYMENT_COLUMNS: tuple[tuple[str, object], ...] = (
    ("card_last4", Text),  # the card's last four digits (payment_method_details.card.last4)
)

# Not in the data contract: paydash's own charge marts carry a 64-bit sketch of each id's
# trigrams (paydash/warehouse/id_sketch.py), written with the rows, so a search for part of an
# id tests an integer before it compares text. A mart without them is searched as before.
ID_SKETCH_COLUMNS: tuple[tuple[str, object], ...] = tuple(
    (f"{name}_sketch", BigInteger) for name in ("charge_id", "payment_intent_id", "customer_id", "profile_id")
)

DAILY_REQUIRED_COLUMNS: tuple[tuple[str, object], ...] = (
    ("date", Date),
    ("funnel_name", Text),
    ("total_attempts", Integer),
    ("successful_payments", Integer),
    ("failed_payments", Integer),
    ("gross_revenue_usd", Numeric(14, 2)),
    ("failed_revenue_usd", Numeric(14, 2)),
    ("success_rate", Double),
)


def category_count_column(category: str) -> str:
    return f"{category}_count"


DAILY_COLUMNS = DAILY_REQUIRED_COLUMNS + tuple(
    (category_count_column(c), Integer) for c in FAILURE_CATEGORIES
)


# Optional, built by paydash beside the daily mart (paydash/warehouse/transforms.py): charges
# per local day, funnel, status and amount, so the explorer's amount order counts the matches
# per amount without reading the charge mart. Not in the data contract.
AMOUNT_COUNT_COLUMNS: tuple[tuple[str, object], ...] = (
    ("date", Date),
    ("funnel_name", Text),
    ("status", Text),
    ("amount_usd", Numeric(12, 2)),
    ("payments", Integer),
)

# Optional, built by paydash beside its own marts (paydash/warehouse/rollup.py): charges per UTC
# hour (of created_at) and every dimension the pages filter on, with their count and amount;
# the explorer's counts and filter options and the failure breakdown read it instead of
# the charge mart. Not in the data contract.
ROLLUP_DIMENSIONS: tuple[str, ...] = (
    "funnel_name", "status", "is_successful", "card_brand", "card_country", "currency",
    "failure_category", "failure_code", "recovery_action", "attempt_number",
)
ROLLUP_COLUMNS: tuple[tuple[str, object], ...] = (
    ("hour", DateTime),  # UTC, the start of the hour
    ("funnel_name", Text),
    ("status", Text),
    ("is_successful", Boolean),
    ("card_brand", Text),
    ("card_country", Text),
    ("currency", Text),
    ("failure_category", Text),
    ("failure_code", Text),
    ("recovery_action", Text),
    ("attempt_number", Integer),
    ("payments", BigInteger),
    ("amount_usd", Numeric(18, 2)),  # the sum of the known amounts
)

# ... and the Overview's totals per UTC hour and funnel: attempts and money by outcome, with the
# refunds and disputes created in the hour (their charge's funnel): a few rows an hour whatever
# the volume, so any timezone with whole-hour offsets sums its local days from them.
HOURLY_COLUMNS: tuple[tuple[str, object], ...] = (
    ("hour", DateTime),  # UTC
    ("funnel_name", Text),
    ("attempts", BigInteger),
    ("successful", BigInteger),
    ("failed", BigInteger),
    ("revenue_usd", Numeric(18, 2)),
    ("failed_amount_usd", Numeric(18, 2)),
    ("refunds", BigInteger),  # refunds that were not failed or canceled (REFUND_COUNTED_STATUSES)
    ("refunded_usd", Numeric(18, 2)),
    ("disputes", BigInteger),
    ("disputed_usd", Numeric(18, 2)),
    ("first_attempts", BigInteger),  # attempts with attempt_number 1: the payments started in the hour
    ("first_succeeded", BigInteger),  # ... of which succeeded
    # from the first-failures mart (where paydash built it), by the hour of the first attempt
    ("first_failed", BigInteger),
    ("recovered", BigInteger),
    ("recovered_usd", Numeric(18, 2)),
    ("unrecovered_usd", Numeric(18, 2)),
)

# ... and the failed attempts per UTC hour, funnel and reason: the failure breakdown without the
# card and attempt dimensions that multiply the rollup's failed rows (10M payments: 936k
# failed rollup rows, 134k here).
ROLLUP_FAILURE_COLUMNS: tuple[tuple[str, object], ...] = (
    ("hour", DateTime),  # UTC
    ("funnel_name", Text),
    ("failure_category", Text),
    ("failure_code", Text),
    ("recovery_action", Text),
    ("failures", BigInteger),
    ("failed_amount_usd", Numeric(18, 2)),  # the sum of the known amounts
)

FIRST_FAILURE_COLUMNS: tuple[tuple[str, object], ...] = (
    ("payment_intent_id", Text),
    ("first_charge_id", Text),
    ("first_attempt_at", DateTime),
    ("first_amount_usd", Numeric(12, 2)),
    ("funnel_name", Text),
    ("recovered", Boolean),
    ("recovered_at", DateTime),
    ("recovered_usd", Numeric(14, 2)),
)


# Optional marts: pages that need them say so when they are missing (docs/data-contract.md).
# Operations events: one row per checkout / retry / receipt event, from the webhook receiver,
# the team's own services (POST /events) or the demo generator.
OPERATIONS_EVENT_NAMES: tuple[str, ...] = (
    "checkout_started",
    "checkout_completed",
    "checkout_expired",
    "checkout_window_extended",
    "checkout_manual_override",
    "retry_initiated",
    "retry_completed",
    "receipt_generated",
)

OPERATIONS_EVENT_COLUMNS: tuple[tuple[str, object], ...] = (
    ("event_id", Text),  # unique
    ("event_name", Text),  # one of OPERATIONS_EVENT_NAMES
    ("occurred_at", DateTime),  # UTC, when it happened
    ("received_at", DateTime),  # UTC, when paydash stored it (webhook lag = received - occurred)
    ("source", Text),  # stripe, api, demo, segment
    ("checkout_session_id", Text),
    ("payment_intent_id", Text),
    ("receipt_id", Text),
    ("customer_id", Text),
    ("attempt_number", Integer),
    ("outcome", Text),  # succeeded, failed, expired, ... (per event name, docs/data-contract.md)
    ("duration_ms", Integer),  # receipt render time, retry duration
    ("error", Text),
    ("properties", Text),  # JSON object: download_status, edge_location, ...
)

CUSTOMER_COLUMNS: tuple[tuple[str, object], ...] = (
    ("customer_id", Text),  # unique, cus_...
    ("email", Text),
    ("name", Text),
    ("created_at", DateTime),
)

PROMOTION_CODE_COLUMNS: tuple[tuple[str, object], ...] = (
    ("promotion_code_id", Text),  # unique, promo_...
    ("code", Text),  # what the customer types
    ("coupon_id", Text),
    ("percent_off", Double),
    ("amount_off_usd", Numeric(12, 2)),
    ("active", Boolean),
    ("max_redemptions", Integer),
    ("times_redeemed", Integer),
    ("created_at", DateTime),
    ("expires_at", DateTime),
)

# Optional, built by paydash beside its own marts: one row per customer of the charge mart,
# so the Customers page sorts and pages customers without aggregating every charge.
CUSTOMER_TOTAL_COLUMNS: tuple[tuple[str, object], ...] = (
    ("customer_id", Text),
    ("payments", Integer),  # payment intents (their first attempts)
    ("attempts", Integer),
    ("successful", Integer),
    ("failed", Integer),
    ("revenue_usd", Numeric(14, 2)),
    ("first_payment_at", DateTime),
    ("last_payment_at", DateTime),
    ("first_success_at", DateTime),
)

# ... and one row per customer and calendar month (of created_date) with a successful
# attempt, with the customer's first such month: the retention cohorts without a scan of
# every charge.
CUSTOMER_MONTH_COLUMNS: tuple[tuple[str, object], ...] = (
    ("customer_id", Text),
    ("month", Date),  # first day of the month
    ("cohort_month", Date),  # the customer's first month with a successful attempt
    ("successful", Integer),
    ("revenue_usd", Numeric(14, 2)),
)

PROMOTION_USAGE_ACTIONS: tuple[str, ...] = ("validated", "applied", "cleared", "failed")

PROMOTION_USAGE_COLUMNS: tuple[tuple[str, object], ...] = (
    ("usage_id", Text),  # unique
    ("promotion_code_id", Text),
    ("code", Text),
    ("customer_id", Text),
    ("action", Text),  # one of PROMOTION_USAGE_ACTIONS
    ("occurred_at", DateTime),  # UTC
    ("checkout_session_id", Text),
    ("invoice_id", Text),
    ("discount_usd", Numeric(12, 2)),
    ("failure_reason", Text),
)


# Refunds and disputes: one row per Stripe refund / dispute, with the charge (and its payment
# intent) it belongs to. Amounts in USD like the charge mart's; counted by their own created_at.
REFUND_STATUSES: tuple[str, ...] = ("pending", "requires_action", "succeeded", "failed", "canceled")
REFUND_COLUMNS: tuple[tuple[str, object], ...] = (
    ("refund_id", Text),  # unique, re_...
    ("charge_id", Text),
    ("payment_intent_id", Text),
    ("amount_usd", Numeric(12, 2)),
    ("currency", Text),  # the refund's own currency (the charge's)
    ("status", Text),  # one of REFUND_STATUSES
    ("reason", Text),  # duplicate, fraudulent, requested_by_customer, expired_uncaptured_charge or empty
    ("created_at", DateTime),  # UTC
)

DISPUTE_STATUSES: tuple[str, ...] = (
    "warning_needs_response", "warning_under_review", "warning_closed",
    "needs_response", "under_review", "won", "lost",
)
DISPUTE_COLUMNS: tuple[tuple[str, object], ...] = (
    ("dispute_id", Text),  # unique, dp_...
    ("charge_id", Text),
    ("payment_intent_id", Text),
    ("amount_usd", Numeric(12, 2)),
    ("currency", Text),
    ("status", Text),  # one of DISPUTE_STATUSES
    ("reason", Text),  # fraudulent, product_not_received, duplicate, ...
    ("created_at", DateTime),  # UTC
    ("evidence_due_by", DateTime),  # UTC; empty once no response is possible
)

# The same for the customer marts' random strings (measured: writing the demo's customer
# and promotion marts 5.0 s compressed vs 2.5 s plain at 1M charges).
CUSTOMER_PLAIN = frozenset({"customer_id", "email", "name"})
USAGE_PLAIN = frozenset({"usage_id", "customer_id", "checkout_session_id"})
REFUND_PLAIN = frozenset({"refund_id", "dispute_id", "charge_id", "payment_intent_id"})


@dataclass(frozen=True)
class Marts:
    payments: Table
    daily: Table
    # optional, built by paydash's own transforms (not part of the data contract)
    first_failures: Table
    # optional marts for the Operations, Customers and Promotions pages
    operations_events: Table
    customers: Table
    promotion_codes: Table
    promotion_usage: Table
    # optional, built by paydash (paydash/warehouse/customer_totals.py)
    customer_totals: Table | None = None
    customer_months: Table | None = None
    # optional marts for the Overview's refund and dispute cards and a payment's detail
    refunds: Table | None = None
    disputes: Table | None = None
    # optional, built by paydash beside the daily mart (transforms.rebuild_amount_counts)
    amount_counts: Table | None = None
    # optional, built by paydash beside the daily mart (paydash/warehouse/rollup.py)
    rollup: Table | None = None
    hourly: Table | None = None
    rollup_failures: Table | None = None

    @property
    def rollups(self) -> tuple[Table, ...]:
        """The rollup marts, built and read together (paydash/warehouse/rollup.py)."""
        return tuple(t for t in (self.rollup, self.hourly, self.rollup_failures) if t is not None)

    @property
    def optional(self) -> tuple[Table, ...]:
        """Marts some pages need; each page says which is missing and how to fill it."""
        return (self.operations_events, self.customers, self.promotion_codes, self.promotion_usage,
                self.refunds, self.disputes)

    @property
    def all(self) -> tuple[Table, ...]:
        """The data contract's marts."""
        return (self.payments, self.daily)

    @property
    def built(self) -> tuple[Table, ...]:
        """Every table paydash creates when it builds the marts itself."""
        return (self.payments, self.daily, self.first_failures)


def display_name(table: Table) -> str:
    return f"{table.schema}.{table.name}" if table.schema else table.name


@lru_cache(maxsize=16)
def marts(
    payments_table: str = "mart_stripe_payments",
    daily_table: str = "mart_stripe_payments_daily",
    first_failures_table: str = "",
    operations_events_table: str = "",
    customers_table: str = "",
    promotion_codes_table: str = "",
    promotion_usage_table: str = "",
    refunds_table: str = "",
    disputes_table: str = "",
    rollup_table: str = "",
) -> Marts:
    metadata = MetaData()
    p_schema, p_name = split_table_name(payments_table)
    d_schema, d_name = split_table_name(daily_table)
    # by default beside the charge mart, so each set of marts has its own
    f_schema, f_name = (
        split_table_name(first_failures_table) if first_failures_table else (p_schema, "mart_stripe_first_failures")
    )
    payments = Table(
        p_name,
        metadata,
        *(
            Column(name, type_, info={"duckdb_compression": "uncompressed"} if name in UNCOMPRESSED_ON_DUCKDB else {})
            for name, type_ in PAYMENT_COLUMNS + OPTIONAL_PAYMENT_COLUMNS + ID_SKETCH_COLUMNS
        ),
        schema=p_schema,
    )
    daily = Table(d_name, metadata, *(Column(n, t) for n, t in DAILY_COLUMNS), schema=d_schema)
    first_failures = Table(f_name, metadata, *(Column(n, t) for n, t in FIRST_FAILURE_COLUMNS), schema=f_schema)

    r_schema, r_name = split_table_name(rollup_table) if rollup_table else (p_schema, "mart_stripe_payment_rollup")
    rollup = Table(r_name, metadata, *(Column(n, t) for n, t in ROLLUP_COLUMNS), schema=r_schema)

    def beside_payments(configured: str, default: str, columns, plain: frozenset = frozenset()) -> Table:  # noqa: ANN001
        schema, name = split_table_name(configured) if configured else (p_schema, default)
        return Table(name, metadata, *(
            Column(n, t, info={"duckdb_compression": "uncompressed"} if n in plain else {}) for n, t in columns
        ), schema=schema)

    return Marts(
        payments,
        daily,
        first_failures,
        operations_events=beside_payments(operations_events_table, "mart_operations_events", OPERATIONS_EVENT_COLUMNS),
        customers=beside_payments(customers_table, "mart_stripe_customers", CUSTOMER_COLUMNS, CUSTOMER_PLAIN),
        promotion_codes=beside_payments(promotion_codes_table, "mart_stripe_promotion_codes", PROMOTION_CODE_COLUMNS),
        promotion_usage=beside_payments(promotion_usage_table, "mart_stripe_promotion_usage", PROMOTION_USAGE_COLUMNS, USAGE_PLAIN),
        customer_totals=beside_payments("", "mart_stripe_customer_totals", CUSTOMER_TOTAL_COLUMNS, CUSTOMER_PLAIN),
        customer_months=beside_payments("", "mart_stripe_customer_months", CUSTOMER_MONTH_COLUMNS, CUSTOMER_PLAIN),
        refunds=beside_payments(refunds_table, "mart_stripe_refunds", REFUND_COLUMNS, REFUND_PLAIN),
        disputes=beside_payments(disputes_table, "mart_stripe_disputes", DISPUTE_COLUMNS, REFUND_PLAIN),
        amount_counts=beside_payments("", "mart_stripe_payment_amounts", AMOUNT_COUNT_COLUMNS),
        rollup=rollup,
        hourly=Table(r_name + "_hourly", metadata, *(Column(n, t) for n, t in HOURLY_COLUMNS), schema=r_schema),
        rollup_failures=Table(r_name + "_failures", metadata, *(Column(n, t) for n, t in ROLLUP_FAILURE_COLUMNS),
                              schema=r_schema),
    )


def marts_for(settings) -> Marts:
    return marts(
        settings.payments_table,
        settings.daily_table,
        settings.first_failures_table,
        settings.operations_events_table,
        settings.customers_table,
        settings.promotion_codes_table,
        settings.promotion_usage_table,
        settings.refunds_table,
        settings.disputes_table,
        settings.rollup_table,
    )
