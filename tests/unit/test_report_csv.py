"""`mash report --format csv`: a cell a spreadsheet would run as a formula is written as text."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from mash_broker.core.report import Report, Section

FORMULAS = ('=HYPERLINK("http://example.invalid","x")', "+1+1", "-2+3", "@SUM(A1)", "\tTab", "\rCR")


def test_cells_a_spreadsheet_would_run_are_prefixed_with_a_quote() -> None:
    rows = [(f"school {n}", value, 3) for n, value in enumerate(FORMULAS)]
    report = Report(
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
        (Section("encompass", "Encompass", ("day", "school", "notifications"), rows),),
    )
    read = list(csv.reader(io.StringIO(report.as_csv(), newline="")))
    assert read[0] == ["section", "day", "school", "notifications"]
    assert [r[2] for r in read[1:]] == ["'" + value.replace("\r", "\n") for value in FORMULAS]  # CR: one cell
    assert [r[1] for r in read[1:]] == [f"school {n}" for n in range(len(FORMULAS))]  # plain text untouched
    assert {r[3] for r in read[1:]} == {"3"}  # figures stay numbers


def test_negative_numbers_and_plain_text_are_left_alone() -> None:
    report = Report(
        datetime(2026, 11, 16, tzinfo=UTC),
        datetime(2026, 11, 23, tzinfo=UTC),
        (Section("refusals", "Refusals", ("reason", "count"), [("no lawful basis", -1)]),),
    )
    assert report.as_csv().splitlines()[1] == "refusals,no lawful basis,-1"
