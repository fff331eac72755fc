"""Declared clocks' deadlines: elapsed hours and working days, across weekends, England bank holidays,
local school closures and the BST/GMT changes (2026-10-25 and 2027-03-28)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.deadlines import due_after_days, due_after_hours, is_working_day

LONDON = ZoneInfo("Europe/London")
EXAMPLE_CALENDAR = Path(__file__).resolve().parents[2] / "mash_broker" / "defaults" / "school-calendar.toml"


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LONDON)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("started", "days", "due", "why"),
    [
        (local(2026, 11, 17, 9, 30), 1, local(2026, 11, 18, 9, 30), "Tuesday to Wednesday"),
        (local(2026, 11, 20, 15, 0), 1, local(2026, 11, 23, 15, 0), "Friday over the weekend to Monday"),
        (local(2026, 12, 24, 11, 0), 1, local(2026, 12, 29, 11, 0), "Christmas Day and Boxing Day substitute"),
        (
            local(2026, 12, 26, 10, 0),
            1,
            local(2026, 12, 30, 0, 0),
            "started on a closed day: counts from 00:00 on the next working day (29th)",
        ),
        (
            local(2027, 3, 25, 15, 0),
            1,
            local(2027, 3, 30, 15, 0),
            "Good Friday, the BST change and Easter Monday: same wall-clock time",
        ),
        (local(2026, 10, 23, 15, 0), 1, local(2026, 10, 26, 15, 0), "over the autumn change to GMT"),
        (local(2026, 11, 2, 9, 0), 15, local(2026, 11, 23, 9, 0), "15 working days: three weeks"),
    ],
)
def test_working_days(started: datetime, days: int, due: datetime, why: str) -> None:
    assert due_after_days(started, days, is_working_day, LONDON) == due.astimezone(UTC), why


def test_bst_change_keeps_wall_clock_not_elapsed_time() -> None:
    due = due_after_days(local(2027, 3, 25, 15, 0), 1, is_working_day, LONDON)
    assert due == datetime(2027, 3, 30, 14, 0, tzinfo=UTC)  # 15:00 BST
    due = due_after_days(local(2026, 10, 23, 15, 0), 1, is_working_day, LONDON)
    assert due == datetime(2026, 10, 26, 15, 0, tzinfo=UTC)  # 15:00 GMT


@pytest.mark.parametrize(
    ("started", "due_local"),
    [
        (datetime(2027, 3, 27, 12, 0, tzinfo=UTC), local(2027, 3, 28, 13, 0)),  # 23 wall-clock hours
        (datetime(2026, 10, 24, 11, 0, tzinfo=UTC), local(2026, 10, 25, 11, 0)),  # 25 wall-clock hours
    ],
)
def test_hours_are_elapsed_time_across_clock_changes(started: datetime, due_local: datetime) -> None:
    due = due_after_hours(started, 24)
    assert due - started == timedelta(hours=24)
    assert due == due_local.astimezone(UTC)


def test_school_days_skip_local_closures() -> None:
    calendar = load_calendar(EXAMPLE_CALENDAR)
    # Friday before the example area's autumn half term (26-30 October 2026).
    due = due_after_days(local(2026, 10, 23, 10, 0), 1, calendar.is_school_day, LONDON)
    assert due == local(2026, 11, 2, 10, 0).astimezone(UTC)


def test_naive_start_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        due_after_days(datetime(2026, 11, 17, 9, 0), 1, is_working_day, LONDON)  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        due_after_hours(datetime(2026, 11, 17, 9, 0), 1)  # noqa: DTZ001


@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1),  # noqa: DTZ001  # hypothesis takes naive bounds
        max_value=datetime(2028, 12, 1),  # noqa: DTZ001
        timezones=st.just(LONDON),
    ),
    days=st.integers(min_value=1, max_value=60),
)
def test_due_is_the_nth_working_day_after_the_start(start: datetime, days: int) -> None:
    due = due_after_days(start, days, is_working_day, LONDON).astimezone(LONDON)
    first = start.date()
    between = [first + timedelta(n) for n in range(1, (due.date() - first).days + 1)]
    open_days = [d for d in between if is_working_day(d)]
    assert is_working_day(due.date())
    if is_working_day(first):
        assert len(open_days) == days
        assert due.time() == start.astimezone(LONDON).time()  # the clocks change on Sundays only
    else:
        assert len(open_days) == days + 1
        assert (due.hour, due.minute) == (0, 0)
