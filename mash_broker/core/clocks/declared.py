"""Clocks declared as data (`mash_broker/defaults/clocks.toml`): what starts and stops each, how long, who is told.

Pure: parsing and matching only. A problem in the file is a PolicyError naming the field.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import StrEnum
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError, model_validator

from mash_broker import defaults
from mash_broker.contracts import PolicyError

DEFAULT_CLOCKS = defaults.CLOCKS_FILE
_NAME = r"^[a-z][a-z0-9_]{1,63}$"
_EVENT = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"


class CalendarKind(StrEnum):
    """Which days count."""

    WORKING_DAYS = "working_days"  # Monday to Friday, not an England bank holiday
    SCHOOL_DAYS = "school_days"  # working days that are not a local school closure (MASH_SCHOOL_CALENDAR)


class Trigger(BaseModel, frozen=True, extra="forbid"):
    """An audited event that starts or stops a clock, and where its subject is found."""

    event: str = Field(pattern=_EVENT)
    kind: str | None = None  # only events whose detail has this `kind` (e.g. message.received of a contact)
    # Where the subject's message id is: unset, the event's own message id; "payload.<field>", that
    # field of the event's message; otherwise that key of the event's detail.
    subject: str | None = Field(default=None, pattern=r"^(payload\.)?[a-z][a-z0-9_]{0,63}$")
    # Only events whose detail key matches one of these patterns (fnmatch), e.g. { recipient = ["school:*"] }.
    where: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)

    def matches(self, event_type: str, detail: dict[str, Any]) -> bool:
        return (
            event_type == self.event
            and (self.kind is None or detail.get("kind") == self.kind)
            and all(_matches_any(detail.get(key), patterns) for key, patterns in self.where.items())
        )

    @property
    def payload_field(self) -> str | None:
        """The payload field naming the subject, when the subject is read from the message."""
        if self.subject and self.subject.startswith("payload."):
            return self.subject.removeprefix("payload.")
        return None

    def subject_of(self, message_id: str | None, detail: dict[str, Any]) -> str | None:
        """The subject from the event alone (None when it must be read from the payload, or is absent)."""
        if self.subject is None:
            return message_id
        if self.payload_field:
            return None
        value = detail.get(self.subject)
        return str(value) if value else None


class Report(StrEnum):
    """What a warning or breach sends, beyond its audited event."""

    ALERT = "alert"  # a ClockAlert to `escalate_to` (its queue or delivery topic), on warning and breach
    NON_DELIVERY = "non_delivery"  # a delivery clock: on breach, a not_delivered receipt to the original sender


SENDER = "sender"  # escalate_to: the organisation that sent the clock's subject (a delivery's source message)


class ClockSpec(BaseModel, frozen=True, extra="forbid"):
    """One `[[clock]]` table."""

    name: str = Field(pattern=_NAME)
    start: Trigger
    stop: Trigger | tuple[Trigger, ...]  # any of these stops it
    hours: float | None = Field(default=None, gt=0, le=24 * 400)
    working_days: int | None = Field(default=None, gt=0, le=260)
    # The start event's detail key holding the deadline (an ISO time), when the deadline is set per
    # case (a s47 request's own answer_by) or computed where the event is written.
    due_field: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_]{0,63}$")
    calendar: CalendarKind = CalendarKind.WORKING_DAYS
    warn_before_hours: float = Field(default=0, ge=0)
    escalate_to: str = Field(pattern=r"^([a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}|sender)$")
    report: Report = Report.ALERT
    note: str = ""

    @model_validator(mode="after")
    def _one_duration(self) -> ClockSpec:
        if sum(d is not None for d in (self.hours, self.working_days, self.due_field)) != 1:
            raise ValueError("give exactly one of 'hours', 'working_days' or 'due_field'")
        if (self.report is Report.NON_DELIVERY) != (self.escalate_to == SENDER):
            raise ValueError("a non_delivery report goes to escalate_to = 'sender', and only it does")
        return self

    @property
    def stops(self) -> tuple[Trigger, ...]:
        return self.stop if isinstance(self.stop, tuple) else (self.stop,)


class _ClocksFile(BaseModel, frozen=True, extra="forbid"):
    clock: tuple[ClockSpec, ...] = ()


@dataclass(frozen=True)
class DeclaredClocks:
    """The validated clocks file."""

    clocks: tuple[ClockSpec, ...]
    source: str


def _where(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def parse_clocks(text: str, *, source: str) -> DeclaredClocks:
    """Parse and validate a clocks file's text; any problem is a PolicyError naming the field."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=source) from exc
    try:
        spec = _ClocksFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        detail = "; ".join(f"{_where(e['loc']) or '<file>'}: {e['msg']}" for e in errors)
        raise PolicyError(detail, record=source, field=_where(errors[0]["loc"]) or None) from exc
    seen: set[str] = set()
    for i, clock in enumerate(spec.clock):
        if clock.name in seen:
            raise PolicyError(
                f"clock[{i}].name: clock name {clock.name!r} appears twice", record=source, field=f"clock[{i}].name"
            )
        seen.add(clock.name)
    return DeclaredClocks(spec.clock, source)


def _matches_any(value: object, patterns: str | tuple[str, ...]) -> bool:
    options = (patterns,) if isinstance(patterns, str) else patterns
    return value is not None and any(fnmatchcase(str(value), p) for p in options)


def load_clocks(path: Path | None) -> DeclaredClocks:
    """Read and validate a clocks file (the shipped `mash_broker/defaults/clocks.toml` by default)."""
    path = path or DEFAULT_CLOCKS
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the clocks file ({exc})", record=str(path)) from exc
    return parse_clocks(text, source=str(path))
