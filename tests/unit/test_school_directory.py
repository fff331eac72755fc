"""The school directory mapping: schools, their Key Adults, every column rule, the demo fixture."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mash_broker.agencies.education.directory import (
    DIRECTORY_COLUMNS,
    DirectoryResult,
    KeyAdult,
    School,
    parse_directory,
)
from mash_broker.contracts import InputFileError

ROOT = Path(__file__).resolve().parents[2]

GOOD: dict[str, str] = {
    "urn": "900001",
    "name": "Example Primary School",
    "key_adult_name": "Zebedee Quillfeather",
    "key_adult_email": "zebedee.quillfeather@example.org",
    "la_code": "999",
}
PERSONAL = ("Zebedee", "Quillfeather", "zebedee.quillfeather")


def row(**overrides: str) -> dict[str, str]:
    return {**GOOD, **overrides}


def csv_bytes(*rows: dict[str, str], header: tuple[str, ...] = DIRECTORY_COLUMNS) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for r in rows:
        writer.writerow([r[c] for c in header])
    return out.getvalue().encode("utf-8")


def parse(data: bytes) -> DirectoryResult:
    return parse_directory(data, source="schools.csv")


def where(result: DirectoryResult) -> list[tuple[int, str]]:
    return [(p.line, p.field) for p in result.problems]


def file_error(data: bytes) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        parse(data)
    assert info.value.record == "schools.csv"
    assert info.value.code == "file_unusable"
    return info.value


def test_rows_of_one_school_collect_its_key_adults_in_order() -> None:
    second = row(key_adult_name=" Sam Deputy ", key_adult_email=" Sam.Deputy@Example.ORG ")
    other = row(urn="900002", name="Sample Academy", key_adult_email="jo@example.org", la_code="998")
    result = parse(csv_bytes(row(), second, other))
    assert result.problems == []
    assert result.schools == {
        "900001": School(
            urn="900001",
            name="Example Primary School",
            la_code="999",
            key_adults=(
                KeyAdult("Zebedee Quillfeather", "zebedee.quillfeather@example.org"),
                KeyAdult("Sam Deputy", "sam.deputy@example.org"),
            ),
        ),
        "900002": School(
            urn="900002",
            name="Sample Academy",
            la_code="998",
            key_adults=(KeyAdult("Zebedee Quillfeather", "jo@example.org"),),
        ),
    }


def test_schools_are_immutable() -> None:
    school = parse(csv_bytes(row())).schools["900001"]
    with pytest.raises(AttributeError):
        school.name = "Other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("urn", "", "six digits"),
        ("urn", "90001", "six digits"),
        ("urn", "9000011", "six digits"),
        ("urn", "URN001", "six digits"),
        ("name", "", "required"),
        ("name", "S" * 121, "longer than 120"),
        ("name", "School\nName", "control characters"),
        ("key_adult_name", "  ", "required"),
        ("key_adult_name", "K" * 101, "longer than 100"),
        ("key_adult_name", "Key\x00Adult", "control characters"),
        ("key_adult_email", "", "plausible email"),
        ("key_adult_email", "no-at-sign.example.org", "plausible email"),
        ("key_adult_email", "two@@example.org", "plausible email"),
        ("key_adult_email", "nodot@localhost", "plausible email"),
        ("key_adult_email", "has space@example.org", "plausible email"),
        ("key_adult_email", "a@" + "d" * 250 + ".org", "plausible email"),
        ("la_code", "99", "three digits"),
        ("la_code", "9999", "three digits"),
        ("la_code", "abc", "three digits"),
    ],
)
def test_invalid_field_is_named_on_its_line(column: str, value: str, reason: str) -> None:
    before = row(key_adult_email="first@example.org")
    after = row(key_adult_email="third@example.org")
    result = parse(csv_bytes(before, row(**{column: value}), after))
    [problem] = result.problems
    assert (problem.line, problem.field) == (3, column)
    assert reason in problem.reason
    adults = result.schools["900001"].key_adults
    assert [a.email for a in adults] == ["first@example.org", "third@example.org"]


def test_mixed_fixture() -> None:
    result = parse((ROOT / "tests/fixtures/schools_mixed.csv").read_bytes())
    assert where(result) == [
        (4, "name"),
        (6, "la_code"),
        (7, "key_adult_email"),
        (8, "urn"),
        (8, "key_adult_email"),
        (8, "la_code"),
    ]
    assert [str(p) for p in result.problems[:3]] == [
        "line 4, field name: differs from line 2 for the same urn",
        "line 6, field la_code: differs from line 5 for the same urn",
        "line 7, field key_adult_email: repeats line 2 for the same school",
    ]
    assert sorted(result.schools) == ["900001", "900002", "900004"]
    assert [a.email for a in result.schools["900001"].key_adults] == [
        "alex.keyadult@example.org",
        "sam.deputy@example.org",
    ]
    assert result.schools["900002"].la_code == "998"
    assert len(result.schools["900002"].key_adults) == 1


def test_a_school_whose_first_row_is_bad_is_defined_by_its_next_good_row() -> None:
    result = parse(csv_bytes(row(la_code="9"), row(name="Renamed School", key_adult_email="b@example.org")))
    assert where(result) == [(2, "la_code")]
    assert result.schools["900001"].name == "Renamed School"


def test_same_email_at_two_schools_is_fine() -> None:
    result = parse(csv_bytes(row(), row(urn="900002", name="Sample Academy")))
    assert result.problems == []
    assert len(result.schools) == 2


def test_wrong_cell_count_is_a_row_problem() -> None:
    data = csv_bytes(row()) + b"900002,Sample Academy\n"
    result = parse(data)
    assert [str(p) for p in result.problems] == ["line 3, field row: has 2 cells, expected 5"]
    assert list(result.schools) == ["900001"]


def test_bom_is_accepted() -> None:
    assert list(parse(b"\xef\xbb\xbf" + csv_bytes(row())).schools) == ["900001"]


def test_empty_file_is_unusable() -> None:
    assert "empty" in str(file_error(b""))


def test_undecodable_bytes_are_unusable() -> None:
    data = csv_bytes(row()).replace(b"Zebedee", b"Z\xc3\x28bedee")
    message = str(file_error(data))
    assert "not UTF-8" in message
    assert "Zeb" not in message


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (("urn", "name", "key_adult_name", "key_adult_email"), "missing columns: la_code"),
        (("urn", "name", "key_adult_name", "email", "la_code"), "missing columns: key_adult_email"),
        (("name", "urn", "key_adult_name", "key_adult_email", "la_code"), "columns out of order"),
    ],
)
def test_wrong_header_is_unusable(header: tuple[str, ...], expected: str) -> None:
    assert expected in str(file_error(csv_bytes(header=header)))


def test_no_personal_value_in_problems_or_errors() -> None:
    bad_rows = [
        row(urn="1"),
        row(key_adult_name="Zebedee\x07Quillfeather"),
        row(key_adult_email="zebedee.quillfeather"),
        row(la_code="x"),
        row(name="Other Name"),
        row(),
        row(),
    ]
    text = "\n".join(str(p) for p in parse(csv_bytes(*bad_rows)).problems)
    headerless = csv_bytes(row()).split(b"\n", 1)[1]
    text += str(file_error(headerless))
    for value in PERSONAL:
        assert value not in text


def test_demo_schools() -> None:
    result = parse((ROOT / "mash_broker/demo/data/schools.csv").read_bytes())
    assert result.problems == []
    assert sorted(result.schools) == ["900001", "900002", "900003", "900004"]
    for school in result.schools.values():
        assert school.la_code == "999"
        assert len(school.key_adults) == 2
        assert all(a.email.endswith("@example.org") for a in school.key_adults)
    assert "900099" not in result.schools  # the demo export's unknown school


@settings(max_examples=300, deadline=None)
@given(
    column=st.sampled_from(["name", "key_adult_name", "key_adult_email"]),
    text=st.text(max_size=300),
)
def test_any_text_in_a_text_cell_is_accepted_or_reported(column: str, text: str) -> None:
    result = parse(csv_bytes(row(**{column: text})))
    assert len(result.schools) + len({p.line for p in result.problems}) == 1
    assert all((p.line, p.field) == (2, column) for p in result.problems)
