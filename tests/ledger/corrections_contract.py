"""Corrections and withdrawals of a police notification, over a real ledger: run on every storage backend.

``CorrectionsContract`` is abstract like ``GateServiceContract``: a backend's test class inherits it and
provides the ``ledger`` fixture. The rows are the overnight export's, mapped by the police adapter, and
each resend goes through ``agencies.police.versions`` as `mash police ingest` sends it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import time, timedelta

import pytest

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.education.inbox import receive_delivery, record_read
from mash_broker.agencies.police import POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.agencies.police.versions import next_version, withdrawal_of
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import BUILTIN_POLICY
from mash_broker.contracts import (
    Delivery,
    DeliveryWithdrawn,
    Envelope,
    NotFound,
    ReceiptStatus,
    SystemReceipt,
)
from mash_broker.core.clocks import load_calendar
from mash_broker.core.clocks.declared import load_clocks
from mash_broker.core.clocks.keeper import ClockKeeper
from mash_broker.core.explain import explain
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import content_hash
from mash_broker.core.policy import LoadedPolicy
from mash_broker.core.projector import Projector
from mash_broker.core.replay import ReplayRequest, replay
from mash_broker.storage import Ledger, Tx

from .contract import table_counts
from .gate_contract import DIRECTORY, LATER, NOW, PERSONAL, outbox, police_envelope, wire

FIXED = NOW + timedelta(hours=1)


async def receipts(ledger: Ledger, env: Envelope) -> list[tuple[ReceiptStatus, str | None]]:
    """The gate's receipts to police for ``env``, as (status, reason)."""
    found = []
    for row in await outbox(ledger, POLICE_RECEIPTS):
        payload = Envelope.model_validate_json(row.value).payload
        if isinstance(payload, SystemReceipt) and payload.receipted_message_id == env.message_id:
            found.append((payload.status, payload.reason_code))
    return found


async def publish_all(ledger: Ledger) -> None:
    """As the relay does: everything queued so far goes out."""
    await ledger.mark_published([r.seq for r in await ledger.pending_outbox()], NOW + timedelta(minutes=1))


class CorrectionsContract:
    """Corrections and withdrawals through the gate and the school inbox. Subclasses provide ``ledger``."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    async def gate(self, ledger: Ledger) -> GateContext:
        async with ledger.transaction() as tx:
            await tx.replace_directory(DIRECTORY, NOW - timedelta(days=1))
        return GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=BUILTIN_POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: FIXED,
        )

    async def sent(self, gate: GateContext, **changes: str) -> Envelope:
        """A row sent again (after the first), as `mash police ingest` sends it: compared with the ledger."""
        row = police_envelope(**changes)
        heads = await gate.ledger.notification_heads([str(row.message_id)])
        env = next_version(row, heads.get(str(row.message_id)))
        assert env is not None
        return env

    async def first(self, gate: GateContext, *, published: bool = True) -> Envelope:
        """The first version, shared with school 900001 and (unless not ``published``) sent and received."""
        env = police_envelope()
        gate.clock = lambda: NOW
        assert await process_inbound(gate, wire(env), POLICE_NOTIFICATIONS) == "share"
        gate.clock = lambda: FIXED
        if published:
            (row,) = await outbox(gate.ledger, EDUCATION_DELIVERIES)
            await publish_all(gate.ledger)
            assert await receive_delivery(gate.ledger, row.value.encode(), LATER) == "delivered"
        return env

    async def test_a_correction_to_another_school_withdraws_the_first_schools_copy(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        new = await self.sent(gate, school_urn="900002")
        assert new.message_id != old.message_id
        assert new.payload.supersedes == old.message_id  # type: ignore[union-attr]

        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"

        (was,) = await ledger.deliveries_of(str(old.message_id))
        assert (was.recipient, was.withdrawn_at) == ("school:900001", FIXED)
        (now,) = await ledger.deliveries_of(str(new.message_id))
        assert (now.recipient, now.withdrawn_at) == ("school:900002", None)
        notices, deliveries = [], []
        for row in await outbox(ledger, EDUCATION_DELIVERIES):
            payload = Envelope.model_validate_json(row.value).payload
            (notices if isinstance(payload, DeliveryWithdrawn) else deliveries).append((row, payload))
        ((notice_row, notice),) = notices
        assert (notice_row.key, notice.recipient, str(notice.withdrawn_delivery_id)) == (
            "school:900001",
            "school:900001",
            was.delivery_id,
        )
        assert (notice.reason, notice.superseded_by, notice.withdrawn_by) == (
            "corrected",
            new.message_id,
            "police:examplepolice",
        )
        for value in PERSONAL:
            assert value not in notice_row.value, "the notice carries no content"
        ((_, delivery),) = deliveries
        assert isinstance(delivery, Delivery)
        assert delivery.recipient == "school:900002"
        assert await receipts(ledger, new) == [(ReceiptStatus.CORRECTED, "statutory_duty")]
        answer = await ledger.receipts_for_content({str(new.message_id): content_hash(new)})
        assert answer[str(new.message_id)].verdict == "corrected"
        withdrawn = [e.detail for e in await ledger.events("share.withdrawn")]
        assert [(d["delivery_id"], d["reason"]) for d in withdrawn] == [(was.delivery_id, "notification_corrected")]
        assert withdrawn[0]["outbox_sha256"], "the notice's stored copy is in the audited log"
        assert len(await ledger.events("notification.corrected")) == 1

        # The first school's inbox records the notice once.
        assert await receive_delivery(ledger, notice_row.value.encode(), LATER) == "withdrawn"
        assert await receive_delivery(ledger, notice_row.value.encode(), LATER) == "duplicate"
        copy = (await ledger.withdrawn_copies_for("school:900001"))[was.delivery_id]
        assert (copy.change, copy.notice_received_at, copy.withdrawn_by) == ("corrected", LATER, "police:examplepolice")
        assert len(await ledger.events("delivery.withdrawal_received")) == 1

    async def test_a_copy_not_yet_published_is_cancelled_without_a_notice(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate, published=False)
        new = await self.sent(gate, school_urn="900002")

        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"

        (was,) = await ledger.deliveries_of(str(old.message_id))
        assert was.withdrawn_at == FIXED
        pending = [Envelope.model_validate_json(r.value).payload for r in await outbox(ledger, EDUCATION_DELIVERIES)]
        assert [(type(p).__name__, getattr(p, "recipient", None)) for p in pending] == [("Delivery", "school:900002")]
        copy = (await ledger.withdrawn_copies_for("school:900001"))[was.delivery_id]
        assert copy.notice_id is None

    async def test_a_corrected_summary_replaces_the_schools_copy(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        new = await self.sent(gate, summary="Officers attended; a welfare check was made.")

        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"

        inbox = await ledger.deliveries_for("school:900001")
        assert sorted((d.message_id, d.withdrawn_at is None) for d in inbox) == sorted(
            [(str(old.message_id), False), (str(new.message_id), True)]
        )
        (live,) = [d for d in inbox if d.withdrawn_at is None]
        released = Envelope.model_validate_json(live.envelope).payload.released  # type: ignore[union-attr]
        assert released["payload.summary_for_school"] == "Officers attended; a welfare check was made."
        kinds = [Envelope.model_validate_json(r.value).kind for r in await outbox(ledger, EDUCATION_DELIVERIES)]
        assert kinds == ["delivery.withdrawn", "delivery"], "the notice goes before the new version"
        assert await receipts(ledger, new) == [(ReceiptStatus.CORRECTED, "statutory_duty")]
        told = "\n".join(await explain(ledger, str(old.message_id)))
        assert "notification_corrected" in told
        assert "by its sender (corrected or withdrawn)" in told
        assert "consent withdrawn" not in told
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        assert (head.message_id, head.version, head.withdrawn) == (str(new.message_id), 2, False)

    async def test_a_notification_sent_in_error_is_withdrawn(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        withdrawal = withdrawal_of(head, now=FIXED)
        for value in PERSONAL:
            assert value not in wire(withdrawal).decode()

        assert await process_inbound(gate, wire(withdrawal), POLICE_NOTIFICATIONS) == "withdrawn"
        assert await process_inbound(gate, wire(withdrawal), POLICE_NOTIFICATIONS) == "duplicate"

        (was,) = await ledger.deliveries_of(str(old.message_id))
        assert was.withdrawn_at == FIXED
        (notice,) = [Envelope.model_validate_json(r.value).payload for r in await outbox(ledger, EDUCATION_DELIVERIES)]
        assert isinstance(notice, DeliveryWithdrawn)
        assert (notice.reason, notice.superseded_by) == ("withdrawn", None)
        assert await receipts(ledger, withdrawal) == [(ReceiptStatus.WITHDRAWN, "notification_withdrawn")]
        answer = await ledger.receipts_for_content({str(withdrawal.message_id): content_hash(withdrawal)})
        assert answer[str(withdrawal.message_id)].verdict == "withdrawn"
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        assert head.withdrawn
        assert head.content_message_id == str(old.message_id)
        # The same row sent again says nothing new: nothing to send.
        assert next_version(police_envelope(), head) is None
        # Withdrawn already: another withdrawal (another reason) is refused, with the field.
        again = withdrawal_of(
            (await ledger.incident_notifications("TST/2026/0001"))[0], now=FIXED, reason="wrong_child"
        )
        assert await process_inbound(gate, wire(again), POLICE_NOTIFICATIONS) == "rejected"
        assert await receipts(ledger, again) == [(ReceiptStatus.REJECTED, "already_withdrawn")]

    async def test_a_withdrawn_copy_cannot_be_marked_read(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        assert await process_inbound(gate, wire(withdrawal_of(head, now=FIXED)), POLICE_NOTIFICATIONS) == "withdrawn"
        (was,) = await ledger.deliveries_of(str(old.message_id))

        with pytest.raises(NotFound, match="withdrawn") as refused:
            await record_read(ledger, "900001", was.delivery_id, "Alex Keyadult", LATER)
        assert refused.value.field == "message_id"
        (still,) = await ledger.deliveries_of(str(old.message_id))
        assert (still.read_at, still.read_by) == (None, None)
        assert [e for e in await ledger.events_of(str(old.message_id)) if e.event_type == "notification.read"] == []

    async def test_an_identical_resend_is_a_duplicate(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        before = await table_counts(ledger)

        same = await self.sent(gate)
        assert same.message_id == old.message_id
        assert await process_inbound(gate, wire(same), POLICE_NOTIFICATIONS) == "duplicate"
        assert await table_counts(ledger) == before

        new = await self.sent(gate, school_urn="900002")
        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"
        before = await table_counts(ledger)
        again = await self.sent(gate, school_urn="900002")
        assert again.message_id == new.message_id, "the corrected row again is the current version"
        assert await process_inbound(gate, wire(again), POLICE_NOTIFICATIONS) == "duplicate"
        assert await table_counts(ledger) == before

    async def test_a_reused_message_id_with_other_content_is_rejected_not_accepted(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        other = police_envelope(school_urn="900002")  # sent as is: the same id, other content
        assert other.message_id == old.message_id
        answers = await ledger.receipts_for_content({str(other.message_id): content_hash(other)})
        assert answers == {}, "not answered yet: the old content's verdict is not this one's"

        assert await process_inbound(gate, wire(other), POLICE_NOTIFICATIONS) == "rejected"

        answer = (await ledger.receipts_for_content({str(other.message_id): content_hash(other)}))[
            str(other.message_id)
        ]
        assert (answer.verdict, answer.reasons) == ("rejected", ("message_id_reused",))
        assert (await ledger.receipts_for_content({str(old.message_id): content_hash(old)}))[
            str(old.message_id)
        ].verdict == "share"
        assert await ledger.deliveries_of(str(old.message_id)) != []
        assert (await ledger.deliveries_of(str(old.message_id)))[0].withdrawn_at is None

    async def test_only_the_current_version_by_its_sender_can_be_replaced(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        stale = await self.sent(gate, school_urn="900002")
        assert (
            await process_inbound(gate, wire(await self.sent(gate, child_present="no")), POLICE_NOTIFICATIONS)
            == "corrected"
        )

        assert await process_inbound(gate, wire(stale), POLICE_NOTIFICATIONS) == "rejected"
        assert await receipts(ledger, stale) == [(ReceiptStatus.REJECTED, "version_not_current")]

        forged = stale.model_copy(
            update={"sender_org": "police:otherforce", "message_id": police_envelope(force="otherforce").message_id}
        )
        assert await process_inbound(gate, wire(forged), POLICE_NOTIFICATIONS) == "rejected"
        assert [q.reason_code for q in await ledger.quarantined()][-1] == "not_the_sender"
        unknown = stale.model_copy(
            update={
                "message_id": police_envelope(incident_ref="TST/2").message_id,
                "payload": stale.payload.model_copy(
                    update={"supersedes": police_envelope(incident_ref="X").message_id}
                ),
            }
        )
        assert await process_inbound(gate, wire(unknown), POLICE_NOTIFICATIONS) == "rejected"
        assert [q.reason_code for q in await ledger.quarantined()][-1] == "version_unknown"
        assert len(await ledger.deliveries_of(str(old.message_id))) == 1

    async def test_a_referred_notification_corrected_with_its_school_closes_the_queue_item(
        self, gate: GateContext
    ) -> None:
        ledger = gate.ledger
        gate.clock = lambda: NOW
        old = police_envelope(school_urn="")
        assert await process_inbound(gate, wire(old), POLICE_NOTIFICATIONS) == "refer"
        gate.clock = lambda: FIXED
        assert len(await ledger.queue()) == 1

        new = await self.sent(gate, school_urn="900001")
        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"

        assert await ledger.queue() == []
        (now,) = await ledger.deliveries_of(str(new.message_id))
        assert now.recipient == "school:900001"

    async def test_a_replay_never_re_sends_a_withdrawn_copy(self, gate: GateContext) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        new = await self.sent(gate, school_urn="900002")
        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"
        await publish_all(ledger)

        plan = await replay(
            ledger,
            ReplayRequest(NOW - timedelta(hours=1), FIXED + timedelta(hours=1)),
            policy=LoadedPolicy(BUILTIN_POLICY, "builtin", ""),
            registry=REGISTRY,
            directories={},
            clock=lambda: FIXED + timedelta(hours=2),
            dry_run=True,
        )

        assert [(i.message_id, i.recipient) for i in plan.sends] == [(str(new.message_id), "school:900002")]
        assert str(old.message_id) not in {i.message_id for i in plan.items}

    async def test_the_withdrawn_copys_clocks_stop_and_the_new_copy_gets_its_own(self, gate: GateContext) -> None:
        ledger = gate.ledger
        keeper = ClockKeeper(
            ledger, load_clocks(None).clocks, load_calendar(None), lambda: FIXED, delivery_topic=REGISTRY.delivery_topic
        )
        old = await self.first(gate, published=False)
        new = await self.sent(gate, school_urn="900002")
        assert await process_inbound(gate, wire(new), POLICE_NOTIFICATIONS) == "corrected"

        await Projector[Tx](ledger, (keeper.projection,)).catch_up()

        (was,) = await ledger.deliveries_of(str(old.message_id))
        (now,) = await ledger.deliveries_of(str(new.message_id))
        clocks = {(c.subject_id, c.name): c.stopped_at for c in await ledger.clocks()}
        assert clocks[(was.delivery_id, "encompass_read")] == FIXED
        assert clocks[(was.delivery_id, "delivery_ack_school")] == FIXED
        assert clocks[(now.delivery_id, "encompass_read")] is None
        assert clocks[(now.delivery_id, "delivery_ack_school")] is None

    async def test_a_withdrawn_notification_sent_again_with_other_content_notifies_again(
        self, gate: GateContext
    ) -> None:
        ledger = gate.ledger
        old = await self.first(gate)
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        withdrawal = withdrawal_of(head, now=FIXED)
        assert await process_inbound(gate, wire(withdrawal), POLICE_NOTIFICATIONS) == "withdrawn"

        again = await self.sent(gate, school_urn="900002")
        assert again.payload.supersedes == withdrawal.message_id  # type: ignore[union-attr]
        assert await process_inbound(gate, wire(again), POLICE_NOTIFICATIONS) == "corrected"

        (now,) = await ledger.deliveries_of(str(again.message_id))
        assert (now.recipient, now.withdrawn_at) == ("school:900002", None)
        (head,) = (await ledger.notification_heads([str(old.message_id)])).values()
        assert (head.message_id, head.version, head.withdrawn) == (str(again.message_id), 3, False)
