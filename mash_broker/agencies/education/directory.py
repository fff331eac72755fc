"""The school directory (CSV): which schools exist and who their Operation Encompass Key Adults are.

One row per Key Adult; a school with two Key Adults has two rows with the same URN, name and
local authority code. Pure: the caller reads the bytes. Problems name the line and the column,
never the value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field

from mash_broker.agencies.common import RowProblem, clean_text, matches, read_csv

DIRECTORY_COLUMNS: tuple[str, ...] = ("urn", "name", "key_adult_name", "key_adult_email", "la_code")

SCHOOL_NAME_MAX = 120
KEY_ADULT_NAME_MAX = 100
EMAIL_MAX = 254

_URN = re.compile(r"[0-9]{6}")
_LA_CODE = re.compile(r"[0-9]{3}")
# Plausible, not RFC 5322: a local part, one @, a domain with at least one dot. ASCII only.
_EMAIL = re.compile(r"[a-z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-z0-9-]+(\.[a-z0-9-]+)+")


@dataclass(frozen=True)
class KeyAdult:
    """A named person at a school who receives Encompass notifications."""

    name: str
    email: str


@dataclass(frozen=True)
class School:
    """A school and its Key Adults, in file order."""

    urn: str
    name: str
    la_code: str
    key_adults: tuple[KeyAdult, ...]


@dataclass(frozen=True)
class DirectoryResult:
    """Schools by URN, and the problems of the rows that were not taken."""

    schools: dict[str, School] = field(default_factory=dict)
    problems: list[RowProblem] = field(default_factory=list)


def parse_directory(data: bytes, *, source: str) -> DirectoryResult:
    """Parse a school directory. Raises ``InputFileError`` only if the file is unusable as a whole."""
    result = DirectoryResult()
    first_line: dict[str, int] = {}  # urn -> line that defined the school
    email_line: dict[tuple[str, str], int] = {}  # (urn, email) -> line that named the Key Adult
    for line, row in read_csv(data, DIRECTORY_COLUMNS, source=source, problems=result.problems):
        problems: list[RowProblem] = []
        urn, name, adult, email, la_code = _check_row(line, row, problems)
        school = result.schools.get(urn)
        if school is not None:
            defined = first_line[urn]
            if name and school.name != name and not any(p.field == "name" for p in problems):
                problems.append(RowProblem(line, "name", f"differs from line {defined} for the same urn"))
            if matches(_LA_CODE, la_code) and school.la_code != la_code:
                problems.append(RowProblem(line, "la_code", f"differs from line {defined} for the same urn"))
            if (urn, email) in email_line:
                reason = f"repeats line {email_line[urn, email]} for the same school"
                problems.append(RowProblem(line, "key_adult_email", reason))
        result.problems.extend(problems)
        if problems:
            continue
        key_adult = KeyAdult(name=adult, email=email)
        if school is None:
            first_line[urn] = line
            result.schools[urn] = School(urn=urn, name=name, la_code=la_code, key_adults=(key_adult,))
        else:
            result.schools[urn] = dataclasses.replace(school, key_adults=(*school.key_adults, key_adult))
        email_line[urn, email] = line
    result.problems.sort(key=lambda p: p.line)
    return result


def _check_row(line: int, row: dict[str, str], problems: list[RowProblem]) -> tuple[str, str, str, str, str]:
    """The row's cleaned values; what is wrong with each goes to ``problems``."""
    urn = row["urn"].strip()
    if not matches(_URN, urn):
        problems.append(RowProblem(line, "urn", "expected six digits"))
    texts: list[str] = []
    for column, max_length in (("name", SCHOOL_NAME_MAX), ("key_adult_name", KEY_ADULT_NAME_MAX)):
        cleaned, reason = clean_text(row[column], max_length=max_length)
        if not cleaned or reason:
            problems.append(RowProblem(line, column, reason or "required"))
        texts.append(cleaned)
    email = row["key_adult_email"].strip().lower()
    if len(email) > EMAIL_MAX or not matches(_EMAIL, email):
        reason = "not a plausible email address (expected name@domain.example)"
        problems.append(RowProblem(line, "key_adult_email", reason))
    la_code = row["la_code"].strip()
    if not matches(_LA_CODE, la_code):
        problems.append(RowProblem(line, "la_code", "expected three digits"))
    return urn, texts[0], texts[1], email, la_code
