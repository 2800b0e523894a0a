"""The Overview's choices (date range, funnel) and their URL, turned into a DateRange (pure).

The URL is the shareable form of the Overview: `range=7d|30d|90d` (30 days when absent), or
`from` and `to` for a custom range, and `funnel`. A pasted link is untrusted input: each
value is checked and a bad one is dropped with a note, as on the Payments page.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Mapping
from zoneinfo import ZoneInfo

from paydash.errors import InvalidInput
from paydash.queries.dates import DateRange, last_n_days, parse_date

PRESETS: dict[str, int | None] = {"Last 7 days": 7, "Last 30 days": 30, "Last 90 days": 90, "Custom": None}
DEFAULT_PRESET = "Last 30 days"
ALL_FUNNELS = "All funnels"
PRESET_PARAMS = {"Last 7 days": "7d", "Last 30 days": "30d", "Last 90 days": "90d", "Custom": "custom"}
URL_KEYS = ("range", "from", "to", "funnel")
MAX_FUNNEL_LENGTH = 200


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


# -- the URL ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class OverviewView:
    """What the Overview shows: a preset or a custom range (both ends, or none yet), and a funnel."""

    preset: str = DEFAULT_PRESET
    custom: tuple[date, date] | tuple[()] = ()
    funnel: str | None = None


def _one(value: Any) -> str | None:
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    return None if value in (None, "") else str(value)


def view_from_params(params: Mapping[str, Any], tz: str) -> tuple[OverviewView, list[str]]:
    """The view a URL asks for, and a note for each value that had to be dropped."""
    notes: list[str] = []
    preset, custom = DEFAULT_PRESET, ()
    named = _one(params.get("range"))
    start, end = _one(params.get("from")), _one(params.get("to"))
    if start is not None or end is not None:
        try:
            if start is None or end is None:
                raise InvalidInput("give both from and to (YYYY-MM-DD)")
            rng = DateRange(parse_date(start, "from"), parse_date(end, "to"), tz)
            preset, custom = "Custom", (rng.start, rng.end)
        except InvalidInput as exc:
            notes.append(f"ignored the link's from and to: {exc}")
    elif named is not None:
        by_param = {v: k for k, v in PRESET_PARAMS.items()}
        if named.strip().lower() in by_param:
            preset = by_param[named.strip().lower()]
        else:
            notes.append(f"ignored the link's range {named[:40]!r}: use one of {', '.join(PRESET_PARAMS.values())}")
    funnel = _one(params.get("funnel"))
    if funnel is not None and len(funnel) > MAX_FUNNEL_LENGTH:
        notes.append("ignored the link's funnel: longer than a funnel name")
        funnel = None
    return OverviewView(preset, custom, funnel), notes


def view_to_params(view: OverviewView) -> dict[str, str]:
    """The URL of a view; the default (last 30 days, all funnels) is the bare page."""
    params: dict[str, str] = {}
    if view.preset == "Custom" and len(view.custom) == 2:
        start, end = sorted(view.custom)
        params.update({"from": start.isoformat(), "to": end.isoformat()})
    elif view.preset in PRESET_PARAMS and view.preset != DEFAULT_PRESET:
        params["range"] = PRESET_PARAMS[view.preset]
    if view.funnel:
        params["funnel"] = view.funnel
    return params


def view_from_widgets(preset: str | None, custom: Any, funnel: str | None) -> OverviewView:
    """The view the widgets describe (a deselected preset is the default one)."""
    picked = [d for d in (custom if isinstance(custom, (tuple, list)) else [custom]) if isinstance(d, date)]
    custom_range = (min(picked), max(picked)) if len(picked) >= 2 else ()
    return OverviewView(preset or DEFAULT_PRESET, custom_range if preset == "Custom" else (),
                        None if funnel in (None, "", ALL_FUNNELS) else funnel)


# -- what the comparison is ----------------------------------------------------------------------------
def comparison_caption(rng: DateRange, now: datetime) -> str:
    """The range, its previous period, and for a range holding today the time both are cut at.

    `now` is aware or naive UTC; the time is shown in the range's timezone.
    """
    cut = rng.so_far(now)
    previous = cut.previous()
    text = (f"{rng.start:%b %d, %Y} to {rng.end:%b %d, %Y} ({rng.days} {'day' if rng.days == 1 else 'days'}, {rng.tz}), "
            f"compared with {previous.start:%b %d} to {previous.end:%b %d, %Y}")
    if cut.until is None:
        return text
    local = cut.until.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(rng.tz))
    return f"{text}: today so far, compared up to {local:%H:%M} on {cut.previous().partial_day:%b %d}"
