"""The school calendar: bank holidays, local closures, and rejecting bad calendar files."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mash_broker.contracts.errors import PolicyError
from mash_broker.core.clocks import SchoolCalendar, load_calendar

EXAMPLE = Path(__file__).resolve().parents[2] / "mash_broker" / "defaults" / "school-calendar.toml"
LONDON = ZoneInfo("Europe/London")


@pytest.fixture(scope="module")
def default() -> SchoolCalendar:
    return load_calendar(None)


@pytest.mark.parametrize(
    ("day", "expected", "why"),
    [
        (date(2027, 6, 14), True, "ordinary Monday"),
        (date(2027, 6, 18), True, "ordinary Friday"),
        (date(2027, 6, 19), False, "Saturday"),
        (date(2027, 6, 20), False, "Sunday"),
        (date(2027, 5, 3), False, "early May bank holiday"),
        (date(2027, 3, 26), False, "Good Friday"),
        (date(2027, 3, 29), False, "Easter Monday"),
        (date(2026, 12, 28), False, "Boxing Day substitute 2026"),
        (date(2027, 12, 27), False, "Christmas Day substitute 2027"),
        (date(2027, 12, 28), False, "Boxing Day substitute 2027"),
        (date(2028, 1, 3), False, "New Year's Day substitute 2028"),
        (date(2027, 12, 29), True, "first weekday after the 2027 substitutes"),
    ],
)
def test_default_calendar_knows_weekends_and_england_bank_holidays(
    default: SchoolCalendar, day: date, expected: bool, why: str
) -> None:
    assert default.is_school_day(day) is expected, why


def test_default_calendar_has_no_closures_and_london_time(default: SchoolCalendar) -> None:
    assert default.closures == frozenset()
    assert default.tz == LONDON


def test_is_school_day_refuses_a_datetime(default: SchoolCalendar) -> None:
    with pytest.raises(TypeError):
        default.is_school_day(datetime(2027, 6, 14, 9, tzinfo=LONDON))


def test_example_calendar_loads_with_its_closures() -> None:
    cal = load_calendar(EXAMPLE)
    assert cal.area == "example-area"
    assert cal.tz == LONDON
    for closed in (
        date(2026, 9, 1),
        date(2026, 10, 26),
        date(2026, 12, 21),
        date(2027, 1, 1),
        date(2027, 2, 19),
        date(2027, 4, 9),
        date(2027, 6, 4),
        date(2027, 8, 31),
        date(2027, 9, 1),
        date(2028, 4, 21),
        date(2028, 8, 31),
    ):
        assert not cal.is_school_day(closed), closed
    for open_ in (
        date(2026, 9, 2),
        date(2026, 11, 2),
        date(2027, 1, 4),
        date(2027, 4, 12),
        date(2027, 9, 2),
        date(2028, 1, 4),
        date(2028, 9, 1),
    ):
        assert cal.is_school_day(open_), open_


def test_single_day_closure_and_inclusive_range(tmp_path: Path) -> None:
    path = tmp_path / "cal.toml"
    path.write_text(
        'area = "x"\n'
        '[[closure]]\nfrom = 2027-06-14\nreason = "INSET"\n'
        "[[closure]]\nfrom = 2027-06-21\nto = 2027-06-23\n"
    )
    cal = load_calendar(path)
    assert cal.closures == {date(2027, 6, 14), date(2027, 6, 21), date(2027, 6, 22), date(2027, 6, 23)}


def test_tz_in_file_wins_over_the_default(tmp_path: Path) -> None:
    path = tmp_path / "cal.toml"
    path.write_text('area = "x"\ntz = "Europe/Dublin"\n')
    assert load_calendar(path).tz == ZoneInfo("Europe/Dublin")
    assert load_calendar(None, tz="UTC").tz == ZoneInfo("UTC")


CLOSURES = "[[closure]]\nfrom = 2027-01-04\n[[closure]]\nfrom = 2027-02-15\nto = 2027-02-19\n"


@pytest.mark.parametrize(
    ("text", "field", "reason"),
    [
        (
            'area = "x"\n' + CLOSURES + "[[closure]]\nfrom = 2027-05-10\nto = 2027-05-07\n",
            "closure[2].to",
            "before 'from'",
        ),
        (
            'area = "x"\n' + CLOSURES + "[[closure]]\nfrom = 2027-01-01\nto = 2028-01-02\n",
            "closure[2].to",
            "longer than 366",
        ),
        ('area = "x"\n[[closure]]\nfrom = 2027-01-01\nuntil = 2027-01-02\n', "closure[0].until", "Extra"),
        ('area = "x"\n[[closure]]\nto = 2027-01-02\n', "closure[0].from", "required"),
        ('area = "x"\n[[closure]]\nfrom = "next tuesday"\n', "closure[0].from", "date"),
        ('area = "x"\nterm = 1\n', "term", "Extra"),
        ("[[closure]]\nfrom = 2027-01-01\n", "area", "required"),
        ('area = ""\n', "area", "at least 1"),
        ('area = "x"\ntz = "Europe/Atlantis"\n', "tz", "unknown time zone"),
    ],
    ids=[
        "to-before-from",
        "range-too-long",
        "unknown-closure-key",
        "missing-from",
        "from-not-a-date",
        "unknown-top-level-key",
        "missing-area",
        "empty-area",
        "unknown-time-zone",
    ],
)
def test_invalid_calendar_file_names_the_field(tmp_path: Path, text: str, field: str, reason: str) -> None:
    path = tmp_path / "cal.toml"
    path.write_text(text)
    with pytest.raises(PolicyError) as info:
        load_calendar(path)
    err = info.value
    assert err.code == "policy_invalid"
    assert err.record == str(path)
    assert err.field == field
    assert reason in err.message
    assert field in str(err)


def test_366_day_range_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "cal.toml"
    path.write_text('area = "x"\n[[closure]]\nfrom = 2027-01-01\nto = 2028-01-01\n')
    assert len(load_calendar(path).closures) == 366


def test_bad_toml_is_a_policy_error(tmp_path: Path) -> None:
    path = tmp_path / "cal.toml"
    path.write_text('area = "x\n')
    with pytest.raises(PolicyError, match="not valid TOML") as info:
        load_calendar(path)
    assert info.value.record == str(path)


def test_missing_file_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_calendar(tmp_path / "absent.toml")


def test_unknown_default_time_zone_is_a_policy_error() -> None:
    with pytest.raises(PolicyError) as info:
        load_calendar(None, tz="Mars/Olympus")
    assert info.value.field == "tz"
