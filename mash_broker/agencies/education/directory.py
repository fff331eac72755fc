"""The school directory (CSV): which schools exist and who their Operation Encompass Key Adults are.

One row per Key Adult; a school with two Key Adults has two rows with the same URN, name and
local authority code. Pure: the caller reads the bytes. Problems name the line and the column,
never the value. ``plan_directory`` compares a loaded file with the directory the ledger holds:
what is added, changed, removed, and (unless told to remove it) kept because the file leaves it out.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
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
    line: int = field(default=0, compare=False)  # the file line that listed them; 0 if from the ledger


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
        key_adult = KeyAdult(name=adult, email=email, line=line)
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


@dataclass(frozen=True)
class SchoolChange:
    """A school in both the ledger and the file whose name or local authority code differs."""

    urn: str
    name: str
    la_code: str
    was_name: str
    was_la_code: str


@dataclass(frozen=True)
class KeyAdultChange:
    """A Key Adult added, renamed, removed or kept at a school; ``was`` is the name before a rename."""

    urn: str
    school: str
    name: str
    email: str
    was: str | None = None


@dataclass(frozen=True)
class SharedEmail:
    """One Key Adult email listed at more than one school, with the file lines that list it."""

    email: str
    schools: tuple[tuple[str, str], ...]  # (urn, name)
    lines: tuple[int, ...]


@dataclass(frozen=True)
class DirectoryChanges:
    """What loading a file does to the directory; ``after`` is the directory it leaves."""

    schools_added: tuple[School, ...] = ()
    schools_changed: tuple[SchoolChange, ...] = ()
    schools_removed: tuple[School, ...] = ()
    schools_kept: tuple[School, ...] = ()  # not in the file, kept
    key_adults_added: tuple[KeyAdultChange, ...] = ()
    key_adults_changed: tuple[KeyAdultChange, ...] = ()
    key_adults_removed: tuple[KeyAdultChange, ...] = ()
    key_adults_kept: tuple[KeyAdultChange, ...] = ()  # at a school in the file, but not on its rows
    after: Mapping[str, School] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        """Nothing is added, changed or removed."""
        return not any(n for key, n in self.counts().items() if not key.endswith("_kept"))

    def counts(self) -> dict[str, int]:
        """How many of each, by name (``schools_added`` ...): what the audited log records."""
        return {f.name: len(getattr(self, f.name)) for f in dataclasses.fields(self) if f.name != "after"}


def plan_directory(
    current: Mapping[str, School], loaded: Mapping[str, School], *, remove_missing: bool
) -> DirectoryChanges:
    """Compare the ledger's directory with a loaded file. Schools and Key Adults the file leaves out are
    kept, and listed as kept, unless ``remove_missing``."""
    added: list[School] = []
    changed: list[SchoolChange] = []
    adults: dict[str, list[KeyAdultChange]] = {"added": [], "changed": [], "removed": [], "kept": []}
    after: dict[str, School] = {}
    for urn in sorted(loaded):
        new, old = loaded[urn], current.get(urn)
        if old is None:
            added.append(new)
            adults["added"] += [_change(new, a) for a in new.key_adults]
            after[urn] = new
            continue
        if (old.name, old.la_code) != (new.name, new.la_code):
            changed.append(SchoolChange(urn, new.name, new.la_code, was_name=old.name, was_la_code=old.la_code))
        was = {a.email: a for a in old.key_adults}
        for a in new.key_adults:
            before = was.get(a.email)
            if before is None:
                adults["added"].append(_change(new, a))
            elif before.name != a.name:
                adults["changed"].append(_change(new, a, was=before.name))
        listed = {a.email for a in new.key_adults}
        left_out = [a for a in old.key_adults if a.email not in listed]
        adults["removed" if remove_missing else "kept"] += [_change(new, a) for a in left_out]
        after[urn] = new if remove_missing else dataclasses.replace(new, key_adults=(*new.key_adults, *left_out))
    missing = [current[urn] for urn in sorted(current) if urn not in loaded]
    if remove_missing:
        adults["removed"] += [_change(s, a) for s in missing for a in s.key_adults]
    else:
        after.update((s.urn, s) for s in missing)
    return DirectoryChanges(
        schools_added=tuple(added),
        schools_changed=tuple(changed),
        schools_removed=tuple(missing) if remove_missing else (),
        schools_kept=() if remove_missing else tuple(missing),
        key_adults_added=tuple(adults["added"]),
        key_adults_changed=tuple(adults["changed"]),
        key_adults_removed=tuple(adults["removed"]),
        key_adults_kept=tuple(adults["kept"]),
        after=dict(sorted(after.items())),
    )


def shared_emails(schools: Mapping[str, School]) -> list[SharedEmail]:
    """Emails the directory lists at more than one school. The web sign-in (OIDC) refuses such an
    email: it cannot tell which school's Key Adult signed in."""
    at: dict[str, list[tuple[School, KeyAdult]]] = {}
    for school in schools.values():
        for adult in school.key_adults:
            at.setdefault(adult.email, []).append((school, adult))
    return [
        SharedEmail(
            email=email,
            schools=tuple((s.urn, s.name) for s, _ in sorted(listed, key=lambda p: p[0].urn)),
            lines=tuple(sorted(a.line for _, a in listed if a.line)),
        )
        for email, listed in sorted(at.items())
        if len({s.urn for s, _ in listed}) > 1
    ]


def _change(school: School, adult: KeyAdult, was: str | None = None) -> KeyAdultChange:
    return KeyAdultChange(urn=school.urn, school=school.name, name=adult.name, email=adult.email, was=was)


def schools_from(entries: Iterable[tuple[str, str, str, Iterable[tuple[str, str]]]]) -> dict[str, School]:
    """Schools from (urn, name, la_code, [(Key Adult name, email)]) rows, as the ledger returns them."""
    return {
        urn: School(urn=urn, name=name, la_code=la, key_adults=tuple(KeyAdult(n, e) for n, e in adults))
        for urn, name, la, adults in entries
    }
