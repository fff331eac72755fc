"""The overnight police export (CSV) mapped to Encompass notification envelopes. Pure.

One row is one child of one police-attended domestic abuse incident. Every problem of a row
is reported (one per field) and a row with any problem is not accepted; the rows around it
still are. Problems name the line and the column, never the value.

Times: ``occurred_at`` and ``reported_at`` are ISO 8601 with an offset, or naive meaning local
time in ``tz``. A naive time in a DST gap or fold is resolved as ``zoneinfo`` does by default
(``fold=0``): in the autumn fold the first (summer-time) occurrence; in the spring gap the
offset from before the change, so Europe/London 01:30 on the spring-forward day is 01:30 GMT.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import ValidationError

from mash_broker.agencies.common import RowProblem, clean_text, matches, read_csv
from mash_broker.contracts import (
    Article6Basis,
    ChildPresent,
    Classification,
    Envelope,
    StatutoryPower,
    deterministic_id,
)

EXPORT_COLUMNS: tuple[str, ...] = (
    "incident_ref", "occurred_at", "reported_at", "force", "incident_type", "child_given_name",
    "child_family_name", "child_dob", "child_present", "school_urn", "home_postcode", "summary",
)  # fmt: skip

FUTURE_TOLERANCE = timedelta(minutes=5)
NAME_MAX = 100
SUMMARY_MAX = 2000

_REF = re.compile(r"[A-Za-z0-9/_-]{1,40}")
_FORCE = re.compile(r"[A-Za-z0-9_-]{1,40}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_START = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}.*", re.DOTALL)
_URN = re.compile(r"[0-9]{6}")
_POSTCODE = re.compile(r"([A-Z]{1,2}[0-9][A-Z0-9]?|GIR)([0-9][A-Z]{2})")

# Where pydantic's error locations point back to in the CSV.
_CONTRACT_FIELDS = {
    ("subject", "given_name"): "child_given_name",
    ("subject", "family_name"): "child_family_name",
    ("subject", "date_of_birth"): "child_dob",
    ("payload", "police_reference"): "incident_ref",
    ("sender_local_id",): "incident_ref",
    ("payload", "force"): "force",
    ("sender_org",): "force",
    ("payload", "occurred_at"): "occurred_at",
    ("payload", "reported_at"): "reported_at",
    ("payload", "child_present"): "child_present",
    ("payload", "school_urn"): "school_urn",
    ("payload", "home_postcode"): "home_postcode",
    ("payload", "summary_for_school"): "summary",
}


@dataclass(frozen=True)
class ParsedRow:
    """An accepted row and the envelope it maps to."""

    line: int
    envelope: Envelope


@dataclass(frozen=True)
class ExportResult:
    """Accepted rows and the problems of the rest, both in file order."""

    accepted: list[ParsedRow] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)


def parse_export(data: bytes, *, source: str, now: datetime, tz: ZoneInfo) -> ExportResult:
    """Parse an overnight export. Raises ``InputFileError`` only if the file is unusable as a whole."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    result = ExportResult()
    seen: dict[UUID, int] = {}
    for line, row in read_csv(data, EXPORT_COLUMNS, source=source, problems=result.problems):
        problems: list[RowProblem] = []
        envelope = _map_row(line, row, now, tz, problems)
        if envelope is not None and envelope.message_id in seen:
            same = "same incident_ref, force, child name and child_dob"
            problems.append(RowProblem(line, "row", f"repeats line {seen[envelope.message_id]} ({same})"))
        result.problems.extend(problems)
        if envelope is not None and not problems:
            seen[envelope.message_id] = line
            result.accepted.append(ParsedRow(line, envelope))
    result.problems.sort(key=lambda p: p.line)
    return result


def _map_row(
    line: int, row: dict[str, str], now: datetime, tz: ZoneInfo, problems: list[RowProblem]
) -> Envelope | None:
    def problem(column: str, reason: str) -> None:
        problems.append(RowProblem(line, column, reason))

    ref = row["incident_ref"].strip()
    if not matches(_REF, ref):
        problem("incident_ref", "expected 1-40 letters, digits, '/', '_' or '-'")

    latest = now.astimezone(UTC) + FUTURE_TOLERANCE
    occurred = _parse_time(row["occurred_at"], tz)
    if occurred is None:
        problem("occurred_at", "not a date and time (expected ISO 8601: YYYY-MM-DDTHH:MM[:SS][offset])")
    elif occurred > latest:
        problem("occurred_at", "is in the future")
    reported = _parse_time(row["reported_at"], tz)
    if reported is None:
        problem("reported_at", "not a date and time (expected ISO 8601: YYYY-MM-DDTHH:MM[:SS][offset])")
    elif occurred is not None and reported < occurred:
        problem("reported_at", "is before occurred_at")
    elif reported > latest and not (occurred is not None and occurred > latest):  # one future time, one problem
        problem("reported_at", "is in the future")

    force = row["force"].strip().lower()
    if not matches(_FORCE, force):
        problem("force", "expected 1-40 letters, digits, '_' or '-'")
    if row["incident_type"].strip().lower() != "domestic_abuse":
        problem("incident_type", "must be domestic_abuse")

    names: list[str] = []
    for column in ("child_given_name", "child_family_name"):
        name, reason = clean_text(row[column], max_length=NAME_MAX)
        if not name:
            problem(column, "required")
        elif reason:
            problem(column, reason)
        names.append(name)
    given, family = names

    dob = _parse_date(row["child_dob"])
    if dob is None:
        problem("child_dob", "not a date (expected YYYY-MM-DD)")
    elif occurred is not None:
        incident_day = occurred.astimezone(tz).date()
        if dob > incident_day:
            problem("child_dob", "is after the incident date")
        elif _age_on(dob, incident_day) >= 18:
            problem("child_dob", "child was 18 or over on the incident date")

    present = row["child_present"].strip().lower()
    if present not in {p.value for p in ChildPresent}:
        problem("child_present", "expected yes, no or unknown")

    urn = row["school_urn"].strip() or None
    if urn is not None and not matches(_URN, urn):
        problem("school_urn", "expected six digits or blank")

    postcode = "".join(row["home_postcode"].split()).upper() or None
    shape = _POSTCODE.fullmatch(postcode) if postcode else None
    if postcode and shape is None:
        problem("home_postcode", "not blank and not a UK postcode shape (like AA9A 9AA)")
    elif shape is not None:
        postcode = f"{shape[1]} {shape[2]}"

    summary, reason = clean_text(row["summary"], max_length=SUMMARY_MAX, multiline=True)
    if reason:
        problem("summary", reason)

    if problems or occurred is None or reported is None or dob is None:
        return None
    try:
        return Envelope.model_validate(
            {
                "message_id": deterministic_id("police", force, ref, given, family, dob.isoformat()),
                "correlation_id": deterministic_id("incident", force, ref),
                "kind": "notification.encompass",
                "sender_org": f"police:{force}",
                "sender_local_id": ref,
                "produced_at": now,
                "subject": {"given_name": given, "family_name": family, "date_of_birth": dob},
                "lawful_basis": {
                    "article6": Article6Basis.LEGAL_OBLIGATION,
                    "statutory_power": StatutoryPower.ENCOMPASS_DUTY,
                },
                "classification": Classification.OFFICIAL_SENSITIVE,
                "payload": {
                    "kind": "notification.encompass",
                    "police_reference": ref,
                    "force": force,
                    "occurred_at": occurred,
                    "reported_at": reported,
                    "child_present": ChildPresent(present),
                    "school_urn": urn,
                    "home_postcode": postcode,
                    "summary_for_school": summary,
                },
            }
        )
    except ValidationError as exc:
        problems.extend(_contract_problems(line, exc))
        return None


def _contract_problems(line: int, exc: ValidationError) -> list[RowProblem]:
    """Pydantic errors as row problems naming the CSV column. ``msg`` never carries the input
    (it describes the constraint; the contract's own validators do not quote values)."""
    found: list[RowProblem] = []
    for error in exc.errors(include_input=False, include_url=False):
        # A discriminated union puts the payload's kind in the location: drop it.
        loc = tuple(str(part) for part in error["loc"] if part != "notification.encompass")
        column = next((col for key, col in _CONTRACT_FIELDS.items() if loc[: len(key)] == key), "row")
        found.append(RowProblem(line, column, f"rejected by the contract: {error['msg']}"))
    return found


def _parse_time(value: str, tz: ZoneInfo) -> datetime | None:
    value = value.strip()
    if not matches(_DATETIME_START, value):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz)
    try:
        parsed.astimezone(UTC).astimezone(tz)  # years 1 and 9999 can overflow once shifted
    except (OverflowError, ValueError):
        return None
    return parsed


def _parse_date(value: str) -> date | None:
    value = value.strip()
    if not matches(_DATE, value):
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


def _age_on(dob: date, day: date) -> int:
    """Whole years; a 29 February birthday comes round on 1 March in a non-leap year."""
    return day.year - dob.year - ((day.month, day.day) < (dob.month, dob.day))
