"""How numbers, changes and times are written on the dashboard (pure; the tests use it too).

The rules, in one place:
- nothing (None, empty text) is shown as EMPTY, "—", in cards, tables and details alike;
- rates and shares have one decimal ("86.2%") in cards, tables and tooltips: tables keep the
  fraction and get `PERCENT_COLUMN` (Streamlit's percent format at one decimal), charts
  `VEGA_PERCENT`; axis ticks are whole percents (`VEGA_PERCENT_AXIS`);
- money is "$1,234.56"; where space is short (cards, chart axes) it is abbreviated with the
  same upper-case units, K, M and B (`money_compact`, `VEGA_MONEY_AXIS`);
- a count says its noun in the right number ("1 payment", "2 payments": `quantity`);
- identifiers from the data shown as labels are words ("card_declined" -> "Card declined").
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")

EMPTY = "—"
PERCENT_DIGITS = 1
# st.column_config.NumberColumn(**PERCENT_COLUMN): Streamlit shows a fraction as a percent with
# as many decimals as the step has beyond the percent's two (0.001 -> one decimal)
PERCENT_COLUMN = {"format": "percent", "step": 10 ** -(PERCENT_DIGITS + 2)}
VEGA_PERCENT = f".{PERCENT_DIGITS}%"
VEGA_PERCENT_AXIS = ".0%"
MONEY_UNITS = ((10**9, "B"), (10**6, "M"), (10**3, "K"))
COMPACT_FROM = 10**4  # cards write amounts below this in full


def _money_axis_expression() -> str:
    """A Vega expression writing an axis tick (datum.value, USD) with the cards' units: $50K, $1.5M."""
    expression = "'$' + format(datum.value, '~g')"
    for size, suffix in reversed(MONEY_UNITS):
        expression = (f"abs(datum.value) >= {size:g} ? '$' + format(datum.value / {size:g}, '~g') + '{suffix}' : "
                      f"({expression})")
    return expression


VEGA_MONEY_AXIS = {"labelExpr": _money_axis_expression()}


def money(value: Decimal | float | int | None) -> str:
    if value is None:
        return EMPTY
    return f"${Decimal(value):,.2f}"


def money_compact(value: Decimal | float | int | None) -> str:
    """Money that fits a card: '$9,999.99', '$164.25K', '$3.57M' (the units of the chart axes)."""
    if value is None:
        return EMPTY
    amount = Decimal(value)
    if abs(amount) < COMPACT_FROM:
        return money(amount)
    for size, suffix in MONEY_UNITS:
        if abs(amount) >= size:
            return f"${amount / Decimal(size):,.2f}{suffix}"
    return money(amount)  # pragma: no cover - COMPACT_FROM is above the smallest unit


def count(value: int | None) -> str:
    return EMPTY if value is None else f"{int(value):,}"


def percent(fraction: float | None, digits: int = PERCENT_DIGITS) -> str:
    return EMPTY if fraction is None else f"{fraction * 100:.{digits}f}%"


def plural(n: int | None, singular: str, plural_form: str | None = None) -> str:
    """The noun for n of it: 'payment' for 1, 'payments' otherwise (0 and unknown included)."""
    return singular if n == 1 else (plural_form or singular + "s")


def quantity(n: int | None, singular: str, plural_form: str | None = None) -> str:
    """'1 payment', '2,000 payments', '1 matching payment' (the count written as `count` does)."""
    return f"{count(n)} {plural(n, singular, plural_form)}"


def words(identifier: object) -> str:
    """An identifier from the data as words for a label: 'card_declined' -> 'Card declined'."""
    if identifier is None or identifier == "":
        return EMPTY
    text_ = str(identifier).replace("_", " ").strip()
    return text_[:1].upper() + text_[1:] if text_ else EMPTY


def relative_change(fraction: float | None) -> str | None:
    """'+5.2%' for a relative change, '0.0%' (no sign) when it rounds to none; None (no delta
    shown) when there was nothing before."""
    if fraction is None:
        return None
    return "0.0%" if round(fraction * 100, 1) == 0 else f"{fraction * 100:+.1f}%"


def points_change(fraction: float | None, digits: int = 1) -> str | None:
    """A change of a rate, in percentage points: '+0.4 pp' ('+0.04 pp' with digits=2, for small
    rates), '0.0 pp' when it rounds to none."""
    if fraction is None:
        return None
    return f"{0:.{digits}f} pp" if round(fraction * 100, digits) == 0 else f"{fraction * 100:+.{digits}f} pp"


def delta_style(delta: str | None, color: str = "normal") -> dict[str, str]:
    """st.metric's delta_color and delta_arrow for a change formatted above: one that rounds to
    none gets neither arrow nor colour (Streamlit would draw '+0.0%' as a rise)."""
    if delta is not None and not any(digit in delta for digit in "123456789"):
        return {"delta_color": "off", "delta_arrow": "off"}
    return {"delta_color": color}


def local_time(utc_naive: datetime | None, tz: str) -> str:
    """A stored (naive UTC) timestamp as wall time in the reporting timezone."""
    if utc_naive is None:
        return EMPTY
    local = utc_naive.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S")


def loaded_at(when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or tz)


def text(value: object) -> str:
    """Any value as plain text for a table cell (EMPTY for nothing)."""
    return EMPTY if value is None or value == "" else str(value)


def md_escape(value: object) -> str:
    """Text that Markdown shows literally (for data placed in labels, captions and messages)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
