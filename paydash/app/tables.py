"""Query results shaped into the tables the pages show (pure; every text cell is plain text)."""

from __future__ import annotations

from typing import Any, Callable

import pandas as pd

from paydash.app import format as fmt
from paydash.decline_codes import CATEGORIES, DECLINE_CODES


# st.dataframe(row_height=...): Streamlit wraps a cell's text only in rows taller than 4rem (64 px)
WRAPPING_ROW_HEIGHT = 66


def top_failure_reasons(by_code: list[dict[str, Any]], limit: int = 10,
                        link: Callable[[str | None], str] | None = None) -> pd.DataFrame:
    """The top reasons; with `link(code)`, a last column linking to the explorer filtered to them."""
    rows = []
    for r in by_code[:limit]:
        code = r["failure_code"]
        known = DECLINE_CODES.get(code) if code else None
        meaning = known.description if known else CATEGORIES.get(r["failure_category"], ("", ""))[1]
        rows.append(
            {
                "Failure reason": fmt.text(code),
                "Category": fmt.text(r["failure_category"]),
                "Failures": int(r["failures"]),
                "Lost amount (USD)": float(r["failed_amount_usd"]),
                "Share": r["share"],
                "Recommended action": fmt.text(r["recovery_action"]),
                "Meaning": fmt.text(meaning),
                **({"Payments": link(code)} if link is not None else {}),
            }
        )
    columns = ["Failure reason", "Category", "Failures", "Lost amount (USD)", "Share", "Recommended action", "Meaning"]
    return pd.DataFrame(rows, columns=columns + (["Payments"] if link is not None else []))


PAYMENT_COLUMNS = ["Charge", "Time", "Amount (USD)", "Currency", "Status", "Failure", "Funnel", "Card", "Customer"]


def payment_rows(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    """A page of the explorer: one row per charge attempt."""
    out = []
    for r in rows:
        card = " ".join(fmt.text(v) for v in (r.get("card_brand"), r.get("card_country")) if v)
        out.append(
            {
                "Charge": fmt.text(r["charge_id"]),
                "Time": fmt.local_time(r["created_at"], tz),
                "Amount (USD)": float(r["amount_usd"]) if r["amount_usd"] is not None else None,
                "Currency": fmt.text(r.get("currency")).upper(),
                "Status": fmt.text(r["status"]),
                "Failure": fmt.text(r.get("failure_code") or r.get("failure_category") or ""),
                "Funnel": fmt.text(r.get("funnel_name")),
                "Card": card or fmt.EMPTY,
                "Customer": fmt.text(r.get("customer_id")),
            }
        )
    return pd.DataFrame(out, columns=PAYMENT_COLUMNS)


def original_amount(detail: dict[str, Any]) -> str:
    """'≈ 39.99 CAD': the amount in the charge's own currency ('≈': converted back from amount_usd), or
    fmt.EMPTY when no rate is known."""
    own = detail.get("original_amount")
    if not own:
        return fmt.EMPTY
    return ("≈ " if own.get("approximate") else "") + f"{own['amount']:,} {own['currency'].upper()}"


def conversion(detail: dict[str, Any]) -> str | None:
    """'1 CAD = 0.73 USD': the rate behind the two amounts (None for USD or without a rate)."""
    own = detail.get("original_amount")
    if not own or own["currency"] == "usd":
        return None
    return f"1 {own['currency'].upper()} = {own['usd_per_unit']:g} USD"


def payment_fields(detail: dict[str, Any], tz: str) -> pd.DataFrame:
    """One payment as a two-column table of field and value (all text)."""
    category = detail.get("failure_category")
    code = detail.get("failure_code")
    known = DECLINE_CODES.get(code) if code else None
    customer = detail.get("customer") or {}
    last4 = detail.get("card_last4")
    rate = conversion(detail)
    fields = [
        ("Charge", detail["charge_id"]),
        ("Payment intent", detail.get("payment_intent_id")),
        ("Customer", detail.get("customer_id")),
        ("Customer name", customer.get("name")),
        ("Customer email", customer.get("email")),
        ("Profile", detail.get("profile_id")),
        ("Time", fmt.local_time(detail.get("created_at"), tz)),
        ("Amount", original_amount(detail)),
        ("Amount (USD)", fmt.money(detail.get("amount_usd")) + (f" at {rate}" if rate else "")),
        ("Status", detail.get("status")),
        ("Attempt", detail.get("attempt_number")),
        ("Outcome of the payment", detail.get("payment_outcome")),
        ("Failure code", code),
        ("Failure meaning", known.description if known else None),
        ("Failure category", category),
        ("Recommended action", detail.get("recovery_action")),
        ("What to do", CATEGORIES[category][1] if category in CATEGORIES else None),
        ("Card", " ".join(fmt.text(v) for v in (detail.get("card_brand"), detail.get("card_country")) if v)
         + (f" ending {last4}" if last4 else "")),
        ("Funnel", detail.get("funnel_name")),
    ]
    return pd.DataFrame([{"Field": name, "Value": fmt.text(value)} for name, value in fields])


TIMELINE_KINDS = {"attempt": "Attempt", "refund": "Refund", "dispute": "Dispute"}


def payment_timeline(events: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    """Attempts, refunds and disputes of a payment intent in time order."""
    return pd.DataFrame(
        [
            {
                "Time": fmt.local_time(e["at"], tz),
                "Event": TIMELINE_KINDS.get(e["kind"], fmt.text(e["kind"])),
                "Status": fmt.text(e["status"]),
                "Amount (USD)": float(e["amount_usd"]) if e["amount_usd"] is not None else None,
                "Detail": fmt.text(e.get("detail")),
                "Id": fmt.text(e["id"]),
            }
            for e in events
        ],
        columns=["Time", "Event", "Status", "Amount (USD)", "Detail", "Id"],
    )


def retry_history(history: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Attempt": h["attempt_number"],
                "Time": fmt.local_time(h["created_at"], tz),
                "Outcome": fmt.text(h["status"]),
                "Amount (USD)": float(h["amount_usd"]) if h["amount_usd"] is not None else None,
                "Failure": fmt.text(h.get("failure_code")),
                "Category": fmt.text(h.get("failure_category")),
                "Charge": fmt.text(h["charge_id"]),
            }
            for h in history
        ],
        columns=["Attempt", "Time", "Outcome", "Amount (USD)", "Failure", "Category", "Charge"],
    )
