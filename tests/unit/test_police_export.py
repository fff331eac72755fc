"""The overnight police export mapping: every column rule, the file-level refusals, the demo fixture."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mash_broker.agencies import common
from mash_broker.agencies.common import RowProblem
from mash_broker.agencies.police import export
from mash_broker.agencies.police.export import EXPORT_COLUMNS, ExportResult, parse_export
from mash_broker.contracts import (
    Article6Basis,
    ChildPresent,
    Classification,
    EncompassNotification,
    InputFileError,
    StatutoryPower,
    deterministic_id,
)

ROOT = Path(__file__).resolve().parents[2]
TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=TZ)

GOOD: dict[str, str] = {
    "incident_ref": "EXP/2026/1001",
    "occurred_at": "2026-11-16T21:40:00",
    "reported_at": "2026-11-16T21:55:00",
    "force": "ExamplePolice",
    "incident_type": "domestic_abuse",
    "child_given_name": "Zebedee",
    "child_family_name": "Quillfeather",
    "child_dob": "2016-05-12",
    "child_present": "yes",
    "school_urn": "900001",
    "home_postcode": "ZZ99 1AA",
    "summary": "Officers attended; the child was present and unhurt.",
}
# Values that must never appear in a problem or an error message.
PERSONAL = ("Zebedee", "Quillfeather", "2016-05-12", "ZZ99 1AA", "Officers attended")


def row(**overrides: str) -> dict[str, str]:
    return {**GOOD, **overrides}


def csv_bytes(*rows: dict[str, str], header: tuple[str, ...] = EXPORT_COLUMNS, newline: str = "\n") -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=newline, quoting=csv.QUOTE_ALL)
    writer.writerow(header)
    for r in rows:
        writer.writerow([r[c] for c in header])
    return out.getvalue().encode("utf-8")


def parse(data: bytes, now: datetime = NOW) -> ExportResult:
    return parse_export(data, source="overnight.csv", now=now, tz=TZ)


def where(result: ExportResult) -> list[tuple[int, str]]:
    return [(p.line, p.field) for p in result.problems]


def file_error(data: bytes) -> InputFileError:
    with pytest.raises(InputFileError) as info:
        parse(data)
    assert info.value.record == "overnight.csv"
    assert info.value.code == "file_unusable"
    return info.value


# --- a valid row and its envelope ---------------------------------------------------------------


def test_valid_row_maps_to_the_contract() -> None:
    result = parse(csv_bytes(row()))
    assert result.problems == []
    [parsed] = result.accepted
    env = parsed.envelope
    assert parsed.line == 2
    assert env.message_id == deterministic_id(
        "police", "examplepolice", "EXP/2026/1001", "Zebedee", "Quillfeather", "2016-05-12"
    )
    assert env.correlation_id == deterministic_id("incident", "examplepolice", "EXP/2026/1001")
    assert env.kind == "notification.encompass"
    assert env.sender_org == "police:examplepolice"
    assert env.sender_local_id == "EXP/2026/1001"
    assert env.produced_at == NOW
    assert env.classification is Classification.OFFICIAL_SENSITIVE
    assert env.subject is not None
    assert (env.subject.given_name, env.subject.family_name) == ("Zebedee", "Quillfeather")
    assert env.subject.date_of_birth.isoformat() == "2016-05-12"
    assert env.lawful_basis is not None
    assert env.lawful_basis.article6 is Article6Basis.LEGAL_OBLIGATION
    assert env.lawful_basis.statutory_power is StatutoryPower.ENCOMPASS_DUTY
    payload = env.payload
    assert isinstance(payload, EncompassNotification)
    assert payload.police_reference == "EXP/2026/1001"
    assert payload.force == "examplepolice"
    assert payload.occurred_at == datetime(2026, 11, 16, 21, 40, tzinfo=TZ)
    assert payload.reported_at == datetime(2026, 11, 16, 21, 55, tzinfo=TZ)
    assert payload.child_present is ChildPresent.YES
    assert payload.school_urn == "900001"
    assert payload.home_postcode == "ZZ99 1AA"
    assert payload.summary_for_school == GOOD["summary"]


@pytest.mark.parametrize(
    ("column", "value", "attribute", "expected"),
    [
        ("child_present", "YES", "child_present", ChildPresent.YES),
        ("child_present", " No ", "child_present", ChildPresent.NO),
        ("child_present", "Unknown", "child_present", ChildPresent.UNKNOWN),
        ("school_urn", "", "school_urn", None),
        ("school_urn", " 900004 ", "school_urn", "900004"),
        ("home_postcode", "", "home_postcode", None),
        ("home_postcode", "zz991aa", "home_postcode", "ZZ99 1AA"),
        ("home_postcode", " zz99   1aa ", "home_postcode", "ZZ99 1AA"),
        ("home_postcode", "A9 9AA", "home_postcode", "A9 9AA"),
        ("home_postcode", "ab1c2de", "home_postcode", "AB1C 2DE"),
        ("home_postcode", "GIR0AA", "home_postcode", "GIR 0AA"),
        ("summary", "", "summary_for_school", ""),
        ("summary", "line one\r\nline two\rline three\tend", "summary_for_school",
         "line one\nline two\nline three\tend"),
        ("summary", "Mum & child <script>alert(1)</script>", "summary_for_school",
         "Mum & child <script>alert(1)</script>"),
        ("summary", "x" * 2000, "summary_for_school", "x" * 2000),
        ("incident_type", "Domestic_Abuse", "incident_type", "domestic_abuse"),
    ],
)  # fmt: skip
def test_accepted_variants(column: str, value: str, attribute: str, expected: object) -> None:
    result = parse(csv_bytes(row(**{column: value})))
    assert result.problems == []
    assert getattr(result.accepted[0].envelope.payload, attribute) == expected


def test_names_are_stripped_normalised_and_may_be_100_characters() -> None:
    result = parse(csv_bytes(row(child_given_name=" Ame\u0301lie ", child_family_name="Q" * 100)))
    assert result.problems == []
    subject = result.accepted[0].envelope.subject
    assert subject is not None
    assert subject.given_name == "Am\u00e9lie"
    assert subject.family_name == "Q" * 100


# --- times ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "offset_hours"),
    [
        ("2026-07-01T10:00:00", 1),  # naive, summer: BST
        ("2026-11-16 21:40", 0),  # naive, winter, space separator, no seconds
        ("2026-11-16T21:40:00Z", 0),
        ("2026-11-16T23:40:00+02:00", 2),  # an offset is kept as given
        ("2026-03-29T01:30:00", 0),  # spring gap: fold=0 takes the offset before the change (GMT)
        ("2026-10-25T01:30:00", 1),  # autumn fold: fold=0 is the first occurrence (BST)
    ],
)
def test_times_naive_are_local_and_offsets_are_kept(text: str, offset_hours: int) -> None:
    result = parse(csv_bytes(row(occurred_at=text, reported_at=text)))
    assert result.problems == []
    occurred = result.accepted[0].envelope.payload.occurred_at  # type: ignore[union-attr]
    assert occurred.utcoffset() == timedelta(hours=offset_hours)


def test_occurred_at_may_be_up_to_five_minutes_ahead_of_now() -> None:
    soon = (NOW + timedelta(minutes=5)).isoformat()
    late = (NOW + timedelta(minutes=5, seconds=1)).isoformat()
    assert parse(csv_bytes(row(occurred_at=soon, reported_at=soon))).problems == []
    result = parse(csv_bytes(row(occurred_at=late, reported_at=late)))
    assert [(p.field, p.reason) for p in result.problems] == [("occurred_at", "is in the future")]


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        parse(csv_bytes(row()), now=datetime(2026, 11, 23, 6, 0))  # noqa: DTZ001


# --- each invalid field is named, on the right line, and its neighbours still go -----------------

INVALID: list[tuple[str, str, str]] = [
    ("incident_ref", "", "expected 1-40"),
    ("incident_ref", "EXP 1001", "expected 1-40"),
    ("incident_ref", "R" * 41, "expected 1-40"),
    ("incident_ref", "EXP;1001", "expected 1-40"),
    ("occurred_at", "", "not a date and time"),
    ("occurred_at", "last night", "not a date and time"),
    ("occurred_at", "2026-11-16", "not a date and time"),
    ("occurred_at", "2026-13-01T10:00", "not a date and time"),
    ("occurred_at", "2026-11-16T25:00", "not a date and time"),
    ("occurred_at", "16/11/2026 21:40", "not a date and time"),
    ("reported_at", "", "not a date and time"),
    ("reported_at", "2026-11-16T21:39:59", "is before occurred_at"),
    ("reported_at", "2026-11-16T21:55:00+01:00", "is before occurred_at"),
    ("reported_at", "2030-01-01T09:00:00", "is in the future"),
    ("reported_at", "2026-11-23T06:05:01", "is in the future"),  # NOW + 5 minutes 1 second
    ("force", "", "expected 1-40"),
    ("force", "example police", "expected 1-40"),
    ("force", "F" * 41, "expected 1-40"),
    ("incident_type", "burglary", "must be domestic_abuse"),
    ("incident_type", "", "must be domestic_abuse"),
    ("child_given_name", "", "required"),
    ("child_given_name", "   ", "required"),
    ("child_given_name", "N" * 101, "longer than 100"),
    ("child_given_name", "Ann\nMarie", "control characters"),
    ("child_family_name", "Tab\there", "control characters"),
    ("child_family_name", "Bell\x07", "control characters"),
    ("child_family_name", "C1\x85char", "control characters"),
    ("child_dob", "", "not a date"),
    ("child_dob", "2019-02-30", "not a date (expected YYYY-MM-DD)"),
    ("child_dob", "12/05/2016", "not a date"),
    ("child_dob", "2016-5-12", "not a date"),
    ("child_dob", "20160512", "not a date"),
    ("child_dob", "2026-11-17", "is after the incident date"),
    ("child_dob", "2008-11-16", "18 or over"),
    ("child_dob", "1990-01-01", "18 or over"),
    ("child_present", "maybe", "expected yes, no or unknown"),
    ("child_present", "", "expected yes, no or unknown"),
    ("school_urn", "12345", "six digits"),
    ("school_urn", "1234567", "six digits"),
    ("school_urn", "abcdef", "six digits"),
    ("school_urn", "\uff19\uff10\uff10\uff10\uff10\uff11", "six digits"),  # full-width digits
    ("home_postcode", "NOT A POSTCODE", "not a UK postcode"),
    ("home_postcode", "ZZ99", "not a UK postcode"),
    ("home_postcode", "12345", "not a UK postcode"),
    ("summary", "x" * 2001, "longer than 2000"),
    ("summary", "a bell \x07", "control characters"),
    ("summary", "a nul \x00", "control characters"),
]


@pytest.mark.parametrize(("column", "value", "reason"), INVALID)
def test_invalid_field_is_named_on_its_line(column: str, value: str, reason: str) -> None:
    before, after = row(incident_ref="A/1"), row(incident_ref="C/3")
    result = parse(csv_bytes(before, row(**{column: value}), after))
    assert [p.line for p in result.accepted] == [2, 4 + value.count("\n")]  # quoted newlines are lines
    [problem] = result.problems
    assert (problem.line, problem.field) == (3, column)
    assert reason in problem.reason
    assert value.strip() not in str(problem) or len(value.strip()) < 3


def test_child_is_under_18_up_to_the_day_before_the_18th_birthday() -> None:
    ok = row(child_dob="2008-11-17")  # 18 on 17 November, incident on the 16th
    assert parse(csv_bytes(ok)).problems == []
    leap = row(child_dob="2008-02-29", occurred_at="2026-02-28T23:00", reported_at="2026-02-28T23:30")
    assert parse(csv_bytes(leap)).problems == []
    leap_next = row(child_dob="2008-02-29", occurred_at="2026-03-01T00:10", reported_at="2026-03-01T01:00")
    assert where(parse(csv_bytes(leap_next))) == [(2, "child_dob")]


def test_dob_is_checked_against_the_local_incident_date() -> None:
    # 23:30 UTC-05:00 on the 15th is 04:30 on the 16th in London: born on the 16th is not "after".
    late = "2026-11-15T23:30:00-05:00"
    assert parse(csv_bytes(row(child_dob="2020-11-16", occurred_at=late, reported_at=late))).problems == []


def test_every_problem_of_a_row_is_reported_once_per_field() -> None:
    bad = row(child_dob="2019-02-30", child_present="maybe", school_urn="x", summary="\x01", force="")
    result = parse(csv_bytes(bad))
    assert result.accepted == []
    assert where(result) == [
        (2, "force"), (2, "child_dob"), (2, "child_present"), (2, "school_urn"), (2, "summary")
    ]  # fmt: skip


def test_wrong_cell_count_is_a_row_problem() -> None:
    header, first = csv_bytes(row(incident_ref="A/1")).splitlines(keepends=True)
    third = csv_bytes(row(incident_ref="C/3")).splitlines(keepends=True)[1]
    data = header + first + b"B/2,too,few\n" + third
    result = parse(data)
    assert [p.line for p in result.accepted] == [2, 4]
    assert [str(p) for p in result.problems] == ["line 3, field row: has 3 cells, expected 12"]


def test_blank_lines_are_skipped_but_counted() -> None:
    lines = csv_bytes(row(incident_ref="A/1"), row(incident_ref="B/2")).split(b"\n")
    data = b"\n".join([lines[0], lines[1], b"", lines[2], b""])
    assert [p.line for p in parse(data).accepted] == [2, 4]


def test_multiline_fixture_numbers_lines_physically() -> None:
    result = parse((ROOT / "tests/fixtures/police_multiline.csv").read_bytes())
    assert [p.line for p in result.accepted] == [2, 3, 7]
    assert where(result) == [(6, "child_present")]
    summary = result.accepted[1].envelope.payload.summary_for_school  # type: ignore[union-attr]
    assert summary == "First line of the account.\nSecond line, with a comma.\nThird line."


def test_crlf_file_with_quoted_newlines() -> None:
    data = csv_bytes(row(summary="one\r\ntwo"), row(incident_ref="B/2", child_present="?"), newline="\r\n")
    result = parse(data)
    assert [p.line for p in result.accepted] == [2]
    assert where(result) == [(4, "child_present")]


def test_repeated_child_in_the_same_file_is_a_problem_on_the_later_row() -> None:
    result = parse(csv_bytes(row(), row(force="examplepolice", summary="another account")))
    assert [p.line for p in result.accepted] == [2]
    [problem] = result.problems
    assert (problem.line, problem.field) == (3, "row")
    assert "repeats line 2" in problem.reason


def test_contract_rejection_becomes_a_row_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "SUMMARY_MAX", 5000)  # let a too-long summary reach pydantic
    result = parse(csv_bytes(row(summary="y" * 2500), row(incident_ref="B/2")))
    assert [p.line for p in result.accepted] == [3]
    [problem] = result.problems
    assert (problem.line, problem.field) == (2, "summary")
    assert problem.reason.startswith("rejected by the contract")
    assert "yyyy" not in problem.reason


# --- deterministic ids --------------------------------------------------------------------------


def test_ids_are_stable_across_parses_and_siblings_share_the_incident() -> None:
    data = csv_bytes(row(), row(child_given_name="Sibling", child_dob="2013-11-02", school_urn="900003"))
    first, second = parse(data), parse(data, now=NOW + timedelta(hours=1))
    ids = [p.envelope.message_id for p in first.accepted]
    assert ids == [p.envelope.message_id for p in second.accepted]
    assert len(set(ids)) == 2
    assert len({p.envelope.correlation_id for p in first.accepted}) == 1


# --- the file as a whole ------------------------------------------------------------------------


def test_bom_is_accepted() -> None:
    result = parse(b"\xef\xbb\xbf" + csv_bytes(row()))
    assert len(result.accepted) == 1


def test_header_only_file_has_no_rows_and_no_problems() -> None:
    assert parse(csv_bytes()) == ExportResult()


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf", b"  \r\n\n"])
def test_empty_file_is_unusable(data: bytes) -> None:
    assert "empty" in str(file_error(data))


def test_undecodable_bytes_give_the_offset_not_the_bytes() -> None:
    good = csv_bytes(row())
    data = good.replace(b"Zebedee", b"Zeb\xffdee")
    error = file_error(data)
    offset = data.index(b"\xff")
    assert f"offset {offset}" in str(error)
    assert "line 2" in str(error)
    assert "Zeb" not in str(error)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (EXPORT_COLUMNS[:-1], "missing columns: summary"),
        ((*EXPORT_COLUMNS, "notes"), "unexpected columns at positions: 13"),
        ((EXPORT_COLUMNS[1], EXPORT_COLUMNS[0], *EXPORT_COLUMNS[2:]), "columns out of order"),
        ((*EXPORT_COLUMNS[:-1], "incident_ref"), "missing columns: summary; repeated columns: incident_ref"),
        ((*EXPORT_COLUMNS, "force"), "repeated columns: force"),
    ],
)
def test_wrong_header_says_what_is_wrong(header: tuple[str, ...], expected: str) -> None:
    data = csv_bytes(header=header)
    assert expected in str(file_error(data))


def test_header_cells_are_stripped() -> None:
    data = (", ".join(EXPORT_COLUMNS) + "\n").encode()
    assert parse(data) == ExportResult()


def test_a_file_without_its_header_does_not_leak_the_first_row() -> None:
    data = csv_bytes(row(), header=EXPORT_COLUMNS).split(b"\n", 1)[1]
    message = str(file_error(data))
    assert "not the expected header" in message
    for value in PERSONAL:
        assert value not in message


def test_file_too_big_is_unusable() -> None:
    data = csv_bytes(row()) + b"x" * (common.MAX_FILE_BYTES)
    assert "larger than 50 MB" in str(file_error(data))


def test_too_many_rows_is_unusable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "MAX_ROWS", 3)
    rows = [row(incident_ref=f"R/{i}") for i in range(3)]
    assert len(parse(csv_bytes(*rows)).accepted) == 3
    assert "more than 3 rows" in str(file_error(csv_bytes(*rows, row(incident_ref="R/9"))))


def test_unbalanced_quote_swallowing_the_rest_is_a_row_problem() -> None:
    data = csv_bytes(row()) + b'B/2,"unterminated, 2026-11-16T21:40:00\nC/3,more,cells\n'
    result = parse(data)
    assert [p.line for p in result.accepted] == [2]
    assert where(result) == [(3, "row")]


def test_a_cell_too_big_for_the_csv_reader_is_a_problem_of_its_row_only() -> None:
    data = (
        csv_bytes(row())
        + b'B/2,"'
        + b"x" * 200_000
        + b'"\n'
        + csv_bytes(row(incident_ref="C/4"))[-300:].split(b"\n", 1)[1]
    )
    result = parse(data)
    assert [p.line for p in result.accepted] == [2, 4]  # its neighbours still go
    assert where(result) == [(3, "occurred_at"), (3, "row")]  # the over-long cell, and the short row
    assert "longer than 10000 characters" in result.problems[0].reason
    assert "xxx" not in "".join(str(p) for p in result.problems)


def test_an_over_long_summary_rejects_that_row_naming_line_and_field() -> None:
    huge = row(incident_ref="B/2", summary="x" * 200_000)
    result = parse(csv_bytes(row(), huge, row(incident_ref="C/3")))
    assert [p.line for p in result.accepted] == [2, 4]
    [problem] = result.problems
    assert (problem.line, problem.field) == (3, "summary")
    assert "xxx" not in str(problem)


def test_a_quote_left_open_names_the_lines_its_cell_swallowed() -> None:
    swallowed = "".join(f"S/{i},2026-11-16T21:40:00,more\n" for i in range(5_000))
    data = csv_bytes(row()) + b'B/2,"unterminated\n' + swallowed.encode()
    result = parse(data)
    assert [p.line for p in result.accepted] == [2]
    assert where(result) == [(3, "occurred_at"), (3, "row")]
    assert "lines 3 to 5003" in result.problems[0].reason


def test_row_problem_reads_as_a_sentence() -> None:
    assert str(RowProblem(7, "child_dob", "not a date (expected YYYY-MM-DD)")) == (
        "line 7, field child_dob: not a date (expected YYYY-MM-DD)"
    )


# --- no personal data in problems ---------------------------------------------------------------


def test_no_personal_value_in_any_problem() -> None:
    rows = [row(**{column: value}) for column, value, _ in INVALID]
    result = parse(csv_bytes(*rows))
    assert len(result.problems) >= len(INVALID)
    text = "\n".join(str(p) for p in result.problems)
    for value in PERSONAL:
        assert value not in text


# --- the demo fixture ---------------------------------------------------------------------------


def test_demo_overnight_export() -> None:
    result = parse((ROOT / "mash_broker/demo/data/overnight-export.csv").read_bytes())
    assert [p.line for p in result.accepted] == [2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13]
    assert where(result) == [(10, "child_dob"), (10, "child_present")]
    by_line = {p.line: p.envelope for p in result.accepted}
    siblings = by_line[4], by_line[5]
    assert siblings[0].correlation_id == siblings[1].correlation_id
    assert {e.payload.school_urn for e in siblings} == {"900001", "900003"}  # type: ignore[union-attr]
    assert by_line[6].payload.school_urn is None  # type: ignore[union-attr]
    assert by_line[7].payload.school_urn == "900099"  # type: ignore[union-attr]
    assert "<script>alert(1)</script>" in by_line[8].payload.summary_for_school  # type: ignore[union-attr]
    assert by_line[9].payload.occurred_at.weekday() == 5  # type: ignore[union-attr]
    early = by_line[3].payload.occurred_at  # type: ignore[union-attr]
    assert early.weekday() < 5
    assert early.hour * 60 + early.minute < 8 * 60 + 30
    for env in by_line.values():
        assert env.sender_org == "police:examplepolice"


# --- anything in a free-text cell is accepted or reported, never raised -------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    column=st.sampled_from(["summary", "child_given_name", "child_family_name"]),
    text=st.text(max_size=2100) | st.text(alphabet=st.characters(max_codepoint=0x2000), max_size=120),
)
def test_any_text_in_a_free_text_cell_is_accepted_or_reported(column: str, text: str) -> None:
    result = parse(csv_bytes(row(**{column: text})))
    assert len(result.accepted) + len({p.line for p in result.problems}) == 1
    assert all((p.line, p.field) == (2, column) for p in result.problems)


@settings(max_examples=300, deadline=None)
@given(tail=st.binary(max_size=400))
def test_any_bytes_after_the_header_are_a_result_or_an_input_file_error(tail: bytes) -> None:
    try:
        result = parse(csv_bytes() + tail)
    except InputFileError:
        return  # refused as a whole, with a reason
    assert all(p.field in {*EXPORT_COLUMNS, "row"} for p in result.problems)
