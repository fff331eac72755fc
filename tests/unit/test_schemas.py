"""The committed JSON Schemas and AsyncAPI document match the code, and `mash contracts export` writes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_ACKNOWLEDGEMENTS, POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import asyncapi_document
from mash_broker.contracts import topics
from mash_broker.contracts.schemas import COMMITTED, CONTRACTS, schema_documents
from mash_broker.core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI = ROOT / "docs" / "asyncapi.json"
REGENERATE = (
    "the committed contract schemas are stale: run `mash contracts export contracts/jsonschema` "
    "(then delete contracts/jsonschema/asyncapi.json, and commit the rest)"
)

SAMPLE: dict[str, Any] = {
    "message_id": "00000000-0000-4000-8000-000000000001",
    "kind": "notification.encompass",
    "sender_org": "police:example",
    "correlation_id": "00000000-0000-4000-8000-000000000002",
    "produced_at": "2026-11-17T07:00:00Z",
    "subject": {"given_name": "Zebedee", "family_name": "Quillfeather", "date_of_birth": "2016-05-12"},
    "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
    "payload": {
        "kind": "notification.encompass",
        "police_reference": "EXP/2026/1001",
        "force": "example",
        "occurred_at": "2026-11-16T21:40:00Z",
        "reported_at": "2026-11-16T21:55:00Z",
        "child_present": "yes",
        "school_urn": "900001",
    },
}


def committed() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(COMMITTED.glob("*.schema.json"))}


def test_committed_schemas_equal_the_generated_ones() -> None:
    generated, on_disk = schema_documents(), committed()
    missing = sorted(set(generated) - set(on_disk))
    extra = sorted(set(on_disk) - set(generated))
    stale = sorted(n for n in set(generated) & set(on_disk) if generated[n] != on_disk[n])
    assert not missing, f"{REGENERATE}; missing: {missing}"
    assert not extra, f"{REGENERATE}; no contract for: {extra}"
    assert not stale, f"{REGENERATE}; differ: {stale}"


def test_every_contract_has_a_committed_schema_with_its_id() -> None:
    for name in CONTRACTS:
        path = COMMITTED / f"{name}.v1.schema.json"
        assert path.is_file(), f"no {path.relative_to(ROOT)}: {REGENERATE}"
        doc = json.loads(path.read_text(encoding="utf-8"))
        assert doc["$id"] == f"urn:mash-broker:contract:{name}:v1"
        assert doc["additionalProperties"] is False


def test_committed_envelope_schema_names_every_payload_kind() -> None:
    doc = json.loads((COMMITTED / "envelope.v1.schema.json").read_text(encoding="utf-8"))
    mapping = doc["properties"]["payload"]["discriminator"]["mapping"]
    assert set(mapping) == set(CONTRACTS) - {"envelope"}


def test_sample_fields_are_the_ones_the_committed_schema_declares() -> None:
    """Without a validator: required and declared properties, envelope and payload, checked by hand."""
    doc = json.loads((COMMITTED / "envelope.v1.schema.json").read_text(encoding="utf-8"))
    assert set(doc["required"]) <= set(SAMPLE) <= set(doc["properties"])
    payload = doc["$defs"]["EncompassNotification"]
    assert set(payload["required"]) <= set(SAMPLE["payload"]) <= set(payload["properties"])
    assert payload["additionalProperties"] is False


def test_sample_validates_against_the_committed_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema", reason="needs the jsonschema package (not installed)")
    schema = json.loads((COMMITTED / "envelope.v1.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate(SAMPLE)
    with pytest.raises(jsonschema.ValidationError):
        validator.validate({**SAMPLE, "unexpected": 1})


def test_committed_asyncapi_document_equals_the_generated_one(tmp_path: Path) -> None:
    assert ASYNCAPI.is_file(), "no docs/asyncapi.json: run `mash contracts export DIR` and copy DIR/asyncapi.json"
    generated = asyncapi_document(Settings(data_dir=tmp_path)) + "\n"
    assert ASYNCAPI.read_text(encoding="utf-8") == generated, (
        "docs/asyncapi.json is stale: run `mash contracts export DIR` and copy DIR/asyncapi.json to docs/"
    )


def test_mash_contracts_export_writes_every_schema_and_the_asyncapi_document(tmp_path: Path) -> None:
    out = tmp_path / "export"
    # A subprocess, not CliRunner: the command configures logging process-wide onto its own stderr.
    done = subprocess.run(
        [sys.executable, "-c", "from mash_broker.app.cli import main; main()", "contracts", "export", str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "MASH_DATA_DIR": str(tmp_path / "data"), "PYTHONPATH": str(ROOT)},
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {len(CONTRACTS) + 1} files" in done.stdout
    written = {p.name: p.read_text(encoding="utf-8") for p in out.glob("*.schema.json")}
    assert written == schema_documents()

    spec = json.loads((out / "asyncapi.json").read_text(encoding="utf-8"))
    assert spec["asyncapi"].startswith("3.")
    addresses = {c["address"] for c in spec["channels"].values()}
    assert POLICE_NOTIFICATIONS in addresses  # the gate's inbound channel
    assert {
        *REGISTRY.inbound_topics,
        EDUCATION_DELIVERIES,
        POLICE_RECEIPTS,
        POLICE_ACKNOWLEDGEMENTS,
        topics.MASH_QUEUE,
        topics.GATE_QUARANTINE,
    } <= addresses
    gate = next(c for c in spec["channels"].values() if c["address"] == POLICE_NOTIFICATIONS)
    assert gate["messages"], "the gate's channel documents no message"
    assert "Envelope" in spec["components"]["schemas"]
