"""`mash audit ...` end to end over a SQLite ledger in a temporary data dir (no broker needed).

What a third party does: take a proof file and the gate's public key, and check it offline.
"""

from __future__ import annotations

import asyncio
import json
import stat
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from mash_broker.app.cli import app
from mash_broker.core.audit.copies import stored_sha256
from mash_broker.core.audit.keys import KeyStore, public_key_b64
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger
from mash_broker.storage import schema as t

T0 = datetime(2026, 11, 17, 6, 30, tzinfo=UTC)
MESSAGES = [uuid.UUID(f"a{n:07x}-0000-4000-8000-000000000000") for n in range(12)]  # synthetic, distinct prefixes


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "mash"

    async def build() -> None:
        data.mkdir()
        ledger = await Ledger.open(Settings(data_dir=data).ledger_url)
        try:
            for n, mid in enumerate(MESSAGES):
                at = T0 + timedelta(hours=n)
                async with ledger.transaction() as tx:
                    sender = "police:alpha" if n % 3 else "police:beta"
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
                    await tx.event("message.received", mid, at, kind="notification.encompass", sender_org=sender)
                    await tx.event("decision.recorded", mid, at, verdict="share", reasons=["statutory_duty"])
        finally:
            await ledger.close()

    asyncio.run(build())
    return data


def mash(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"MASH_DATA_DIR": str(data_dir), "MASH_LOG_LEVEL": "WARNING"})
    return result.exit_code, result.stdout, result.stderr


def tamper(data_dir: Path, seq: int) -> None:
    async def change() -> None:
        ledger = await Ledger.open(Settings(data_dir=data_dir).ledger_url)
        try:
            async with ledger.transaction() as tx:
                await tx.conn.execute(
                    update(t.events)
                    .where(t.events.c.seq == seq)
                    .values(detail={"verdict": "withhold", "reasons": ["statutory_duty"]})
                )
        finally:
            await ledger.close()

    asyncio.run(change())


def test_checkpoint_then_verify(data_dir: Path) -> None:
    code, out, _ = mash(data_dir, "audit", "checkpoint")
    assert code == 0
    assert "signed checkpoint 1 (tree size 24" in out
    key = data_dir / "keys" / "mash+gate.key.pem"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert mash(data_dir, "audit", "checkpoint")[1].startswith("no new entries")

    code, out, err = mash(data_dir, "audit", "verify")
    assert (code, err) == (0, "")
    assert out.startswith("OK: 24 entries and 1 signed checkpoints verified")

    tamper(data_dir, 6)
    code, out, err = mash(data_dir, "audit", "verify")
    assert code == 1
    assert err.startswith(f"FAILS: entry seq 6 (decision.recorded, message {MESSAGES[2]}")
    assert "checkpoint 1 (tree size 24" in err

    code, out, _ = mash(data_dir, "audit", "verify", "--json")
    assert code == 1
    assert [p["code"] for p in json.loads(out)["problems"]] == ["entry_altered", "checkpoint_root_mismatch"]


def test_prove_then_check_proof_offline(data_dir: Path, tmp_path: Path) -> None:
    code, public, _ = mash(data_dir, "audit", "public-key")
    assert code == 0
    public = public.strip()
    proof = tmp_path / "proof.json"
    code, _, err = mash(data_dir, "audit", "prove", str(MESSAGES[4])[:8], "--out", str(proof))
    assert code == 0, err
    assert "1 entries proven against checkpoint at tree size 24" in err  # no checkpoint yet: one was signed
    doc = json.loads(proof.read_text())
    assert doc["subject"] == {"message_id": str(MESSAGES[4]), "entries": "message.received"}
    assert doc["public_key"] == public

    code, out, _ = mash(data_dir, "audit", "check-proof", str(proof), "--key", public)
    assert code == 0
    assert out.startswith("VALID: key ")
    assert f"seq 9  2026-11-17T10:30:00.000000Z  message.received message {MESSAGES[4]}" in out

    pem = tmp_path / "gate.pem"
    pem.write_text(mash(data_dir, "audit", "public-key", "--pem")[1])
    assert mash(data_dir, "audit", "check-proof", str(proof), "--key", str(pem))[0] == 0

    other = public_key_b64(KeyStore(tmp_path / "other").public_key("mash:gate"))
    code, _, err = mash(data_dir, "audit", "check-proof", str(proof), "--key", other)
    assert code == 1
    assert err.startswith("INVALID: the checkpoint names key ")

    doc["entries"][0]["audit_path"][0] = "0" * 64
    proof.write_text(json.dumps(doc))
    code, _, err = mash(data_dir, "audit", "check-proof", str(proof), "--key", public)
    assert code == 1
    assert err.startswith("INVALID: entry seq 9: the inclusion proof does not lead to the signed root")

    code, _, err = mash(data_dir, "audit", "check-proof", str(proof), "--key", "not a key")
    assert code == 2
    assert err.startswith("unusable: --key")


def test_prove_all_entries_and_an_unknown_message(data_dir: Path) -> None:
    code, out, _ = mash(data_dir, "audit", "prove", str(MESSAGES[0]), "--all")
    assert code == 0
    assert [e["seq"] for e in json.loads(out)["entries"]] == [1, 2]
    code, _, err = mash(data_dir, "audit", "prove", str(uuid.UUID(int=7)))
    assert code == 4
    assert "no entries in the audited log match" in err


def test_export_one_agency_for_a_period(data_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "export.json"
    code, _, err = mash(
        data_dir,
        "audit",
        "export",
        "--from",
        "2026-11-17T08:00:00+00:00",
        "--to",
        "2026-11-17T14:00:00Z",
        "--org",
        "police:beta",
        "--out",
        str(dest),
    )
    assert code == 0, err
    doc = json.loads(dest.read_text())
    # police:beta sent messages 0, 3, 6, 9 (06:30, 09:30, 12:30, 15:30): 3 and 6 fall in the period
    assert [e["seq"] for e in doc["entries"]] == [7, 8, 13, 14]
    assert doc["subject"]["org"] == "police:beta"
    public = mash(data_dir, "audit", "public-key")[1].strip()
    code, out, _ = mash(data_dir, "audit", "check-proof", str(dest), "--key", public)
    assert code == 0
    assert "these 4 entries are in it" in out
    code, _, err = mash(data_dir, "audit", "export", "--from", "yesterday", "--to", "2026-11-18")
    assert code == 2
    assert err.startswith("unusable: --from: 'yesterday' is not a date or time")


def test_verify_names_a_stored_copy_changed_in_the_database(tmp_path: Path) -> None:
    """Problem 9 of issue 11: one word of a stored envelope changed directly in the database."""
    data = tmp_path / "mash"
    mid, did = MESSAGES[0], uuid.UUID(int=7)
    envelope = json.dumps({"message_id": str(mid), "summary_for_school": "synthetic summary"})

    async def build(change: str | None) -> None:
        ledger = await Ledger.open(Settings(data_dir=data).ledger_url)
        try:
            async with ledger.transaction() as tx:
                if change is None:  # as the gate writes them: each copy's hash in the entry that stores it
                    await tx.insert_message(
                        message_id=mid,
                        kind="notification.encompass",
                        sender_org="police:alpha",
                        correlation_id=mid,
                        topic="police.notification.v1",
                        content_hash="0" * 64,
                        received_at=T0,
                        envelope=envelope,
                    )
                    await tx.insert_delivery(
                        delivery_id=did,
                        message_id=mid,
                        recipient="school:900001",
                        purpose="operation_encompass",
                        notify_by=None,
                        created_at=T0,
                        envelope=envelope,
                    )
                    await tx.event(
                        "message.received", mid, T0, content_hash="0" * 64, envelope_sha256=stored_sha256(envelope)
                    )
                    await tx.event(
                        "delivery.queued", mid, T0, delivery_id=str(did), envelope_sha256=stored_sha256(envelope)
                    )
                else:
                    table = t.metadata.tables[change]
                    await tx.conn.execute(update(table).values(envelope=envelope.replace("summary", "Summary")))
        finally:
            await ledger.close()

    data.mkdir()
    asyncio.run(build(None))
    code, out, err = mash(data, "audit", "verify")
    assert (code, err) == (0, ""), err
    assert "3 stored copies match" in out
    asyncio.run(build("deliveries"))
    code, _, err = mash(data, "audit", "verify")
    assert code == 1
    assert f"FAILS: deliveries.envelope of delivery {did}: was changed after it was stored" in err
    asyncio.run(build("messages"))
    code, out, _ = mash(data, "audit", "verify", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["ok"] is False
    assert [(p["code"], p["place"]) for p in doc["problems"]] == [
        ("stored_copy_altered", f"messages.envelope of message {mid}"),
        ("stored_copy_altered", f"deliveries.envelope of delivery {did}"),
    ]
