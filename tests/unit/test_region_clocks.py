"""Each authority's own clocks (issue 15): an authority folder's clocks.toml changes the deployment's
declared clocks (time, warning, calendar, escalation, or switches one off), every mistake is named by file
and field, and the clocks projection runs each clock as the authority of its message runs it, on that
authority's school calendar. Pure: the projection writes into an in-memory fake of its transaction.
"""

from __future__ import annotations

import shutil
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import PolicyError
from mash_broker.core.area_files import load_region
from mash_broker.core.areas import Region
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.declared import DeclaredClocks, load_clocks, parse_clocks
from mash_broker.core.clocks.projection import ClockProjection
from mash_broker.core.policy import load_policy
from mash_broker.core.records import EventRecord
from mash_broker.demo.areas import AREAS_DIR

TZ = ZoneInfo("Europe/London")
FRIDAY_15 = datetime(2026, 11, 20, 15, 0, tzinfo=TZ)  # 998 is closed on Monday 23 November (INSET), 999 open
SHIPPED = load_clocks(None)


def region_in(folder: Path, clocks: DeclaredClocks | None = None) -> Region:
    return load_region(
        folder,
        policy=load_policy(None, REGISTRY.policy_kinds),
        calendar=load_calendar(None),
        notify_by=time(10, 0),
        school_day_starts=time(8, 30),
        kinds=REGISTRY.policy_kinds,
        clocks=clocks,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(AREAS_DIR, tmp_path / "areas", ignore=shutil.ignore_patterns("__*")))


def clock(area: Any, name: str) -> Any:
    return next(c for c in area.clocks if c.name == name)


def test_the_demo_authority_has_its_own_decision_clock_and_the_other_the_deployments() -> None:
    region = region_in(AREAS_DIR)
    south = region.areas["998"]
    decision = clock(south, "contact_decision")
    assert (decision.hours, decision.warn_before_hours, decision.escalate_to) == (8, 2, "mash:998")
    assert decision.start == clock(SHIPPED, "contact_decision").start  # what starts and stops it is the region's
    assert clock(south, "encompass_read").due_field == "notify_by"  # kept: only its warning and escalation differ
    assert clock(south, "encompass_read").warn_before_hours == 2
    assert [c.name for c in south.clocks or ()] == [c.name for c in SHIPPED.clocks]
    assert south.clocks_source.endswith("998/clocks.toml")
    assert region.areas["999"].clocks is None  # the deployment's as they are


def test_a_duration_replaces_the_declared_one_and_remove_switches_a_clock_off(copy: Path) -> None:
    (copy / "999" / "clocks.toml").write_text(
        'remove = ["initial_child_protection_conference"]\n'
        '[[clock]]\nname = "contact_decision"\nworking_days = 1\ncalendar = "school_days"\n'
    )
    north = region_in(copy).areas["999"]
    decision = clock(north, "contact_decision")
    assert (decision.hours, decision.working_days, decision.calendar.value) == (None, 1, "school_days")
    assert "initial_child_protection_conference" not in {c.name for c in north.clocks or ()}


def test_an_authority_changes_the_deployments_clocks_not_the_shipped_ones(copy: Path) -> None:
    """MASH_CLOCKS_FILE is the base an authority's changes are made to."""
    own = parse_clocks(
        '[[clock]]\nname = "contact_decision"\nstart = { event = "message.received", kind = "contact" }\n'
        'stop = { event = "decision.made" }\nhours = 12\nescalate_to = "mash:team-manager"\n',
        source="deployment.toml",
    )
    (copy / "998" / "clocks.toml").write_text(
        '[[clock]]\nname = "contact_decision"\nhours = 8\nescalate_to = "mash:998"\n'
    )
    south = region_in(copy, own).areas["998"]
    assert [(c.name, c.hours, c.escalate_to) for c in south.clocks or ()] == [("contact_decision", 8, "mash:998")]
    (copy / "998" / "clocks.toml").write_text('[[clock]]\nname = "encompass_read"\nhours = 1\n')
    with pytest.raises(PolicyError) as raised:
        region_in(copy, own)
    assert raised.value.field == "clock[0].name"
    assert "'encompass_read' is not (one of the declared clocks: contact_decision)" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "field", "says"),
    [
        ("not toml = = 1", None, "not valid TOML"),
        ("hours = 8", "hours", "not a key of an authority's clocks (clock, remove)"),
        ('[[clock]]\nname = "contact_decisions"\nhours = 8', "clock[0].name", "'contact_decisions' is not"),
        ("[[clock]]\nhours = 8", "clock[0].name", "clock[0].name: required"),
        ('[[clock]]\nname = "contact_decision"\nhours = -8', "clock[0].hours", "greater than 0"),
        ('[[clock]]\nname = "contact_decision"\nwarn_before_hours = "two"', "clock[0].warn_before_hours", "number"),
        ('[[clock]]\nname = "contact_decision"\ncalendar = "term_days"', "clock[0].calendar", "school_days"),
        ('[[clock]]\nname = "contact_decision"\nescalate_to = "the boss"', "clock[0].escalate_to", "pattern"),
        ('[[clock]]\nname = "contact_decision"\nhours = 8\nworking_days = 2', "clock[0]", "exactly one of"),
        (
            '[[clock]]\nname = "contact_decision"\nstart = { event = "message.received" }',
            "clock[0].start",
            "what starts and stops it is the region's",
        ),
        ('[[clock]]\nname = "delivery_ack_school"\nreport = "alert"', "clock[0].report", "what starts and stops"),
        ('[[clock]]\nname = "contact_decision"\n[[clock]]\nname = "contact_decision"', "clock[1].name", "twice"),
        ('remove = ["contact_decision", "no_such_clock"]', "remove[1]", "no declared clock 'no_such_clock'"),
        ('remove = "contact_decision"', "remove", "a list of clock names"),
        ('clock = "contact_decision"', "clock", "[[clock]] tables"),
    ],
)
def test_each_mistake_in_an_authoritys_clocks_is_named_by_file_and_field(
    copy: Path, text: str, field: str | None, says: str
) -> None:
    (copy / "998" / "clocks.toml").write_text(text)
    with pytest.raises(PolicyError) as raised:
        region_in(copy)
    assert raised.value.record == str(copy / "998" / "clocks.toml")
    assert raised.value.field == field
    assert says in str(raised.value)


# -- the projection: each clock as its message's authority runs it ------------------------------------


class FakeTx:
    """What the clocks projection asks of its transaction, in memory: clocks, events, decisions' areas."""

    def __init__(self, areas: dict[str, tuple[str, ...]] | None = None) -> None:
        self.areas = areas or {}
        self.started: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def start_clock(self, **row: Any) -> bool:
        key = f"{row['name']}/{row['subject_id']}"
        if key in self.started:
            return False
        self.started[key] = row
        return True

    async def event(self, event_type: str, message_id: Any, at: datetime, **detail: Any) -> None:
        self.events.append((event_type, detail))

    async def decision_areas(self, message_id: str) -> tuple[str, ...]:
        return self.areas.get(message_id, ())

    async def stop_clock(self, clock_id: uuid.UUID, at: datetime) -> datetime | None:
        return None


def event(event_type: str, message_id: str, at: datetime, **detail: Any) -> EventRecord:
    return EventRecord(seq=1, at=at, event_type=event_type, message_id=message_id, detail=detail, leaf_hash="")


def projection(region: Region | None, clocks: DeclaredClocks = SHIPPED) -> ClockProjection:
    return ClockProjection(clocks.clocks, load_calendar(None), TZ, region)


def contact(mid: str) -> EventRecord:
    return event("message.received", mid, FRIDAY_15, kind="contact", sender_org="school:900003")


async def test_a_contact_decided_under_an_authority_runs_that_authoritys_decision_clock() -> None:
    tx = FakeTx({"south": ("998",), "north": ("999",), "nobody": ()})
    run = projection(region_in(AREAS_DIR))
    for mid in ("south", "north", "nobody"):
        await run.apply(tx, contact(mid))  # type: ignore[arg-type]
    south, north, nobody = (tx.started[f"contact_decision/{m}"] for m in ("south", "north", "nobody"))
    assert (south["due_at"], south["warn_at"]) == (FRIDAY_15 + timedelta(hours=8), FRIDAY_15 + timedelta(hours=6))
    assert south["escalate_to"] == "mash:998"
    assert north["due_at"] == nobody["due_at"] == FRIDAY_15.astimezone(UTC) + timedelta(hours=24)
    assert north["escalate_to"] == nobody["escalate_to"] == "mash:team-manager"
    started = {d["clock_id"]: d.get("area") for t, d in tx.events if t == "clock.started"}
    assert sorted(started.values(), key=str) == ["998", "999", None]  # the audited log says whose clock it is


async def test_a_message_of_two_authorities_gets_the_earlier_deadline() -> None:
    tx = FakeTx({"both": ("999", "998")})
    await projection(region_in(AREAS_DIR)).apply(tx, contact("both"))  # type: ignore[arg-type]
    row = tx.started["contact_decision/both"]
    assert (row["due_at"], row["escalate_to"]) == (FRIDAY_15 + timedelta(hours=8), "mash:998")


async def test_a_delivery_runs_the_clocks_of_the_authority_that_released_it() -> None:
    tx = FakeTx()
    run = projection(region_in(AREAS_DIR))
    notify_by = datetime(2026, 11, 24, 10, 0, tzinfo=TZ)
    for did, area in (("d-south", "998"), ("d-north", "999")):
        queued = event(
            "delivery.queued", "m", FRIDAY_15, delivery_id=did, recipient="school:1", notify_by=notify_by.isoformat()
        )
        queued.detail["area"] = area
        await run.apply(tx, queued)  # type: ignore[arg-type]
    assert tx.started["encompass_read/d-south"]["warn_at"] == notify_by - timedelta(hours=2)
    assert tx.started["encompass_read/d-south"]["escalate_to"] == "mash:998"
    assert tx.started["encompass_read/d-north"]["warn_at"] == notify_by - timedelta(hours=1)
    assert tx.started["delivery_ack_school/d-south"]["due_at"] == FRIDAY_15.astimezone(UTC) + timedelta(minutes=30)


async def test_school_days_are_counted_on_the_authoritys_own_calendar(copy: Path) -> None:
    days = parse_clocks(
        '[[clock]]\nname = "one_school_day"\nstart = { event = "message.received", kind = "contact" }\n'
        'stop = { event = "decision.made" }\nworking_days = 1\ncalendar = "school_days"\n'
        'escalate_to = "mash:team-manager"\n',
        source="deployment.toml",
    )
    (copy / "998" / "clocks.toml").unlink()  # its changes name the shipped clocks; this deployment has one
    tx = FakeTx({"south": ("998",), "north": ("999",)})
    run = projection(region_in(copy, days), days)
    for mid in ("south", "north"):
        await run.apply(tx, contact(mid))  # type: ignore[arg-type]
    assert tx.started["one_school_day/north"]["due_at"] == datetime(2026, 11, 23, 15, 0, tzinfo=TZ)
    assert tx.started["one_school_day/south"]["due_at"] == datetime(2026, 11, 24, 15, 0, tzinfo=TZ)  # INSET Monday


async def test_a_clock_an_authority_removed_does_not_start_for_it(copy: Path) -> None:
    (copy / "998" / "clocks.toml").write_text('remove = ["contact_decision"]\n')
    tx = FakeTx({"south": ("998",), "both": ("998", "999")})
    run = projection(region_in(copy))
    await run.apply(tx, contact("south"))  # type: ignore[arg-type]
    await run.apply(tx, contact("both"))  # type: ignore[arg-type]
    assert "contact_decision/south" not in tx.started
    assert tx.started["contact_decision/both"]["escalate_to"] == "mash:team-manager"  # 999 still runs it


async def test_outside_a_region_nothing_changes() -> None:
    tx = FakeTx({"m": ("998",)})
    await projection(None).apply(tx, contact("m"))  # type: ignore[arg-type]
    assert tx.started["contact_decision/m"]["due_at"] == FRIDAY_15.astimezone(UTC) + timedelta(hours=24)
    assert all("area" not in d for _, d in tx.events)
