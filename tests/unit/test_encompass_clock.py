"""The Operation Encompass clock: deadlines across weekends, holidays, closures and DST."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.core.clocks import (
    DeliveryStatus,
    ReadStatus,
    SchoolCalendar,
    delivery_status,
    encompass_deadline,
    is_overdue,
    load_calendar,
    read_status,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
KIRITIMATI = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its date runs ahead of London's
EXAMPLE_FILE = Path(__file__).resolve().parents[2] / "mash_broker" / "defaults" / "school-calendar.toml"
DEFAULT = load_calendar(None)
EXAMPLE = load_calendar(EXAMPLE_FILE)
BST = timedelta(hours=1)
GMT = timedelta(0)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, *, fold: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=LONDON, fold=fold)


def ten_am(y: int, mo: int, d: int) -> datetime:
    return local(y, mo, d, 10)


def assert_deadline(occurred: datetime, cal: SchoolCalendar, expected: datetime, **kw: time) -> datetime:
    got = encompass_deadline(occurred, cal, **kw)
    assert got == expected, f"{occurred.isoformat()} -> {got.isoformat()}, wanted {expected.isoformat()}"
    assert got.tzinfo is cal.tz
    return got


# --- table tests: the default calendar (weekends and England bank holidays) ---


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        pytest.param(local(2027, 6, 15, 7, 0), ten_am(2027, 6, 15), id="before-school-start-same-day"),
        pytest.param(local(2027, 6, 15, 8, 29, 59), ten_am(2027, 6, 15), id="one-second-before-start"),
        pytest.param(local(2027, 6, 15, 8, 30), ten_am(2027, 6, 16), id="exactly-at-start-next-day"),
        pytest.param(local(2027, 6, 15, 8, 45), ten_am(2027, 6, 16), id="after-start-next-day"),
        pytest.param(local(2027, 6, 15, 9, 30), ten_am(2027, 6, 16), id="between-start-and-notify-by"),
        pytest.param(local(2027, 6, 15, 22, 0), ten_am(2027, 6, 16), id="evening-next-day"),
        pytest.param(local(2027, 6, 16, 0, 5), ten_am(2027, 6, 16), id="just-after-midnight-same-day"),
        pytest.param(local(2027, 6, 18, 9, 0), ten_am(2027, 6, 21), id="friday-morning-to-monday"),
        pytest.param(local(2027, 6, 18, 21, 0), ten_am(2027, 6, 21), id="friday-night-to-monday"),
        pytest.param(local(2027, 6, 19, 14, 0), ten_am(2027, 6, 21), id="saturday-to-monday"),
        pytest.param(local(2027, 6, 20, 23, 59), ten_am(2027, 6, 21), id="sunday-late-to-monday"),
        pytest.param(local(2027, 4, 30, 20, 0), ten_am(2027, 5, 4), id="friday-before-may-bank-holiday"),
        pytest.param(local(2027, 5, 2, 12, 0), ten_am(2027, 5, 4), id="sunday-before-may-bank-holiday"),
        pytest.param(local(2027, 5, 3, 9, 0), ten_am(2027, 5, 4), id="on-may-bank-holiday"),
        pytest.param(local(2027, 3, 25, 18, 0), ten_am(2027, 3, 30), id="easter-2027-good-friday-to-tuesday"),
        pytest.param(local(2026, 12, 24, 18, 0), ten_am(2026, 12, 29), id="christmas-2026-boxing-substitute"),
        pytest.param(local(2027, 12, 24, 18, 0), ten_am(2027, 12, 29), id="christmas-2027-two-substitutes"),
        pytest.param(local(2026, 12, 31, 20, 0), ten_am(2027, 1, 4), id="new-year-2027-friday"),
        pytest.param(local(2027, 12, 31, 20, 0), ten_am(2028, 1, 4), id="new-year-2028-monday-substitute"),
    ],
)
def test_default_calendar_deadline(occurred: datetime, expected: datetime) -> None:
    assert_deadline(occurred, DEFAULT, expected)


# --- local closures from a calendar file ---


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        pytest.param(local(2026, 12, 18, 16, 0), ten_am(2027, 1, 4), id="christmas-holiday-2026"),
        pytest.param(local(2027, 12, 17, 16, 0), ten_am(2028, 1, 4), id="christmas-holiday-2027-then-bank-hol"),
        pytest.param(local(2027, 10, 22, 18, 0), ten_am(2027, 11, 1), id="autumn-half-term-2027"),
        pytest.param(local(2027, 7, 22, 19, 0), ten_am(2027, 9, 2), id="summer-holiday-then-inset-day"),
        pytest.param(local(2027, 8, 11, 3, 0), ten_am(2027, 9, 2), id="incident-in-summer-holiday"),
        pytest.param(local(2027, 6, 15, 22, 0), ten_am(2027, 6, 16), id="term-time-unchanged"),
    ],
)
def test_example_area_closures_push_to_first_day_back(occurred: datetime, expected: datetime) -> None:
    assert_deadline(occurred, EXAMPLE, expected)


def test_single_inset_day_from_calendar_file(tmp_path: Path) -> None:
    path = tmp_path / "cal.toml"
    path.write_text('area = "t"\n[[closure]]\nfrom = 2027-06-14\nreason = "INSET"\n')
    assert_deadline(local(2027, 6, 11, 20), load_calendar(path), ten_am(2027, 6, 15))


# --- daylight saving: the deadline is 10:00 local with the right UTC offset ---


@pytest.mark.parametrize(
    ("occurred", "expected_utc", "offset"),
    [
        pytest.param(
            local(2026, 3, 28, 23, 0),
            datetime(2026, 3, 30, 9, tzinfo=UTC),
            BST,
            id="spring-2026-saturday-night-gmt-to-bst-monday",
        ),
        pytest.param(
            local(2026, 3, 29, 1, 30),
            datetime(2026, 3, 30, 9, tzinfo=UTC),
            BST,
            id="spring-2026-nonexistent-0130",
        ),
        pytest.param(
            local(2027, 3, 28, 0, 30),
            datetime(2027, 3, 30, 9, tzinfo=UTC),
            BST,
            id="spring-2027-change-night-easter-monday-to-tuesday",
        ),
        pytest.param(
            local(2026, 10, 23, 20, 0),
            datetime(2026, 10, 26, 10, tzinfo=UTC),
            GMT,
            id="autumn-2026-friday-bst-to-monday-gmt",
        ),
        pytest.param(
            local(2026, 10, 25, 1, 30, fold=0),
            datetime(2026, 10, 26, 10, tzinfo=UTC),
            GMT,
            id="autumn-2026-ambiguous-0130-first-bst",
        ),
        pytest.param(
            local(2026, 10, 25, 1, 30, fold=1),
            datetime(2026, 10, 26, 10, tzinfo=UTC),
            GMT,
            id="autumn-2026-ambiguous-0130-second-gmt",
        ),
        pytest.param(
            local(2027, 10, 31, 1, 30, fold=0),
            datetime(2027, 11, 1, 10, tzinfo=UTC),
            GMT,
            id="autumn-2027-ambiguous-0130-first-bst",
        ),
        pytest.param(
            local(2027, 10, 31, 1, 30, fold=1),
            datetime(2027, 11, 1, 10, tzinfo=UTC),
            GMT,
            id="autumn-2027-ambiguous-0130-second-gmt",
        ),
    ],
)
def test_dst_changes(occurred: datetime, expected_utc: datetime, offset: timedelta) -> None:
    got = assert_deadline(occurred, DEFAULT, expected_utc)
    assert got.time() == time(10, 0)
    assert got.utcoffset() == offset


# --- occurred_at in other zones is judged by the calendar's local day ---


@pytest.mark.parametrize(
    ("occurred", "expected"),
    [
        pytest.param(datetime(2027, 6, 14, 23, 30, tzinfo=UTC), ten_am(2027, 6, 15), id="utc-late-is-next-local-day"),
        pytest.param(datetime(2027, 6, 15, 7, 15, tzinfo=UTC), ten_am(2027, 6, 15), id="utc-0715-is-0815-bst"),
        pytest.param(datetime(2027, 6, 15, 7, 45, tzinfo=UTC), ten_am(2027, 6, 16), id="utc-0745-is-0845-bst"),
        pytest.param(datetime(2027, 6, 14, 20, 0, tzinfo=NEW_YORK), ten_am(2027, 6, 15), id="new-york-evening"),
    ],
)
def test_other_time_zones(occurred: datetime, expected: datetime) -> None:
    assert_deadline(occurred, DEFAULT, expected)


# --- configuration ---


@pytest.mark.parametrize(
    ("occurred", "notify_by", "starts", "expected"),
    [
        pytest.param(local(2027, 6, 15, 6), time(7, 30), time(8, 50), local(2027, 6, 15, 7, 30), id="early-notify"),
        pytest.param(local(2027, 6, 15, 8, 49), time(9), time(8, 50), local(2027, 6, 15, 9), id="late-start-same"),
        pytest.param(local(2027, 6, 15, 8, 50), time(9), time(8, 50), local(2027, 6, 16, 9), id="late-start-next"),
        pytest.param(local(2027, 6, 15, 8, 59), time(9), time(9), local(2027, 6, 15, 9), id="equal-times-before"),
        pytest.param(local(2027, 6, 15, 9), time(9), time(9), local(2027, 6, 16, 9), id="equal-times-at"),
        pytest.param(
            local(2027, 6, 15, 7, 45),
            time(7, 30),
            time(8, 50),
            local(2027, 6, 15, 7, 30),
            id="notify-by-before-start-can-be-born-late",
        ),
    ],
)
def test_custom_notify_by_and_school_day_starts(
    occurred: datetime, notify_by: time, starts: time, expected: datetime
) -> None:
    assert_deadline(occurred, DEFAULT, expected, notify_by=notify_by, school_day_starts=starts)


def test_zone_far_ahead_is_judged_by_the_calendars_local_day() -> None:
    # Wednesday 00:30 in Kiritimati is Tuesday 11:30 in London, before a noon school start.
    occurred = datetime(2027, 6, 16, 0, 30, tzinfo=KIRITIMATI)
    noon = time(12, 0)
    assert_deadline(occurred, DEFAULT, local(2027, 6, 15, 12), notify_by=noon, school_day_starts=noon)


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        encompass_deadline(datetime(2027, 6, 15, 7, 0), DEFAULT)  # noqa: DTZ001 - naive on purpose


def test_no_school_day_within_bound_raises() -> None:
    start = date(2027, 1, 1)
    shut = SchoolCalendar(tz=LONDON, closures=frozenset(start + timedelta(n) for n in range(450)), area="shut")
    with pytest.raises(ValueError, match="no school day"):
        encompass_deadline(local(2027, 1, 1, 12), shut)


# --- delivery and read status ---

DEADLINE = ten_am(2027, 6, 15)
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(
    ("delivered", "expected"),
    [
        (None, DeliveryStatus.UNDELIVERED),
        (DEADLINE - timedelta(hours=12), DeliveryStatus.ON_TIME),
        (DEADLINE, DeliveryStatus.ON_TIME),
        (DEADLINE.astimezone(UTC), DeliveryStatus.ON_TIME),
        (DEADLINE + TICK, DeliveryStatus.LATE),
    ],
)
def test_delivery_status(delivered: datetime | None, expected: DeliveryStatus) -> None:
    assert delivery_status(DEADLINE, delivered) is expected


@pytest.mark.parametrize(
    ("read", "expected"),
    [
        (None, ReadStatus.NOT_YET),
        (DEADLINE - TICK, ReadStatus.ON_TIME),
        (DEADLINE, ReadStatus.ON_TIME),
        ((DEADLINE + TICK).astimezone(NEW_YORK), ReadStatus.LATE),
    ],
)
def test_read_status(read: datetime | None, expected: ReadStatus) -> None:
    assert read_status(DEADLINE, read) is expected


def test_status_values_are_stable_strings() -> None:
    assert [s.value for s in DeliveryStatus] == ["on_time", "late", "undelivered"]
    assert [s.value for s in ReadStatus] == ["on_time", "late", "not_yet"]


@pytest.mark.parametrize(
    ("done", "now", "expected"),
    [
        (None, DEADLINE - TICK, False),
        (None, DEADLINE, False),
        (None, DEADLINE + TICK, True),
        (DEADLINE + timedelta(hours=1), DEADLINE + timedelta(hours=2), False),
        (DEADLINE - timedelta(hours=1), DEADLINE + timedelta(hours=2), False),
    ],
)
def test_is_overdue(done: datetime | None, now: datetime, expected: bool) -> None:
    assert is_overdue(DEADLINE, done, now) is expected


def test_status_functions_reject_naive_timestamps() -> None:
    naive = datetime(2027, 6, 15, 9)  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError, match="timezone-aware"):
        delivery_status(DEADLINE, naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        is_overdue(DEADLINE, None, naive)


# --- properties ---

occurred_ats = st.datetimes(
    min_value=datetime(2026, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
    max_value=datetime(2028, 12, 31, 23, 59, 59),  # noqa: DTZ001
    timezones=st.sampled_from([LONDON, UTC, NEW_YORK, ZoneInfo("Asia/Kolkata"), KIRITIMATI]),
)
calendars = st.sampled_from([DEFAULT, EXAMPLE])
times = st.times(min_value=time(5, 0), max_value=time(23, 0))


def check_deadline(occurred: datetime, cal: SchoolCalendar, notify_by: time, starts: time) -> None:
    deadline = encompass_deadline(occurred, cal, notify_by=notify_by, school_day_starts=starts)
    tz = cal.tz
    assert deadline > occurred
    assert deadline.tzinfo is tz
    assert cal.is_school_day(deadline.date())
    assert deadline.astimezone(UTC).astimezone(tz).time() == notify_by  # a real local time, not a gap
    deadline_day_start = datetime.combine(deadline.date(), starts, tzinfo=tz)
    assert deadline_day_start.astimezone(UTC) > occurred.astimezone(UTC)
    day = occurred.astimezone(tz).date()
    while day < deadline.date():
        if cal.is_school_day(day):
            start = datetime.combine(day, starts, tzinfo=tz).astimezone(UTC)
            assert start <= occurred.astimezone(UTC), f"missed school day {day}"
        day += timedelta(days=1)


@settings(deadline=None, max_examples=300)
@given(occurred=occurred_ats, cal=calendars)
def test_property_default_times(occurred: datetime, cal: SchoolCalendar) -> None:
    check_deadline(occurred, cal, time(10, 0), time(8, 30))


@settings(deadline=None, max_examples=300)
@given(occurred=occurred_ats, cal=calendars, pair=st.tuples(times, times).map(sorted))
def test_property_custom_times_notify_by_not_before_start(
    occurred: datetime, cal: SchoolCalendar, pair: list[time]
) -> None:
    starts, notify_by = pair
    check_deadline(occurred, cal, notify_by, starts)


@settings(deadline=None)
@given(occurred=occurred_ats, cal=calendars)
def test_property_deterministic_and_depends_only_on_the_instant(occurred: datetime, cal: SchoolCalendar) -> None:
    first = encompass_deadline(occurred, cal)
    again = encompass_deadline(occurred, cal)
    in_utc = encompass_deadline(occurred.astimezone(UTC), cal)
    assert first == again == in_utc
    assert first.isoformat() == again.isoformat() == in_utc.isoformat()
