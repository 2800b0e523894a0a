"""Currency facts shared by the Stripe transform and the queries: minor units per currency."""

from __future__ import annotations

# stripe.com/docs/currencies (via third-party copies, see STRIPE-NOTES.md)
ZERO_DECIMAL = frozenset("bif clp djf gnf jpy kmf krw mga pyg rwf ugx vnd vuv xaf xof xpf".split())
THREE_DECIMAL = frozenset("bhd jod kwd omr tnd".split())


def minor_unit_divisor(currency: str) -> int:
    """Minor units per unit of `currency`: 1 for JPY and other zero-decimal currencies, 1000 for KWD..., else 100."""
    currency = currency.lower()
    if currency in ZERO_DECIMAL:
        return 1
    if currency in THREE_DECIMAL:
        return 1000
    return 100
