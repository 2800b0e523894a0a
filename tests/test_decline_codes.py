"""The decline-code table: categories, actions, classification precedence, and its docs page."""

from __future__ import annotations

from pathlib import Path

import pytest

from paydash.decline_codes import (
    CATEGORIES,
    DECLINE_CODES,
    FAILURE_CATEGORIES,
    NON_RETRYABLE,
    category_of,
    classify,
    decline_code,
    mapping_markdown,
    recovery_action_of,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "decline-codes.md"


def test_docs_page_contains_the_mapping_table() -> None:
    assert DOC.is_file(), "docs/decline-codes.md is missing; write it from paydash.decline_codes.mapping_markdown()"
    assert mapping_markdown() in DOC.read_text(), (
        "docs/decline-codes.md is out of step with paydash/decline_codes.py; paste mapping_markdown()'s output into it"
    )


def test_every_code_is_in_the_docs_table() -> None:
    table = mapping_markdown()
    for code in DECLINE_CODES:
        assert f"| `{code}` |" in table


@pytest.mark.parametrize("code", sorted(NON_RETRYABLE))
def test_non_retryable_codes_never_get_retry_eligible(code) -> None:
    assert code in DECLINE_CODES, f"{code} is on the non-retryable list but not in the table"
    assert recovery_action_of(code) != "retry_eligible"
    assert DECLINE_CODES[code].recovery_action != "retry_eligible"
    assert classify(code)[2] != "retry_eligible"
    assert classify(None, "issuer_declined", code)[2] != "retry_eligible"


def test_the_contract_categories_exist_and_every_code_has_one() -> None:
    for category in ("card_declined", "insufficient_funds", "authentication_required", "fraud_block",
                     "expired_card", "processing_error"):
        assert category in FAILURE_CATEGORIES
    assert FAILURE_CATEGORIES == tuple(CATEGORIES)
    assert "other" in CATEGORIES
    for entry in DECLINE_CODES.values():
        assert entry.category in CATEGORIES
        assert entry.description
    assert {"retry_eligible", "request_new_card", "verify_3ds", "contact_support"} <= {a for a, _ in CATEGORIES.values()}


@pytest.mark.parametrize(
    "failure_code, outcome_type, outcome_reason, expected",
    [
        # 1. the issuer's decline code wins over failure_code
        ("card_declined", "issuer_declined", "insufficient_funds", ("insufficient_funds", "insufficient_funds", "retry_eligible")),
        ("card_declined", "issuer_declined", "expired_card", ("expired_card", "expired_card", "request_new_card")),
        ("card_declined", "issuer_declined", "lost_card", ("lost_card", "fraud_block", "do_not_retry")),
        # an issuer_declined outcome without a reason falls back to failure_code
        ("expired_card", "issuer_declined", None, ("expired_card", "expired_card", "request_new_card")),
        # 2. Radar blocks are fraud_block whatever failure_code says
        ("card_declined", "blocked", "highest_risk_level", ("highest_risk_level", "fraud_block", "do_not_retry")),
        ("card_declined", "blocked", "rule", ("rule", "fraud_block", "do_not_retry")),
        ("card_declined", "blocked", "something_new", ("fraudulent", "fraud_block", "do_not_retry")),
        ("card_declined", "blocked", None, ("fraudulent", "fraud_block", "do_not_retry")),
        # 3. otherwise failure_code
        ("incorrect_cvc", None, None, ("incorrect_cvc", "incorrect_details", "update_card_details")),
        ("authentication_required", "manual_review", "whatever", ("authentication_required", "authentication_required", "verify_3ds")),
        ("processing_error", "invalid", None, ("processing_error", "processing_error", "retry_eligible")),
        # unknown or missing codes fall into other
        ("never_heard_of_it", None, None, ("never_heard_of_it", "other", "contact_support")),
        (None, None, None, (None, "other", "contact_support")),
    ],
)
def test_classify_precedence(failure_code, outcome_type, outcome_reason, expected) -> None:
    assert classify(failure_code, outcome_type, outcome_reason) == expected
    assert decline_code(failure_code, outcome_type, outcome_reason) == expected[0]


def test_category_of_unknown() -> None:
    assert category_of(None) == "other" and category_of("nope") == "other"
    assert category_of("do_not_honor") == "card_declined"
