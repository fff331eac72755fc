"""A synthetic week of front-door traffic, driven through the gate's own handler, with its ground truth.

`mash demo --week` and the report tests use it. Each night of the week the force exports the
evening's domestic abuse incidents (most children at a school in the directory, some at an unknown
school, some with no school); the export is ingested at 07:00; schools' systems receive most
notifications within minutes and some late or never; Key Adults read most of them, some after the
deadline, some not at all. Now and then a sender's system sends a record that is not a contract,
and a school refers a child to early help without the parent's consent on record.

Everything goes through the real code: the police export parser, ``process_inbound`` (decide,
record, outbox, audited events), ``receive_delivery`` and ``record_read``; only Kafka is skipped,
and the clock is the plan's, so a week takes seconds. ``Truth`` is what the generator planned,
counted from its own plan, for tests to hold the report to. All names and data are made up.
"""

from __future__ import annotations

import csv
import io
import random
import tempfile
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from rich.console import Console

from adapters.education.inbox import receive_delivery, record_read
from adapters.police.export import EXPORT_COLUMNS, parse_export
from broker import commands, views
from broker.clocks import SchoolCalendar, encompass_deadline, load_calendar
from broker.gate_service import GateContext, process_inbound
from broker.ledger import Ledger
from broker.messages import delivery_id, encode
from broker.policy import load_policy
from broker.report import front_door_report
from broker.settings import Settings
from consent_gate import Policy
from contracts import Envelope, topics

DEMO_DIR = Path(__file__).resolve().parent.parent / "deploy" / "demo"
GIVEN = ("Ava", "Noah", "Lily", "Max", "Freya", "Theo", "Isla", "Leo", "Maya", "Finn", "Ruby", "Ezra")
FAMILY = ("Test", "Sample", "Example", "Placeholder", "Specimen", "Dummy")
UNKNOWN_SCHOOL = "999999"
WEEK_OF = date(2026, 11, 16)  # the synthetic week: Monday 16 to Sunday 22 November 2026


@dataclass
class Planned:
    """One notification as planned: where it should go, its deadline, and what happens to it."""

    school: str | None  # None: no school given
    known: bool
    delivery_id: str | None = None  # the gate's delivery to the school, when it is known
    sent_at: datetime | None = None  # when the export with it was ingested
    deadline: datetime | None = None
    received_at: datetime | None = None
    read_at: datetime | None = None
    read_by: str | None = None


@dataclass
class Truth:
    """What the week was planned to contain, for the report to be checked against."""

    start: datetime
    end: datetime
    notifications: list[Planned] = field(default_factory=list)
    malformed: list[datetime] = field(default_factory=list)  # when each was sent
    unconsented_referrals: list[datetime] = field(default_factory=list)

    def within(self, moments: list[datetime]) -> int:
        return sum(self.start <= m < self.end for m in moments)

    def encompass(self, tz: ZoneInfo) -> dict[tuple[str, str], dict[str, int]]:
        """Per (deadline day, school): the report's Encompass counts, from the plan alone."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for p in self.notifications:
            if not (p.known and p.school and p.deadline and self.start <= p.deadline < self.end):
                continue
            row = out.setdefault((p.deadline.astimezone(tz).date().isoformat(), p.school), dict.fromkeys(
                ("notifications", "delivered_on_time", "delivered_late", "not_delivered", "read_on_time",
                 "read_late", "not_read"), 0))
            row["notifications"] += 1
            got, seen = p.received_at, p.read_at
            row["not_delivered" if got is None else "delivered_on_time" if got <= p.deadline
                else "delivered_late"] += 1
            row["not_read" if seen is None else "read_on_time" if seen <= p.deadline else "read_late"] += 1
        return out

    def referred(self) -> dict[str, int]:
        """Referrals to the MASH queue sent within the week, by reason."""
        sent = [p for p in self.notifications if p.sent_at and self.start <= p.sent_at < self.end]
        return {"school_not_given": sum(p.school is None for p in sent),
                "school_not_in_directory": sum(p.school is not None and not p.known for p in sent)}


Action = tuple[datetime, int, Callable[[], Awaitable[object]]]


async def synthetic_week(ledger: Ledger, *, monday: date, tz: ZoneInfo, calendar: SchoolCalendar, policy: Policy,
                         notify_by: time = time(10, 0), school_day_starts: time = time(8, 30),
                         seed: int = 2026) -> Truth:
    """Run a week (``monday`` 00:00 to the next Monday 00:00, local) through the gate into ``ledger``."""
    rng = random.Random(seed)  # noqa: S311 -- synthetic data, reproducible from the seed; no secrets
    start = datetime.combine(monday, time(0, 0), tz)
    truth = Truth(start=start, end=start + timedelta(days=7))
    clock = [start]
    gate = GateContext(ledger=ledger, policy=policy, calendar=calendar, notify_by=notify_by,
                       school_day_starts=school_day_starts, clock=lambda: clock[0], consent_settle=timedelta(0))
    loaded = await commands.load_schools(ledger, DEMO_DIR / "schools.csv", start - timedelta(days=1))
    assert loaded.schools, "the demo school directory loads"
    adults: dict[str, list[str]] = {}
    for row in csv.DictReader(io.StringIO((DEMO_DIR / "schools.csv").read_text())):
        adults.setdefault(row["urn"], []).append(row["key_adult_name"])
    schools = sorted(adults)
    actions: list[Action] = []

    def at(when: datetime, act: Callable[[], Awaitable[object]]) -> None:
        actions.append((when, len(actions), act))

    for day in range(7):
        evening = datetime.combine(monday + timedelta(days=day), time(18, 0), tz)
        ingest_at = datetime.combine(monday + timedelta(days=day + 1), time(7, 0), tz)
        rows, plans = [], []
        for n in range(rng.randint(4, 9)):
            occurred = evening + timedelta(minutes=rng.randint(0, 11 * 60))
            roll = rng.random()
            urn = None if roll < 0.06 else UNKNOWN_SCHOOL if roll < 0.14 else rng.choice(schools)
            plan = Planned(school=urn, known=urn in adults)
            if plan.known:
                plan.deadline = encompass_deadline(occurred, calendar, notify_by=notify_by,
                                                   school_day_starts=school_day_starts)
            rows.append(_export_row(rng, day, n, occurred, urn, tz))
            plans.append(plan)
        envelopes = _parse(rows, ingest_at, tz)
        at(ingest_at, _ingest(gate, envelopes))
        for plan, env in zip(plans, envelopes, strict=True):
            plan.sent_at = ingest_at
            truth.notifications.append(plan)
            if plan.known and plan.deadline is not None:
                plan.delivery_id = str(delivery_id(env.message_id, f"school:{plan.school}"))
                _plan_school_side(rng, plan, ingest_at, adults[str(plan.school)])
        if rng.random() < 0.5:
            truth.malformed.append(ingest_at + timedelta(minutes=1))
            at(truth.malformed[-1], _send_malformed(gate, day))
        if rng.random() < 0.5:
            sent = datetime.combine(monday + timedelta(days=day), time(11, 0), tz)
            truth.unconsented_referrals.append(sent)
            at(sent, _send_unconsented_referral(gate, sent, rng))

    for plan in truth.notifications:
        if plan.received_at is not None:
            at(plan.received_at, _receive(ledger, clock, plan))
        if plan.read_at is not None:
            at(plan.read_at, _read(ledger, clock, plan))
    for when, _, act in sorted(actions, key=lambda a: (a[0], a[1])):
        clock[0] = when
        await act()
    return truth


def _export_row(rng: random.Random, day: int, n: int, occurred: datetime, urn: str | None,
                tz: ZoneInfo) -> list[str]:
    local = occurred.astimezone(tz).replace(tzinfo=None)
    age = rng.randint(4, 15)
    row = {
        "incident_ref": f"WEEK/{day}/{n:03d}", "occurred_at": local.isoformat(timespec="seconds"),
        "reported_at": (local + timedelta(minutes=15)).isoformat(timespec="seconds"), "force": "examplepolice",
        "incident_type": "domestic_abuse", "child_given_name": rng.choice(GIVEN),
        "child_family_name": rng.choice(FAMILY), "child_dob": date(2026 - age, rng.randint(1, 12), 10).isoformat(),
        "child_present": rng.choice(("yes", "no", "unknown")), "school_urn": urn or "",
        "home_postcode": f"ZZ99 {rng.randint(1, 9)}AA", "summary": "Synthetic incident for the weekly figures.",
    }
    return [row[c] for c in EXPORT_COLUMNS]


def _plan_school_side(rng: random.Random, plan: Planned, ingest_at: datetime, key_adults: list[str]) -> None:
    assert plan.deadline is not None
    roll = rng.random()
    if roll < 0.05:
        return  # the school's system never takes it
    # Most arrive within minutes of the gate's decision; a few after the deadline (a system outage).
    plan.received_at = (plan.deadline + timedelta(minutes=rng.randint(5, 180)) if roll < 0.12
                        else ingest_at + timedelta(minutes=rng.randint(1, 20)))
    if plan.received_at < ingest_at:  # an incident after 07:00's export is not in it: not before ingest
        plan.received_at = ingest_at + timedelta(minutes=1)
    read = rng.random()
    if read < 0.15:
        return  # nobody reads it
    after = max(plan.received_at, plan.deadline - timedelta(minutes=rng.randint(10, 120)))
    plan.read_at = (plan.received_at + timedelta(minutes=rng.randint(1, 30)) if read < 0.75
                    else after + timedelta(hours=rng.randint(1, 6)))
    plan.read_by = rng.choice(key_adults)


def _parse(rows: list[list[str]], now: datetime, tz: ZoneInfo) -> list[Envelope]:
    """The night's export as the police adapter maps it (one envelope per row, in row order)."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows([EXPORT_COLUMNS, *rows])
    parsed = parse_export(buf.getvalue().encode(), source="synthetic-week.csv", now=now, tz=tz)
    assert not parsed.problems, parsed.problems
    return [p.envelope for p in parsed.accepted]


def _ingest(gate: GateContext, envelopes: list[Envelope]) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        for env in envelopes:
            await process_inbound(gate, encode(env).encode(), topics.POLICE_NOTIFICATIONS)
    return act


def _send_malformed(gate: GateContext, day: int) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        raw = f'{{"message_id": "{uuid.UUID(int=day + 1)}", "sender_org": "police:examplepolice"}}'.encode()
        await process_inbound(gate, raw, topics.POLICE_NOTIFICATIONS)
    return act


def _send_unconsented_referral(gate: GateContext, now: datetime,
                               rng: random.Random) -> Callable[[], Awaitable[object]]:
    message = Envelope.model_validate({
        "message_id": uuid.UUID(int=rng.getrandbits(128)), "kind": "contact", "sender_org": "school:900001",
        "correlation_id": uuid.UUID(int=rng.getrandbits(128)), "produced_at": now,
        "subject": {"given_name": rng.choice(GIVEN), "family_name": rng.choice(FAMILY), "date_of_birth": "2017-02-03"},
        "lawful_basis": {"article6": "consent"}, "purpose": "early_help", "recipients": ["early_help:team-north"],
        "payload": {"kind": "contact", "referrer_name": "Ms Example", "referrer_role": "DSL",
                    "what_happened": "Synthetic concern.", "worried_about": "Synthetic worry.",
                    "consent_sought": True, "consent_given": True},
    })

    async def act() -> None:
        await process_inbound(gate, encode(message).encode(), topics.EDUCATION_INBOUND)
    return act


async def _delivery(ledger: Ledger, plan: Planned) -> dict[str, object]:
    [delivery] = [d for d in await ledger.all_deliveries() if d["delivery_id"] == plan.delivery_id]
    return delivery


def _receive(ledger: Ledger, clock: list[datetime], plan: Planned) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        delivery = await _delivery(ledger, plan)
        await receive_delivery(ledger, str(delivery["envelope"]).encode(), clock[0])
    return act


def _read(ledger: Ledger, clock: list[datetime], plan: Planned) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        assert plan.school is not None
        assert plan.read_by is not None
        assert plan.delivery_id is not None
        await record_read(ledger, plan.school, plan.delivery_id, plan.read_by, clock[0])
    return act


async def run_week_demo(settings: Settings, out: Console, data_dir: Path | None) -> int:
    """`mash demo --week`: the synthetic week into a fresh SQLite ledger, then its report."""
    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="mash-week-"))
    data_dir.mkdir(parents=True, exist_ok=True)
    settings = settings.model_copy(update={"data_dir": data_dir, "database_url": None})
    tz = ZoneInfo(settings.timezone)
    ledger = await Ledger.open(settings.ledger_url)
    try:
        truth = await synthetic_week(ledger, monday=WEEK_OF, tz=tz,
                                     calendar=load_calendar(settings.school_calendar, settings.timezone),
                                     policy=load_policy(settings.policy_file).policy,
                                     notify_by=settings.notify_by, school_day_starts=settings.school_day_starts)
        figures = await front_door_report(ledger, truth.start, truth.end, tz)
    finally:
        await ledger.close()
    out.rule("MASH Broker: a synthetic week of front-door traffic, and its figures")
    out.print(f"data: {data_dir}; {len(truth.notifications)} notifications, {len(truth.malformed)} malformed "
              f"records and {len(truth.unconsented_referrals)} referrals without consent, through the gate",
              markup=False)
    out.print(f"again: MASH_DATA_DIR={data_dir} mash report --from {truth.start.date()} --to {truth.end.date()}",
              markup=False)
    for section in figures.sections:
        out.print(views.rows_table(section.title, list(section.columns), [list(r) for r in section.rows]))
    return 0
