"""Weekly time windows plus dated exceptions (the school calendar), in the site's time zone.

    [analyzers.after_hours.schedule]
    weekly = ["mon-fri 18:00-07:00", "sat-sun 00:00-24:00"]
    except = ["2026-12-21..2027-01-03"]
    timezone = "America/Chicago"

A window whose end is before its start runs past midnight into the next day. ``except`` dates (or
``from..to`` ranges, inclusive) are days the weekly windows do not apply (holidays count as closed
for a "school hours" schedule; list them in ``also`` to make them fully active instead).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_WINDOW = re.compile(r"^\s*(\w{3})(?:-(\w{3}))?\s+(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})\s*$")


def _days(first: str, last: str | None) -> list[int]:
    try:
        a = DAYS.index(first.lower())
        b = DAYS.index((last or first).lower())
    except ValueError:
        raise ValueError(f"days are {', '.join(DAYS)}") from None
    return [(a + i) % 7 for i in range(((b - a) % 7) + 1)]


def _parse_window(text: str) -> tuple[list[int], time, time, bool]:
    """(weekdays, start, end, ends next day). ``24:00`` means the end of the day."""
    match = _WINDOW.match(text)
    if not match:
        raise ValueError(f"{text!r}: expected like 'mon-fri 18:00-07:00'")
    first, last, h1, m1, h2, m2 = match.groups()
    start = time(int(h1), int(m1))
    if (int(h2), int(m2)) == (24, 0):
        return _days(first, last), start, time(0, 0), True
    end = time(int(h2), int(m2))
    return _days(first, last), start, end, end <= start


def _parse_dates(text: str) -> tuple[date, date]:
    first, _, last = text.partition("..")
    try:
        a = date.fromisoformat(first.strip())
        b = date.fromisoformat(last.strip()) if last else a
    except ValueError:
        raise ValueError(f"{text!r}: expected YYYY-MM-DD or YYYY-MM-DD..YYYY-MM-DD") from None
    if b < a:
        raise ValueError(f"{text!r}: the range ends before it starts")
    return a, b


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    weekly: list[str] = Field(default_factory=list, description="e.g. 'mon-fri 18:00-07:00'")
    except_: list[str] = Field(default_factory=list, alias="except", description="dates the windows skip")
    also: list[str] = Field(default_factory=list, description="dates that are active all day")
    timezone: str = "UTC"

    @field_validator("weekly")
    @classmethod
    def _windows(cls, windows: list[str]) -> list[str]:
        for window in windows:
            _parse_window(window)
        return windows

    @field_validator("except_", "also")
    @classmethod
    def _dates(cls, values: list[str]) -> list[str]:
        for value in values:
            _parse_dates(value)
        return values

    @field_validator("timezone")
    @classmethod
    def _zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r} (use an IANA name like 'America/Chicago')") from None
        return name

    def _in(self, day: date, ranges: list[str]) -> bool:
        return any(a <= day <= b for a, b in map(_parse_dates, ranges))

    def active(self, at: datetime) -> bool:
        """Whether ``at`` (timezone-aware) falls in the schedule."""
        local = at.astimezone(ZoneInfo(self.timezone))
        today, now = local.date(), local.time()
        if self._in(today, self.also):
            return True
        for text in self.weekly:
            days, start, end, overnight = _parse_window(text)
            # Today's window, unless today is an exception.
            if local.weekday() in days and not self._in(today, self.except_):
                if (overnight and now >= start) or (not overnight and start <= now < end):
                    return True
            # Yesterday's overnight window running into this morning.
            yesterday = today - timedelta(days=1)
            if overnight and yesterday.weekday() in days and not self._in(yesterday, self.except_) and now < end:
                return True
        return False
