"""School calendar: weekends, England bank holidays and an area's local closures."""

from __future__ import annotations

import tomllib
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path

import holidays
from pydantic import BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

from mash_broker.contracts.errors import PolicyError

MAX_CLOSURE_DAYS = 366
DEFAULT_AREA = "default"


@lru_cache(maxsize=32)
def bank_holidays(year: int) -> frozenset[date]:
    """England bank holidays for one year, substitute days included."""
    return frozenset(holidays.country_holidays("GB", subdiv="ENG", years=year))


@dataclass(frozen=True)
class SchoolCalendar:
    """When schools in one area are open."""

    tz: zoneinfo.ZoneInfo
    closures: frozenset[date]
    area: str

    def is_school_day(self, d: date) -> bool:
        """Monday to Friday, not an England bank holiday, not a local closure."""
        if isinstance(d, datetime):
            raise TypeError("is_school_day takes a date, not a datetime")
        return d.weekday() < 5 and d not in bank_holidays(d.year) and d not in self.closures


class _Closure(BaseModel, frozen=True, extra="forbid"):
    """One `[[closure]]` table: an inclusive range of days the schools are shut."""

    start: date = Field(alias="from")
    end: date | None = Field(default=None, alias="to")
    reason: str = ""

    @field_validator("end")
    @classmethod
    def _end_not_before_start(cls, end: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("start")
        if end is None or start is None:
            return end
        if end < start:
            raise ValueError(f"'to' ({end}) is before 'from' ({start})")
        days = (end - start).days + 1
        if days > MAX_CLOSURE_DAYS:
            raise ValueError(f"range of {days} days is longer than {MAX_CLOSURE_DAYS}")
        return end

    def days(self) -> frozenset[date]:
        """Every day the closure covers."""
        end = self.end or self.start
        return frozenset(self.start + timedelta(n) for n in range((end - self.start).days + 1))


class _CalendarFile(BaseModel, frozen=True, extra="forbid"):
    """The whole calendar file."""

    area: str = Field(min_length=1)
    tz: str | None = None
    closure: tuple[_Closure, ...] = ()


def _field_name(loc: tuple[int | str, ...]) -> str:
    """("closure", 2, "to") -> "closure[2].to"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _describe(error: ErrorDetails) -> str:
    return f"{_field_name(error['loc']) or '<file>'}: {error['msg']}"


def _zone(name: str, record: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise PolicyError(f"unknown time zone {name!r}", record=record, field="tz") from exc


def load_calendar(path: Path | None, tz: str = "Europe/London") -> SchoolCalendar:
    """Read an area's calendar file; None gives weekends and bank holidays only.

    A `tz` key in the file wins over the `tz` argument, which is the default.
    """
    if path is None:
        return SchoolCalendar(tz=_zone(tz, "<default calendar>"), closures=frozenset(), area=DEFAULT_AREA)
    record = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read calendar file: {exc.strerror or exc}", record=record) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=record) from exc
    try:
        spec = _CalendarFile.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        raise PolicyError(
            "; ".join(_describe(e) for e in errors),
            record=record,
            field=_field_name(errors[0]["loc"]) or None,
        ) from exc
    closures: frozenset[date] = frozenset().union(*(c.days() for c in spec.closure))
    return SchoolCalendar(tz=_zone(spec.tz or tz, record), closures=closures, area=spec.area)
