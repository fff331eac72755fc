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


# An authority's own clocks (``<areas dir>/<code>/clocks.toml``): what it may change of a declared clock.
# What starts and stops a clock is the region's (the events are the broker's own, the same for every
# authority); its time, warning, calendar and escalation are the authority's to set.
OVERRIDABLE = frozenset({"hours", "working_days", "due_field", "calendar", "warn_before_hours", "escalate_to", "note"})
_DURATIONS = ("hours", "working_days", "due_field")
_OVERRIDE_KEYS = frozenset({"clock", "remove"})


def load_clock_overrides(path: Path, base: DeclaredClocks) -> DeclaredClocks:
    """An authority's clocks: the deployment's ``base`` with this file's changes. Each ``[[clock]]`` names a
    declared clock and gives only what differs (a duration given replaces the base's, whichever kind it was);
    ``remove`` lists clocks that do not run for this authority. Any problem is a PolicyError naming the file
    and the field."""
    record = str(path)
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the clocks file ({exc})", record=record) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=record) from exc
    if unknown := sorted(raw.keys() - _OVERRIDE_KEYS):
        raise PolicyError(f"{unknown[0]}: not a key of an authority's clocks (clock, remove)", record=record,
                          field=unknown[0])  # fmt: skip
    declared = {spec.name: spec for spec in base.clocks}
    names = ", ".join(declared)
    clocks, removed = _list(raw, "clock", record, dict), _list(raw, "remove", record, str)
    for i, name in enumerate(removed):
        if name not in declared:
            raise PolicyError(f"remove[{i}]: no declared clock {name!r} ({names})", record=record, field=f"remove[{i}]")
    changed: dict[str, ClockSpec] = {}
    for i, table in enumerate(clocks):
        where = f"clock[{i}]"
        name = table.get("name")
        if not isinstance(name, str) or name not in declared:
            said = "required" if name is None else f"{name!r} is not"
            raise PolicyError(
                f"{where}.name: {said} (one of the declared clocks: {names})",
                record=record,
                field=f"{where}.name",
            )
        if name in changed or name in removed:
            raise PolicyError(f"{where}.name: clock {name!r} is changed twice", record=record, field=f"{where}.name")
        if fixed := sorted(table.keys() - OVERRIDABLE - {"name"}):
            raise PolicyError(
                f"{where}.{fixed[0]}: an authority may change a clock's {', '.join(sorted(OVERRIDABLE))}; "
                "what starts and stops it is the region's",
                record=record,
                field=f"{where}.{fixed[0]}",
            )
        merged = base_table = declared[name].model_dump(mode="json", by_alias=True, exclude_defaults=True)
        if any(d in table for d in _DURATIONS):
            merged = {k: v for k, v in base_table.items() if k not in _DURATIONS}
        try:
            changed[name] = ClockSpec.model_validate({**merged, **table})
        except ValidationError as exc:
            first = exc.errors()[0]
            field = _where(first["loc"])
            at = f"{where}.{field}" if field else where
            raise PolicyError(f"{at}: {first['msg']}", record=record, field=at) from exc
    own = tuple(changed.get(spec.name, spec) for spec in base.clocks if spec.name not in removed)
    return DeclaredClocks(own, record)


def _list(raw: dict[str, Any], key: str, record: str, item: type) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, item) for v in value):
        kind = "[[clock]] tables" if item is dict else "a list of clock names"
        raise PolicyError(f"{key}: must be {kind}", record=record, field=key)
    return value
