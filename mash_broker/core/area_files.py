"""Reading a region's configuration: ``MASH_AREAS_DIR`` (or the demo's, shipped as package data).

    <dir>/region.toml              name, forces, and optionally the regional policy, calendar and times
    <dir>/postcode-districts.csv   district,la_code (a district "NE23", or a sector "NE23 7")
    <dir>/<code>/area.toml         the authority's name; optionally its own notify_by, school_day_starts
    <dir>/<code>/policy.toml       optional: its overrides of the regional policy (``core.policy.load_override``)
    <dir>/<code>/school-calendar.toml   optional: its closures (term holidays, INSET days); else the regional
    <dir>/<code>/clocks.toml       optional: its changes to the declared clocks (MASH_CLOCKS_FILE, else the
                                   shipped ones): each clock's time, warning, calendar and escalation, or
                                   ``remove`` (``core.clocks.declared.load_clock_overrides``)

Every problem is a PolicyError naming the file and the field.
"""

from __future__ import annotations

import csv
import io
import tomllib
from collections.abc import Mapping
from datetime import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mash_broker.contracts import PolicyError
from mash_broker.core.agency import Timing
from mash_broker.core.areas import AREA_CODE, Area, Region
from mash_broker.core.clocks import SchoolCalendar, load_calendar
from mash_broker.core.clocks.declared import DeclaredClocks, load_clock_overrides, load_clocks
from mash_broker.core.policy import LoadedPolicy, load_override, load_policy
from mash_broker.core.settings import Settings

REGION_FILE = "region.toml"
AREA_FILE = "area.toml"
CLOCKS_FILE = "clocks.toml"
# A cross-border decision records its two authorities' versions joined by "+" (decisions.policy_version: 64).
MAX_VERSION = 31


class _Times(BaseModel, frozen=True, extra="forbid"):
    notify_by: time | None = None
    school_day_starts: time | None = None


class _RegionFile(_Times, frozen=True, extra="forbid"):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{1,63}$")
    forces: list[str] = []
    policy: str | None = None
    calendar: str | None = None
    postcode_districts: str = "postcode-districts.csv"


class _AreaFile(_Times, frozen=True, extra="forbid"):
    name: str = Field(min_length=1, max_length=100)


def load_region(
    folder: Path,
    *,
    policy: LoadedPolicy,
    calendar: SchoolCalendar,
    notify_by: time,
    school_day_starts: time,
    tz: str = "Europe/London",
    kinds: Mapping[str, type[BaseModel]] | None = None,
    clocks: DeclaredClocks | None = None,
) -> Region:
    """The region in ``folder``. ``policy``, ``calendar``, the times and ``clocks`` are the deployment's
    (MASH_POLICY_FILE, MASH_SCHOOL_CALENDAR, ..., MASH_CLOCKS_FILE; unset ``clocks``: the shipped ones, read
    only if an authority changes them): the regional defaults unless ``region.toml`` names its own."""
    spec = _read(folder / REGION_FILE, _RegionFile)
    assert isinstance(spec, _RegionFile)
    if spec.policy:
        policy = load_policy(folder / spec.policy, kinds)
    if spec.calendar:
        calendar = load_calendar(folder / spec.calendar, tz)
    notify_by = spec.notify_by or notify_by
    school_day_starts = spec.school_day_starts or school_day_starts
    areas: dict[str, Area] = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and AREA_CODE.fullmatch(p.name)):
        own = _read(sub / AREA_FILE, _AreaFile)
        assert isinstance(own, _AreaFile)
        overrides = sub / "policy.toml"
        own_calendar = sub / "school-calendar.toml"
        own_clocks = None
        if (sub / CLOCKS_FILE).exists():
            clocks = clocks or load_clocks(None)
            own_clocks = load_clock_overrides(sub / CLOCKS_FILE, clocks)
        areas[sub.name] = Area(
            code=sub.name,
            name=own.name,
            policy=load_override(overrides, policy, kinds) if overrides.exists() else policy,
            calendar=load_calendar(own_calendar, tz) if own_calendar.exists() else calendar,
            notify_by=own.notify_by or notify_by,
            school_day_starts=own.school_day_starts or school_day_starts,
            clocks=own_clocks.clocks if own_clocks is not None else None,
            clocks_source=own_clocks.source if own_clocks is not None else "",
        )
    if not areas:
        raise PolicyError("no authority folders (<three-digit code>/area.toml)", record=str(folder))
    region = Region(
        name=spec.name,
        policy=policy,
        areas=areas,
        districts=_districts(folder / spec.postcode_districts, areas),
        forces=tuple(spec.forces),
        source=str(folder),
        regional=Timing(calendar, notify_by, school_day_starts),
    )
    for loaded in region.policies:
        if len(loaded.policy.version) > MAX_VERSION:
            raise PolicyError(
                f"version: {loaded.policy.version!r} is longer than {MAX_VERSION} characters "
                "(a cross-border decision records two versions)",
                record=loaded.source,
                field="version",
            )
    return region


def _read(path: Path, model: type[_Times]) -> _Times:
    try:
        raw: dict[str, Any] = tomllib.loads(path.read_text(encoding="utf-8"))
        return model.model_validate(raw)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read {path.name} ({exc})", record=str(path)) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=str(path)) from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(file)"
        raise PolicyError(f"{where}: {first['msg']}", record=str(path), field=where) from exc


def _districts(path: Path, areas: Mapping[str, Area]) -> dict[str, str]:
    """The postcode district (or sector) table: ``district,la_code`` rows, each naming a configured authority."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the postcode district table ({exc})", record=str(path)) from exc
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != ["district", "la_code"]:
        raise PolicyError("columns must be district,la_code", record=str(path), field="header")
    table: dict[str, str] = {}
    for line, row in enumerate(reader, start=2):
        district = " ".join((row["district"] or "").upper().split())
        code = (row["la_code"] or "").strip()
        if not district:
            raise PolicyError(f"line {line}: district: required", record=str(path), field="district")
        if code not in areas:
            raise PolicyError(
                f"line {line}: la_code: {code!r} is not an authority of the region ({', '.join(areas)})",
                record=str(path),
                field="la_code",
            )
        if table.setdefault(district, code) != code:
            raise PolicyError(f"line {line}: district: {district} is given twice", record=str(path), field="district")
    return table


def region_of(
    settings: Settings,
    policy: LoadedPolicy,
    calendar: SchoolCalendar,
    kinds: Mapping[str, type[BaseModel]] | None = None,
) -> Region | None:
    """The region configured by ``MASH_AREAS_DIR`` over the deployment's policy and calendar; None if unset."""
    if settings.areas_dir is None:
        return None
    return load_region(
        settings.areas_dir,
        policy=policy,
        calendar=calendar,
        notify_by=settings.notify_by,
        school_day_starts=settings.school_day_starts,
        tz=settings.timezone,
        kinds=kinds,
        clocks=load_clocks(settings.clocks_file) if _changes_clocks(settings.areas_dir) else None,
    )


def _changes_clocks(folder: Path) -> bool:
    """Whether any authority of the region has its own clocks (the deployment's are read only then)."""
    if not folder.is_dir():
        return False  # load_region says what is wrong with it
    return any(p.is_dir() and AREA_CODE.fullmatch(p.name) and (p / CLOCKS_FILE).exists() for p in folder.iterdir())
