"""Senders with MASH_ENCRYPT_TO_GATE on (`mash police ingest`, `mash send`): each row's content is sealed to
the gate's encryption key in force and the sealed envelope signed with the sender's key; what goes on the
topic carries no child's detail, verifies over what travelled and opens at the gate to the row as read.
Off (the default), rows go out signed and readable, as before."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from mash_broker.agencies.police.export import ParsedRow
from mash_broker.agencies.police.ingest import SealedRow, publish_rows, sign_rows
from mash_broker.app import commands, message_file
from mash_broker.contracts import EncryptedEnvelope, Envelope
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.messages import GATE_ORG, content_hash
from mash_broker.core.records import Receipt
from mash_broker.core.sealing import open_inbound
from mash_broker.core.settings import Settings
from mash_broker.core.signing import KeyMissing, register_key, registry_entry, rotate, verify
from mash_broker.core.signing.registry import RegisteredEncryptionKey, load_registry
from mash_broker.core.signing.registry_file import new_encryption_key

NOW = datetime.now(UTC)  # senders seal to the key in force now
POLICE = "police:examplepolice"
GIVEN, FAMILY, DOB = "Zebedee", "Quillfeather", "2016-05-12"  # synthetic


def notification(reference: str = "EXP/2026/1001") -> Envelope:
    occurred = NOW - timedelta(hours=9)
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": POLICE,
            "sender_local_id": reference,
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": {"given_name": GIVEN, "family_name": FAMILY, "date_of_birth": DOB},
            "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
            "payload": {
                "kind": "notification.encompass",
                "police_reference": reference,
                "force": "examplepolice",
                "occurred_at": occurred,
                "reported_at": occurred + timedelta(minutes=15),
                "child_present": "yes",
                "school_urn": "900001",
                "home_postcode": "ZZ99 1AA",
                "summary_for_school": "Officers attended.",
            },
        }
    )


class Stack:
    """A data dir with the force's signing key and the gate's encryption key registered."""

    def __init__(self, root: Path, *, gate_key: bool = True) -> None:
        self.store = KeyStore(root / "keys")
        self.registry = root / "keys" / "registry.toml"
        register_key(self.registry, registry_entry(POLICE, rotate(self.store, POLICE), NOW - timedelta(days=1), None))
        self.gate: RegisteredEncryptionKey | None = (
            new_encryption_key(self.store, self.registry, GATE_ORG, NOW - timedelta(hours=1)) if gate_key else None
        )

    def settings(self, *, encrypt: bool) -> Settings:
        return Settings(
            data_dir=self.store.directory.parent,
            key_registry=self.registry,
            encrypt_to_gate=encrypt,
            receipt_timeout_s=1,
            send_attempts=1,
        )


class Gate:
    """Receives what a sender sends, opens it with the gate's keys and receipts it by its plaintext content."""

    def __init__(self, stack: Stack) -> None:
        self.stack, self.values, self.hashes = stack, list[bytes](), dict[str, str]()

    def take(self, value: bytes) -> None:
        self.values.append(value)
        opened = open_inbound(value, self.stack.store.encryption_keys(GATE_ORG))
        assert isinstance(opened, Envelope), opened
        self.hashes[str(opened.message_id)] = content_hash(opened)

    async def send(self, _topic: str, _key: bytes, value: bytes, _headers: list[tuple[str, bytes]]) -> None:
        self.take(value)

    async def receipts_for_content(self, sent: Mapping[str, str]) -> dict[str, Receipt]:
        return {m: Receipt(m, "share", (), None) for m, h in sent.items() if self.hashes.get(m) == h}


def test_a_sealed_row_signed_over_the_ciphertext_opens_at_the_gate_to_the_row(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    row = ParsedRow(2, notification())

    [sealed] = sign_rows([row], stack.store, seal_to=stack.gate)

    assert isinstance(sealed, SealedRow)
    assert sealed.envelope == row.envelope  # the plaintext, kept for the receipts
    wire = EncryptedEnvelope.model_validate_json(sealed.wire)
    assert wire.payload.recipient_org == GATE_ORG
    assert verify(wire, load_registry(stack.registry), NOW).ok
    assert open_inbound(sealed.wire.encode(), stack.store.encryption_keys(GATE_ORG)) == row.envelope
    for secret in (GIVEN, FAMILY, DOB, "ZZ99", "Officers attended"):
        assert secret not in sealed.wire


def test_without_a_seal_key_rows_are_signed_and_readable_as_before(tmp_path: Path) -> None:
    stack = Stack(tmp_path)

    [signed] = sign_rows([ParsedRow(2, notification())], stack.store)

    assert not isinstance(signed, SealedRow)
    assert verify(signed.envelope, load_registry(stack.registry), NOW).ok


async def test_publish_rows_sends_the_sealed_form_and_gets_the_receipt_for_its_content(tmp_path: Path) -> None:
    stack = Stack(tmp_path)
    gate = Gate(stack)
    rows = sign_rows(
        [ParsedRow(2, notification("A/1")), ParsedRow(3, notification("A/2"))], stack.store, seal_to=stack.gate
    )

    receipts = await publish_rows(rows, ledger=gate, send=gate.send, timeout_s=1, attempts=1, poll_s=0.01)

    assert [r.status for r in receipts] == ["accepted", "accepted"]
    assert [v.decode() for v in gate.values] == [r.wire for r in rows if isinstance(r, SealedRow)]
    assert all(GIVEN.encode() not in v for v in gate.values)


def test_the_setting_is_off_by_default_and_on_needs_the_gates_key(tmp_path: Path) -> None:
    with_key, without = Stack(tmp_path / "a"), Stack(tmp_path / "b", gate_key=False)

    assert Settings.model_fields["encrypt_to_gate"].default is False
    assert message_file.gate_seal_key(with_key.settings(encrypt=False), NOW) is None
    key = message_file.gate_seal_key(with_key.settings(encrypt=True), NOW)
    assert with_key.gate is not None
    assert key is not None
    assert key.key_id == with_key.gate.key_id
    with pytest.raises(KeyMissing, match="mash keys encryption new mash:gate"):
        message_file.gate_seal_key(without.settings(encrypt=True), NOW)


def fake_producer(gate: Gate) -> Any:
    class Producer:
        async def send(self, _topic: str, value: bytes, key: bytes, headers: list[tuple[str, bytes]]) -> None:
            gate.take(value)

        async def flush(self) -> None:
            return None

    @asynccontextmanager
    async def producer(_settings: Settings, _bootstrap: str) -> AsyncIterator[Producer]:
        yield Producer()

    return producer


async def test_mash_send_seals_each_record_to_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack(tmp_path)
    gate = Gate(stack)
    monkeypatch.setattr(message_file, "producer", fake_producer(gate))
    path = tmp_path / "records.jsonl"
    path.write_text("\n".join(notification(f"B/{i}").model_dump_json() for i in range(3)) + "\n")

    report = await message_file.send_file(
        stack.settings(encrypt=True), gate, "in-memory", path, topic_for=lambda _env: "police.notification.v1"
    )

    assert report.counts() == {"accepted": 3}
    assert len(gate.values) == 3
    for value in gate.values:
        doc = json.loads(value)
        assert set(doc["payload"]) == {"alg", "recipient_org", "key_id", "enc", "ct"}
        assert verify(EncryptedEnvelope.model_validate(doc), load_registry(stack.registry), NOW).ok
        assert DOB.encode() not in value


async def test_police_ingest_seals_each_row_to_the_gate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stack = Stack(tmp_path)
    gate = Gate(stack)
    monkeypatch.setattr(commands, "producer", fake_producer(gate))
    withdrawal = notification("C/1")  # withdraw takes ingest's own signing and sending path (_sign_and_publish)

    report = await commands.withdraw(stack.settings(encrypt=True), gate, "in-memory", withdrawal)  # type: ignore[arg-type]

    assert report.counts() == {"accepted": 1}
    [value] = gate.values
    assert GIVEN.encode() not in value
    assert open_inbound(value, stack.store.encryption_keys(GATE_ORG)) == withdrawal
