"""The Customers and Promotions pages' state, tables, chart and messages (pure: no Streamlit, no database).

Their URLs are shareable and untrusted: every value is checked, and one that is not valid
is dropped with a note (as in the Payments explorer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Mapping

import pandas as pd

from paydash.app import format as fmt
from paydash.queries.customers import MAX_SEARCH_LENGTH, SORTS, CustomerSearch
from paydash.queries.dates import DateRange, parse_date
from paydash.errors import InvalidInput
from paydash.queries.promotions import PROMOTION_USAGE_ACTIONS

MAX_ID_LENGTH = 200
SORT_LABELS = {"revenue": "Revenue", "last_payment": "Last payment"}
ANY_ACTION = "Any action"

# -- definitions, as docs/metrics.md writes them ------------------------------------------------
PAYMENTS = "Payment intents of the customer, counted by their first attempt (attempt_number = 1)."
ATTEMPTS = "Charge attempts of the customer, retries included."
REVENUE = "Sum of amount_usd over the customer's successful attempts."
FAILURE_RATE = "Failed attempts / all attempts of the customer (pending attempts counted)."
FIRST_LAST = "The customer's earliest and latest attempt, whatever its outcome (reporting timezone)."
COHORTS = (
    "Customers grouped by the calendar month (reporting timezone) of their first successful payment. "
    "A customer is active in a month when they have at least one successful attempt in it; the share is "
    "active customers / the customers of the cohort. Month 0 is the cohort's own month (always 100%)."
)
USES = "Uses are the code's 'applied' rows (a discount granted); customers are the distinct customers with one."
CUSTOMER_DEFINITIONS = {"Payments": PAYMENTS, "Attempts": ATTEMPTS, "Revenue": REVENUE, "Failure rate": FAILURE_RATE,
                        "First / last payment": FIRST_LAST, "Retention cohorts": COHORTS}

MART_SETTINGS = {
    "customers": ("PAYDASH_CUSTOMERS_TABLE", "names and emails"),
    "promotion_codes": ("PAYDASH_PROMOTION_CODES_TABLE", "promotion codes"),
    "promotion_usage": ("PAYDASH_PROMOTION_USAGE_TABLE", "promotion-code usage"),
    "refunds": ("PAYDASH_REFUNDS_TABLE", "refunds"),
    "disputes": ("PAYDASH_DISPUTES_TABLE", "disputes"),
}


def missing_mart(mart: str, table_name: str) -> str:
    """What is missing and how to fill it."""
    setting, holds = MART_SETTINGS[mart]
    return (f"Table {table_name} ({holds}) was not found. Fill it with `paydash sync` (from your Stripe account) "
            f"or `paydash demo` (demo data), or set {setting} to where your own table lives "
            "(columns in docs/data-contract.md).")


def _one(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


# -- Customers page state -------------------------------------------------------------------------
@dataclass(frozen=True)
class CustomersState:
    search: CustomerSearch = CustomerSearch()
    customer: str | None = None


CUSTOMER_URL_KEYS = ("search", "sort", "customer")


def customers_state(params: Mapping[str, Any]) -> tuple[CustomersState, list[str]]:
    notes = []
    text = _one(params.get("search"))
    if text is not None and len(text) > MAX_SEARCH_LENGTH:
        notes.append(f"ignored the link's search: longer than {MAX_SEARCH_LENGTH} characters")
        text = None
    sort = _one(params.get("sort")) or "revenue"
    if sort not in SORTS:
        notes.append(f"ignored the link's sort {sort!r}: use one of {', '.join(SORTS)}")
        sort = "revenue"
    customer = _one(params.get("customer"))
    if customer is not None and (not customer.strip() or len(customer) > MAX_ID_LENGTH):
        notes.append("ignored the link's customer: not a customer id")
        customer = None
    return CustomersState(CustomerSearch(text, sort).normalized(), customer.strip() if customer else None), notes


def customers_params(state: CustomersState) -> dict[str, str]:
    out = {}
    if state.search.text:
        out["search"] = state.search.text
    if state.search.sort != "revenue":
        out["sort"] = state.search.sort
    if state.customer:
        out["customer"] = state.customer
    return out


# -- Promotions page state ---------------------------------------------------------------------------
@dataclass(frozen=True)
class PromotionsState:
    code: str | None = None
    customer: str | None = None
    action: str | None = None
    start: date | None = None
    end: date | None = None
    page: int = 1


PROMOTION_URL_KEYS = ("code", "customer", "action", "from", "to", "page")


def promotions_state(params: Mapping[str, Any]) -> tuple[PromotionsState, list[str]]:
    notes = []
    values: dict[str, Any] = {}
    for key in ("code", "customer"):
        value = _one(params.get(key))
        if value is not None and (not value.strip() or len(value) > MAX_ID_LENGTH):
            notes.append(f"ignored the link's {key}: not an id")
            value = None
        values[key] = value.strip() if value else None
    action = _one(params.get("action"))
    if action is not None and action not in PROMOTION_USAGE_ACTIONS:
        notes.append(f"ignored the link's action {action!r}: use one of {', '.join(PROMOTION_USAGE_ACTIONS)}")
        action = None
    values["action"] = action
    for key, name in (("from", "start"), ("to", "end")):
        value = _one(params.get(key))
        try:
            values[name] = parse_date(value, key) if value else None
        except InvalidInput as exc:
            notes.append(f"ignored the link's {key}: {exc}")
            values[name] = None
    if values["start"] and values["end"] and values["end"] < values["start"]:
        notes.append("ignored the link's from and to: the range ends before it starts")
        values["start"] = values["end"] = None
    raw_page = _one(params.get("page"))
    page = 1
    if raw_page is not None:
        if raw_page.isdigit() and 0 < int(raw_page) < 10**9:
            page = int(raw_page)
        else:
            notes.append(f"ignored the link's page {raw_page!r}: not a page number")
    return PromotionsState(values["code"], values["customer"], values["action"], values["start"], values["end"], page), notes


def promotions_params(state: PromotionsState) -> dict[str, str]:
    out = {}
    if state.code:
        out["code"] = state.code
        if state.customer:
            out["customer"] = state.customer
        if state.action:
            out["action"] = state.action
        if state.start:
            out["from"] = state.start.isoformat()
        if state.end:
            out["to"] = state.end.isoformat()
        if state.page > 1:
            out["page"] = str(state.page)
    return out


def date_range_of(start: date | None, end: date | None, tz: str) -> DateRange | None:
    picked = [d for d in (start, end) if d is not None]
    return DateRange(min(picked), max(picked), tz) if picked else None


# -- tables -------------------------------------------------------------------------------------------
CUSTOMER_COLUMNS = ["Customer", "Name", "Email", "Payments", "Attempts", "Revenue (USD)", "Failure rate", "First payment",
                    "Last payment"]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def customer_rows(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Customer": fmt.text(r["customer_id"]),
                "Name": fmt.text(r.get("name")),
                "Email": fmt.text(r.get("email")),
                "Payments": int(r["payments"]),
                "Attempts": int(r["attempts"]),
                "Revenue (USD)": _float(r["revenue_usd"]),
                "Failure rate": r["failure_rate"],
                "First payment": fmt.local_time(r["first_payment_at"], tz),
                "Last payment": fmt.local_time(r["last_payment_at"], tz),
            }
            for r in rows
        ],
        columns=CUSTOMER_COLUMNS,
    )


TIMELINE_COLUMNS = ["Payment", "Attempt", "Time", "Outcome", "Amount (USD)", "Failure", "Recommended action", "Charge"]


def timeline_rows(timeline: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    """One row per attempt, payments newest first, each payment's attempts in order."""
    out = []
    for payment in timeline:
        label = f"{fmt.text(payment['payment_intent_id'])} ({payment['outcome']})"
        for a in payment["attempts"]:
            out.append(
                {
                    "Payment": label,
                    "Attempt": a["attempt_number"],
                    "Time": fmt.local_time(a["created_at"], tz),
                    "Outcome": fmt.text(a["status"]),
                    "Amount (USD)": _float(a["amount_usd"]),
                    "Failure": fmt.text(a.get("failure_code")),
                    "Recommended action": fmt.text(a.get("recovery_action")),
                    "Charge": fmt.text(a["charge_id"]),
                }
            )
    return pd.DataFrame(out, columns=TIMELINE_COLUMNS)


def customer_usage_rows(usage: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    columns = ["Time", "Code", "Action", "Discount (USD)", "Failure reason"]
    return pd.DataFrame(
        [
            {"Time": fmt.local_time(u["occurred_at"], tz), "Code": fmt.text(u["code"]), "Action": fmt.text(u["action"]),
             "Discount (USD)": _float(u["discount_usd"]), "Failure reason": fmt.text(u.get("failure_reason"))}
            for u in usage
        ],
        columns=columns,
    )


def profile_fields(detail: dict[str, Any], tz: str) -> pd.DataFrame:
    profile = detail.get("profile") or {}
    totals = detail["totals"]
    fields = [
        ("Customer", detail["customer_id"]),
        ("Name", profile.get("name")),
        ("Email", profile.get("email")),
        ("Customer since", fmt.local_time(profile.get("created_at"), tz) if profile.get("created_at") else None),
        ("First payment", fmt.local_time(totals["first_payment_at"], tz) if totals["first_payment_at"] else None),
        ("First successful payment", fmt.local_time(totals["first_success_at"], tz) if totals["first_success_at"] else None),
        ("Last payment", fmt.local_time(totals["last_payment_at"], tz) if totals["last_payment_at"] else None),
        ("Failed amount (USD)", fmt.money(totals["failed_amount_usd"])),
    ]
    return pd.DataFrame([{"Field": name, "Value": fmt.text(value)} for name, value in fields])


CODE_COLUMNS = ["Code", "Promotion id", "Discount", "Customers", "Uses", "Validated", "Cleared", "Failed", "Discount given (USD)",
                "Active", "Created", "Expires"]


def discount_text(row: dict[str, Any]) -> str:
    if row.get("percent_off") is not None:
        return f"{float(row['percent_off']):g}% off"
    if row.get("amount_off_usd") is not None:
        return f"{fmt.money(row['amount_off_usd'])} off"
    return fmt.EMPTY


def code_rows(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Code": fmt.text(r["code"]),
                "Promotion id": fmt.text(r["promotion_code_id"]),
                "Discount": discount_text(r),
                "Customers": int(r["customers"]),
                "Uses": int(r["uses"]),
                "Validated": int(r["validated"]),
                "Cleared": int(r["cleared"]),
                "Failed": int(r["failed"]),
                "Discount given (USD)": _float(r["discount_usd"]),
                "Active": "yes" if r["active"] else ("no" if r["active"] is not None else fmt.EMPTY),
                "Created": fmt.local_time(r["created_at"], tz),
                "Expires": fmt.local_time(r["expires_at"], tz) if r["expires_at"] else "never",
            }
            for r in rows
        ],
        columns=CODE_COLUMNS,
    )


def code_fields(row: dict[str, Any], tz: str) -> pd.DataFrame:
    cap = row.get("max_redemptions")
    fields = [
        ("Code", row["code"]),
        ("Promotion id", row["promotion_code_id"]),
        ("Coupon", row.get("coupon_id")),
        ("Discount", discount_text(row)),
        ("Active", "yes" if row.get("active") else "no"),
        ("Redeemed (Stripe)", f"{fmt.count(row.get('times_redeemed'))}" + (f" of {fmt.count(cap)}" if cap else "")),
        ("Created", fmt.local_time(row["created_at"], tz)),
        ("Expires", fmt.local_time(row["expires_at"], tz) if row.get("expires_at") else "never"),
        ("Last used", fmt.local_time(row["last_used_at"], tz) if row.get("last_used_at") else None),
    ]
    return pd.DataFrame([{"Field": name, "Value": fmt.text(value)} for name, value in fields])


CODE_CUSTOMER_COLUMNS = ["Customer", "Name", "Email", "Uses", "Validated", "Cleared", "Failed", "Discount (USD)", "First", "Last"]


def code_customer_rows(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Customer": fmt.text(r["customer_id"]),
                "Name": fmt.text(r.get("name")),
                "Email": fmt.text(r.get("email")),
                "Uses": int(r["uses"]),
                "Validated": int(r["validated"]),
                "Cleared": int(r["cleared"]),
                "Failed": int(r["failed"]),
                "Discount (USD)": _float(r["discount_usd"]),
                "First": fmt.local_time(r["first_at"], tz),
                "Last": fmt.local_time(r["last_at"], tz),
            }
            for r in rows
        ],
        columns=CODE_CUSTOMER_COLUMNS,
    )


USAGE_COLUMNS = ["Time", "Action", "Customer", "Discount (USD)", "Failure reason", "Checkout session", "Invoice"]


def usage_rows(rows: list[dict[str, Any]], tz: str) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "Time": fmt.local_time(r["occurred_at"], tz),
                "Action": fmt.text(r["action"]),
                "Customer": fmt.text(r["customer_id"]),
                "Discount (USD)": _float(r["discount_usd"]),
                "Failure reason": fmt.text(r.get("failure_reason")),
                "Checkout session": fmt.text(r.get("checkout_session_id")),
                "Invoice": fmt.text(r.get("invoice_id")),
            }
            for r in rows
        ],
        columns=USAGE_COLUMNS,
    )


# -- the cohort heatmap (Vega-Lite, like paydash/app/charts.py) --------------------------------------------
PARTIAL_MARK = "*"
ROW_HEIGHT = 44  # px per cohort: the share printed in each cell stays readable
MIN_HEIGHT = 240


def cohort_heatmap(grid: list[dict[str, Any]]) -> dict[str, Any]:
    """The grid as a heatmap; a cell of the month not over yet carries PARTIAL_MARK and a dashed edge."""
    values = [
        {"cohort": f"{r['cohort_month']:%Y-%m}", "months_since": r["months_since"], "share": r["share"],
         "active": r["active_customers"], "size": r["cohort_customers"], "partial": bool(r.get("partial")),
         "label": fmt.percent(r["share"]) + (PARTIAL_MARK if r.get("partial") else ""),
         "month": "this month so far" if r.get("partial") else "whole month"}
        for r in grid
    ]
    tooltip = [{"field": "cohort", "title": "Cohort (first successful payment)"},
               {"field": "months_since", "title": "Months since"},
               {"field": "active", "title": "Active customers", "format": ","},
               {"field": "size", "title": "Customers in the cohort", "format": ","},
               {"field": "share", "title": "Share", "format": fmt.VEGA_PERCENT},
               {"field": "month", "title": "Month"}]
    encoding = {
        "x": {"field": "months_since", "type": "ordinal", "title": "Months since the first successful payment", "axis": {"labelAngle": 0}},
        "y": {"field": "cohort", "type": "ordinal", "title": "Cohort", "sort": "descending"},
    }
    return {
        "height": max(MIN_HEIGHT, ROW_HEIGHT * len({v["cohort"] for v in values})),
        "data": {"values": values},
        "encoding": encoding,
        "layer": [
            {"mark": {"type": "rect"},
             "encoding": {"color": {"field": "share", "type": "quantitative", "title": "Share active",
                                    "scale": {"scheme": "blues", "domain": [0, 1]}, "legend": {"format": fmt.VEGA_PERCENT_AXIS}},
                          "stroke": {"condition": {"test": "datum.partial", "value": "#555"}, "value": None},
                          "strokeDash": {"condition": {"test": "datum.partial", "value": [4, 3]}, "value": [1, 0]},
                          "tooltip": tooltip}},
            {"mark": {"type": "text", "baseline": "middle", "fontSize": 13},
             "encoding": {"text": {"field": "label", "type": "nominal"},
                          "color": {"condition": {"test": "datum.share > 0.5", "value": "white"}, "value": "black"},
                          "tooltip": tooltip}},
        ],
    }


def partial_note(grid: list[dict[str, Any]]) -> str | None:
    """What the mark on the current month's cells means, when there are any."""
    months = {(r["cohort_month"].year * 12 + r["cohort_month"].month - 1 + r["months_since"]) for r in grid if r.get("partial")}
    if not months:
        return None
    month = next(iter(months))
    return (f"{PARTIAL_MARK} {date(month // 12, month % 12 + 1, 1):%B %Y} is not over: its cells count the month so far, "
            "so they read low against whole months.")


def cohort_table(grid: list[dict[str, Any]]) -> pd.DataFrame:
    """The grid as a table: a row per cohort, its size, and the share active per month since."""
    months = sorted({r["months_since"] for r in grid})
    rows: dict[str, dict[str, Any]] = {}
    for r in grid:
        row = rows.setdefault(f"{r['cohort_month']:%Y-%m}", {"Cohort": f"{r['cohort_month']:%Y-%m}", "Customers": r["cohort_customers"]})
        row[f"Month {r['months_since']}"] = r["share"]
    return pd.DataFrame(list(rows.values()), columns=["Cohort", "Customers", *(f"Month {m}" for m in months)])
