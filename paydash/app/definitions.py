"""Each metric's definition as the dashboard shows it (PRODUCT.md's one definition each)."""

RANGE = (
    "Whole calendar days in the reporting timezone, both ends included. Changes compare with the "
    "previous period: the same number of days, ending the day before the range starts. A range "
    "ending today is today so far: the previous period is cut at the same time of day."
)
REVENUE = "Sum of amount_usd over successful attempts in the range."
SUCCESS_RATE = "Successful attempts / all attempts in the range. The change is in percentage points (pp)."
FAILED = (
    "Attempts with status 'failed' in the range, and their amount in USD. A rise is shown in red: "
    "more failures are bad."
)
ATTEMPTS = "All charge attempts in the range, retries included (one row of mart_stripe_payments each)."
RECOVERY_RATE = (
    "Of the payment intents whose first attempt (in the range) failed, the share that a later "
    "attempt won. The trend is by the day of the first failure; recent days can still improve."
)
ACCEPTANCE = "Payment intents that ended succeeded (first try or after a retry) / payment intents attempted."
RECOVERED = "Amount of the winning retries of payment intents whose first attempt failed."
UNRECOVERED = "First-attempt amount of payment intents whose attempts have all failed so far."
TOP_REASONS = (
    "Failed attempts in the range by decline code, most frequent first, with their amount (lost "
    "amount) and what to do about them."
)
REFUNDS = (
    "Refunds created in the range (by the refund's own time, not the charge's), failed and canceled "
    "refunds left out, and their amount in USD. A rise is shown in red."
)
NET_REVENUE = "Revenue minus the amount of refunds created in the range (a refund lowers the period it was made in)."
DISPUTES = (
    "Disputes (chargebacks and inquiries) created in the range, whatever their status now, and their "
    "amount in USD. A rise is shown in red."
)
DISPUTE_RATE = (
    "Disputes created in the range / successful attempts in the range. Card networks watch this "
    "ratio; Visa's programmes start at about 0.9%. The change is in percentage points (pp)."
)

ALL = {
    "Date range": RANGE,
    "Revenue": REVENUE,
    "Success rate": SUCCESS_RATE,
    "Failed payments": FAILED,
    "Attempts": ATTEMPTS,
    "Net revenue": NET_REVENUE,
    "Refunds": REFUNDS,
    "Disputes": DISPUTES,
    "Dispute rate": DISPUTE_RATE,
    "Recovery rate": RECOVERY_RATE,
    "Payment acceptance": ACCEPTANCE,
    "Recovered revenue": RECOVERED,
    "Unrecovered amount": UNRECOVERED,
    "Top failure reasons": TOP_REASONS,
}
