"""One authority's (or force's) part of the audited log selected in SQL (issue 15): the same entries, in the
same order, as ``core.scope`` selects from the whole log, on SQLite and on PostgreSQL; and an authority's
board reads only its own part (never the whole log, never every delivery).

The log is synthetic and random (a fixed seed): messages from two forces, a school and a council, decided
under authority 998, 999, both or none; their deliveries released by either authority or neither, received,
read, refused, referred to every kind of queue, and pages refused across the boundary.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from ledger.test_postgres import PostgresBackend

from mash_broker.app.web import board
from mash_broker.core.scope import area_scope, force_scope
from mash_broker.storage import Ledger

TZ = ZoneInfo("Europe/London")
NOW = datetime(2026, 11, 24, 11, 0, tzinfo=TZ)
CODES = ("998", "999", "997")  # 997: an authority with nothing of its own
FORCES = ("examplepolice", "police:otherforce", "police:nobody")
SENDERS = ("police:examplepolice", "police:otherforce", "school:900003", "la:998")
QUEUES = ("mash", "advice", "mash:998", "advice:998", "mash:999", "advice:999", "la:998", "mash:hub", "mash:9999")


async def random_log(ledger: Ledger, seed: int = 15, messages: int = 80) -> None:
    """A log exercising every rule of ``core.scope``, with deliveries and clocks rows to match."""
    rnd = random.Random(seed)  # noqa: S311  # synthetic test data, not a secret
    at = NOW - timedelta(days=3)
    async with ledger.transaction() as tx:
        for _ in range(messages):
            at += timedelta(minutes=7)
            mid = uuid.uuid4()
            await tx.event("message.received", mid, at, kind="notification.encompass", sender_org=rnd.choice(SENDERS))
            areas = rnd.choice(([], ["998"], ["999"], ["998", "999"], None))
            await tx.event(
                "decision.recorded", mid, at, verdict="share", **({"areas": areas} if areas is not None else {})
            )
            await tx.event("receipt.sent", mid, at, status="shared", delivery_id=None)
            if rnd.random() < 0.3:
                await tx.event("share.referred", mid, at, queue=rnd.choice(QUEUES), reason="school_unknown")
            if rnd.random() < 0.3:
                await tx.event("share.not_released", mid, at, recipient="school:1", **_area(rnd))
            for _ in range(rnd.randint(0, 3)):
                did = uuid.uuid4()
                recipient = rnd.choice(("school:900001", "school:900003", "mash:998", "mash:999"))
                notify_by = at + timedelta(hours=rnd.randint(-30, 30)) if recipient.startswith("school:") else None
                await tx.insert_delivery(
                    delivery_id=did,
                    message_id=mid,
                    recipient=recipient,
                    purpose="operation_encompass",
                    notify_by=notify_by,
                    created_at=at,
                    envelope="{}",
                )
                await tx.event("delivery.queued", mid, at, delivery_id=str(did), recipient=recipient, **_area(rnd))
                for later in ("delivery.received", "notification.read", "web.access_refused"):
                    if rnd.random() < 0.5:
                        await tx.event(later, mid, at + timedelta(minutes=5), delivery_id=str(did))
                if rnd.random() < 0.5:  # a clock of the delivery, past its warning
                    await _clock(tx, "delivery_ack_school", str(did), at)
            if rnd.random() < 0.3:
                await _clock(tx, "contact_decision", str(mid), at)
        for code in ("998", "999", None):  # pages refused across the boundary
            await tx.event("web.access_refused", None, NOW - timedelta(hours=1), page="/board", **_area_of(code))


def _area(rnd: random.Random) -> dict[str, str]:
    return _area_of(rnd.choice(("998", "999", None)))


def _area_of(code: str | None) -> dict[str, str]:
    return {"area": code} if code is not None else {}


async def _clock(tx: Any, name: str, subject: str, at: datetime) -> None:
    await tx.start_clock(
        clock_id=uuid.uuid4(),
        name=name,
        subject_id=subject,
        started_at=at,
        due_at=at + timedelta(hours=1),
        warn_at=at,
        escalate_to="mash:team-manager",
    )


class ScopedReadsContract:
    """Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    async def filled(self, ledger: Ledger) -> Ledger:
        await random_log(ledger)
        return ledger

    async def test_an_authoritys_entries_are_selected_in_sql_exactly_as_core_scope_does(self, filled: Ledger) -> None:
        everything = await filled.events()
        for code in CODES:
            expected = [e.seq for e in area_scope(everything, code).select(everything)]
            assert [e.seq for e in await filled.area_events(code)] == expected, code
        assert await filled.area_events("998") != await filled.area_events("999")
        assert await filled.area_events("997") == []

    async def test_a_forces_entries_are_selected_in_sql_exactly_as_core_scope_does(self, filled: Ledger) -> None:
        everything = await filled.events()
        for force in FORCES:
            expected = [e.seq for e in force_scope(everything, force).select(everything)]
            assert [e.seq for e in await filled.force_events(force)] == expected, force
        assert await filled.force_events("police:nobody") == []

    async def test_school_deliveries_clocks_and_refusals_of_an_authority_are_its_own(self, filled: Ledger) -> None:
        everything = await filled.events()
        for code in CODES:
            scope = area_scope(everything, code)
            schools = {
                d.delivery_id
                for d in await filled.all_deliveries()
                if d.recipient.startswith("school:") and d.notify_by and d.delivery_id in scope.deliveries
            }
            assert {d.delivery_id for d in await filled.school_deliveries(area=code)} == schools, code
            clocks = {
                c.clock_id
                for c in await filled.clocks_past_warning(NOW)
                if c.subject_id in scope.deliveries or c.subject_id in scope.messages
            }
            assert {c.clock_id for c in await filled.clocks_past_warning(NOW, area=code)} == clocks, code
            since = NOW - timedelta(days=7)
            refused = [
                d
                for _, d in await filled.refused_access_since(since)
                if d.get("area") == code or str(d.get("delivery_id")) in scope.deliveries
            ]
            assert [d for _, d in await filled.refused_access_since(since, area=code)] == refused, code
        assert await filled.school_deliveries(area="998")
        assert await filled.clocks_past_warning(NOW, area="999")

    async def test_the_clocks_read_the_authorities_a_message_was_decided_under(self, ledger: Ledger) -> None:
        both, none, undecided = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with ledger.transaction() as tx:
            await tx.event("decision.recorded", both, NOW, verdict="share", areas=["998", "999"])
            await tx.event("decision.recorded", none, NOW, verdict="withhold")
            await tx.event("message.received", undecided, NOW, kind="contact")
        async with ledger.transaction() as tx:
            assert await tx.decision_areas(str(both)) == ("998", "999")
            assert await tx.decision_areas(str(none)) == ()
            assert await tx.decision_areas(str(undecided)) == ()

    async def test_an_authoritys_board_reads_only_its_own_part_of_the_log(self, filled: Ledger) -> None:
        """Before the filter moved into SQL the board read every entry and every delivery and kept its own."""
        everything = await filled.events()
        scope = area_scope(everything, "998")
        guarded = OnlyScopedReads(filled)
        got = await board.build(guarded, NOW, TZ, board.Authority("998", "Example South", "/board"))  # type: ignore[arg-type]
        rows = {r.id for rows in (got.due_today, got.late, got.unread_after_deadline) for r in rows}
        assert rows
        assert rows <= scope.deliveries
        assert {c.subject for c in got.clocks} <= scope.deliveries | scope.messages
        other = await board.build(guarded, NOW, TZ, board.Authority("999", "Example North", "/board"))  # type: ignore[arg-type]
        assert not rows & {r.id for rows in (other.due_today, other.late, other.unread_after_deadline) for r in rows}


class OnlyScopedReads:
    """A ledger whose whole-log reads fail: what an authority's board reads must be scoped."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger

    def __getattr__(self, name: str) -> Any:
        if name in ("events", "all_deliveries", "deliveries_for"):
            raise AssertionError(f"an authority's board read the whole log ({name})")
        return getattr(self._ledger, name)


class TestSqliteScopedReads(ScopedReadsContract):
    @pytest.fixture
    async def ledger(self, tmp_path: Any) -> AsyncIterator[Ledger]:
        ledger = await Ledger.open(f"sqlite+aiosqlite:///{tmp_path / 'ledger.sqlite3'}")
        try:
            yield ledger
        finally:
            await ledger.close()


@pytest.mark.postgres
class TestPostgresScopedReads(PostgresBackend, ScopedReadsContract):
    """The same on PostgreSQL (the session's server; skipped with a reason if there is none)."""
