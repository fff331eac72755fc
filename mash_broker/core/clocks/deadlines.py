"""When a declared clock falls due: elapsed hours, or working days on a calendar in local time.

Pure: no I/O, no clock reads.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from mash_broker.core.clocks.calendar import bank_holidays

IsOpen = Callable[[date], bool]
MAX_SEARCH_DAYS = 400


def is_working_day(d: date) -> bool:
    """Monday to Friday and not an England bank holiday (substitute days included)."""
    return d.weekday() < 5 and d not in bank_holidays(d.year)


def _next_open(day: date, is_open: IsOpen) -> date:
    for offset in range(1, MAX_SEARCH_DAYS):
        candidate = day + timedelta(days=offset)
        if is_open(candidate):
            return candidate
    raise ValueError(f"no open day within {MAX_SEARCH_DAYS} days of {day.isoformat()}")


def due_after_hours(started_at: datetime, hours: float) -> datetime:
    """Elapsed time: 24 hours across a clock change is 24 real hours (23 or 25 on the wall clock)."""
    _require_aware(started_at)
    return started_at.astimezone(UTC) + timedelta(hours=hours)


def due_after_days(started_at: datetime, days: int, is_open: IsOpen, tz: zoneinfo.ZoneInfo) -> datetime:
    """The same local wall-clock time on the `days`-th open day after the start day.

    A clock started on a closed day (weekend, bank holiday) counts from 00:00 on the next open day,
    so one working day from a Saturday is 00:00 on Tuesday (the end of Monday). Wall-clock time is
    kept across BST/GMT changes: Friday 15:00 GMT plus one day is Monday 15:00 BST.
    """
    _require_aware(started_at)
    local = started_at.astimezone(tz)
    day, wall = local.date(), local.time().replace(tzinfo=None)
    if not is_open(day):
        day, wall = _next_open(day, is_open), time(0)
    for _ in range(days):
        day = _next_open(day, is_open)
    return datetime.combine(day, wall, tzinfo=tz).astimezone(UTC)


def _require_aware(value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"started_at must be timezone-aware, got naive {value.isoformat()}")
