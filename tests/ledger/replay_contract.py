"""`mash replay` over a real ledger: run on every storage backend.

``ReplayContract`` is abstract like ``LedgerContract``: a backend's test class inherits it and provides the
``ledger`` fixture. Messages go through the real gate service first (early-help referrals that rest on
consent, under the shipped policy), then are replayed with a publisher that records what it is given.
"""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from consent_builders import NOW, POLICY, consent, contact
from signing_helpers import Keyring
from sqlalchemy import func, update

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.consent_gate import Reason, parse_policy
from mash_broker.contracts import BrokerUnavailable, ChildSubject, ConsentRecord, Delivery, Envelope, NotFound, topics
from mash_broker.core.explain import Change, explain
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.messages import GATE_ORG, delivery_id
from mash_broker.core.policy import DEFAULT_POLICY, LoadedPolicy, load_policy
from mash_broker.core.replay import PUBLISH_LEASE, REPLAY_HEADER, ReplayPlan, ReplayRequest, replay
from mash_broker.core.signing import verify
from mash_broker.storage import Ledger, OutboxRow
from mash_broker.storage import schema as t

from .consent_contract import Clock, ConsentGate, consent_envelope, wire
from .contract import table_counts

EARLY_HELP = "early_help:team-north"
SOUTH = "early_help:team-south"
SHIPPED = load_policy(DEFAULT_POLICY)
WINDOW = ReplayRequest(NOW - timedelta(hours=1), NOW + timedelta(hours=1))
REPLAYED_AT = NOW + timedelta(hours=2)
OTHER_CHILD = ChildSubject(given_name="Ottoline", family_name="Quillfeather", date_of_birth=date(2015, 3, 9))


class Sent:
    """A publisher that records what the replay hands it (or fails, when told to)."""

    def __init__(self, fail: bool = False) -> None:
        self.rows: list[OutboxRow] = []
        self.fail = fail

    async def __call__(self, row: OutboxRow) -> None:
        if self.fail:
            raise ConnectionError("broker gone")
        self.rows.append(row)


def about(message: Envelope, subject: ChildSubject | None) -> Envelope:
    return message if subject is None else message.model_copy(update={"subject": subject})


def narrower_policy() -> LoadedPolicy:
    """The shipped policy with a new version, its early-help agreement no longer releasing the referrer."""
    head, tail = SHIPPED.text.split('name = "early-help-with-consent"')
    tail = tail.replace('"payload.referrer_name", "payload.referrer_role", ', "", 1)
    text = (
        head.replace(f'version = "{POLICY.version}"', 'version = "narrower-1"')
        + 'name = "early-help-with-consent"'
        + tail
    )
    return LoadedPolicy(parse_policy(text, source="narrower.toml"), "narrower.toml", text)


class ReplayContract(ConsentGate):
    """Replays after a withdrawal, of shares still allowed, dry runs and selection. Subclasses give ``ledger``."""

    settle = timedelta(0)  # the original shares are published at once

    @pytest.fixture
    def keyring(self, tmp_path: Path) -> Keyring:
        return Keyring(tmp_path / "keys")

    async def shared(
        self,
        gate: GateContext,
        given: ConsentRecord,
        *,
        recipients: tuple[str, ...] = (EARLY_HELP,),
        subject: ChildSubject | None = None,
    ) -> Envelope:
        """A referral about ``subject`` shared on ``given`` and published, as the running stack would."""
        await process_inbound(gate, wire(about(consent_envelope(given), subject)), topics.CONSENT_RECORDS)
        referral = about(contact(recipients=recipients), subject)
        assert await process_inbound(gate, wire(referral), EDUCATION_INBOUND) == "share"
        published = await gate.ledger.pending_outbox(now=gate.clock())
        await gate.ledger.mark_published([r.seq for r in published], gate.clock())
        return referral

    async def withdraw(
        self, gate: GateContext, clock: Clock, given: ConsentRecord, at: datetime, subject: ChildSubject | None = None
    ) -> None:
        clock.at = at
        withdrawn = about(consent_envelope(consent("withdrawn", consent_id=given.consent_id, recorded=at)), subject)
        assert await process_inbound(gate, wire(withdrawn), topics.CONSENT_RECORDS) == "withdrawn"

    async def run(
        self,
        ledger: Ledger,
        request: ReplayRequest = WINDOW,
        *,
        sent: Sent | None = None,
        keyring: Keyring | None = None,
        dry_run: bool = False,
        policy: LoadedPolicy = SHIPPED,
    ) -> ReplayPlan:
        return await replay(
            ledger,
            request,
            policy=policy,
            registry=REGISTRY,
            directories={},
            clock=lambda: REPLAYED_AT,
            dry_run=dry_run,
            publish=sent if sent is not None else Sent(),
            signer=keyring.gate() if keyring else None,
        )

    # -- the must-show -------------------------------------------------------------------

    async def test_a_replay_after_a_consent_withdrawal_withholds_what_the_original_shared(
        self, gate: GateContext, clock: Clock
    ) -> None:
        given = consent()
        referral = await self.shared(gate, given)
        await self.withdraw(gate, clock, given, NOW + timedelta(minutes=30))
        ledger = gate.ledger
        sent = Sent()

        plan = await self.run(ledger, sent=sent)

        assert sent.rows == [], "nothing the current decision does not release is published"
        assert [
            r
            for r in await ledger.pending_outbox(now=REPLAYED_AT + PUBLISH_LEASE)
            if r.topic == REGISTRY.delivery_topic(EARLY_HELP)
        ] == [], "nor left for the relay"
        assert plan.sends == []
        [withheld] = plan.withheld
        assert (withheld.message_id, withheld.recipient, withheld.verdict) == (
            str(referral.message_id),
            EARLY_HELP,
            "withhold",
        )
        assert withheld.reasons[-1] == Reason.CONSENT_WITHDRAWN.value
        [recorded] = await ledger.events("replay.withheld")
        assert recorded.message_id == str(referral.message_id)
        assert recorded.detail["replay_id"] == plan.replay_id
        assert recorded.detail["reasons"][-1] == Reason.CONSENT_WITHDRAWN.value
        assert await ledger.events("message.replayed") == []
        [run] = await ledger.events("replay.decided")
        assert (run.detail["resend"], run.detail["withheld"]) == (0, 1)
        text = "\n".join(await explain(ledger, str(referral.message_id)))
        assert f"withheld from {EARLY_HELP} by replay {plan.replay_id}" in text
        assert "consent_withdrawn" in text

    async def test_a_replay_of_a_share_still_allowed_resends_it_with_the_same_id_marked_as_a_replay(
        self, gate: GateContext, keyring: Keyring
    ) -> None:
        referral = await self.shared(gate, consent())
        ledger = gate.ledger
        [original] = await ledger.deliveries_of(str(referral.message_id))
        sent = Sent()

        plan = await self.run(ledger, sent=sent, keyring=keyring)

        [row] = sent.rows
        assert row.topic == REGISTRY.delivery_topic(EARLY_HELP)
        assert row.key == EARLY_HELP
        assert row.headers[REPLAY_HEADER] == plan.replay_id
        assert row.headers["message-id"] == original.delivery_id == str(delivery_id(referral.message_id, EARLY_HELP))
        again = Envelope.model_validate_json(row.value)
        assert str(again.message_id) == original.delivery_id, "recipients deduplicate by this id"
        assert again.replay is True
        assert again.sender_org == GATE_ORG
        assert verify(again, keyring.registry, REPLAYED_AT).ok, "signed by the gate, replay mark included"
        first = Envelope.model_validate_json(original.envelope)
        assert isinstance(again.payload, Delivery)
        assert isinstance(first.payload, Delivery)
        assert again.payload.released == first.payload.released
        assert await ledger.pending_outbox(now=REPLAYED_AT + PUBLISH_LEASE) == [], "marked published"
        [event] = await ledger.events("message.replayed")
        assert event.message_id == str(referral.message_id)
        assert (event.detail["replay_id"], event.detail["delivery_id"], event.detail["recipient"]) == (
            plan.replay_id,
            original.delivery_id,
            EARLY_HELP,
        )
        assert "replayed to early_help:team-north" in "\n".join(await explain(ledger, str(referral.message_id)))

    @pytest.mark.parametrize("table", ["deliveries", "messages"])
    async def test_a_replay_refuses_a_delivery_whose_stored_copy_was_changed(
        self, gate: GateContext, keyring: Keyring, table: str
    ) -> None:
        referral = await self.shared(gate, consent())
        ledger = gate.ledger
        [original] = await ledger.deliveries_of(str(referral.message_id))
        tab = t.metadata.tables[table]
        async with ledger.transaction() as tx:  # one word changed directly in the database
            await tx.conn.execute(
                update(tab)
                .where(tab.c.envelope.contains("referrer_role"))
                .values(envelope=func.replace(tab.c.envelope, "referrer_role", "REFERRER_ROLE"))
            )
        sent = Sent()

        plan = await self.run(ledger, sent=sent, keyring=keyring)

        assert sent.rows == [], "the edited copy is not sent"
        assert plan.sends == []
        [refused] = plan.refused
        assert (refused.delivery_id, refused.verdict, refused.reasons) == (
            original.delivery_id,
            "refused",
            ("stored_copy_altered",),
        )
        row_id = original.delivery_id if table == "deliveries" else str(referral.message_id)
        assert refused.detail is not None
        assert refused.detail.startswith(f"{table}.envelope of {'delivery' if table == 'deliveries' else 'message'}")
        assert row_id in refused.detail
        assert plan.as_json()["refused"] == 1
        [run] = await ledger.events("replay.decided")
        assert (run.detail["resend"], run.detail["withheld"], run.detail["refused"]) == (0, 1, 1)
        [recorded] = await ledger.events("replay.withheld")
        assert (recorded.detail["verdict"], recorded.detail["detail"]) == ("refused", refused.detail)
        assert await ledger.events("message.replayed") == []

    # -- dry run ---------------------------------------------------------------------------------

    async def test_a_dry_run_writes_and_sends_nothing_and_lists_every_decision_that_differs(
        self, gate: GateContext, clock: Clock
    ) -> None:
        kept = await self.shared(gate, consent())
        given = consent()
        stopped = await self.shared(gate, given, subject=OTHER_CHILD)
        await self.withdraw(gate, clock, given, NOW + timedelta(minutes=30), subject=OTHER_CHILD)
        ledger = gate.ledger
        before = await table_counts(ledger)
        sent = Sent()

        plan = await self.run(ledger, sent=sent, dry_run=True)

        assert sent.rows == []
        assert await table_counts(ledger) == before, "a dry run writes nothing"
        assert plan.dry_run
        assert [i.message_id for i in plan.sends] == [str(kept.message_id)]
        assert [(i.message_id, i.reasons[-1]) for i in plan.withheld] == [
            (str(stopped.message_id), Reason.CONSENT_WITHDRAWN.value)
        ]
        [change] = plan.changes
        assert change == Change(
            str(stopped.message_id), "contact", "share", "withhold", (EARLY_HELP,), (), (), change.fields_removed
        )
        assert "subject.given_name" in change.fields_removed
        out = plan.as_json()
        assert (out["dry_run"], out["published"], len(out["resend"]), len(out["withheld"])) == (True, 0, 1, 1)

    async def test_a_replay_under_a_narrower_policy_sends_only_the_fields_released_now(self, gate: GateContext) -> None:
        referral = await self.shared(gate, consent())
        sent = Sent()

        plan = await self.run(gate.ledger, sent=sent, policy=narrower_policy())

        [row] = sent.rows
        payload = Envelope.model_validate_json(row.value).payload
        assert isinstance(payload, Delivery)
        assert "payload.referrer_name" not in payload.released
        assert "payload.what_happened" in payload.released
        assert payload.policy_version == "narrower-1"
        [change] = plan.changes
        assert (change.message_id, change.was, change.would_be) == (str(referral.message_id), "share", "share")
        assert change.fields_removed == ("payload.referrer_name", "payload.referrer_role")
        assert [e.detail["version"] for e in await gate.ledger.events("policy.loaded")] == ["narrower-1"]

    # -- selection -------------------------------------------------------------------------------

    async def test_a_replay_selects_by_received_time_kind_and_recipient(self, gate: GateContext, clock: Clock) -> None:
        early = await self.shared(gate, consent(recipients=(EARLY_HELP, SOUTH)), recipients=(EARLY_HELP, SOUTH))
        clock.at = NOW + timedelta(hours=1)  # the window's end is exclusive: this one is outside it
        late = await self.shared(gate, consent(recipients=(EARLY_HELP, SOUTH)), recipients=(EARLY_HELP, SOUTH))
        ledger = gate.ledger

        both = await self.run(ledger, dry_run=True)
        assert {(i.message_id, i.recipient) for i in both.sends} == {
            (str(early.message_id), EARLY_HELP),
            (str(early.message_id), SOUTH),
        }
        one = await self.run(ledger, ReplayRequest(NOW, NOW + timedelta(hours=2), recipient=SOUTH), dry_run=True)
        assert {(i.message_id, i.recipient) for i in one.sends} == {
            (str(early.message_id), SOUTH),
            (str(late.message_id), SOUTH),
        }
        with pytest.raises(NotFound):
            await self.run(ledger, ReplayRequest(NOW, NOW + timedelta(hours=2), kind="notification.encompass"))
        with pytest.raises(NotFound):
            await self.run(ledger, ReplayRequest(NOW - timedelta(days=2), NOW - timedelta(days=1)))

    async def test_a_replay_to_another_topic_publishes_there_only(self, gate: GateContext) -> None:
        await self.shared(gate, consent())
        sent = Sent()

        plan = await self.run(
            gate.ledger, ReplayRequest(WINDOW.received_from, WINDOW.received_to, to_topic="test.replays.v1"), sent=sent
        )

        assert [r.topic for r in sent.rows] == ["test.replays.v1"]
        assert [i.topic for i in plan.sends] == ["test.replays.v1"]

    # -- failure and the settle window -------------------------------------------------------------

    async def test_a_replay_that_cannot_publish_stays_recorded_for_the_relay_after_the_lease(
        self, gate: GateContext
    ) -> None:
        await self.shared(gate, consent())
        ledger = gate.ledger

        with pytest.raises(BrokerUnavailable):
            await self.run(ledger, sent=Sent(fail=True))

        assert await ledger.pending_outbox(now=REPLAYED_AT) == [], "the relay leaves it to the command at first"
        [later] = await ledger.pending_outbox(now=REPLAYED_AT + PUBLISH_LEASE)
        assert REPLAY_HEADER in later.headers
        assert len(await ledger.events("message.replayed")) == 1

    async def test_a_withdrawal_arriving_in_the_settle_window_stops_a_replay_on_consent(
        self, gate: GateContext, clock: Clock
    ) -> None:
        given = consent()
        referral = await self.shared(gate, given)
        clock.at = REPLAYED_AT
        sent = Sent()

        task = asyncio.create_task(
            replay(
                gate.ledger,
                WINDOW,
                policy=SHIPPED,
                registry=REGISTRY,
                directories={},
                clock=clock,
                publish=sent,
                consent_settle_s=0.3,
            )
        )
        await asyncio.sleep(0.05)
        await self.withdraw(gate, clock, given, REPLAYED_AT)
        plan = await task

        assert sent.rows == []
        assert [(i.message_id, i.reasons[-1]) for i in plan.withheld] == [
            (str(referral.message_id), Reason.CONSENT_WITHDRAWN.value)
        ]
