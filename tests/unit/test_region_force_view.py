"""A police force's page (issue 15) from its part of the audited log: each recipient's copy with the authority
that released it and where it stands, referrals with whose queue they wait in, withheld notifications, and
the figures per authority. Pure: the entries are made here."""

from __future__ import annotations

from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.web.force import NO_AUTHORITY, view
from mash_broker.core.area_files import load_region
from mash_broker.core.clocks import load_calendar
from mash_broker.core.policy import load_policy
from mash_broker.core.records import EventRecord
from mash_broker.demo.areas import AREAS_DIR

TZ = ZoneInfo("Europe/London")
SENT = datetime(2026, 11, 22, 21, 0, tzinfo=TZ)
DUE = datetime(2026, 11, 23, 10, 0, tzinfo=TZ)
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=TZ)
REGION = load_region(
    AREAS_DIR,
    policy=load_policy(None, REGISTRY.policy_kinds),
    calendar=load_calendar(None),
    notify_by=time(10, 0),
    school_day_starts=time(8, 30),
    kinds=REGISTRY.policy_kinds,
)
_seq = iter(range(1, 10_000))


def e(event_type: str, message_id: str, at: datetime = SENT, **detail: Any) -> EventRecord:
    return EventRecord(next(_seq), at, event_type, message_id, detail, "")


def queued(mid: str, did: str, recipient: str, area: str, due: datetime | None = DUE) -> EventRecord:
    return e("delivery.queued", mid, delivery_id=did, recipient=recipient, area=area,
             notify_by=due.isoformat() if due else None)  # fmt: skip


LOG = [
    # a cross-border child: her school in 999 read it late; her home MASH (998) received it
    e("message.received", "lily", sender_org="police:examplepolice"),
    e("decision.recorded", "lily", areas=["998", "999"]),
    queued("lily", "d1", "school:900001", "999"),
    queued("lily", "d2", "mash:998", "998", None),
    e("delivery.received", "lily", SENT + timedelta(minutes=1), delivery_id="d1"),
    e("delivery.received", "lily", SENT + timedelta(minutes=1), delivery_id="d2"),
    e("notification.read", "lily", DUE + timedelta(hours=1), delivery_id="d1"),
    # all 998: read on time
    e("message.received", "max", sender_org="police:examplepolice"),
    queued("max", "d3", "school:900003", "998"),
    e("delivery.received", "max", SENT + timedelta(minutes=1), delivery_id="d3"),
    e("notification.read", "max", DUE - timedelta(hours=1), delivery_id="d3"),
    # a school not in the directory: waits in 999's queue; a withdrawn copy; one withheld; an old one
    e("message.received", "grace", sender_org="police:examplepolice"),
    e("share.referred", "grace", queue="mash:999", reason="school_unknown"),
    e("message.received", "ava", sender_org="police:examplepolice"),
    queued("ava", "d4", "school:900001", "999"),
    e("share.withdrawn", "ava", delivery_id="d4"),
    e("message.received", "nobody", sender_org="police:examplepolice"),
    e("decision.recorded", "nobody", areas=[]),
    e("share.withheld", "nobody"),
    e("message.received", "harry", sender_org="police:examplepolice"),
    e("share.referred", "harry", queue="mash", reason="home_authority_unknown"),
    e("message.received", "old", NOW - timedelta(days=20), sender_org="police:examplepolice"),
    queued("old", "d5", "school:900003", "998"),
]


def test_each_copy_stands_with_the_authority_that_released_it() -> None:
    page = view(LOG, {"lily": "EXP/1"}, "police:examplepolice", NOW, REGION)
    rows = {r.id: r for r in page.lines}
    assert set(rows) == {"d1", "d2", "d3", "d4", "grace", "harry", "nobody"}  # "old" is past the fortnight
    assert (rows["d1"].authority, rows["d1"].status, rows["d1"].reference) == (
        "Example North (999)",
        "read_late",
        "EXP/1",
    )
    assert (rows["d2"].authority, rows["d2"].status) == ("Example South (998)", "delivered")
    assert rows["d3"].status == "read_on_time"
    assert rows["d4"].status == "withdrawn"
    assert (rows["grace"].area, rows["grace"].recipient, rows["grace"].status) == ("999", "queue mash:999", "referred")
    assert (rows["harry"].authority, rows["harry"].status) == (NO_AUTHORITY, "referred")
    assert rows["nobody"].status == "withheld"
    assert (page.sent, page.withheld) == (6, 1)


def test_the_figures_per_authority_add_up_from_the_same_entries() -> None:
    page = view(LOG, {}, "police:examplepolice", NOW, REGION)
    figures = {a.code: a for a in page.authorities}
    assert list(figures) == ["998", "999", None]
    south, north, region = figures["998"], figures["999"], figures[None]
    assert (south.notifications, south.to_schools, south.read_on_time, south.to_mash, south.mash_received) == (
        2, 1, 1, 1, 1)  # fmt: skip
    assert (north.notifications, north.to_schools, north.schools_received, north.read_late, north.referred) == (
        3, 2, 1, 1, 1)  # fmt: skip
    assert (region.referred, region.name) == (1, NO_AUTHORITY)


def test_a_deadline_passed_unread_is_overdue_and_an_undelivered_copy_says_so() -> None:
    log = [
        e("message.received", "m", sender_org="police:examplepolice"),
        queued("m", "late", "school:900001", "999"),
        queued("m", "waiting", "school:900003", "998", NOW + timedelta(hours=2)),
    ]
    statuses = {r.id: r.status for r in view(log, {}, "police:examplepolice", NOW, REGION).lines}
    assert statuses == {"late": "overdue", "waiting": "not_delivered"}
