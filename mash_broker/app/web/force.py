"""A police force's own page: what became of the notifications it sent, per local authority of the region.

The force's part of the audited log (``core.scope.force_scope``, selected in SQL by
``storage.reads.force_events``) and nothing else: every notification it sent in the last fortnight, each
school's and each MASH's copy with the authority whose agreement released it, its deadline, when that
recipient's system received it and when a Key Adult read it; a notification referred to a person shows
whose queue it waits in; one the gate withheld says so. The figures per authority are recomputed from the
same entries, so a verified audit export gives the same. No child's name, date of birth, address or
summary is shown: the force's own reference and the message ids only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from mash_broker.core.areas import Region, area_of_queue
from mash_broker.storage import Ledger

FORCE_DAYS = 14
NO_AUTHORITY = "the region (no single authority)"


@dataclass(frozen=True, slots=True)
class ForceLine:
    """One recipient of one notification (or its referral to a person, or its withholding)."""

    id: str  # the delivery id (a referral or a withholding: the message id)
    message_id: str
    reference: str
    received_at: datetime
    area: str | None
    authority: str
    recipient: str
    notify_by: datetime | None
    delivered_at: datetime | None
    read_at: datetime | None
    status: str  # read_on_time, read_late, delivered, received, not_delivered, overdue, referred, withheld, withdrawn


@dataclass(frozen=True, slots=True)
class AuthorityFigures:
    """One authority's part of the force's notifications."""

    code: str | None
    name: str
    notifications: int
    to_schools: int
    schools_received: int
    read_on_time: int
    read_late: int
    to_mash: int
    mash_received: int
    referred: int


@dataclass(frozen=True)
class ForceView:
    force: str
    now: datetime
    since: datetime
    lines: list[ForceLine]
    authorities: list[AuthorityFigures]
    sent: int
    withheld: int
    in_region: bool = False


async def build(ledger: Ledger, force: str, now: datetime, region: Region | None) -> ForceView:
    """Force ``force``'s page (``police:<force>``) at ``now``: its notifications received in the last
    fortnight."""
    events = await ledger.force_events(force)
    refs = {line.message_id: line.sender_local_id or "" for line in await ledger.sender_status(force)}
    return view(events, refs, force, now, region)


def view(events: Any, refs: dict[str, str], force: str, now: datetime, region: Region | None) -> ForceView:
    """The page from the force's audited-log entries (pure)."""
    since = now - timedelta(days=FORCE_DAYS)
    received: dict[str, datetime] = {}
    areas: dict[str, list[str]] = {}
    queued: dict[str, tuple[str, str, str | None, datetime | None]] = {}  # delivery -> message, recipient, area, due
    got: dict[str, datetime] = {}
    read: dict[str, datetime] = {}
    withdrawn: set[str] = set()
    referred: dict[str, str] = {}
    withheld: set[str] = set()
    for e in events:
        d, kind, mid = e.detail, e.event_type, str(e.message_id)
        if kind == "message.received":
            received.setdefault(mid, _at(e.at))
        elif kind == "decision.recorded":
            areas[mid] = [str(a) for a in d.get("areas") or ()]
        elif kind == "delivery.queued":
            due = _at(d["notify_by"]) if d.get("notify_by") else None
            queued[str(d["delivery_id"])] = (mid, str(d.get("recipient", "")), d.get("area"), due)
        elif kind == "delivery.received":
            got.setdefault(str(d["delivery_id"]), _at(e.at))
        elif kind == "notification.read":
            read.setdefault(str(d["delivery_id"]), _at(e.at))
        elif kind == "share.withdrawn" and d.get("delivery_id"):
            withdrawn.add(str(d["delivery_id"]))
        elif kind == "share.referred":
            referred[mid] = str(d.get("queue", ""))
        elif kind == "share.withheld":
            withheld.add(mid)
    recent = {m for m, at in received.items() if at >= since}
    lines: list[ForceLine] = []

    def line(id_: str, mid: str, area: str | None, recipient: str, status: str, *times: datetime | None) -> None:
        due, delivered, seen = (*times, None, None, None)[:3]
        lines.append(
            ForceLine(
                id=id_,
                message_id=mid,
                reference=refs.get(mid, ""),
                received_at=received[mid],
                area=area,
                authority=_authority(region, area),
                recipient=recipient,
                notify_by=due,
                delivered_at=delivered,
                read_at=seen,
                status=status,
            )
        )

    for did, (mid, recipient, area, due) in queued.items():
        if mid not in recent:
            continue
        status = _status(recipient, due, got.get(did), read.get(did), did in withdrawn, now)
        line(did, mid, area, recipient, status, due, got.get(did), read.get(did))
    for mid, queue in referred.items():
        if mid in recent:
            line(mid, mid, area_of_queue(queue), f"queue {queue}", "referred")
    for mid in sorted(withheld & recent):
        first = areas.get(mid) or []
        line(mid, mid, first[0] if first else None, "nobody", "withheld")
    lines.sort(key=lambda r: (r.received_at, r.message_id, r.recipient))
    return ForceView(
        force=force,
        now=now,
        since=since,
        lines=lines,
        authorities=_figures(lines, region),
        sent=len(recent),
        withheld=len(withheld & recent),
        in_region=region is not None,
    )


def _status(
    recipient: str,
    due: datetime | None,
    got: datetime | None,
    seen: datetime | None,
    withdrawn: bool,
    now: datetime,
) -> str:
    if withdrawn:
        return "withdrawn"
    if seen is not None:
        return "read_on_time" if due is None or seen <= due else "read_late"
    if got is not None:
        return "overdue" if recipient.startswith("school:") and due is not None and due < now else "delivered"
    return "overdue" if due is not None and due < now else "not_delivered"


def _figures(lines: list[ForceLine], region: Region | None) -> list[AuthorityFigures]:
    codes: list[str | None] = list(region.areas) if region is not None else []
    codes += sorted({r.area for r in lines if r.area not in codes}, key=lambda c: c or "~")
    out = []
    for code in codes:
        mine = [r for r in lines if r.area == code]
        schools = [r for r in mine if r.recipient.startswith("school:")]
        mash = [r for r in mine if r.recipient.startswith("mash:")]
        out.append(
            AuthorityFigures(
                code=code,
                name=_authority(region, code),
                notifications=len({r.message_id for r in mine}),
                to_schools=len(schools),
                schools_received=sum(r.delivered_at is not None for r in schools),
                read_on_time=sum(r.status == "read_on_time" for r in schools),
                read_late=sum(r.status == "read_late" for r in schools),
                to_mash=len(mash),
                mash_received=sum(r.delivered_at is not None for r in mash),
                referred=sum(r.status == "referred" for r in mine),
            )
        )
    return out


def _authority(region: Region | None, code: str | None) -> str:
    area = region.area(code) if region is not None else None
    if area is not None:
        return f"{area.name} ({area.code})"
    return NO_AUTHORITY if region is not None else "this area"


def _at(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
