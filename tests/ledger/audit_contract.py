"""The audited log over a real ledger: tamper with the stored rows, and verification names the place.

``AuditContract`` is abstract like ``LedgerContract``: a backend's test class inherits it and provides
the ``ledger`` fixture. The log: 25 events, checkpoints at 10, 17 and 22 entries, 3 entries unsigned.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from consent_builders import NOW, consent, contact
from sqlalchemy import delete, func, select, update

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.contracts import topics
from mash_broker.core.audit.checkpoints import Checkpointer
from mash_broker.core.audit.entries import as_stored, entry_leaf_hash
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore, public_key_b64
from mash_broker.core.audit.log import LogDiverged
from mash_broker.core.audit.merkle import leaf_hash
from mash_broker.core.audit.proof_file import ProofFile, check_proof
from mash_broker.core.audit.proofs import export, prove
from mash_broker.core.audit.verify import Report, verify_log
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.policy import DEFAULT_POLICY, load_policy, record_policy
from mash_broker.storage import Ledger
from mash_broker.storage import schema as t

from .consent_contract import ConsentGate, consent_envelope, wire

T0 = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)
BATCHES = (10, 7, 5)  # each followed by a checkpoint
UNSIGNED = 3
TOTAL = sum(BATCHES) + UNSIGNED
MESSAGES = [uuid.UUID(int=n + 1) for n in range(TOTAL)]  # synthetic ids


def ticking(start: datetime = T0) -> Callable[[], datetime]:
    counter = itertools.count()
    return lambda: start + timedelta(seconds=next(counter), microseconds=123)


async def write_events(ledger: Ledger, first: int, count: int) -> None:
    """Events ``first``..``first + count - 1``: a message received (police) and delivered (a school)."""
    async with ledger.transaction() as tx:
        for n in range(first, first + count):
            mid, at = MESSAGES[n], T0 + timedelta(minutes=n, microseconds=n)
            sender = "police:alpha" if n % 2 else "police:beta"
            await tx.insert_message(
                message_id=mid,
                kind="notification.encompass",
                sender_org=sender,
                correlation_id=mid,
                topic="police.notification.v1",
                content_hash="0" * 64,
                received_at=at,
                envelope="{}",
            )
            await tx.insert_delivery(
                delivery_id=uuid.uuid4(),
                message_id=mid,
                recipient="school:900001",
                purpose="operation_encompass",
                notify_by=None,
                created_at=at,
                envelope="{}",
            )
            await tx.event(
                "message.received",
                mid,
                at,
                kind="notification.encompass",
                sender_org=sender,
                fields=["child_name", "present"],
                n=n,
                ratio=n / 4,
            )


# -- every stored copy of a message, against the hash its entry recorded ------------------------------------

# (table, its id column, the column holding a copy, the word changed, what ``verify`` names it)
COPIES = [
    ("messages", "message_id", "envelope", "referrer_role", "message"),
    ("messages", "message_id", "content_hash", None, "message"),
    ("deliveries", "delivery_id", "envelope", "referrer_role", "delivery"),
    ("outbox", "outbox_id", "value", "referrer_role", "outbox record"),
    ("quarantine", "item_id", "raw", "given_name", "quarantine item"),
    ("consents", "row_id", "payload", "parent", "consent row"),
    ("policies", "version", "text", "safeguarding", "policy version"),
]


class StoredCopiesContract(ConsentGate):
    """Change one word of a stored copy directly in the database: `mash audit verify` names the table, the row
    and the field. Messages go through the real gate, which records each copy's hash in the audited log."""

    settle = timedelta(0)

    async def flow(self, gate: GateContext) -> None:
        """A consent, a referral shared on it (message, delivery, outbox record), a malformed record
        (quarantine) and the policy recorded: one stored copy of each kind."""
        await record_policy(gate.ledger, load_policy(DEFAULT_POLICY), NOW)
        await process_inbound(gate, wire(consent_envelope(consent())), topics.CONSENT_RECORDS)
        assert await process_inbound(gate, wire(contact()), EDUCATION_INBOUND) == "share"
        bad = b'{"message_id": "not-an-id", "subject": {"given_name": "Synthetic"}}'
        assert await process_inbound(gate, bad, EDUCATION_INBOUND) == "rejected"

    async def tamper(self, ledger: Ledger, table: str, key: str, column: str, word: str | None) -> str:
        """Change ``word`` in one row's ``column`` (the delivery's outbox record for ``outbox``); its id."""
        tab = t.metadata.tables[table]
        where = [tab.c[column].contains(word)] if word else []
        if table == "outbox":
            [queued] = await ledger.events("delivery.queued")
            where.append(tab.c.outbox_id == queued.detail["outbox_id"])
        async with ledger.engine.connect() as conn:
            row_id = (await conn.execute(select(tab.c[key]).where(*where).limit(1))).scalar_one()
        value = func.replace(tab.c[column], word, word.upper()) if word else "f" * 64
        async with ledger.transaction() as tx:
            await tx.conn.execute(update(tab).where(tab.c[key] == row_id).values({column: value}))
        return str(row_id)

    async def test_the_stored_copies_of_a_real_flow_verify(self, gate: GateContext) -> None:
        await self.flow(gate)
        report = await verify_log(gate.ledger, {})
        assert report.ok, report.problems
        assert report.copies >= 8
        # only what no entry queues (the gate's receipts to senders) has no recorded hash
        assert set(report.unrecorded) == {"outbox.value"}
        assert report.unrecorded["outbox.value"] == await gate.ledger.count("outbox") - 2  # the delivery, the notice

    @pytest.mark.parametrize(
        ("table", "key", "column", "word", "row_name"), COPIES, ids=[f"{c[0]}.{c[2]}" for c in COPIES]
    )
    async def test_one_changed_word_of_a_stored_copy_is_named(
        self, gate: GateContext, table: str, key: str, column: str, word: str | None, row_name: str
    ) -> None:
        await self.flow(gate)
        row_id = await self.tamper(gate.ledger, table, key, column, word)
        report = await verify_log(gate.ledger, {})
        assert not report.ok
        [problem] = report.problems
        assert problem.code == "stored_copy_altered"
        assert problem.place.startswith(f"{table}.{column} of {row_name} {row_id}")
        assert "changed after it was stored" in problem.detail

    async def test_a_deleted_delivery_is_named(self, gate: GateContext) -> None:
        await self.flow(gate)
        [delivery] = await gate.ledger.all_deliveries()
        async with gate.ledger.transaction() as tx:
            await tx.conn.execute(delete(t.deliveries))
        [problem] = (await verify_log(gate.ledger, {})).problems
        assert (problem.code, problem.place) == (
            "stored_copy_missing",
            f"deliveries.envelope of delivery {delivery.delivery_id}",
        )
        assert "delivery.queued" in problem.detail

    async def test_rows_written_before_hashes_were_recorded_are_counted_not_failed(self, ledger: Ledger) -> None:
        await write_events(ledger, 0, 4)  # messages and deliveries whose entries record no hash
        report = await verify_log(ledger, {})
        assert report.ok, report.problems
        assert report.unrecorded == {"messages.envelope": 4, "deliveries.envelope": 4}


class AuditContract(StoredCopiesContract):
    """Every storage backend passes these (and the stored copies'). Subclasses provide the ``ledger`` fixture."""

    @pytest.fixture
    async def ledger(self) -> AsyncIterator[Ledger]:
        raise NotImplementedError("a backend's test class overrides this with a fresh, empty Ledger")
        yield  # noqa: PT022 -- a generator like the backends' fixtures that override it

    @pytest.fixture
    def signer(self, tmp_path: Path) -> Ed25519Signer:
        return KeyStore(tmp_path / "keys").signer("mash:gate")

    @pytest.fixture
    async def log(self, ledger: Ledger, signer: Ed25519Signer) -> Ledger:
        checkpointer = Checkpointer(ledger, signer, ticking(T0 + timedelta(hours=1)))
        written = 0
        for batch in BATCHES:
            await write_events(ledger, written, batch)
            written += batch
            assert await checkpointer.checkpoint() is not None
        await write_events(ledger, written, UNSIGNED)
        return ledger

    async def verify(self, ledger: Ledger, signer: Ed25519Signer) -> Report:
        return await verify_log(ledger, {signer.key_id: signer.public_key})

    async def set_event(self, ledger: Ledger, seq: int, **values: Any) -> None:
        async with ledger.transaction() as tx:
            await tx.conn.execute(update(t.events).where(t.events.c.seq == seq).values(**values))

    async def event_row(self, ledger: Ledger, seq: int) -> dict[str, Any]:
        async with ledger.engine.connect() as conn:
            row = (await conn.execute(select(t.events).where(t.events.c.seq == seq))).mappings().one()
        return dict(row)

    # -- an untouched log ----------------------------------------------------------------------------

    async def test_an_untouched_log_verifies(self, log: Ledger, signer: Ed25519Signer) -> None:
        report = await self.verify(log, signer)
        assert report.ok, report.problems
        assert (report.entries, report.checkpoints, report.covered) == (TOTAL, 3, sum(BATCHES))
        assert [e.seq for e in await log.events()] == list(range(1, TOTAL + 1))

    async def test_nothing_new_means_no_new_checkpoint(self, log: Ledger, signer: Ed25519Signer) -> None:
        checkpointer = Checkpointer(log, signer, ticking())
        head = await checkpointer.checkpoint()
        assert head is not None
        assert head.tree_size == TOTAL
        assert await checkpointer.checkpoint() is None
        assert (await self.verify(log, signer)).ok

    async def test_concurrent_appends_stay_gap_free_and_in_commit_order(
        self, ledger: Ledger, signer: Ed25519Signer
    ) -> None:
        async def writer(w: int) -> None:
            async with ledger.transaction() as tx:
                for k in range(3):
                    await tx.event("thing.happened", None, T0, writer=w, k=k)
                    await asyncio.sleep(0.001)

        async def rolled_back() -> None:
            async with ledger.transaction() as tx:
                await tx.event("thing.rolled_back", None, T0)
                raise ZeroDivisionError

        await asyncio.gather(*(writer(w) for w in range(8)))
        with pytest.raises(ZeroDivisionError):  # a rolled-back append leaves no gap behind it
            await rolled_back()
        await writer(8)
        events = await ledger.events()
        assert [e.seq for e in events] == list(range(1, 28))
        for first in range(0, 27, 3):  # each transaction's entries are contiguous: appends were serialised
            assert len({e.detail["writer"] for e in events[first : first + 3]}) == 1
        await Checkpointer(ledger, signer, ticking()).checkpoint()
        assert (await self.verify(ledger, signer)).ok

    async def test_a_ledger_written_by_the_old_append_path_verifies(
        self, ledger: Ledger, signer: Ed25519Signer
    ) -> None:
        """Entries as ``Tx.event`` wrote them before details were stored as their RFC 8785 text: the detail
        through the JSON column (``json.dumps``), the leaf hash of RFC 8785 of the whole entry."""
        async with ledger.transaction() as tx:
            for n in range(12):
                at = T0 + timedelta(minutes=n, microseconds=n)
                detail = as_stored(
                    {
                        "kind": "notification.encompass",
                        "fields": ["b", "a"],
                        "n": n,
                        "ratio": n / 3,
                        "note": 'é\u2028"x"',
                        "small": 1.5e-7 * (n + 1),
                    }
                )
                await tx.conn.execute(
                    t.events.insert().values(
                        seq=n + 1,
                        at=at,
                        event_type="message.received",
                        message_id=str(MESSAGES[n]),
                        detail=detail,
                        leaf_hash=entry_leaf_hash(at, "message.received", str(MESSAGES[n]), detail),
                    )
                )
        await Checkpointer(ledger, signer, ticking(T0 + timedelta(hours=1))).checkpoint()
        await write_events(ledger, 12, 3)  # and newer entries after them
        report = await self.verify(ledger, signer)
        assert report.ok, report.problems
        assert report.entries == 15
        await self.set_event(ledger, 7, detail={**(await self.event_row(ledger, 7))["detail"], "n": 70})
        report = await self.verify(ledger, signer)
        assert [(p.code, p.place.split(" (")[0]) for p in report.problems][:1] == [("entry_altered", "entry seq 7")]

    async def test_an_untouched_log_is_checked_from_its_raw_columns(
        self, log: Ledger, signer: Ed25519Signer, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Every entry ``Tx.event`` writes is proved by its stored columns: no page is re-read entry by entry
        (until one is edited)."""
        reread: list[tuple[int, int]] = []
        entries_between = log.entries_between

        async def spy(first: int, last: int) -> list[Any]:
            reread.append((first, last))
            return await entries_between(first, last)

        monkeypatch.setattr(log, "entries_between", spy)
        assert (await self.verify(log, signer)).ok
        assert reread == []
        row = await self.event_row(log, 5)
        await self.set_event(log, 5, detail={**row["detail"], "n": 50})
        assert not (await self.verify(log, signer)).ok
        assert reread == [(1, TOTAL)]

    # -- tampered entries ------------------------------------------------------------------------------

    async def test_one_changed_byte_in_an_entry_is_named(self, log: Ledger, signer: Ed25519Signer) -> None:
        row = await self.event_row(log, 5)
        await self.set_event(log, 5, detail={**row["detail"], "sender_org": "police:alphA"})
        report = await self.verify(log, signer)
        assert not report.ok
        first = report.problems[0]
        assert (first.code, first.place.split(" (")[0]) == ("entry_altered", "entry seq 5")
        assert "message.received" in first.place
        assert any(
            p.code == "checkpoint_root_mismatch" and "checkpoint 1 " in p.place and "seq 1..10" in p.detail
            for p in report.problems
        )

    async def test_a_changed_entry_with_a_recomputed_leaf_hash_is_caught_by_the_checkpoint(
        self, log: Ledger, signer: Ed25519Signer
    ) -> None:
        row = await self.event_row(log, 14)
        at = row["at"] + timedelta(microseconds=1)
        await self.set_event(
            log, 14, at=at, leaf_hash=entry_leaf_hash(at, row["event_type"], row["message_id"], row["detail"])
        )
        report = await self.verify(log, signer)
        assert [p.code for p in report.problems][:1] == ["checkpoint_root_mismatch"]
        assert "checkpoint 2 (tree size 17" in report.problems[0].place
        assert "seq 11..17" in report.problems[0].detail

    async def test_a_deleted_entry_is_named(self, log: Ledger, signer: Ed25519Signer) -> None:
        async with log.transaction() as tx:
            await tx.conn.execute(delete(t.events).where(t.events.c.seq == 8))
        report = await self.verify(log, signer)
        assert report.problems[0].code == "entry_missing"
        assert report.problems[0].place == "entry seq 8"
        assert "entry seq 9" in report.problems[0].detail
        with pytest.raises(LogDiverged, match="entry seq 8 is missing"):
            await Checkpointer(log, signer, ticking()).checkpoint()

    async def test_deleted_entries_at_the_end_are_caught_by_the_checkpoint(
        self, log: Ledger, signer: Ed25519Signer
    ) -> None:
        async with log.transaction() as tx:
            await tx.conn.execute(delete(t.events).where(t.events.c.seq >= 20))
        report = await self.verify(log, signer)
        assert report.problems[0].code == "checkpoint_beyond_log"
        assert "checkpoint 3 (tree size 22" in report.problems[0].place
        assert "the log has 19" in report.problems[0].detail

    @pytest.mark.parametrize("with_leaf_hash", [False, True])
    async def test_two_swapped_entries_are_caught(
        self, log: Ledger, signer: Ed25519Signer, with_leaf_hash: bool
    ) -> None:
        a, b = await self.event_row(log, 3), await self.event_row(log, 4)
        columns = ["at", "event_type", "message_id", "detail", *(["leaf_hash"] if with_leaf_hash else [])]
        await self.set_event(log, 3, **{c: b[c] for c in columns})
        await self.set_event(log, 4, **{c: a[c] for c in columns})
        report = await self.verify(log, signer)
        first = report.problems[0]
        if with_leaf_hash:  # each entry still matches its own hash: the signed root catches the reordering
            assert first.code == "checkpoint_root_mismatch"
            assert "checkpoint 1 " in first.place
            assert "seq 1..10" in first.detail
        else:
            assert first.code == "entry_altered"
            assert first.place.startswith("entry seq 3 (message.received")
            assert report.more == {"entry_altered": 1}

    # -- tampered checkpoints -----------------------------------------------------------------------

    async def test_a_replaced_checkpoint_root_is_named(self, log: Ledger, signer: Ed25519Signer) -> None:
        async with log.transaction() as tx:
            await tx.conn.execute(
                update(t.checkpoints).where(t.checkpoints.c.tree_size == 17).values(root_hash="ab" * 32)
            )
        report = await self.verify(log, signer)
        assert [p.code for p in report.problems] == ["checkpoint_bad_signature", "checkpoint_root_mismatch"]
        assert all("tree size 17" in p.place for p in report.problems)

    async def test_a_replaced_checkpoint_signature_is_named(self, log: Ledger, signer: Ed25519Signer) -> None:
        forged = base64.b64encode(signer.sign(b"something else")).decode()
        async with log.transaction() as tx:
            await tx.conn.execute(update(t.checkpoints).where(t.checkpoints.c.tree_size == 10).values(signature=forged))
        report = await self.verify(log, signer)
        assert [p.code for p in report.problems] == ["checkpoint_bad_signature"]
        assert "tree size 10" in report.problems[0].place

    async def test_a_checkpoint_signed_with_another_key_is_named(
        self, log: Ledger, signer: Ed25519Signer, tmp_path: Path
    ) -> None:
        intruder = KeyStore(tmp_path / "intruder").signer("mash:gate")
        await Checkpointer(log, intruder, ticking()).checkpoint()
        report = await self.verify(log, signer)
        assert [p.code for p in report.problems] == ["checkpoint_unknown_key"]
        assert intruder.key_id in report.problems[0].detail

    # -- proofs a third party checks ---------------------------------------------------------------

    async def prove(self, ledger: Ledger, signer: Ed25519Signer, message: uuid.UUID, **kw: Any) -> ProofFile:
        checkpointer = Checkpointer(ledger, signer, ticking())
        return await prove(checkpointer, {signer.key_id: public_key_b64(signer.public_key)}, str(message), **kw)

    async def test_a_proof_checks_offline_and_fails_when_tampered(
        self, log: Ledger, signer: Ed25519Signer, tmp_path: Path
    ) -> None:
        proof = await self.prove(log, signer, MESSAGES[6])
        raw = proof.model_dump_json()
        good = check_proof(raw, signer.public_key)
        assert good.ok, good.problems
        assert [(e["seq"], e["event_type"], e["message_id"]) for e in good.entries] == [
            (7, "message.received", str(MESSAGES[6]))
        ]

        doc = json.loads(raw)
        entry = json.loads(base64.b64decode(doc["entries"][0]["entry"]))
        entry["detail"]["sender_org"] = "police:gamma"
        doc["entries"][0]["entry"] = base64.b64encode(rfc8785.dumps(entry)).decode()
        assert not check_proof(json.dumps(doc), signer.public_key).ok
        doc["entries"][0]["leaf_hash"] = leaf_hash(rfc8785.dumps(entry)).hex()  # a consistent forgery
        forged = check_proof(json.dumps(doc), signer.public_key)
        assert forged.problems == ["entry seq 7: the inclusion proof does not lead to the signed root"]

        other = KeyStore(tmp_path / "other").signer("mash:gate")
        wrong_key = check_proof(raw, other.public_key)
        assert not wrong_key.ok
        assert "does not verify" in " ".join(wrong_key.problems)

        doc = json.loads(raw)
        doc["checkpoint"]["tree_size"] += 1
        assert (
            "the checkpoint's signature does not verify with the key given"
            in check_proof(json.dumps(doc), signer.public_key).problems
        )

    async def test_proving_an_unsigned_entry_signs_a_checkpoint_first(self, log: Ledger, signer: Ed25519Signer) -> None:
        proof = await self.prove(log, signer, MESSAGES[TOTAL - 1])
        assert proof.checkpoint.tree_size == TOTAL
        assert check_proof(proof.model_dump_json(), signer.public_key).ok
        assert (await self.verify(log, signer)).checkpoints == 4

    async def test_a_proof_is_refused_when_the_entry_was_altered(self, log: Ledger, signer: Ed25519Signer) -> None:
        row = await self.event_row(log, 2)
        await self.set_event(log, 2, detail={**row["detail"], "n": 99})
        with pytest.raises(LogDiverged, match="entry seq 2"):
            await self.prove(log, signer, MESSAGES[1])

    async def test_an_export_for_one_agency_and_period_checks_offline(self, log: Ledger, signer: Ed25519Signer) -> None:
        checkpointer = Checkpointer(log, signer, ticking())
        keys = {signer.key_id: public_key_b64(signer.public_key)}
        start, end = T0 + timedelta(minutes=4), T0 + timedelta(minutes=12)
        proof = await export(checkpointer, keys, start, end, "police:alpha")
        assert [e.seq for e in proof.entries] == [6, 8, 10, 12]  # n = 5, 7, 9, 11: police:alpha's
        assert proof.public_key == keys[signer.key_id]
        result = check_proof(proof.model_dump_json(), signer.public_key)
        assert result.ok, result.problems
        assert {e["detail"]["sender_org"] for e in result.entries} == {"police:alpha"}
        school = await export(checkpointer, keys, T0, T0 + timedelta(days=1), "school:900001")
        assert len(school.entries) == TOTAL

    # -- the checkpointer in a running stack -------------------------------------------------------

    async def test_the_checkpointer_signs_at_its_interval_and_on_stop(
        self, ledger: Ledger, signer: Ed25519Signer
    ) -> None:
        checkpointer = Checkpointer(ledger, signer, ticking(), interval_s=0.05)
        checkpointer.start()
        try:
            await write_events(ledger, 0, 4)
            for _ in range(100):
                await asyncio.sleep(0.05)
                if await ledger.count("checkpoints"):
                    break
            await asyncio.sleep(0.2)  # further intervals with nothing new sign nothing
            assert await ledger.count("checkpoints") == 1
            await write_events(ledger, 4, 2)
        finally:
            await checkpointer.stop()
        report = await self.verify(ledger, signer)
        assert report.ok, report.problems
        assert (report.checkpoints, report.covered) == (2, 6)
