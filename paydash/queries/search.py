"""The Payments search box, parsed into a pure structure (no database, no SQL).

What a search understands (docs/metrics.md, the Payments page's help):

- free text: an exact charge, payment intent, customer or profile id; from
  MIN_FRAGMENT characters on, any part of one of those ids, ignoring case (the last
  characters a customer reads out on the phone); and, when the customers mart exists,
  the start of a customer's email or name;
- Stripe-style field terms, every one of them AND-ed with the rest and the free text:
  `email:`, `last4:`, `amount:` (USD, with `>`, `>=`, `<`, `<=`), `currency:`,
  `country:`, `code:`, `category:`, `status:`. A value with spaces goes in double quotes
  (`email:"jenny rosen"` is refused as an email, but quotes work for any field).

Text is always literal: the parts become bound parameters and LIKE patterns escape
`%`, `_` and the escape character (paydash/queries/filters.py turns a Search into SQL).
A field that does not exist, or a value that cannot mean anything for its field, is
refused with InvalidInput saying what would work.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from paydash.decline_codes import FAILURE_CATEGORIES
from paydash.errors import InvalidInput

STATUSES = ("succeeded", "failed", "pending")
MIN_FRAGMENT = 4
MAX_AMOUNT = Decimal("9999999999.99")  # the charge mart's numeric(12,2)
AMOUNT_OPS = (">=", "<=", ">", "<", "=")

# field -> what it matches (the unknown-field message and the page's help list them)
FIELDS: dict[str, str] = {
    "email": "the start of the customer's email",
    "last4": "the card's last four digits",
    "amount": "the amount in USD, e.g. amount:49.99 or amount:>100",
    "currency": "the charge's currency, e.g. currency:eur",
    "country": "the card's country, e.g. country:DE",
    "code": "the failure code, e.g. code:insufficient_funds",
    "category": "the failure category, e.g. category:fraud_block",
    "status": "succeeded, failed or pending",
}

# a field term: name, colon, then a double-quoted value or everything up to the next space
_TERM = re.compile(r'(?<!\S)([A-Za-z][A-Za-z0-9_]*):("[^"]*"?|\S*)')


@dataclass(frozen=True)
class Term:
    """One AND-ed part of a search: `field` is "text" (free text) or one of FIELDS."""

    field: str
    value: str
    op: str = "="  # amount only: =, >, >=, <, <=


@dataclass(frozen=True)
class Search:
    terms: tuple[Term, ...] = ()

    @property
    def text(self) -> str | None:
        """The free text, if any."""
        return next((t.value for t in self.terms if t.field == "text"), None)

    def fields(self) -> tuple[Term, ...]:
        return tuple(t for t in self.terms if t.field != "text")


def parse_search(text: str | None) -> Search:
    """The search text as terms; raises InvalidInput for an unknown field or a bad value."""
    text = (text or "").strip()
    if not text:
        return Search()
    terms: list[Term] = []
    rest: list[str] = []
    position = 0
    for match in _TERM.finditer(text):
        rest.append(text[position:match.start()])
        position = match.end()
        terms.append(_field_term(match.group(1).lower(), match.group(2)))
    rest.append(text[position:])
    free = " ".join(" ".join(rest).split()) if terms else text
    if free:
        terms.insert(0, Term("text", free))
    return Search(tuple(terms))


def _field_term(field: str, raw: str) -> Term:
    if field not in FIELDS:
        raise InvalidInput(
            f"the search has no field {field!r}; fields: {', '.join(f + ':' for f in FIELDS)} "
            "(or type an id, part of an id, an email or a name)"
        )
    value = raw[1:].removesuffix('"') if raw.startswith('"') else raw
    value = value.strip()
    if not value:
        raise InvalidInput(f"{field}: needs a value, e.g. {_example(field)}")
    if field == "amount":
        return _amount_term(value)
    if field == "last4":
        if not re.fullmatch(r"[0-9]{4}", value):
            raise InvalidInput(f"last4:{value} is not four digits; e.g. last4:4242")
        return Term(field, value)
    if field == "currency":
        if not re.fullmatch(r"[A-Za-z]{3}", value):
            raise InvalidInput(f"currency:{value} is not a three-letter currency code; e.g. currency:eur")
        return Term(field, value.lower())
    if field == "country":
        if not re.fullmatch(r"[A-Za-z]{2}", value):
            raise InvalidInput(f"country:{value} is not a two-letter country code; e.g. country:DE")
        return Term(field, value.upper())
    if field == "category":
        value = value.lower()
        if value not in FAILURE_CATEGORIES:
            raise InvalidInput(f"category:{value} is not a failure category; one of {', '.join(FAILURE_CATEGORIES)}")
        return Term(field, value)
    if field == "status":
        value = value.lower()
        if value not in STATUSES:
            raise InvalidInput(f"status:{value} is not one of {', '.join(STATUSES)}")
        return Term(field, value)
    return Term(field, value.lower())  # email (its start), code


def _amount_term(value: str) -> Term:
    op = next((o for o in AMOUNT_OPS if value.startswith(o)), "=")
    number = value[len(op):].strip() if value.startswith(op) else value
    return Term("amount", str(parse_amount(number, f"amount:{value}")), op)


def parse_amount(text: str, what: str) -> Decimal:
    """A USD amount typed by a user ('$1,250.50' too); InvalidInput naming `what` otherwise."""
    cleaned = text.strip().removeprefix("$").replace(",", "")
    try:
        amount = Decimal(cleaned)
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or not re.fullmatch(r"[0-9]*\.?[0-9]*", cleaned):
        raise InvalidInput(f"{what} is not an amount in USD; e.g. 100 or 49.99")
    if amount > MAX_AMOUNT:
        raise InvalidInput(f"{what} is larger than any charge can be ({MAX_AMOUNT} USD)")
    return amount


def _example(field: str) -> str:
    return {"email": "email:jenny@", "last4": "last4:4242", "amount": "amount:>100"}.get(
        field, FIELDS[field].split("e.g. ")[-1] if "e.g." in FIELDS[field] else f"{field}:failed"
    )


def like_escape(text: str, escape: str = "\\") -> str:
    """`text` for a LIKE pattern, literally: %, _ and the escape character escaped."""
    return "".join(escape + ch if ch in ("%", "_", escape) else ch for ch in text)
