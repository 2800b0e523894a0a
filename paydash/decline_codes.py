"""Stripe decline and failure codes, grouped into failure categories with a recovery action.

One table, used by the demo generator, by the Stripe transform, by the UI and by
docs/decline-codes.md (a test keeps that page in step with this table).

Input precedence when classifying a charge (see `classify`):
1. the issuer's decline code (`outcome.reason` when `outcome.type == "issuer_declined"`),
2. else `outcome.type == "blocked"` (Radar) -> fraud_block,
3. else `failure_code`.

Codes on Stripe's non-retryable list (lost_card, stolen_card, pickup_card,
incorrect_number, revocation_of_authorization(s), authentication_required,
highest_risk_level) never get the `retry_eligible` action.
"""

from __future__ import annotations

from dataclasses import dataclass

# category -> (recovery_action, what the action means)
CATEGORIES: dict[str, tuple[str, str]] = {
    "card_declined": (
        "contact_issuer",
        "The bank declined without a reason: ask the customer to call their bank or use another card; at most one retry.",
    ),
    "insufficient_funds": (
        "retry_eligible",
        "Retry later (Smart Retries / dunning) and suggest another payment method.",
    ),
    "authentication_required": (
        "verify_3ds",
        "Bring the customer back on-session to complete 3D Secure / SCA.",
    ),
    "incorrect_details": (
        "update_card_details",
        "Ask the customer to correct the card number, CVC, expiry or address.",
    ),
    "expired_card": (
        "request_new_card",
        "The card has expired: ask for a new card.",
    ),
    "card_unusable": (
        "request_new_card",
        "This card cannot be charged for this purchase: ask for another payment method; do not retry it.",
    ),
    "fraud_block": (
        "do_not_retry",
        "Blocked as likely fraud: do not retry; review it, and show the customer a generic decline.",
    ),
    "processing_error": (
        "retry_eligible",
        "A processing or issuer-availability error: retry soon.",
    ),
    "other": (
        "contact_support",
        "Unusual failure: investigate (a duplicate may mean the payment already exists).",
    ),
}

FAILURE_CATEGORIES: tuple[str, ...] = tuple(CATEGORIES)


@dataclass(frozen=True)
class DeclineCode:
    code: str
    category: str
    description: str

    @property
    def recovery_action(self) -> str:
        return CATEGORIES[self.category][0]


_TABLE: tuple[tuple[str, str, str], ...] = (
    # card_declined: the issuer gives no usable reason
    ("generic_decline", "card_declined", "declined for an unknown reason"),
    ("do_not_honor", "card_declined", "declined for an unknown reason"),
    ("call_issuer", "card_declined", "declined for an unknown reason"),
    ("card_declined", "card_declined", "card declined (failure_code with no decline code)"),
    ("no_action_taken", "card_declined", "declined for an unknown reason"),
    ("not_permitted", "card_declined", "payment not permitted"),
    ("security_violation", "card_declined", "declined for an unknown reason"),
    ("service_not_allowed", "card_declined", "declined for an unknown reason"),
    ("transaction_not_allowed", "card_declined", "declined for an unknown reason"),
    ("do_not_try_again", "card_declined", "declined for an unknown reason (deprecated)"),
    ("payment_intent_payment_attempt_failed", "card_declined", "the payment attempt failed"),
    ("payment_method_provider_decline", "card_declined", "declined by the payment method provider"),
    # insufficient funds and limits
    ("insufficient_funds", "insufficient_funds", "insufficient funds"),
    ("card_velocity_exceeded", "insufficient_funds", "over the card's balance, credit or amount limit"),
    ("withdrawal_count_limit_exceeded", "insufficient_funds", "over the card's balance or credit limit"),
    ("invalid_amount", "insufficient_funds", "amount invalid or over what the card allows"),
    # authentication
    ("authentication_required", "authentication_required", "needs authentication (3D Secure)"),
    ("authentication_not_handled", "authentication_required", "proceeded without required authentication"),
    ("payment_intent_authentication_failure", "authentication_required", "authentication failed"),
    ("mobile_device_authentication_required", "authentication_required", "needs authentication on a mobile device"),
    ("offline_pin_required", "authentication_required", "requires a PIN"),
    ("online_or_offline_pin_required", "authentication_required", "requires a PIN"),
    ("incorrect_pin", "authentication_required", "PIN incorrect"),
    ("invalid_pin", "authentication_required", "PIN incorrect"),
    # details the customer can correct
    ("incorrect_number", "incorrect_details", "card number incorrect"),
    ("invalid_number", "incorrect_details", "card number invalid"),
    ("incorrect_cvc", "incorrect_details", "CVC incorrect"),
    ("invalid_cvc", "incorrect_details", "CVC invalid"),
    ("incorrect_zip", "incorrect_details", "postal code incorrect"),
    ("incorrect_address", "incorrect_details", "address incorrect"),
    ("invalid_expiry_month", "incorrect_details", "expiry month invalid"),
    ("invalid_expiry_year", "incorrect_details", "expiry year invalid"),
    # expired
    ("expired_card", "expired_card", "card expired"),
    # card unusable for this payment
    ("card_not_supported", "card_unusable", "card does not support this purchase"),
    ("currency_not_supported", "card_unusable", "card does not support this currency"),
    ("invalid_account", "card_unusable", "card or account invalid"),
    ("new_account_information_available", "card_unusable", "card or account invalid"),
    ("restricted_card", "card_unusable", "card cannot be used (maybe lost or stolen)"),
    ("pickup_card", "card_unusable", "card cannot be used (maybe lost or stolen)"),
    ("pin_try_exceeded", "card_unusable", "PIN tries exceeded"),
    ("revocation_of_authorization", "card_unusable", "customer revoked the authorization"),
    ("revocation_of_all_authorizations", "card_unusable", "customer revoked all authorizations"),
    ("stop_payment_order", "card_unusable", "customer stopped the payment"),
    # fraud
    ("fraudulent", "fraud_block", "suspected fraud"),
    ("merchant_blacklist", "fraud_block", "matches the merchant's block list"),
    ("lost_card", "fraud_block", "card reported lost"),
    ("stolen_card", "fraud_block", "card reported stolen"),
    ("highest_risk_level", "fraud_block", "blocked by Radar: highest risk"),
    ("elevated_risk_level", "fraud_block", "blocked by Radar: elevated risk"),
    ("rule", "fraud_block", "blocked by a Radar rule"),
    # processing
    ("processing_error", "processing_error", "error while processing the card"),
    ("issuer_not_available", "processing_error", "the issuer could not be reached"),
    ("reenter_transaction", "processing_error", "the issuer could not process the payment"),
    ("approve_with_id", "processing_error", "the payment could not be authorised"),
    ("try_again_later", "processing_error", "declined for an unknown reason; retry (deprecated)"),
    ("card_decline_rate_limit_exceeded", "processing_error", "too many declines on this card recently"),
    # other
    ("duplicate_transaction", "other", "an identical payment was made very recently"),
    ("testmode_decline", "other", "a Stripe test card was used"),
    ("amount_too_small", "other", "amount below the minimum"),
    ("amount_too_large", "other", "amount above the maximum"),
)

DECLINE_CODES: dict[str, DeclineCode] = {code: DeclineCode(code, cat, desc) for code, cat, desc in _TABLE}

NON_RETRYABLE: frozenset[str] = frozenset(
    {
        "incorrect_number",
        "lost_card",
        "pickup_card",
        "stolen_card",
        "revocation_of_authorization",
        "revocation_of_all_authorizations",
        "authentication_required",
        "highest_risk_level",
    }
)


def decline_code(failure_code: str | None, outcome_type: str | None = None, outcome_reason: str | None = None) -> str | None:
    """The most specific code for a failed charge, following the precedence above."""
    if outcome_type == "issuer_declined" and outcome_reason:
        return outcome_reason
    if outcome_type == "blocked":
        return outcome_reason if outcome_reason in DECLINE_CODES else "fraudulent"
    return failure_code


def category_of(code: str | None) -> str:
    if code is None:
        return "other"
    entry = DECLINE_CODES.get(code)
    return entry.category if entry else "other"


def recovery_action_of(code: str | None) -> str:
    return CATEGORIES[category_of(code)][0]


def classify(failure_code: str | None, outcome_type: str | None = None, outcome_reason: str | None = None) -> tuple[str | None, str, str]:
    """(decline code, failure_category, recovery_action) of a failed charge."""
    code = decline_code(failure_code, outcome_type, outcome_reason)
    if outcome_type == "blocked":
        return code, "fraud_block", CATEGORIES["fraud_block"][0]
    category = category_of(code)
    return code, category, CATEGORIES[category][0]


def mapping_markdown() -> str:
    """The mapping table as written in docs/decline-codes.md."""
    lines = [
        "| failure_category | recovery_action | what to do |",
        "|---|---|---|",
    ]
    for cat, (action, meaning) in CATEGORIES.items():
        lines.append(f"| `{cat}` | `{action}` | {meaning} |")
    lines += ["", "| code | failure_category | meaning | on Stripe's non-retryable list |", "|---|---|---|---|"]
    for entry in DECLINE_CODES.values():
        flag = "yes" if entry.code in NON_RETRYABLE else ""
        lines.append(f"| `{entry.code}` | `{entry.category}` | {entry.description} | {flag} |")
    return "\n".join(lines)
