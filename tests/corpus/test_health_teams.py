"""The health teams file (``MASH_HEALTH_TEAMS``), the demo's rows with one bad row after them: the parse names
the line and column, never the value, and keeps the valid rows around it; the gate's load refuses the
whole file with the same line and column (so it never routes by half a directory, and no child's
notification is routed to nobody because a team silently went missing).
"""

from __future__ import annotations

import csv
import io
from io import StringIO
from pathlib import Path

import pytest

from mash_broker.agencies.health.teams import TEAM_COLUMNS, load_teams, parse_teams
from mash_broker.contracts import InputFileError

from .conftest import DEMO, FAMILY, GIVEN, assert_unquoted

DEMO_ROWS = list(csv.reader(io.StringIO((DEMO / "health-teams.csv").read_text())))[1:]

# case id -> (the bad row, the column named)
CASES: dict[str, tuple[list[str], str]] = {
    "team-id-blank": (["", "health_visitor", "ZZ90"], "team_id"),
    "team-id-a-name": ([f"{GIVEN} {FAMILY}", "health_visitor", "ZZ90"], "team_id"),
    "team-id-65-characters": (["t" * 65, "school_nurse", "900090"], "team_id"),
    "team-type-unknown": (["hv-x", f"{GIVEN}_team", "ZZ90"], "team_type"),
    "team-type-blank": (["hv-x", "", "ZZ90"], "team_type"),
    "district-a-full-postcode": (["hv-x", "health_visitor", "ZZ90 1AA"], "covers"),
    "district-a-name": (["hv-x", "health_visitor", FAMILY], "covers"),
    "district-blank": (["hv-x", "health_visitor", ""], "covers"),
    "urn-five-digits": (["sn-x", "school_nurse", "90009"], "covers"),
    "urn-a-district": (["sn-x", "school_nurse", "ZZ99"], "covers"),
    "district-already-covered": (["hv-east", "health_visitor", "zz99"], "covers"),
    "school-already-covered": (["sn-east", "school_nurse", "900001"], "covers"),
    "over-long-cell": (["sn-x", "school_nurse", GIVEN * 2000], "covers"),
    "too-few-cells": (["hv-x", "health_visitor"], "row"),
    "too-many-cells": (["hv-x", "health_visitor", "ZZ90", GIVEN], "row"),
}


def csv_bytes(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(TEAM_COLUMNS)
    writer.writerows(rows)
    return out.getvalue().encode()


@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_team_row_is_named_and_the_file_refused_whole_by_the_gate(
    tmp_path: Path, logs: StringIO, case: str
) -> None:
    bad, column = CASES[case]
    rows = [*DEMO_ROWS, bad]  # last: a repeat of an area names the later line
    line = len(rows) + 1
    path = tmp_path / "health-teams.csv"
    path.write_bytes(csv_bytes(rows))

    parsed = parse_teams(path.read_bytes(), source=str(path))

    assert [(p.line, p.field) for p in parsed.problems] == [(line, column)]
    routed = len(parsed.teams.health_visitors) + len(parsed.teams.school_nurses)
    assert routed == len(DEMO_ROWS)  # every valid neighbour kept (each demo row covers one area)
    with pytest.raises(InputFileError) as refused:
        load_teams(path)
    assert refused.value.record == str(path)
    assert f"line {line}, field {column}" in str(refused.value)
    assert_unquoted(*(str(p) for p in parsed.problems), str(refused.value), logs.getvalue())
