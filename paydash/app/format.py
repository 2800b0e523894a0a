"""How numbers, changes and times are written on the dashboard (pure; the tests use it too)."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from zoneinfo import ZoneInfo

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+\-.!|~$:])")


def money(value: Decimal | float | int | None) -> str:
    if value is None:
        return "-"
    return f"${Decimal(value):,.2f}"


def money_compact(value: Decimal | float | int | None) -> str:
    """Money that fits a card: '$9,999.99', '$164.25K', '$3.57M'."""
    if value is None:
        return "-"
    amount = Decimal(value)
    for size, suffix in ((Decimal(10**9), "B"), (Decimal(10**6), "M"), (Decimal(10**4), "K")):
        if abs(amount) >= size:
            unit = Decimal(1000) if suffix == "K" else size
            return f"${amount / unit:,.2f}{suffix}"
    return money(amount)


def count(value: int | None) -> str:
    return "-" if value is None else f"{int(value):,}"


def percent(fraction: float | None, digits: int = 1) -> str:
    return "-" if fraction is None else f"{fraction * 100:.{digits}f}%"


def relative_change(fraction: float | None) -> str | None:
    """'+5.2%' for a relative change; None (no delta shown) when there was nothing before."""
    return None if fraction is None else f"{fraction * 100:+.1f}%"


def points_change(fraction: float | None, digits: int = 1) -> str | None:
    """A change of a rate, in percentage points: '+0.4 pp' ('+0.04 pp' with digits=2, for small rates)."""
    return None if fraction is None else f"{fraction * 100:+.{digits}f} pp"


def local_time(utc_naive: datetime | None, tz: str) -> str:
    """A stored (naive UTC) timestamp as wall time in the reporting timezone."""
    if utc_naive is None:
        return "-"
    local = utc_naive.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S")


def loaded_at(when: datetime, tz: str) -> str:
    local = when.astimezone(ZoneInfo(tz))
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or tz)


def text(value: object) -> str:
    """Any value as plain text for a table cell ('-' for nothing)."""
    return "-" if value is None or value == "" else str(value)


def md_escape(value: object) -> str:
    """Text that Markdown shows literally (for data placed in labels, captions and messages)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value))
