"""Date ranges: whole calendar days in the reporting timezone, both ends included."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from paydash.errors import InvalidInput


@dataclass(frozen=True)
class DateRange:
    start: date
    end: date
    tz: str = "UTC"

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
        """The same number of days, ending the day before this range starts."""
        end = self.start - timedelta(days=1)
        return DateRange(end - timedelta(days=self.days - 1), end, self.tz)

    def utc_bounds(self) -> tuple[datetime, datetime]:
        """[start, stop) as naive UTC datetimes, the way created_at is stored."""
        return local_midnight_utc(self.start, self.tz), local_midnight_utc(self.end + timedelta(days=1), self.tz)

    def dates(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range(self.days)]


def local_midnight_utc(day: date, tz: str) -> datetime:
    local = datetime.combine(day, time(0), tzinfo=ZoneInfo(tz))
    return local.astimezone(timezone.utc).replace(tzinfo=None)


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
