"""`mash report`: the front door's figures, computed from the audited log alone.

Every figure is a count over ledger events (the Merkle-logged ``events`` table, checked by
``mash audit verify``), never over tables that are updated in place, so anyone holding a verified
export of the log can recompute it. Sections:

- ``encompass``: per school and deadline day, notifications shared, delivered and read before the
  deadline (``delivery.queued`` with its ``notify_by``, ``delivery.received``, ``notification.read``).
- ``not_shared``: shares that did not happen, by what stopped them and why: messages withheld,
  recipients refused, shares withdrawn, messages rejected before a decision (``share.withheld``,
  ``share.not_released``, ``share.withdrawn``, ``message.quarantined``; the decisive reason, which
  is the last of a refusal's reasons).
- ``referred``: messages sent to a person, by queue and reason (``share.referred``).
- ``contacts``: per day received, contacts, flagged incomplete, decided within 24 hours, decided
  late, not decided (``message.received`` of kind contact, ``contact.flagged``, the
  ``contact_decision`` clock's ``clock.stopped``).
- ``outcomes``: per day recorded, the MASH's outcomes, fed back to the referrer, and received by
  the referrer's system (``message.received`` of kind outcome, ``delivery.queued`` under a
  ``referrer-outcome-*`` agreement, ``delivery.received``).
- ``s47_gp_reports``: per GP practice, s47 report requests made in the period and whether each was
  answered on time, late, or not yet (``s47.gp_report_requested``, the first
  ``s47.gp_report_received``).

The period is half-open, ``[start, end)``: Encompass rows by their deadline, the others by when
the event happened. Days are local days in the deployment's time zone.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mash_broker.core.ports import EventSource, LoggedEvent
from mash_broker.core.scope import area_scope, force_scope


@dataclass(frozen=True)
class Section:
    """One table of figures: a name for machines, a title for people, columns and rows."""

    name: str
    title: str
    columns: tuple[str, ...]
    rows: list[tuple[Any, ...]] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True)
class Report:
    start: datetime
    end: datetime
    sections: tuple[Section, ...]
    scope: str | None = None  # "authority 998", "force police:examplepolice"; None: the whole log

    def section(self, name: str) -> Section:
        return next(s for s in self.sections if s.name == name)

    def as_json(self) -> dict[str, Any]:
        return {
            "from": self.start.isoformat(),
            "to": self.end.isoformat(),
            **({"scope": self.scope} if self.scope else {}),
            "sections": {s.name: {"title": s.title, "rows": s.records()} for s in self.sections},
        }

    def as_csv(self) -> str:
        """Each section as its own CSV block (a header row, then its rows), separated by a blank line;
        the first column names the section, so blocks can be split or filtered by it. Text cells are
        made safe to open in a spreadsheet (``spreadsheet_safe``)."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        for n, s in enumerate(self.sections):
            if n:
                buf.write("\n")
            writer.writerow(("section", *s.columns))
            writer.writerows((s.name, *map(spreadsheet_safe, row)) for row in s.rows)
        return buf.getvalue()


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(cell: Any) -> Any:
    """A text cell a spreadsheet would run as a formula (it starts with one of ``FORMULA_STARTS``:
    OWASP's CSV injection list) prefixed with a single quote, so it shows as text; a carriage return
    inside a cell written as a newline, so the cell is quoted and stays one cell. Numbers as they are."""
    if not isinstance(cell, str):
        return cell
    if cell.startswith(FORMULA_STARTS):
        cell = "'" + cell
    return cell.replace("\r\n", "\n").replace("\r", "\n")


ENCOMPASS_COLUMNS = (
    "day",
    "school",
    "notifications",
    "delivered_on_time",
    "delivered_late",
    "not_delivered",
    "read_on_time",
    "read_late",
    "not_read",
)


async def front_door_report(
    ledger: EventSource,
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    *,
    area: str | None = None,
    force: str | None = None,
) -> Report:
    """The figures for ``[start, end)`` from the ledger's events (one authority's or force's, if given)."""
    return report_from_events(await ledger.events(), start, end, tz, area=area, force=force)


def report_from_events(
    events: Iterable[LoggedEvent],
    start: datetime,
    end: datetime,
    tz: ZoneInfo,
    *,
    area: str | None = None,
    force: str | None = None,
) -> Report:
    """The figures from audited-log entries (``event_type``, ``at``, ``message_id``, ``detail``): the
    ledger's events, or the entries of a verified `mash audit export` file. ``area``: only that local
    authority's part of the log; ``force``: only that police force's (``core.scope``)."""
    events = list(events)
    label = None
    for make, key in ((area_scope, area), (force_scope, force)):
        if key is not None:
            scope = make(events, key)
            events, label = scope.select(events), f"{label} and {scope.label}" if label else scope.label
    return Report(
        start,
        end,
        (
            encompass_section(events, start, end, tz),
            contacts_section(events, start, end, tz),
            outcomes_section(events, start, end, tz),
            s47_section(events, start, end),
            not_shared_section(events, start, end),
            referred_section(events, start, end),
        ),
        label,
    )


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def encompass_section(events: Iterable[LoggedEvent], start: datetime, end: datetime, tz: ZoneInfo) -> Section:
    queued: dict[str, tuple[str, datetime]] = {}  # delivery id -> (school, deadline)
    received: dict[str, datetime] = {}
    read: dict[str, datetime] = {}
    for e in events:
        d, kind = e.detail, e.event_type
        if kind == "delivery.queued" and str(d.get("recipient", "")).startswith("school:") and d.get("notify_by"):
            queued[d["delivery_id"]] = (d["recipient"].split(":", 1)[1], _at(d["notify_by"]))
        elif kind == "delivery.received":
            received.setdefault(d["delivery_id"], _at(e.at))
        elif kind == "notification.read":
            read.setdefault(d["delivery_id"], _at(e.at))
    counts: dict[tuple[date, str], Counter[str]] = defaultdict(Counter)
    for delivery_id, (school, deadline) in queued.items():
        if not start <= deadline < end:
            continue
        c = counts[(deadline.astimezone(tz).date(), school)]
        c["notifications"] += 1
        got, seen = received.get(delivery_id), read.get(delivery_id)
        c["not_delivered" if got is None else "delivered_on_time" if got <= deadline else "delivered_late"] += 1
        c["not_read" if seen is None else "read_on_time" if seen <= deadline else "read_late"] += 1
    rows = [
        (day.isoformat(), school, *(counts[(day, school)][col] for col in ENCOMPASS_COLUMNS[2:]))
        for day, school in sorted(counts)
    ]
    return Section(
        "encompass",
        "Operation Encompass: delivered and read before the deadline, per school and day",
        ENCOMPASS_COLUMNS,
        rows,
    )


_NOT_SHARED = {
    "share.withheld": "message withheld",
    "share.not_released": "recipient refused",
    "share.withdrawn": "share withdrawn (consent, or corrected or withdrawn by its sender)",
    "message.quarantined": "message rejected",
}


def not_shared_section(events: Iterable[LoggedEvent], start: datetime, end: datetime) -> Section:
    """Messages withheld, recipients refused (within shared or withheld messages alike), shares stopped
    by a withdrawal, and messages rejected before any decision (a withheld message is quarantined
    too; it is counted once, as withheld)."""
    events = list(events)
    withheld = {e.message_id for e in events if e.event_type == "share.withheld"}
    counts: Counter[tuple[str, str]] = Counter()
    for e in events:
        what = _NOT_SHARED.get(e.event_type)
        if what is None or not start <= _at(e.at) < end:
            continue
        if e.event_type == "message.quarantined" and e.message_id in withheld:
            continue
        d = e.detail
        reasons = d.get("reasons") or [d.get("reason", "unknown")]
        counts[(what, str(reasons[-1]))] += 1
    return Section(
        "not_shared",
        "Shares that did not happen, by what stopped them and why",
        ("what", "reason", "count"),
        [(what, why, n) for (what, why), n in sorted(counts.items())],
    )


def referred_section(events: Iterable[LoggedEvent], start: datetime, end: datetime) -> Section:
    counts: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e.event_type == "share.referred" and start <= _at(e.at) < end:
            counts[(str(e.detail.get("queue")), str(e.detail.get("reason")))] += 1
    return Section(
        "referred",
        "Referred to a person, by queue and reason",
        ("queue", "reason", "count"),
        [(queue, why, n) for (queue, why), n in sorted(counts.items())],
    )


CONTACT_COLUMNS = ("day", "contacts", "flagged_incomplete", "decided_within_24h", "decided_late", "not_decided")


def contacts_section(events: Iterable[LoggedEvent], start: datetime, end: datetime, tz: ZoneInfo) -> Section:
    received: dict[str, datetime] = {}
    flagged: set[str] = set()
    decided: dict[str, bool] = {}  # contact id -> on time
    for e in events:
        kind, d = e.event_type, e.detail
        if kind == "message.received" and d.get("kind") == "contact":
            received.setdefault(str(e.message_id), _at(e.at))
        elif kind == "contact.flagged":
            flagged.add(str(e.message_id))
        elif kind == "clock.stopped" and d.get("clock") == "contact_decision":
            decided.setdefault(str(e.message_id), bool(d.get("on_time")))
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    for contact, at in received.items():
        if not start <= at < end:
            continue
        c = counts[at.astimezone(tz).date()]
        c["contacts"] += 1
        c["flagged_incomplete"] += contact in flagged
        on_time = decided.get(contact)
        c["not_decided" if on_time is None else "decided_within_24h" if on_time else "decided_late"] += 1
    return Section(
        "contacts",
        "Contacts to the MASH: decided within 24 hours, per day received",
        CONTACT_COLUMNS,
        [(day.isoformat(), *(counts[day][col] for col in CONTACT_COLUMNS[1:])) for day in sorted(counts)],
    )


OUTCOME_COLUMNS = ("day", "outcomes", "fed_back_to_referrer", "received_by_referrer")
REFERRER_AGREEMENT = "referrer-outcome-"


def outcomes_section(events: Iterable[LoggedEvent], start: datetime, end: datetime, tz: ZoneInfo) -> Section:
    recorded: dict[str, datetime] = {}
    fed_back: dict[str, str] = {}  # outcome id -> delivery id to the referrer
    received: set[str] = set()
    for e in events:
        kind, d = e.event_type, e.detail
        if kind == "message.received" and d.get("kind") == "outcome":
            recorded.setdefault(str(e.message_id), _at(e.at))
        elif kind == "delivery.queued" and str(d.get("agreement") or "").startswith(REFERRER_AGREEMENT):
            fed_back.setdefault(str(e.message_id), str(d["delivery_id"]))
        elif kind == "delivery.received":
            received.add(str(d["delivery_id"]))
    counts: dict[date, Counter[str]] = defaultdict(Counter)
    for outcome, at in recorded.items():
        if not start <= at < end:
            continue
        c = counts[at.astimezone(tz).date()]
        c["outcomes"] += 1
        delivery = fed_back.get(outcome)
        c["fed_back_to_referrer"] += delivery is not None
        c["received_by_referrer"] += delivery in received
    return Section(
        "outcomes",
        "Outcomes fed back to the referrer, per day recorded",
        OUTCOME_COLUMNS,
        [(day.isoformat(), *(counts[day][col] for col in OUTCOME_COLUMNS[1:])) for day in sorted(counts)],
    )


S47_COLUMNS = ("gp_practice", "requests", "answered_on_time", "answered_late", "overdue", "awaiting")


def s47_section(events: Iterable[LoggedEvent], start: datetime, end: datetime) -> Section:
    """Requests made in the period, by practice; each request's status as at the end of the period."""
    requested: dict[str, tuple[str, datetime]] = {}  # request id -> (practice, answer by)
    answered: dict[str, datetime] = {}  # request id -> first answer
    for e in events:
        kind, d = e.event_type, e.detail
        if kind == "s47.gp_report_requested" and start <= _at(e.at) < end:
            practices = [r for r in d.get("recipients", []) if str(r).startswith("gp:")]
            for practice in practices[:1]:
                requested[str(e.message_id)] = (practice, _at(d["answer_by"]))
        elif kind == "s47.gp_report_received" and d.get("first_answer") and _at(e.at) < end:
            answered.setdefault(str(d["request_message_id"]), _at(e.at))
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for request, (practice, answer_by) in requested.items():
        c = counts[practice]
        c["requests"] += 1
        got = answered.get(request)
        c[
            "answered_on_time"
            if got is not None and got <= answer_by
            else "answered_late"
            if got is not None
            else "overdue"
            if answer_by < end
            else "awaiting"
        ] += 1
    return Section(
        "s47_gp_reports",
        "s47 report requests to GP practices: answered on time, per practice",
        S47_COLUMNS,
        [(p, *(counts[p][col] for col in S47_COLUMNS[1:])) for p in sorted(counts)],
    )
