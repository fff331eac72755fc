"""The ledger contract: what every storage backend must do, written once.

``LedgerContract`` is abstract: a backend's test class inherits it and overrides the ``ledger``
fixture with a fresh, empty ``Ledger`` on that backend (see test_sqlite.py, test_postgres.py).
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import IntegrityError, StatementError

from mash_broker.core.records import DecidedMessage, Receipt, School
from mash_broker.storage import Ledger, Tx, schema
from mash_broker.storage.directory import DirectoryUpdate
from mash_broker.storage.schema import metadata

T0 = datetime(2026, 11, 17, 7, 0, tzinfo=UTC)
T1 = T0 + timedelta(minutes=1)
T2 = T0 + timedelta(minutes=2)
TABLES = tuple(metadata.tables)


class Boom(Exception):
    """Raised inside a transaction to make it roll back."""


async def commit(ledger: Ledger, write: Callable[[Tx], Awaitable[object]]) -> None:
    async with ledger.transaction() as tx:
        await write(tx)


async def commit_then_raise(ledger: Ledger, write: Callable[[Tx], Awaitable[object]]) -> None:
    """Run ``write`` in a transaction, then raise ``Boom`` inside it."""
    async with ledger.transaction() as tx:
        await write(tx)
        raise Boom


async def table_counts(ledger: Ledger) -> dict[str, int]:
    return {name: await ledger.count(name) for name in TABLES}


async def insert_message(tx: Tx, at: datetime = T0, message_id: uuid.UUID | None = None) -> uuid.UUID:
    mid = message_id or uuid.uuid4()
    await tx.insert_message(
        message_id=mid,
        kind="notification.encompass",
        sender_org="police:x",
        correlation_id=uuid.uuid4(),
        topic="police.notification.v1",
        content_hash="0" * 64,
        received_at=at,
        envelope="{}",
    )
    return mid


async def insert_delivery(
    tx: Tx, message_id: uuid.UUID, at: datetime = T0, notify_by: datetime | None = None
) -> uuid.UUID:
    did = uuid.uuid4()
    await tx.insert_delivery(
        delivery_id=did,
        message_id=message_id,
        recipient="school:900001",
        purpose="operation_encompass",
        notify_by=notify_by,
        created_at=at,
        envelope="{}",
    )
    return did


async def write_one_of_everything(tx: Tx, at: datetime = T0) -> uuid.UUID:
    """One row in every ledger table, through the domain-named writes."""
    mid = await insert_message(tx, at)
    await tx.insert_decision(
        message_id=mid,
        verdict="share",
        reasons=["statutory_duty"],
        policy_version="test-1",
        decided_at=at,
        refer_to=None,
        trace=["rule 1: held"],
    )
    await insert_delivery(tx, mid, at, notify_by=at)
    await tx.enqueue(
        outbox_id=uuid.uuid4(),
        topic="education.delivery.v1",
        key="school:900001",
        value="{}",
        headers={"message-id": str(mid)},
        at=at,
    )
    await tx.add_queue_item(queue="mash", message_id=mid, reason_code="school_not_given", detail="d", at=at)
    await tx.add_quarantine(
        message_id=mid,
        sender_org="police:x",
        topic="police.notification.v1",
        reason_code="contract_invalid",
        detail="d",
        raw="{}",
        at=at,
    )
    await tx.event("message.received", mid, at, kind="notification.encompass")
    await tx.add_checkpoint(tree_size=1, root_hash="0" * 64, at=at, key_id="0" * 16, signature="AA==")
    await tx.replace_directory([("900001", "Example Primary", "999", [("Alex Keyadult", "a@example.org")])], at)
    await tx.record_consent(
        message_id=mid,
        child_keys=["person:x"],
        record_kind="consent",
        record_id=uuid.uuid4(),
        status="given",
        received_at=at,
        payload="{}",
    )
    await tx.record_policy(version="test-1", sha256="0" * 64, source="test", text="", at=at)
    await tx.start_clock(
        clock_id=uuid.uuid4(),
        name="contact_decision",
        subject_id=str(mid),
        started_at=at,
        due_at=at,
        warn_at=at,
        escalate_to="mash:team-manager",
    )
    await tx.claim_projection("clocks")  # a projection's cursor (core.projector)
    # A correction and the copy it withdrew (core.corrections).
    await tx.record_version(
        message_id=uuid.uuid4(), supersedes=mid, notification_id=str(mid), version=2, change="corrected", at=at
    )
    await tx.record_withdrawn_copy(
        delivery_id=str(uuid.uuid4()),
        message_id=str(mid),
        recipient="school:900001",
        withdrawn_by="police:x",
        by_message_id=uuid.uuid4(),
        change="corrected",
        at=at,
        notice_id=None,
    )
    # The web pages' tables (broker.web.accounts, broker.alerts write them through the transaction's connection).
    await tx.conn.execute(
        schema.web_accounts.insert().values(
            login="ada.keyadult@school.example",
            role="key_adult",
            urn="900001",
            name="Ada Keyadult",
            password_hash="$argon2id$v=19$m=65536,t=3,p=4$placeholder",  # noqa: S106  # not a hash of anything
            updated_at=at,
        )
    )
    await tx.conn.execute(
        schema.alerts.insert().values(
            alert_id=str(uuid.uuid4()),
            delivery_id=str(mid),
            channel="email",
            address="ada.keyadult@school.example",
            created_at=at,
            attempts=0,
            next_attempt_at=at,
        )
    )
    return mid


class LedgerContract:
    """Every storage backend passes these. Subclasses provide the ``ledger`` fixture."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    async def test_a_fresh_ledger_is_empty(self, ledger: Ledger) -> None:
        assert await table_counts(ledger) == dict.fromkeys(TABLES, 0)

    # -- time ----------------------------------------------------------------------------------

    async def test_aware_datetimes_round_trip_as_utc(self, ledger: Ledger) -> None:
        received = datetime(2026, 11, 17, 12, 0, 0, 654321, tzinfo=timezone(timedelta(hours=5, minutes=30)))
        summer = datetime(2026, 7, 1, 9, 15, 30, 123456, tzinfo=ZoneInfo("Europe/London"))
        async with ledger.transaction() as tx:
            mid = await insert_message(tx, received)
            await tx.insert_decision(
                message_id=mid,
                verdict="share",
                reasons=[],
                policy_version="p",
                decided_at=summer,
                refer_to=None,
                trace=[],
            )
            did = await insert_delivery(tx, mid, received, notify_by=summer)
            await tx.event("message.received", mid, summer)

        message = await ledger.message(str(mid))
        delivery = await ledger.delivery(str(did))
        assert message is not None
        assert delivery is not None
        (event,) = await ledger.events()
        for got, sent in [
            (message.received_at, received),
            (message.decided_at, summer),
            (delivery.created_at, received),
            (delivery.notify_by, summer),
            (event.at, summer),
        ]:
            assert got.tzinfo is UTC
            assert got.isoformat() == sent.astimezone(UTC).isoformat()
        assert delivery.delivered_at is None

    async def test_naive_datetimes_are_refused(self, ledger: Ledger) -> None:
        naive = datetime(2026, 11, 17, 7, 0)  # noqa: DTZ001 -- the point of the test
        with pytest.raises(StatementError, match="aware datetimes only"):
            await commit(ledger, lambda tx: insert_message(tx, naive))
        assert await ledger.count("messages") == 0

    # -- atomicity -----------------------------------------------------------------------------

    async def test_writes_in_one_transaction_land_together(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            await write_one_of_everything(tx)
        assert await table_counts(ledger) == dict.fromkeys(TABLES, 1)

    async def test_writes_in_one_transaction_roll_back_together_when_it_raises(self, ledger: Ledger) -> None:
        with pytest.raises(Boom):
            await commit_then_raise(ledger, write_one_of_everything)
        assert await table_counts(ledger) == dict.fromkeys(TABLES, 0)

        async with ledger.transaction() as tx:  # the ledger is still usable afterwards
            await write_one_of_everything(tx)
        assert await table_counts(ledger) == dict.fromkeys(TABLES, 1)

    async def test_a_refused_write_rolls_back_the_writes_before_it(self, ledger: Ledger) -> None:
        async def the_same_message_twice(tx: Tx) -> None:
            mid = await write_one_of_everything(tx)
            await insert_message(tx, message_id=mid)

        with pytest.raises(IntegrityError):
            await commit(ledger, the_same_message_twice)
        assert await table_counts(ledger) == dict.fromkeys(TABLES, 0)

    # -- outbox --------------------------------------------------------------------------------

    async def test_outbox_is_pending_in_seq_order_until_published(self, ledger: Ledger) -> None:
        ids = [uuid.uuid4() for _ in range(5)]

        async def enqueue(tx: Tx, oid: uuid.UUID, n: int) -> None:
            await tx.enqueue(
                outbox_id=oid,
                topic=f"topic.{n}.v1",
                key=None if n % 2 else f"k{n}",
                value=f'{{"n": {n}}}',
                headers={"message-id": str(oid), "n": str(n)},
                at=T0,
            )

        async with ledger.transaction() as tx:
            for n in (0, 1):
                await enqueue(tx, ids[n], n)
        with pytest.raises(Boom):
            await commit_then_raise(ledger, lambda tx: enqueue(tx, uuid.uuid4(), 99))
        async with ledger.transaction() as tx:
            for n in (2, 3, 4):
                await enqueue(tx, ids[n], n)

        pending = await ledger.pending_outbox()
        assert [r.outbox_id for r in pending] == [str(i) for i in ids]
        assert all(a.seq < b.seq for a, b in itertools.pairwise(pending))
        assert [(r.topic, r.key, r.value) for r in pending[:2]] == [
            ("topic.0.v1", "k0", '{"n": 0}'),
            ("topic.1.v1", None, '{"n": 1}'),
        ]
        assert pending[3].headers == {"message-id": str(ids[3]), "n": "3"}
        assert [r.outbox_id for r in await ledger.pending_outbox(limit=2)] == [str(i) for i in ids[:2]]

        await ledger.mark_published([pending[0].seq, pending[2].seq], T1)
        assert [r.outbox_id for r in await ledger.pending_outbox()] == [str(ids[n]) for n in (1, 3, 4)]
        await ledger.mark_published([pending[0].seq], T2)  # publishing again changes nothing
        await ledger.mark_published([], T2)
        assert [r.outbox_id for r in await ledger.pending_outbox()] == [str(ids[n]) for n in (1, 3, 4)]
        assert await ledger.count("outbox") == 5

    async def test_an_outbox_id_is_enqueued_once(self, ledger: Ledger) -> None:
        oid = uuid.uuid4()
        async with ledger.transaction() as tx:
            assert await tx.outbox_has(oid) is False
            await tx.enqueue(outbox_id=oid, topic="t.x.v1", key=None, value="1", headers={}, at=T0)
            assert await tx.outbox_has(oid) is True
        with pytest.raises(IntegrityError):
            await commit(
                ledger, lambda tx: tx.enqueue(outbox_id=oid, topic="t.x.v1", key=None, value="2", headers={}, at=T0)
            )
        assert [r.value for r in await ledger.pending_outbox()] == ["1"]

    async def test_a_claimed_record_cannot_be_cancelled_and_a_cancelled_one_is_not_claimed(
        self, ledger: Ledger
    ) -> None:
        first, second, held = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
        async with ledger.transaction() as tx:
            for oid in (first, second, held):
                await tx.enqueue(
                    outbox_id=oid,
                    topic="t.x.v1",
                    key=None,
                    value=str(oid),
                    headers={},
                    at=T0,
                    not_before=T2 if oid == held else None,
                )
            assert await tx.cancel_unpublished(second, T0) is True

        claimed = await ledger.claim_outbox("relay-a", T1)
        assert [r.outbox_id for r in claimed] == [str(first)], "the cancelled and the held are not claimed"
        async with ledger.transaction() as tx:
            assert await tx.cancel_unpublished(first, T1) is False, "on its way out: too late to withdraw"
            assert await tx.cancel_unpublished(held, T1) is True, "still held: it can be stopped"
        assert await ledger.claim_outbox("relay-a", T2) != [], "a relay retries its own unpublished claims"
        assert await ledger.claim_outbox("relay-b", T2) == [], "another relay's claim is left alone..."
        [again] = await ledger.claim_outbox("relay-b", T2 + timedelta(minutes=5))
        assert again.outbox_id == str(first), "...until it is old enough that its relay must have died"
        await ledger.mark_published([again.seq], T2)
        assert await ledger.claim_outbox("relay-b", T2 + timedelta(hours=1)) == []

    async def test_unpublished_gives_the_named_records_still_to_publish_even_while_held(self, ledger: Ledger) -> None:
        held, due, published, cancelled, other = (uuid.uuid4() for _ in range(5))
        async with ledger.transaction() as tx:
            for oid in (held, due, published, cancelled, other):
                await tx.enqueue(
                    outbox_id=oid,
                    topic="t.x.v1",
                    key=None,
                    value=str(oid),
                    headers={},
                    at=T0,
                    not_before=T2 if oid == held else None,
                )
            await tx.cancel_unpublished(cancelled, T1)
        [done] = [r for r in await ledger.pending_outbox() if r.outbox_id == str(published)]
        await ledger.mark_published([done.seq], T1)

        rows = await ledger.unpublished([held, due, published, cancelled])

        assert [r.outbox_id for r in rows] == [str(held), str(due)]
        assert await ledger.unpublished([]) == []

    # -- decided messages (what-if, replay) ------------------------------------------------------

    async def test_decided_messages_are_selected_by_a_half_open_received_window_and_kind(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            at_t0, at_t1, at_t2 = [await insert_message(tx, at) for at in (T0, T1, T2)]
            undecided = await insert_message(tx, T1)
            contact = uuid.uuid4()
            await tx.insert_message(
                message_id=contact,
                kind="contact",
                sender_org="school:900001",
                correlation_id=uuid.uuid4(),
                topic="education.inbound.v1",
                content_hash="0" * 64,
                received_at=T1,
                envelope="{}",
            )
            for mid in (at_t0, at_t1, at_t2, contact):
                await tx.insert_decision(
                    message_id=mid,
                    verdict="share",
                    reasons=[],
                    policy_version="test-1",
                    decided_at=T2,
                    refer_to=None,
                    trace=[],
                )

        def ids(rows: list[DecidedMessage]) -> set[str]:
            return {str(r.message_id) for r in rows}

        assert ids(await ledger.decided_messages()) == {str(m) for m in (at_t0, at_t1, at_t2, contact)}
        assert str(undecided) not in ids(await ledger.decided_messages())
        window = await ledger.decided_messages(received_from=T0 + timedelta(seconds=1), received_to=T2)
        assert ids(window) == {str(at_t1), str(contact)}, "from is inclusive, to exclusive"
        assert ids(await ledger.decided_messages(received_from=T1, received_to=T2)) == {str(at_t1), str(contact)}
        [only] = await ledger.decided_messages(received_from=T0, received_to=T2, kind="contact")
        assert (only.message_id, only.kind, only.verdict) == (str(contact), "contact", "share")

    # -- quarantine ----------------------------------------------------------------------------

    async def test_quarantine_keeps_any_text_and_stores_nul_as_a_replacement_character(self, ledger: Ledger) -> None:
        raw = "not json \x00 \u2603 \ud7ff line\nbreak"
        async with ledger.transaction() as tx:
            await tx.add_quarantine(
                message_id=None,
                sender_org=None,
                topic="police.notification.v1",
                reason_code="contract_invalid",
                detail="(message): bad \x00",
                raw=raw,
                at=T0,
            )
            await tx.add_quarantine(
                message_id=uuid.uuid4(),
                sender_org="police:x",
                topic="t",
                reason_code="message_too_large",
                detail="2000001 bytes",
                raw="{}",
                at=T1,
            )
        first, second = await ledger.quarantined()
        assert first.raw == raw.replace("\x00", "\ufffd")
        assert first.detail == "(message): bad \ufffd"
        assert (first.message_id, first.sender_org, first.created_at) == (None, None, T0)
        assert (second.reason_code, second.created_at) == ("message_too_large", T1)

    # -- deliveries ----------------------------------------------------------------------------

    async def test_mark_delivered_records_the_first_receipt_only(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            did = await insert_delivery(tx, await insert_message(tx))
        async with ledger.transaction() as tx:
            assert await tx.mark_delivered(did, T1) is True
        async with ledger.transaction() as tx:
            assert await tx.mark_delivered(did, T2) is False
            assert await tx.mark_delivered(uuid.uuid4(), T2) is False
        row = await ledger.delivery(str(did))
        assert row is not None
        assert (row.delivered_at, row.read_at) == (T1, None)

    async def test_mark_read_records_the_first_reader_only(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            did = await insert_delivery(tx, await insert_message(tx))
        async with ledger.transaction() as tx:
            assert await tx.mark_read(did, "Alex Keyadult", T1) is True
        async with ledger.transaction() as tx:
            assert await tx.mark_read(did, "Sam Deputy", T2) is False
            assert await tx.mark_read(uuid.uuid4(), "Sam Deputy", T2) is False
        row = await ledger.delivery(str(did))
        assert row is not None
        assert (row.read_at, row.read_by, row.delivered_at) == (T1, "Alex Keyadult", None)

    # -- receipts ------------------------------------------------------------------------------

    async def test_receipts_for_more_than_500_ids(self, ledger: Ledger) -> None:
        known = [uuid.uuid4() for _ in range(1001)]
        async with ledger.transaction() as tx:  # seeded in bulk: the query is what is under test
            await tx.conn.execute(
                schema.messages.insert(),
                [
                    {
                        "message_id": str(m),
                        "kind": "k",
                        "sender_org": "police:x",
                        "correlation_id": str(m),
                        "topic": "t",
                        "content_hash": "0" * 64,
                        "received_at": T0,
                        "envelope": "{}",
                    }
                    for m in known
                ],
            )
            await tx.conn.execute(
                schema.decisions.insert(),
                [
                    {
                        "message_id": str(m),
                        "verdict": "refer",
                        "reasons": ["school_not_given"],
                        "policy_version": "p",
                        "decided_at": T0,
                        "refer_to": "mash",
                        "trace": [],
                    }
                    for m in known[::3]
                ],
            )
        unknown = [uuid.uuid4() for _ in range(7)]

        receipts = await ledger.receipts_for(iter(unknown[:3] + known + unknown[3:]))

        assert set(receipts) == {str(m) for m in known}
        assert receipts[str(known[999])] == Receipt(
            message_id=str(known[999]), verdict="refer", reasons=("school_not_given",), refer_to="mash"
        )
        assert receipts[str(known[1000])].verdict is None  # in the ledger, not yet decided
        assert sum(r.verdict == "refer" for r in receipts.values()) == 334
        assert await ledger.receipts_for([]) == {}

    # -- directory -----------------------------------------------------------------------------

    async def test_replace_directory_replaces_each_loaded_schools_key_adults(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            loaded = await tx.replace_directory(
                [
                    (
                        "900001",
                        "Example Primary",
                        "999",
                        [("Alex Keyadult", "alex@example.org"), ("Sam Deputy", "sam@example.org")],
                    ),
                    ("900002", "Sample Academy", "998", [("Jo Testperson", "jo@example.org")]),
                ],
                T0,
            )
        assert loaded == 2
        async with ledger.transaction() as tx:
            loaded = await tx.replace_directory(
                [("900001", "Example Primary School", "999", [("Kim New", "kim@example.org")])], T1
            )
        assert loaded == 1

        assert [(a.name, a.email) for a in await ledger.key_adults("900001")] == [("Kim New", "kim@example.org")]
        assert [a.name for a in await ledger.key_adults("900002")] == ["Jo Testperson"]
        assert await ledger.key_adults("900003") == []
        assert await ledger.school("900001") == School(
            urn="900001", name="Example Primary School", la_code="999", loaded_at=T1
        )
        assert await ledger.known_school_urns() == {"900001", "900002"}
        async with ledger.transaction() as tx:
            assert await tx.known_school_urns() == {"900001", "900002"}

    async def test_apply_directory_writes_only_the_planned_rows(self, ledger: Ledger) -> None:
        async with ledger.transaction() as tx:
            await tx.replace_directory(
                [
                    (
                        "900001",
                        "Example Primary",
                        "999",
                        [("Alex Keyadult", "alex@example.org"), ("Sam Deputy", "sam@example.org")],
                    ),
                    ("900002", "Sample Academy", "998", [("Jo Testperson", "jo@example.org")]),
                    (
                        "900003",
                        "Test Hill",
                        "999",
                        [("Pat Fictional", "pat@example.org"), ("Jo Testperson", "jo@example.org")],
                    ),
                ],
                T0,
            )
        update = DirectoryUpdate(
            schools=[("900001", "Example Primary School", "999"), ("900004", "Fictional High", "997")],
            key_adults=[("900001", "alex@example.org", "Alex Renamed"), ("900004", "kim@example.org", "Kim New")],
            removed_key_adults=[("900001", "sam@example.org")],
            removed_schools=["900003"],
        )

        with pytest.raises(Boom):
            await commit_then_raise(ledger, lambda tx: tx.apply_directory(update, T1))
        assert len(await ledger.directory_entries()) == 3, "a rolled-back load changes nothing"
        async with ledger.transaction() as tx:
            await tx.apply_directory(update, T1)
            seen_inside = await tx.directory_entries()

        assert (
            await ledger.directory_entries()
            == seen_inside
            == [
                ("900001", "Example Primary School", "999", [("Alex Renamed", "alex@example.org")]),
                ("900002", "Sample Academy", "998", [("Jo Testperson", "jo@example.org")]),  # not named: untouched
                ("900004", "Fictional High", "997", [("Kim New", "kim@example.org")]),
            ]
        )
        assert await ledger.school("900001") == School(
            urn="900001", name="Example Primary School", la_code="999", loaded_at=T1
        )
        assert (await ledger.school("900002")) == School(
            urn="900002", name="Sample Academy", la_code="998", loaded_at=T0
        )
        assert await ledger.key_adults("900003") == [], "a removed school's Key Adults go with it"
        assert await ledger.count("key_adults") == 3

    # -- events --------------------------------------------------------------------------------

    async def test_events_are_numbered_in_strictly_increasing_order(self, ledger: Ledger) -> None:
        written: list[str] = []
        for batch in range(3):
            async with ledger.transaction() as tx:
                for n in range(4):
                    name = f"thing.happened_{batch}_{n}"
                    await tx.event(name, uuid.uuid4() if n else None, T0, batch=batch, items=[n, "x"])
                    written.append(name)
            with pytest.raises(Boom):
                await commit_then_raise(ledger, lambda tx: tx.event("thing.rolled_back", None, T0))

        events = await ledger.events()
        assert [e.event_type for e in events] == written
        assert all(a.seq < b.seq for a, b in itertools.pairwise(events))
        assert events[5].detail == {"batch": 1, "items": [1, "x"]}
        assert events[4].message_id is None
        assert [e.seq for e in await ledger.events("thing.happened_2_3")] == [events[-1].seq]
