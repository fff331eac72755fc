"""The synthetic health directory: which health visitor and school nurse teams serve whom. Pure.

One row per area a team covers: ``team_id,team_type,covers``. A ``health_visitor`` team covers a
postcode district (``ZZ99``: under-fives living there); a ``school_nurse`` team covers a school
(its six-digit URN). Each area has one team; problems name the line and field, never a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mash_broker.agencies.common import RowProblem, matches, read_csv
from mash_broker.agencies.health.routing import NO_HEALTH_TEAMS, HealthTeams
from mash_broker.contracts import InputFileError

TEAM_COLUMNS = ("team_id", "team_type", "covers")
_TEAM_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_URN = re.compile(r"[0-9]{6}")
_DISTRICT = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")
_COVERS = {
    "health_visitor": (_DISTRICT, "expected a postcode district such as ZZ99"),
    "school_nurse": (_URN, "expected a school URN (six digits)"),
}


@dataclass
class TeamsResult:
    """The directory, and every row problem."""

    teams: HealthTeams = field(default_factory=HealthTeams)
    problems: list[RowProblem] = field(default_factory=list)


def parse_teams(data: bytes, *, source: str) -> TeamsResult:
    """Parse a health-teams CSV; ``InputFileError`` if the file is unusable, else rows with problems skipped."""
    problems: list[RowProblem] = []
    by_class: dict[str, dict[str, str]] = {"health_visitor": {}, "school_nurse": {}}
    seen: dict[tuple[str, str], int] = {}
    for line, row in read_csv(data, TEAM_COLUMNS, source=source, problems=problems):
        team_id, team_type, covers = (row[c].strip() for c in TEAM_COLUMNS)
        covers = covers.upper()
        bad = len(problems)
        if not matches(_TEAM_ID, team_id):
            problems.append(RowProblem(line, "team_id", "expected 1 to 64 letters, digits, '.', '_' or '-'"))
        if team_type not in _COVERS:
            problems.append(RowProblem(line, "team_type", "expected health_visitor or school_nurse"))
        elif not matches(_COVERS[team_type][0], covers):
            problems.append(RowProblem(line, "covers", _COVERS[team_type][1]))
        elif (team_type, covers) in seen:
            problems.append(RowProblem(line, "covers", f"already covered by line {seen[team_type, covers]}"))
        if len(problems) == bad:
            seen[team_type, covers] = line
            by_class[team_type][covers] = f"{team_type}:{team_id}"
    problems.sort(key=lambda p: p.line)
    return TeamsResult(
        HealthTeams(school_nurses=by_class["school_nurse"], health_visitors=by_class["health_visitor"]), problems
    )


def load_teams(path: Path | None) -> HealthTeams:
    """The directory the gate routes by (``MASH_HEALTH_TEAMS``); none without a file. The one read in this
    module: a file with any row problem is refused whole, so the gate never routes by half a directory."""
    if path is None:
        return NO_HEALTH_TEAMS
    result = parse_teams(path.read_bytes(), source=str(path))
    if result.problems:
        raise InputFileError("; ".join(str(p) for p in result.problems[:20]), record=str(path))
    return result.teams
