"""Opening hours: weekly local wall-clock hours plus dated exceptions, evaluated in the location's time zone."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from accord.commerce.errors import InvalidInput

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

Interval = tuple[time, time]


def _parse_time(text: Any) -> time:
    if not isinstance(text, str):
        raise InvalidInput(f"opening hours must be 'HH:MM' strings, got {text!r}", code="invalid_hours")
    try:
        return time.fromisoformat(text)
    except ValueError as exc:
        raise InvalidInput(f"{text!r} is not a time HH:MM", code="invalid_hours") from exc


def _parse_day(value: Any) -> Interval | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise InvalidInput(f"a day's hours are [open, close] or null, got {value!r}", code="invalid_hours")
    opens, closes = _parse_time(value[0]), _parse_time(value[1])
    if closes <= opens:
        raise InvalidInput(f"closing time {value[1]} is not after opening time {value[0]}", code="invalid_hours")
    return (opens, closes)


def zone(name: str) -> ZoneInfo:
    """The IANA time zone NAME (InvalidInput if unknown)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInput(f"unknown time zone {name!r}", code="invalid_timezone") from exc


@dataclass(frozen=True)
class OpeningHours:
    """Weekly hours and exceptions of one location, in its time zone."""

    timezone: str
    weekly: tuple[Interval | None, ...]
    exceptions: Mapping[date, Interval | None]

    @classmethod
    def parse(
        cls, timezone: str, weekly: Mapping[str, Any], exceptions: Mapping[str, Any] | None = None
    ) -> OpeningHours:
        """Validate {"mon": ["09:00", "21:00"], "sun": null, ...} and {"2026-12-25": null, ...}."""
        zone(timezone)
        unknown = set(weekly) - set(WEEKDAYS)
        if unknown:
            raise InvalidInput(f"unknown weekday(s) {sorted(unknown)}; use {', '.join(WEEKDAYS)}", code="invalid_hours")
        parsed_exceptions: dict[date, Interval | None] = {}
        for day, value in (exceptions or {}).items():
            try:
                parsed_exceptions[date.fromisoformat(day)] = _parse_day(value)
            except ValueError as exc:
                raise InvalidInput(f"exception date {day!r} is not YYYY-MM-DD", code="invalid_hours") from exc
        return cls(timezone, tuple(_parse_day(weekly.get(d)) for d in WEEKDAYS), parsed_exceptions)

    @classmethod
    def from_json(cls, timezone: str, weekly: str, exceptions: str) -> OpeningHours:
        """From the stored JSON columns."""
        return cls.parse(timezone, json.loads(weekly), json.loads(exceptions))

    def weekly_json(self) -> dict[str, list[str] | None]:
        """The weekly hours as stored and shown."""
        return {d: _fmt(i) for d, i in zip(WEEKDAYS, self.weekly, strict=True)}

    def exceptions_json(self) -> dict[str, list[str] | None]:
        """The exceptions as stored and shown."""
        return {d.isoformat(): _fmt(i) for d, i in sorted(self.exceptions.items())}

    def hours_on(self, day: date) -> Interval | None:
        """Opening interval on a local date (exceptions win), or None when closed."""
        if day in self.exceptions:
            return self.exceptions[day]
        return self.weekly[day.weekday()]

    def window_on(self, day: date) -> tuple[datetime, datetime] | None:
        """The open window of a local date as UTC instants, or None when closed."""
        hours = self.hours_on(day)
        if hours is None:
            return None
        tz = zone(self.timezone)
        opens = datetime.combine(day, hours[0], tzinfo=tz).astimezone(UTC)
        closes = datetime.combine(day, hours[1], tzinfo=tz).astimezone(UTC)
        return opens, closes

    def is_open(self, at: datetime) -> bool:
        """Whether the location is open at instant AT."""
        local = at.astimezone(zone(self.timezone))
        window = self.window_on(local.date())
        return window is not None and window[0] <= at < window[1]

    def within(self, start: datetime, end: datetime) -> bool:
        """Whether [START, END) lies inside one opening window."""
        local = start.astimezone(zone(self.timezone))
        window = self.window_on(local.date())
        return window is not None and window[0] <= start and end <= window[1]

    def windows(self, start: datetime, days: int) -> Iterator[tuple[datetime, datetime]]:
        """Open windows (UTC) on the local dates from START's local date for DAYS days, clipped to after START."""
        first = start.astimezone(zone(self.timezone)).date()
        for offset in range(days):
            window = self.window_on(first + timedelta(days=offset))
            if window is None or window[1] <= start:
                continue
            yield max(window[0], start), window[1]

    def next_open(self, at: datetime, horizon_days: int = 14) -> datetime | None:
        """The first instant at or after AT when the location is open."""
        for opens, _closes in self.windows(at, horizon_days):
            return opens
        return None


def _fmt(interval: Interval | None) -> list[str] | None:
    if interval is None:
        return None
    return [interval[0].strftime("%H:%M"), interval[1].strftime("%H:%M")]
