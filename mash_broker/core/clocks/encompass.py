"""The Operation Encompass clock: notify the school before the next school day starts.

Pure: no I/O, no clock reads; `now` is always passed in.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from enum import StrEnum

from mash_broker.core.clocks.calendar import SchoolCalendar

DEFAULT_NOTIFY_BY = time(10, 0)
DEFAULT_SCHOOL_DAY_STARTS = time(8, 30)
MAX_SEARCH_DAYS = 400


class DeliveryStatus(StrEnum):
    """Whether the school's system received the notification by the deadline."""

    ON_TIME = "on_time"
    LATE = "late"
    UNDELIVERED = "undelivered"


class ReadStatus(StrEnum):
    """Whether a Key Adult read the notification by the deadline."""

    ON_TIME = "on_time"
    LATE = "late"
    NOT_YET = "not_yet"


def _require_aware(name: str, value: datetime) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value.isoformat()}")


def encompass_deadline(
    occurred_at: datetime,
    calendar: SchoolCalendar,
    *,
    notify_by: time = DEFAULT_NOTIFY_BY,
    school_day_starts: time = DEFAULT_SCHOOL_DAY_STARTS,
) -> datetime:
    """`notify_by` local time on the first school day that starts strictly after the incident.

    If `notify_by` is earlier than `school_day_starts`, an incident between the two
    gets a deadline that has already passed: the school day starts before it is told.
    """
    _require_aware("occurred_at", occurred_at)
    tz = calendar.tz
    occurred_utc = occurred_at.astimezone(UTC)
    first_day = occurred_at.astimezone(tz).date()
    for offset in range(MAX_SEARCH_DAYS):
        day = first_day + timedelta(days=offset)
        if not calendar.is_school_day(day):
            continue
        if datetime.combine(day, school_day_starts, tzinfo=tz).astimezone(UTC) > occurred_utc:
            return datetime.combine(day, notify_by, tzinfo=tz)
    raise ValueError(f"no school day in {calendar.area!r} within {MAX_SEARCH_DAYS} days of {occurred_at.isoformat()}")


def _on_time(deadline: datetime, at: datetime) -> bool:
    _require_aware("deadline", deadline)
    _require_aware("timestamp", at)
    return at.astimezone(UTC) <= deadline.astimezone(UTC)


def delivery_status(deadline: datetime, delivered_at: datetime | None) -> DeliveryStatus:
    """On time if delivered at or before the deadline."""
    if delivered_at is None:
        return DeliveryStatus.UNDELIVERED
    return DeliveryStatus.ON_TIME if _on_time(deadline, delivered_at) else DeliveryStatus.LATE


def read_status(deadline: datetime, read_at: datetime | None) -> ReadStatus:
    """On time if a person marked it read at or before the deadline."""
    if read_at is None:
        return ReadStatus.NOT_YET
    return ReadStatus.ON_TIME if _on_time(deadline, read_at) else ReadStatus.LATE


def is_overdue(deadline: datetime, done_at: datetime | None, now: datetime) -> bool:
    """Not done yet and `now` is past the deadline."""
    return done_at is None and not _on_time(deadline, now)
