"""One payment's detail, drawn the same at the top of the Payments page (a payment's link) and
in the dialog a selected row opens: amounts in the charge's currency and in USD with the rate,
the customer, the card, the outcome with what to do, one timeline of attempts, refunds and
disputes, and links (customer, payment intent, Stripe's Dashboard)."""

from __future__ import annotations

from typing import Any, Callable

import streamlit as st

from paydash.app import downloads, explorer, tables
from paydash.app import format as fmt
from paydash.decline_codes import CATEGORIES

STRIPE_DASHBOARD = "https://dashboard.stripe.com/payments/"
OUTCOME_HELP = "How its payment intent stands after all attempts: succeeded, recovered (a retry won), failed or pending."


def stripe_url(detail: dict[str, Any]) -> str:
    """The payment in Stripe's Dashboard: its payment intent when it has one, else the charge."""
    from urllib.parse import quote

    return STRIPE_DASHBOARD + quote(detail.get("payment_intent_id") or detail["charge_id"], safe="")


def render(detail: dict[str, Any] | None, charge_id: str, tz: str, on_close: Callable[[], None] | None = None) -> None:
    """The detail of `charge_id` (None: not found). `on_close` adds a Close button (not in a dialog: it has its own)."""
    header_col, close_col = st.columns([5, 1], vertical_alignment="center")
    header_col.subheader("Payment detail")
    if on_close is not None:
        close_col.button("Close", key="payments_close", on_click=on_close, icon=":material/close:")
    if detail is None:
        st.warning(f"No payment with charge id {fmt.md_escape(charge_id)}.")
        return
    st.code(detail["charge_id"], language=None)
    amount, usd, outcome, attempts = st.columns(4)
    rate = tables.conversion(detail)
    amount.metric("Amount", tables.original_amount(detail),
                  help="In the charge's own currency" + (f": amount_usd converted back at {rate}, the rate it was "
                                                          "converted at, so within a US cent's worth of the amount "
                                                          "charged." if rate else "."))
    usd.metric("Amount (USD)", fmt.money(detail["amount_usd"]), help=f"As stored in amount_usd{f'; {rate}' if rate else ''}.")
    if rate:
        usd.caption(rate)
    outcome.metric("Outcome of the payment", fmt.text(detail["payment_outcome"]), help=OUTCOME_HELP)
    attempts.metric("Attempts", fmt.count(len(detail["retry_history"])))
    category = detail.get("failure_category")
    if detail["status"] == "failed" and category in CATEGORIES:
        action, meaning = CATEGORIES[category]
        st.info(f"This attempt failed ({fmt.md_escape(detail.get('failure_code') or category)}). "
                f"Recommended action: **{fmt.md_escape(action)}**: {fmt.md_escape(meaning)}", icon=":material/lightbulb:")
    for line in adjustment_lines(detail):
        st.warning(line, icon=":material/undo:")
    _links(detail)
    st.dataframe(tables.payment_fields(detail, tz), key="payments_fields", hide_index=True, width="stretch", height="content")
    st.markdown("**Timeline** of its payment intent: every attempt, refund and dispute")
    timeline = tables.payment_timeline(detail["timeline"], tz)
    st.dataframe(timeline, key="payments_timeline", hide_index=True, width="stretch", height="content",
                 column_config={"Amount (USD)": st.column_config.NumberColumn(format="dollar")})
    missing = [name for name in ("refunds", "disputes") if detail.get(name) is None]
    if missing:
        st.caption(f"No {' or '.join(missing)} table: the timeline shows attempts only (docs/data-contract.md).")
    downloads.frame_download(st, timeline, "Download CSV (timeline)", "payment-timeline", "payments_timeline_csv")
    st.caption("Link to this payment:")
    st.code(explorer.link(st.context.url or "", {"charge": detail["charge_id"]}), language=None)


def adjustment_lines(detail: dict[str, Any]) -> list[str]:
    """'Refunded $15.00 (1 refund)...', 'Disputed $40.00: under_review...': what happened to the money since."""
    lines = []
    refunds = [r for r in detail.get("refunds") or [] if r["status"] not in ("failed", "canceled")]
    if refunds:
        total = sum(r["amount_usd"] or 0 for r in refunds)
        lines.append(f"Refunded {fmt.money(total)} ({fmt.count(len(refunds))} refund{'s' if len(refunds) != 1 else ''}), "
                     f"latest {fmt.md_escape(refunds[-1]['status'])}.")
    for d in detail.get("disputes") or []:
        due = f", evidence due by {d['evidence_due_by']:%Y-%m-%d %H:%M} UTC" if d.get("evidence_due_by") else ""
        lines.append(f"Disputed {fmt.money(d['amount_usd'])}: {fmt.md_escape(d['status'])}"
                     f" ({fmt.md_escape(d.get('reason') or 'no reason given')}){due}.")
    return lines


def page_url(current: str, page: str, params: dict[str, str]) -> str:
    """A link to another page of the dashboard beside `current` (this page's URL), parameters URL-encoded."""
    base = current.rsplit("/", 1)[0] if "/" in current.split("://", 1)[-1] else current.rstrip("/")
    return explorer.link(f"{base}/{page}", params)


def _links(detail: dict[str, Any]) -> None:
    here = st.context.url or ""
    links = []
    customer = detail.get("customer_id")
    if customer:
        links.append(f"[The customer]({page_url(here, 'customers', {'customer': customer})})")
    intent = detail.get("payment_intent_id")
    if intent:
        links.append(f"[Every attempt of its payment intent]({page_url(here, 'payments', {'search': intent})})")
    links.append(f"[Open in Stripe's Dashboard]({stripe_url(detail)})")
    # link texts are fixed words: the ids themselves are in the table below, as plain text
    st.markdown(" · ".join(links))
