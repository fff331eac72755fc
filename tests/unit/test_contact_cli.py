"""`mash contact check`, in process: complete (0), incomplete with each field named (1), unusable (2)."""

from __future__ import annotations

import json
from pathlib import Path

from consent_builders import CHILD, contact
from typer.testing import CliRunner

from mash_broker.app.cli import app

runner = CliRunner()


def written(tmp_path: Path, doc: dict[str, object]) -> str:
    path = tmp_path / "contact.json"
    path.write_text(json.dumps(doc))
    return str(path)


def test_a_complete_contact_passes(tmp_path: Path) -> None:
    doc = contact().model_dump(mode="json")
    doc["subject"] = dict(CHILD, identifiers=[{"scheme": "nhs_number", "value": "9990000018"}])
    result = runner.invoke(app, ["contact", "check", written(tmp_path, doc)])
    assert result.exit_code == 0, result.output
    assert "complete" in result.output


def test_an_incomplete_contact_names_each_field(tmp_path: Path) -> None:
    doc = contact().model_dump(mode="json")
    doc["payload"]["worried_about"] = ""
    result = runner.invoke(app, ["contact", "check", "--json", written(tmp_path, doc)])
    assert result.exit_code == 1, result.output
    report = json.loads(result.output)
    assert [m["field"] for m in report["missing"]] == ["subject.identifiers", "payload.worried_about"]
    assert "Zebedee" not in result.output


def test_a_contact_failing_its_contract_is_unusable_naming_the_field(tmp_path: Path) -> None:
    doc = contact().model_dump(mode="json")
    del doc["payload"]["referrer_name"]
    result = runner.invoke(app, ["contact", "check", written(tmp_path, doc)])
    assert result.exit_code == 2
    assert "payload.contact.referrer_name: Field required" in result.output
