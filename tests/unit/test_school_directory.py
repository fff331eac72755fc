"""The school directory mapping: schools, their Key Adults, every column rule, the demo fixture."""

from __future__ import annotations

import csv
import io
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from mash_broker.agencies.education.directory import (
    DIRECTORY_COLUMNS,
    DirectoryResult,
    KeyAdult,
    School,
    parse_directory,
    plan_directory,
    shared_emails,
)
from mash_broker.app.cli import app
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


# -- `mash school load`: all or nothing, what changes, what is kept -------------------------------------------

DEMO_SCHOOLS = ROOT / "mash_broker/demo/data/schools.csv"
runner = CliRunner()


def demo_rows() -> list[dict[str, str]]:
    with DEMO_SCHOOLS.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write(path: Path, rows: list[dict[str, str]]) -> Path:
    path.write_bytes(csv_bytes(*rows))
    return path


def directory_in(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The ledger's directory: each school's Key Adults as (email, name), straight from its tables."""
    with closing(sqlite3.connect(data_dir / "ledger.sqlite3")) as db:
        schools = {urn: [] for (urn,) in db.execute("SELECT urn FROM schools")}
        for urn, email, name in db.execute("SELECT urn, email, name FROM key_adults ORDER BY urn, email"):
            schools.setdefault(urn, []).append((email, name))
    return schools


def events_in(data_dir: Path) -> list[tuple[str, dict[str, object]]]:
    with closing(sqlite3.connect(data_dir / "ledger.sqlite3")) as db:
        rows = db.execute("SELECT event_type, detail FROM events ORDER BY seq").fetchall()
    return [(kind, json.loads(detail) if isinstance(detail, str) else detail) for kind, detail in rows]


def load(*args: str) -> Result:
    return runner.invoke(app, ["school", "load", *args])


@pytest.fixture
def loaded(data_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """The demo directory, loaded once: the directory a refresh changes."""
    result = load(str(DEMO_SCHOOLS))
    assert result.exit_code == 0, result.output
    return directory_in(data_dir)


def test_one_typo_row_changes_nothing_and_names_its_line_and_field(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = demo_rows()
    rows[2] = {**rows[2], "key_adult_email": "jo.testperson@example"}  # line 4: Jo Testperson's email, typo'd
    rows.append(row(urn="900005", name="Example New School", key_adult_email="new@example.org"))

    result = load(str(write(data_dir / "refresh.csv", rows)))

    assert result.exit_code == 1, result.output
    assert "line 4" in result.stdout
    assert "key_adult_email" in result.stdout
    assert "jo.testperson@example" not in result.output, "the value is never shown"
    assert "nothing was changed" in result.stdout
    assert directory_in(data_dir) == loaded, "Jo Testperson is still 900002's Key Adult; 900005 was not added"
    assert [kind for kind, _ in events_in(data_dir)] == ["directory.loaded"], "only the first load is recorded"


def test_partial_loads_the_valid_rows_and_reports_the_rest(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = demo_rows()
    rows[2] = {**rows[2], "la_code": "99"}
    rows.append(row(urn="900005", name="Example New School", key_adult_email="new@example.org"))

    result = load(str(write(data_dir / "refresh.csv", rows)), "--partial", "--remove-missing")

    assert result.exit_code == 1, result.output
    assert "line 4" in result.stdout
    assert "la_code" in result.stdout
    after = directory_in(data_dir)
    assert after["900005"] == [("new@example.org", "Zebedee Quillfeather")]
    assert after["900002"] == loaded["900002"], "a refused row's Key Adult is kept, even with --remove-missing"
    ((_, detail),) = [e for e in events_in(data_dir)[1:]]
    assert detail["rows_refused"] == 1
    assert detail["schools_added"] == 1


def test_a_school_not_in_the_file_is_kept_unless_told_to_remove_it(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = [r for r in demo_rows() if r["urn"] != "900003" and r["key_adult_name"] != "Sam Deputy"]
    refresh = write(data_dir / "refresh.csv", rows)

    kept = load(str(refresh))

    assert kept.exit_code == 0, kept.output
    assert directory_in(data_dir) == loaded
    assert "= school 900003 Test Hill Primary School: not in the file, kept" in kept.stdout
    assert (
        "= Key Adult at 900001 Example Primary School: Sam Deputy <sam.deputy@example.org>:"
        " not in the file, kept" in kept.stdout
    )
    assert "use --remove-missing" in kept.stdout

    removed = load(str(refresh), "--remove-missing")

    assert removed.exit_code == 0, removed.output
    after = directory_in(data_dir)
    assert "900003" not in after
    assert after["900001"] == [("alex.keyadult@example.org", "Alex Keyadult")]
    assert "- school 900003 Test Hill Primary School" in removed.stdout
    assert "- Key Adult at 900001 Example Primary School: Sam Deputy <sam.deputy@example.org>" in removed.stdout


def test_dry_run_shows_the_changes_and_writes_nothing(data_dir: Path, loaded: dict[str, list[tuple[str, str]]]) -> None:
    rows = [r for r in demo_rows() if r["urn"] != "900004"]
    rows.append(row(urn="900005", name="Example New School", key_adult_email="new@example.org"))
    before = events_in(data_dir)

    result = load(str(write(data_dir / "refresh.csv", rows)), "--dry-run", "--remove-missing")

    assert result.exit_code == 0, result.output
    assert "+ school 900005 Example New School (la 999)" in result.stdout
    assert "- school 900004 Fictional High School" in result.stdout
    assert "dry run: nothing was written" in result.stdout
    assert directory_in(data_dir) == loaded
    assert events_in(data_dir) == before


def test_the_changes_are_printed_and_recorded_as_counts(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = demo_rows()
    rows[0] = {**rows[0], "key_adult_name": "Alex Keyadult-Renamed"}  # same email: a changed Key Adult
    rows[1] = {**rows[1], "key_adult_name": "Kim New", "key_adult_email": "kim.new@example.org"}  # Sam replaced
    rows[2:4] = [{**r, "name": "Sample Academy Trust"} for r in rows[2:4]]  # a renamed school

    result = load(str(write(data_dir / "refresh.csv", rows)), "--remove-missing")

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "schools: 0 added, 1 changed, 0 removed, 0 not in the file (kept)" in lines
    assert "Key Adults: 1 added, 1 changed, 1 removed, 0 not in the file (kept)" in lines
    assert "~ school 900002 Sample Academy Trust: name was Sample Academy" in lines
    assert "+ Key Adult at 900001 Example Primary School: Kim New <kim.new@example.org>" in lines
    assert (
        "~ Key Adult at 900001 Example Primary School: Alex Keyadult-Renamed <alex.keyadult@example.org>"
        " (was Alex Keyadult)" in lines
    )
    assert "- Key Adult at 900001 Example Primary School: Sam Deputy <sam.deputy@example.org>" in lines
    ((kind, detail),) = events_in(data_dir)[1:]
    assert kind == "directory.loaded"
    assert {k: v for k, v in detail.items() if k.startswith(("schools_", "key_adults_"))} == {
        "schools_added": 0,
        "schools_changed": 1,
        "schools_removed": 0,
        "schools_kept": 0,
        "key_adults_added": 1,
        "key_adults_changed": 1,
        "key_adults_removed": 1,
        "key_adults_kept": 0,
    }
    assert detail["rows_refused"] == 0
    recorded = json.dumps(detail) + result.stderr  # the audited log and the log lines
    for name in ("Alex", "Keyadult", "Kim", "Sam", "Deputy", "kim.new", "sam.deputy"):
        assert name not in recorded


def test_the_same_email_at_two_schools_is_flagged_naming_both(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = demo_rows()
    rows.append(
        row(
            urn="900005",
            name="Example New School",
            key_adult_name="Alex Keyadult",
            key_adult_email="alex.keyadult@example.org",
        )
    )

    result = load(str(write(data_dir / "refresh.csv", rows)))

    assert result.exit_code == 0, result.output
    [warning] = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert "900001 Example Primary School" in warning
    assert "900005 Example New School" in warning
    assert "sign-in" in warning
    assert "Alex" not in warning
    assert "alex.keyadult" not in warning
    ((_, detail),) = events_in(data_dir)[1:]
    assert detail["shared_emails"] == 1


def test_the_same_email_at_a_kept_school_is_flagged_too(
    data_dir: Path, loaded: dict[str, list[tuple[str, str]]]
) -> None:
    rows = [row(urn="900005", name="Example New School", key_adult_email="alex.keyadult@example.org")]

    result = load(str(write(data_dir / "refresh.csv", rows)), "--json")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["warnings"] == [
        {
            "code": "email_at_two_schools",
            "schools": ["900001", "900005"],
            "lines": [2],
            "message": report["warnings"][0]["message"],
        }
    ]
    assert report["changes"]["schools_added"] == 1
    assert report["changes"]["schools_kept"] == 4


def test_plan_lists_what_changes_and_what_is_kept() -> None:
    current = parse(
        csv_bytes(
            row(),
            row(key_adult_name="Sam Deputy", key_adult_email="sam@example.org"),
            row(urn="900002", name="Sample Academy", key_adult_email="jo@example.org"),
        )
    ).schools
    loaded = parse(
        csv_bytes(
            row(name="Example Primary Academy"), row(urn="900003", name="Test Hill", key_adult_email="pat@example.org")
        )
    ).schools

    kept = plan_directory(current, loaded, remove_missing=False)
    removed = plan_directory(current, loaded, remove_missing=True)

    assert [s.urn for s in kept.schools_added] == ["900003"]
    assert [(c.urn, c.was_name) for c in kept.schools_changed] == [("900001", "Example Primary School")]
    assert [s.urn for s in kept.schools_kept] == ["900002"]
    assert [a.email for a in kept.key_adults_kept] == ["sam@example.org"]
    assert kept.schools_removed == kept.key_adults_removed == ()
    assert sorted(kept.after) == ["900001", "900002", "900003"]
    assert [s.urn for s in removed.schools_removed] == ["900002"]
    assert sorted(a.email for a in removed.key_adults_removed) == ["jo@example.org", "sam@example.org"]
    assert sorted(removed.after) == ["900001", "900003"]
    assert [a.email for a in removed.after["900001"].key_adults] == ["zebedee.quillfeather@example.org"]
    assert plan_directory(loaded, loaded, remove_missing=True).empty


def test_shared_emails_name_the_schools_and_lines() -> None:
    result = parse(csv_bytes(row(), row(urn="900002", name="Sample Academy"), row(urn="900003", name="Other")))

    [shared] = shared_emails(result.schools)

    assert shared.schools == (("900001", "Example Primary School"), ("900002", "Sample Academy"), ("900003", "Other"))
    assert shared.lines == (2, 3, 4)
