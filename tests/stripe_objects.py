"""Stripe-shaped objects for tests, built on Stripe's own published fixtures.

tests/fixtures/stripe_fixtures.json holds the charge, payment_intent, balance_transaction and
event resources of github.com/stripe/openapi `openapi/fixtures3.json` (MIT), unchanged.
The builders deep-copy one and set the fields a test cares about, so every object keeps
Stripe's real shape (nested outcome, payment_method_details.card, expandable ids, ...).
"""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "stripe_fixtures.json").read_text())


def ts(text: str) -> int:
    """Unix seconds of 'YYYY-MM-DD HH:MM[:SS]' in UTC."""
    return int(datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp())


def stripe_charge(
    charge_id: str,
    created: str | int,
    status: str = "succeeded",
    amount: int = 1000,
    currency: str = "usd",
    *,
    payment_intent: str | None = None,
    customer: str | None = "cus_A",
    failure_code: str | None = None,
    outcome_type: str | None = None,
    outcome_reason: str | None = None,
    metadata: dict[str, str] | None = None,
    brand: str | None = "visa",
    country: str | None = "US",
    balance_transaction: str | dict | None = None,
    paid: bool | None = None,
    **fields: Any,
) -> dict[str, Any]:
    ch = copy.deepcopy(FIXTURES["charge"])
    ch.update(
        id=charge_id,
        created=created if isinstance(created, int) else ts(created),
        status=status,
        amount=amount,
        currency=currency,
        payment_intent=payment_intent,
        customer=customer,
        failure_code=failure_code,
        metadata=metadata or {},
        balance_transaction=balance_transaction,
        paid=(status == "succeeded") if paid is None else paid,
    )
    default_type = {"succeeded": "authorized", "failed": "issuer_declined", "pending": None}.get(status)
    ch["outcome"].update(type=outcome_type or default_type, reason=outcome_reason)
    if brand is None and country is None:
        ch["payment_method_details"] = {"type": "sepa_debit", "sepa_debit": {"country": "DE"}}
    else:
        ch["payment_method_details"]["card"].update(brand=brand, country=country)
    ch.update(fields)
    return ch


def stripe_payment_intent(pi_id: str, created: str | int, status: str = "requires_payment_method", *,
                          customer: str | None = "cus_A", metadata: dict[str, str] | None = None,
                          **fields: Any) -> dict[str, Any]:
    pi = copy.deepcopy(FIXTURES["payment_intent"])
    pi.update(id=pi_id, created=created if isinstance(created, int) else ts(created), status=status,
              customer=customer, metadata=metadata or {}, **fields)
    return pi


def stripe_balance_transaction(bt_id: str, source: str, amount: int, currency: str = "usd", *,
                               created: int = 1_700_000_000, exchange_rate: float | None = None,
                               status: str = "available") -> dict[str, Any]:
    bt = copy.deepcopy(FIXTURES["balance_transaction"])
    bt.update(id=bt_id, source=source, amount=amount, currency=currency, created=created,
              exchange_rate=exchange_rate, net=amount - bt["fee"], status=status)
    return bt


def stripe_event(event_id: str, type_: str, obj: dict[str, Any], created: int | None = None) -> dict[str, Any]:
    ev = copy.deepcopy(FIXTURES["event"])
    ev.update(id=event_id, type=type_, created=obj["created"] if created is None else created,
              data={"object": obj}, api_version="2026-06-24")
    return ev


def payment_history(seed: int, intents: int, start: int = 1_709_546_400,
                    label: str = "many") -> tuple[list[dict], dict[str, dict], dict[str, dict]]:
    """Events of `intents` payments (1-3 attempts, each pending first), and the final objects.
    The first payment is made after `start` (Unix seconds), about 35 minutes apart on average;
    `label` goes into every id, so two histories can share a database."""
    import random

    rng = random.Random(seed)
    events: list[dict] = []
    charges: dict[str, dict] = {}
    pis: dict[str, dict] = {}
    clock = start
    codes = [("card_declined", "issuer_declined", "insufficient_funds"), ("expired_card", "invalid", None),
             ("card_declined", "blocked", "highest_risk_level"), ("processing_error", None, None)]
    for i in range(intents):
        pi_id, meta = f"pi_{label}_{i}", {"funnel_name": rng.choice(["main_funnel", "mobile_app"]), "profile_id": f"p{i % 7}"}
        currency, amount = rng.choice([("usd", 1999), ("eur", 4900), ("jpy", 3000)])
        clock += rng.randint(30, 4000)
        pi = stripe_payment_intent(pi_id, clock, "requires_payment_method", metadata=meta, customer=f"cus_{i % 11}")
        events.append(stripe_event(f"evt_{label}_{i}_pi0", "payment_intent.created", pi, clock))
        attempts = rng.randint(1, 3)
        for n in range(attempts):
            created = clock + n * rng.randint(60, 900)
            charge_id = f"ch_{label}_{i}_{n}"
            pending = stripe_charge(charge_id, created, "pending", amount, currency, payment_intent=pi_id, customer=None)
            events.append(stripe_event(f"evt_{label}_{i}_{n}_p", "charge.pending", pending, created))
            won = n == attempts - 1 and rng.random() < 0.7
            if won:
                final = stripe_charge(charge_id, created, "succeeded", amount, currency, payment_intent=pi_id, customer=None,
                                      brand=rng.choice(["visa", "amex"]), country=rng.choice(["US", "DE"]))
            else:
                code, kind, reason = rng.choice(codes)
                final = stripe_charge(charge_id, created, "failed", amount, currency, payment_intent=pi_id, customer=None,
                                      failure_code=code, outcome_type=kind, outcome_reason=reason)
            # the final state in the same second as pending half of the time (the rank decides)
            at = created + rng.choice([0, 2])
            events.append(stripe_event(f"evt_{label}_{i}_{n}_f", f"charge.{final['status']}", final, at))
            charges[charge_id] = final
        end = clock + attempts * 1000
        pis[pi_id] = stripe_payment_intent(pi_id, clock, "succeeded" if final["status"] == "succeeded" else "requires_payment_method",
                                           metadata=meta, customer=f"cus_{i % 11}")
        events.append(stripe_event(f"evt_{label}_{i}_pi1", "payment_intent.updated", pis[pi_id], end))
    return events, charges, pis
