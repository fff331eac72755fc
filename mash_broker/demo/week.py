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

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.education.inbox import receive_delivery, record_read
from mash_broker.agencies.health import HEALTH_INBOUND
from mash_broker.agencies.police import POLICE_NOTIFICATIONS
from mash_broker.agencies.police.export import EXPORT_COLUMNS, parse_export
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app import commands
from mash_broker.consent_gate import Policy
from mash_broker.contracts import Envelope
from mash_broker.core import views
from mash_broker.core.clocks import SchoolCalendar, encompass_deadline, load_calendar
from mash_broker.core.clocks.declared import load_clocks
from mash_broker.core.clocks.keeper import ClockKeeper
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import delivery_id, encode
from mash_broker.core.policy import load_policy
from mash_broker.core.report import front_door_report
from mash_broker.core.settings import Settings
from mash_broker.demo.data import DEMO_DIR
from mash_broker.storage import Ledger

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
class PlannedContact:
    """A contact to the MASH, whether it is complete, and when (if ever) the MASH decides it."""

    sent_at: datetime
    complete: bool
    decided_at: datetime | None
    outcome_received_at: datetime | None = None  # when the referrer's system took the outcome


@dataclass
class PlannedS47:
    """A s47 report request to a GP practice and when (if ever) the practice answers it."""

    practice: str
    sent_at: datetime
    answer_by: datetime
    answered_at: datetime | None


@dataclass
class Truth:
    """What the week was planned to contain, for the report to be checked against."""

    start: datetime
    end: datetime
    notifications: list[Planned] = field(default_factory=list)
    malformed: list[datetime] = field(default_factory=list)  # when each was sent
    unconsented_referrals: list[datetime] = field(default_factory=list)
    contacts: list[PlannedContact] = field(default_factory=list)
    s47_requests: list[PlannedS47] = field(default_factory=list)

    def within(self, moments: list[datetime]) -> int:
        return sum(self.start <= m < self.end for m in moments)

    def encompass(self, tz: ZoneInfo) -> dict[tuple[str, str], dict[str, int]]:
        """Per (deadline day, school): the report's Encompass counts, from the plan alone."""
        out: dict[tuple[str, str], dict[str, int]] = {}
        for p in self.notifications:
            if not (p.known and p.school and p.deadline and self.start <= p.deadline < self.end):
                continue
            row = out.setdefault(
                (p.deadline.astimezone(tz).date().isoformat(), p.school),
                dict.fromkeys(
                    (
                        "notifications",
                        "delivered_on_time",
                        "delivered_late",
                        "not_delivered",
                        "read_on_time",
                        "read_late",
                        "not_read",
                    ),
                    0,
                ),
            )
            row["notifications"] += 1
            got, seen = p.received_at, p.read_at
            row["not_delivered" if got is None else "delivered_on_time" if got <= p.deadline else "delivered_late"] += 1
            row["not_read" if seen is None else "read_on_time" if seen <= p.deadline else "read_late"] += 1
        return out

    def contact_figures(self, tz: ZoneInfo) -> dict[str, dict[str, int]]:
        """Per day received: the report's contact counts, from the plan alone."""
        out: dict[str, dict[str, int]] = {}
        for c in self.contacts:
            if not self.start <= c.sent_at < self.end:
                continue
            row = out.setdefault(
                c.sent_at.astimezone(tz).date().isoformat(),
                dict.fromkeys(
                    ("contacts", "flagged_incomplete", "decided_within_24h", "decided_late", "not_decided"), 0
                ),
            )
            row["contacts"] += 1
            row["flagged_incomplete"] += not c.complete
            row[
                "not_decided"
                if c.decided_at is None
                else "decided_within_24h"
                if c.decided_at - c.sent_at <= timedelta(hours=24)
                else "decided_late"
            ] += 1
        return out

    def outcome_figures(self, tz: ZoneInfo) -> dict[str, dict[str, int]]:
        """Per day recorded: outcomes, fed back to the referrer (every one), received by its system."""
        out: dict[str, dict[str, int]] = {}
        for c in self.contacts:
            if c.decided_at is not None and self.start <= c.decided_at < self.end:
                row = out.setdefault(
                    c.decided_at.astimezone(tz).date().isoformat(),
                    dict.fromkeys(("outcomes", "fed_back_to_referrer", "received_by_referrer"), 0),
                )
                row["outcomes"] += 1
                row["fed_back_to_referrer"] += 1
                row["received_by_referrer"] += c.outcome_received_at is not None
        return out

    def s47_figures(self) -> dict[str, dict[str, int]]:
        """Per practice, requests made in the week and their status at its end."""
        out: dict[str, dict[str, int]] = {}
        for r in self.s47_requests:
            if not self.start <= r.sent_at < self.end:
                continue
            row = out.setdefault(
                r.practice, dict.fromkeys(("requests", "answered_on_time", "answered_late", "overdue", "awaiting"), 0)
            )
            row["requests"] += 1
            got = r.answered_at if r.answered_at is not None and r.answered_at < self.end else None
            row[
                "answered_on_time"
                if got is not None and got <= r.answer_by
                else "answered_late"
                if got is not None
                else "overdue"
                if r.answer_by < self.end
                else "awaiting"
            ] += 1
        return out

    def referred(self) -> dict[str, int]:
        """Referrals to the MASH queue sent within the week, by reason."""
        sent = [p for p in self.notifications if p.sent_at and self.start <= p.sent_at < self.end]
        return {
            "school_not_given": sum(p.school is None for p in sent),
            "school_not_in_directory": sum(p.school is not None and not p.known for p in sent),
        }


Action = tuple[datetime, int, Callable[[], Awaitable[object]]]
At = Callable[[datetime, Callable[[], Awaitable[object]]], None]
S47_BASIS = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}
PRACTICES = ("gp:A12345", "gp:B67890")


async def synthetic_week(
    ledger: Ledger,
    *,
    monday: date,
    tz: ZoneInfo,
    calendar: SchoolCalendar,
    policy: Policy,
    notify_by: time = time(10, 0),
    school_day_starts: time = time(8, 30),
    seed: int = 2026,
) -> Truth:
    """Run a week (``monday`` 00:00 to the next Monday 00:00, local) through the gate into ``ledger``."""
    rng = random.Random(seed)  # noqa: S311 -- synthetic data, reproducible from the seed; no secrets
    start = datetime.combine(monday, time(0, 0), tz)
    truth = Truth(start=start, end=start + timedelta(days=7))
    clock = [start]
    gate = GateContext(
        ledger=ledger,
        policy=policy,
        calendar=calendar,
        notify_by=notify_by,
        school_day_starts=school_day_starts,
        clock=lambda: clock[0],
        registry=REGISTRY,
        consent_settle=timedelta(0),
    )
    keeper = ClockKeeper(
        ledger, load_clocks(None).clocks, calendar, lambda: clock[0], tz=tz, delivery_topic=REGISTRY.delivery_topic
    )
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
                plan.deadline = encompass_deadline(
                    occurred, calendar, notify_by=notify_by, school_day_starts=school_day_starts
                )
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
            # A contact too (to early help, with no identifier for the child): flagged, never decided.
            truth.contacts.append(PlannedContact(sent_at=sent, complete=False, decided_at=None))
            at(sent, _send(gate, _unconsented_referral(sent, rng), EDUCATION_INBOUND))

    for weekday in range(5):
        morning = datetime.combine(monday + timedelta(days=weekday), time(9, 0), tz)
        for _ in range(rng.randint(2, 5)):
            _plan_contact(rng, truth, gate, morning + timedelta(minutes=rng.randint(0, 7 * 60)), at, ledger=ledger)
        for _ in range(rng.randint(1, 2)):
            _plan_s47(rng, truth, gate, morning + timedelta(minutes=rng.randint(0, 6 * 60)), at)

    for plan in truth.notifications:
        if plan.received_at is not None:
            at(plan.received_at, _receive(ledger, clock, plan))
        if plan.read_at is not None:
            at(plan.read_at, _read(ledger, clock, plan))
    for when, _, act in sorted(actions, key=lambda a: (a[0], a[1])):
        clock[0] = when
        await act()
    await keeper.catch_up()  # the clocks follow the audited log: started and stopped at their events' times
    return truth


def _export_row(rng: random.Random, day: int, n: int, occurred: datetime, urn: str | None, tz: ZoneInfo) -> list[str]:
    local = occurred.astimezone(tz).replace(tzinfo=None)
    age = rng.randint(4, 15)
    row = {
        "incident_ref": f"WEEK/{day}/{n:03d}",
        "occurred_at": local.isoformat(timespec="seconds"),
        "reported_at": (local + timedelta(minutes=15)).isoformat(timespec="seconds"),
        "force": "examplepolice",
        "incident_type": "domestic_abuse",
        "child_given_name": rng.choice(GIVEN),
        "child_family_name": rng.choice(FAMILY),
        "child_dob": date(2026 - age, rng.randint(1, 12), 10).isoformat(),
        "child_present": rng.choice(("yes", "no", "unknown")),
        "school_urn": urn or "",
        "home_postcode": f"ZZ99 {rng.randint(1, 9)}AA",
        "summary": "Synthetic incident for the weekly figures.",
    }
    return [row[c] for c in EXPORT_COLUMNS]


def _plan_school_side(rng: random.Random, plan: Planned, ingest_at: datetime, key_adults: list[str]) -> None:
    assert plan.deadline is not None
    roll = rng.random()
    if roll < 0.05:
        return  # the school's system never takes it
    # Most arrive within minutes of the gate's decision; a few after the deadline (a system outage).
    plan.received_at = (
        plan.deadline + timedelta(minutes=rng.randint(5, 180))
        if roll < 0.12
        else ingest_at + timedelta(minutes=rng.randint(1, 20))
    )
    if plan.received_at < ingest_at:  # an incident after 07:00's export is not in it: not before ingest
        plan.received_at = ingest_at + timedelta(minutes=1)
    read = rng.random()
    if read < 0.15:
        return  # nobody reads it
    after = max(plan.received_at, plan.deadline - timedelta(minutes=rng.randint(10, 120)))
    plan.read_at = (
        plan.received_at + timedelta(minutes=rng.randint(1, 30))
        if read < 0.75
        else after + timedelta(hours=rng.randint(1, 6))
    )
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
            await process_inbound(gate, encode(env).encode(), POLICE_NOTIFICATIONS)

    return act


def _send_malformed(gate: GateContext, day: int) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        raw = f'{{"message_id": "{uuid.UUID(int=day + 1)}", "sender_org": "police:examplepolice"}}'.encode()
        await process_inbound(gate, raw, POLICE_NOTIFICATIONS)

    return act


def _send(gate: GateContext, message: Envelope, topic: str) -> Callable[[], Awaitable[object]]:
    async def act() -> None:
        await process_inbound(gate, encode(message).encode(), topic)

    return act


def _unconsented_referral(now: datetime, rng: random.Random) -> Envelope:
    """A school's early-help referral resting on consent, with no consent on record: withheld."""
    return _message(
        rng,
        now,
        "school:900001",
        {
            "kind": "contact",
            "referrer_name": "Ms Example",
            "referrer_role": "DSL",
            "what_happened": "Synthetic concern.",
            "worried_about": "Synthetic worry.",
            "consent_sought": True,
            "consent_given": True,
        },
        subject=_child(rng),
        lawful_basis={"article6": "consent"},
        purpose="early_help",
        recipients=["early_help:team-north"],
    )


def _receive(ledger: Ledger, clock: list[datetime], plan: Planned) -> Callable[[], Awaitable[object]]:
    assert plan.delivery_id is not None
    assert plan.received_at is not None
    return _take(ledger, plan.delivery_id, plan.received_at)


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
        truth = await synthetic_week(
            ledger,
            monday=WEEK_OF,
            tz=tz,
            calendar=load_calendar(settings.school_calendar, settings.timezone),
            policy=load_policy(settings.policy_file).policy,
            notify_by=settings.notify_by,
            school_day_starts=settings.school_day_starts,
        )
        figures = await front_door_report(ledger, truth.start, truth.end, tz)
    finally:
        await ledger.close()
    out.rule("MASH Broker: a synthetic week of front-door traffic, and its figures")
    out.print(
        f"data: {data_dir}; {len(truth.notifications)} notifications, {len(truth.malformed)} malformed "
        f"records and {len(truth.unconsented_referrals)} referrals without consent, through the gate",
        markup=False,
    )
    out.print(
        f"again: MASH_DATA_DIR={data_dir} mash report --from {truth.start.date()} --to {truth.end.date()}", markup=False
    )
    for section in figures.sections:
        out.print(views.rows_table(section.title, list(section.columns), [list(r) for r in section.rows]))
    return 0


def _child(rng: random.Random) -> dict[str, str]:
    return {
        "given_name": rng.choice(GIVEN),
        "family_name": rng.choice(FAMILY),
        "date_of_birth": date(2026 - rng.randint(2, 15), rng.randint(1, 12), 14).isoformat(),
    }


def _message(
    rng: random.Random, sent: datetime, sender: str, payload: dict[str, object], **envelope: object
) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.UUID(int=rng.getrandbits(128)),
            "kind": payload["kind"],
            "sender_org": sender,
            "correlation_id": uuid.UUID(int=rng.getrandbits(128)),
            "produced_at": sent,
            "payload": payload,
            **envelope,
        }
    )


def _plan_contact(
    rng: random.Random, truth: Truth, gate: GateContext, sent: datetime, at: At, *, ledger: Ledger
) -> None:
    """A contact to the hub from the police or a school; most complete, some without what the referrer is
    worried about; the MASH decides most within 24 hours, some later, a few not this week. A school's
    system takes the outcome minutes later; the police have no receiving system here yet."""
    complete = rng.random() < 0.75
    roll = rng.random()
    decided = (
        None
        if roll < 0.1
        else sent + timedelta(hours=rng.randint(25, 40))
        if roll < 0.3
        else sent + timedelta(minutes=rng.randint(30, 23 * 60))
    )
    school = rng.random() < 0.5
    referrer = "school:900002" if school else "police:examplepolice"
    taken = decided + timedelta(minutes=rng.randint(1, 15)) if decided is not None and school else None
    truth.contacts.append(
        PlannedContact(sent_at=sent, complete=complete, decided_at=decided, outcome_received_at=taken)
    )
    child = _child(rng)
    contact = _message(
        rng,
        sent,
        referrer,
        {
            "kind": "contact",
            "referrer_name": "Synthetic Referrer",
            "referrer_role": "DSL" if school else "Officer",
            "what_happened": "Synthetic incident.",
            "worried_about": "Synthetic worry." if complete else "",
            "consent_sought": False,
        },
        subject={**child, "identifiers": [{"scheme": "nhs_number", "value": "9990000018"}]},
        lawful_basis=S47_BASIS,
        recipients=["mash:hub"],
    )
    inbound = EDUCATION_INBOUND if school else POLICE_NOTIFICATIONS
    at(sent, _send(gate, contact, inbound))
    if decided is None:
        return
    outcome = _message(
        rng,
        decided,
        "la:999",
        {
            "kind": "outcome",
            "contact_message_id": str(contact.message_id),
            "decision": rng.choice(("no_further_action", "information_and_advice", "early_help", "child_in_need_s17")),
            "rationale": "Synthetic rationale.",
            "decided_at": decided.isoformat(),
        },
        subject=child,
        lawful_basis=S47_BASIS,
        correlation_id=str(contact.correlation_id),
    )
    at(decided, _send(gate, outcome, EDUCATION_INBOUND))
    if taken is not None:
        at(taken, _take(ledger, str(delivery_id(outcome.message_id, referrer)), taken))


def _take(ledger: Ledger, delivery: str, now: datetime) -> Callable[[], Awaitable[object]]:
    """The school's system takes a delivery (its system receipt, as from the delivery topic)."""

    async def act() -> None:
        [row] = [d for d in await ledger.all_deliveries() if d.delivery_id == delivery]
        await receive_delivery(ledger, row.envelope.encode(), now)

    return act


def _plan_s47(rng: random.Random, truth: Truth, gate: GateContext, sent: datetime, at: At) -> None:
    """A s47 report request to a practice, due in three days; answered on time, late, or not at all."""
    practice = rng.choice(PRACTICES)
    answer_by = sent + timedelta(days=3)
    roll = rng.random()
    answered = (
        None
        if roll < 0.15
        else answer_by + timedelta(hours=rng.randint(2, 48))
        if roll < 0.4
        else sent + timedelta(hours=rng.randint(2, 60))
    )
    truth.s47_requests.append(PlannedS47(practice=practice, sent_at=sent, answer_by=answer_by, answered_at=answered))
    child = _child(rng)
    request = _message(
        rng,
        sent,
        "la:999",
        {
            "kind": "s47.info_request",
            "questions": "Is the child known to the practice?",
            "answer_by": answer_by.isoformat(),
            "requested_by": "Synthetic Social Worker",
        },
        subject=child,
        lawful_basis=S47_BASIS,
        purpose="child_protection_enquiry",
        recipients=[practice],
        special_category=True,
    )
    at(sent, _send(gate, request, HEALTH_INBOUND))
    if answered is not None:
        report = _message(
            rng,
            answered,
            practice,
            {
                "kind": "s47.gp_report",
                "request_message_id": str(request.message_id),
                "known_to_practice": True,
                "report": "Synthetic report.",
                "author": "Dr Example",
            },
            subject=child,
            lawful_basis=S47_BASIS,
            purpose="child_protection_enquiry",
            recipients=["la:999"],
            special_category=True,
        )
        at(answered, _send(gate, report, HEALTH_INBOUND))
