"""Date ranges: whole calendar days in the reporting timezone, both ends included.

A range that holds today can be cut at a moment (`until`, "today so far"): it then stops
there, and its previous period stops at the same local wall-clock time of the matching day,
so a part of today is compared with the same hours back then (docs/metrics.md). The moment
is always passed in (`so_far(now)`): nothing here reads the clock.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paydash.errors import InvalidInput


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    tz: str = "UTC"
    until: datetime | None = None  # naive UTC: the range stops there (a range cut "so far")

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidInput(f"the range ends ({self.end}) before it starts ({self.start}); swap --from and --to")
        try:
            ZoneInfo(self.tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise InvalidInput(f"unknown timezone {self.tz!r}; use an IANA name such as UTC or America/New_York")

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> "DateRange":
        """The same number of days, ending the day before this range starts.

        A cut range's previous period is cut as many days earlier at the same local
        wall-clock time (not the same number of hours earlier: a DST change in between
        does not move it).
        """
        end = self.start - timedelta(days=1)
        earlier = DateRange(end - timedelta(days=self.days - 1), end, self.tz)
        if self.until is None:
            return earlier
        local = self.until.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(self.tz))
        cut = wall_clock_utc(local.date() - timedelta(days=self.days), local.time(), self.tz)
        return replace(earlier, until=cut)

    def so_far(self, now: datetime) -> "DateRange":
        """This range cut at `now` (aware, or naive UTC) when now falls on one of its days; else itself.

        The cut is `now` to the whole second: the moment a page or `--json` shows as "as of" is
        exactly where the numbers stop (a charge in the fraction after it is not counted)."""
        now_utc = now.astimezone(timezone.utc).replace(tzinfo=None) if now.tzinfo else now
        now_utc = now_utc.replace(microsecond=0)
        start, stop = self.utc_bounds()
        return replace(self, until=now_utc) if start <= now_utc < stop else self

    @property
    def partial_day(self) -> date | None:
        """The local day the range is cut on (None when it is whole days)."""
        if self.until is None:
            return None
        return self.until.replace(tzinfo=timezone.utc).astimezone(ZoneInfo(self.tz)).date()

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[start, stop) as naive UTC datetimes, the way created_at is stored (stop at the cut if any)."""
        stop = local_midnight_utc(self.end + timedelta(days=1), self.tz)
        if self.until is not None:
            stop = min(stop, self.until)
        return local_midnight_utc(self.start, self.tz), stop

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def local_midnight_utc(day: date, tz: str) -> datetime:
    local = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


def wall_clock_utc(day: date, at: time, tz: str) -> datetime:
    """The first moment (naive UTC) at which the clock in `tz` reads `at` or later on `day`.

    A time skipped by a DST change (02:30 on a spring-forward night) gives the moment the
    clock jumps; a time that happens twice (fall back) gives its first occurrence.
    """
    zone = ZoneInfo(tz)
    wanted = datetime.combine(day, at.replace(tzinfo=None))
    first = wanted.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)
    if first.astimezone(zone).replace(tzinfo=None) == wanted:
        return first.replace(tzinfo=None)
    # skipped: the clock jumps somewhere between the two readings of `wanted`
    low = wanted.replace(tzinfo=zone, fold=1).astimezone(timezone.utc)
    high = first
    while high - low > timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).replace(tzinfo=None) >= wanted:
            high = middle
        else:
            low = middle
    return high.replace(tzinfo=None)


def today_in(tz: str) -> date:
    return datetime.now(ZoneInfo(tz)).date()


def parse_date(text: str, what: str = "date") -> date:
    try:
        return date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidInput(f"{what} {text!r} is not a date; write it as YYYY-MM-DD")


def last_n_days(n: int, tz: str, today: date | None = None) -> DateRange:
    """The last n whole days including today, the Overview's presets."""
    end = today or today_in(tz)
    return DateRange(end - timedelta(days=n - 1), end, tz)


def resolve_range(start: str | date | None, end: str | date | None, tz: str, default_days: int = 30) -> DateRange:
    """A range from optional --from/--to; missing ends default to the last `default_days` days."""
    end_d = parse_date(end, "--to") if isinstance(end, str) else end
    start_d = parse_date(start, "--from") if isinstance(start, str) else start
    if end_d is None:
        end_d = today_in(tz) if start_d is None else max(start_d, today_in(tz))
    if start_d is None:
        start_d = end_d - timedelta(days=default_days - 1)
    return DateRange(start_d, end_d, tz)
