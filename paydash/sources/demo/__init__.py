"""The demo: deterministic Stripe-like payments (payments.py), the customers, promotion codes,
refunds, disputes and operations events that go with them, and the build into a warehouse (build.py)."""

from paydash.sources.demo.build import build_demo_database
from paydash.sources.demo.payments import (
    DEFAULT_INCIDENTS,
    FUNNELS,
    FX_TO_USD,
    DemoSpec,
    Incident,
    generate_payments,
    to_plain_strings,
)

__all__ = ["DEFAULT_INCIDENTS", "FUNNELS", "FX_TO_USD", "DemoSpec", "Incident", "build_demo_database",
           "generate_payments", "to_plain_strings"]
