"""The Overview's date-range choice turned into a DateRange (pure)."""

from __future__ import annotations

from datetime import date

from paydash.queries.dates import DateRange, last_n_days

PRESETS: dict[str, int | None] = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Custom": None}
DEFAULT_PRESET = "Last 30 days"


def chosen_range(preset: str | None, custom: tuple | list | date | None, tz: str, today: date | None = None) -> tuple[DateRange, str]:
    """(range, note): the preset's days, or the custom range once both ends are picked.

    Until the custom range is complete the default preset stands in, and the note says so.
    """
    days = PRESETS.get(preset or DEFAULT_PRESET)
    if days is not None:
        return last_n_days(days, tz, today), ""
    picked = [d for d in (custom if isinstance(custom, (tuple, list)) else [custom]) if d is not None]
    fallback = last_n_days(PRESETS[DEFAULT_PRESET], tz, today)
    if len(picked) < 2:
        return fallback, "Pick the first and the last day of the custom range; showing the last 30 days meanwhile."
    start, end = sorted(picked[:2])
    return DateRange(start, end, tz), ""
