"""Health deadlines and the s47 answered-on-time status. Pure: typed inputs and ``now``.

Choices (issue 5 item 3):

- Initial health assessment: due by the end of the 20th working day (Monday to Friday, not an England
  bank holiday) after the day the child became looked after (statutory guidance 2015), in local time.
  The request carries that date; a late request does not move the deadline.
- s47 report: due by the request's own ``answer_by``, agreed when it is sent; the GP sees it on the
  delivery (``notify_by``). The first report recorded for a request is its one answer: answered on
  time if received by ``answer_by``, else late; with no report, overdue after ``answer_by``, else
  awaiting.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from mash_broker.contracts import Envelope, HealthAssessmentRequest, S47InfoRequest
from mash_broker.core.clocks import SchoolCalendar

IHA_WORKING_DAYS = 20


# Working days are school days without local closures: Monday to Friday, not an England bank holiday.
_WORKING_DAYS = SchoolCalendar(tz=ZoneInfo("Europe/London"), closures=frozenset(), area="working_days")


def is_working_day(d: date) -> bool:
    return _WORKING_DAYS.is_school_day(d)


def iha_due(looked_after_since: date, tz: ZoneInfo, days: int = IHA_WORKING_DAYS) -> datetime:
    """The end (local midnight) of the ``days``-th working day after ``looked_after_since``."""
    d, counted = looked_after_since, 0
    while counted < days:
        d += timedelta(days=1)
        counted += is_working_day(d)
    return datetime.combine(d + timedelta(days=1), time(0), tz)


def due_by(message: Envelope, tz: ZoneInfo) -> datetime | None:
    """When the recipient must have acted on this health message; None for kinds without a deadline."""
    payload = message.payload
    if isinstance(payload, HealthAssessmentRequest):
        return iha_due(payload.looked_after_since, tz)
    if isinstance(payload, S47InfoRequest):
        return payload.answer_by
    return None


class AnswerStatus(StrEnum):
    """Was a s47 information request answered on time: one recorded answer."""

    ANSWERED_ON_TIME = "answered_on_time"
    ANSWERED_LATE = "answered_late"
    OVERDUE = "overdue"
    AWAITING = "awaiting"


def answer_status(answer_by: datetime, answered_at: datetime | None, now: datetime) -> AnswerStatus:
    """The status of one request, from its due time and its first answer (if any) as of ``now``."""
    if answered_at is not None:
        return AnswerStatus.ANSWERED_ON_TIME if answered_at <= answer_by else AnswerStatus.ANSWERED_LATE
    return AnswerStatus.OVERDUE if now > answer_by else AnswerStatus.AWAITING
