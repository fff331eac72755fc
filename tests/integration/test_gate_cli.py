"""`mash gate explain | check | what-if` over a SQLite ledger in a temporary data dir (no broker needed).

The history is made by the gate's own handler (``process_inbound``) under the shipped policy: an
early-help referral shared on consent, the consent then withdrawn while a second referral waited,
and a referral for a child with no consent at all.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import time, timedelta
from pathlib import Path

import pytest
from consent_builders import CHILD, NOW, POLICY, ROOT, consent, contact
from typer.testing import CliRunner

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.cli import app
from mash_broker.contracts import ConsentRecord, Envelope, topics
from mash_broker.core.clocks import load_calendar
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

SHIPPED_POLICY = ROOT / "mash_broker" / "defaults" / "policy.toml"
OTHER_CHILD = {"given_name": "Ottoline", "family_name": "Marchbanks", "date_of_birth": "2015-03-02"}


def consent_envelope(record: ConsentRecord) -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": record.kind,
            "sender_org": "school:900001",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "payload": record.model_dump(mode="json"),
        }
    )


class History:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.shared = contact()
        self.withdrawn = contact()
        self.unconsented = contact(subject=OTHER_CHILD)
        self.consent = consent()


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> History:
    h = History(tmp_path_factory.mktemp("gate-cli") / "mash")
    h.data_dir.mkdir()

    async def build() -> None:
        ledger = await Ledger.open(Settings(data_dir=h.data_dir).ledger_url)
        at = [NOW]
        gate = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: at[0],
            consent_settle=timedelta(minutes=5),
        )
        try:
            await process_inbound(gate, consent_envelope(h.consent).model_dump_json().encode(), topics.CONSENT_RECORDS)
            assert await process_inbound(gate, h.shared.model_dump_json().encode(), EDUCATION_INBOUND) == "share"
            published = await ledger.pending_outbox(now=NOW + timedelta(minutes=5))
            await ledger.mark_published([r.seq for r in published], NOW + timedelta(minutes=5))
            at[0] = NOW + timedelta(hours=1)
            assert await process_inbound(gate, h.withdrawn.model_dump_json().encode(), EDUCATION_INBOUND) == "share"
            at[0] = NOW + timedelta(hours=1, minutes=1)  # while the second share waits out its window
            withdrawal = consent("withdrawn", consent_id=h.consent.consent_id, recorded=at[0])
            await process_inbound(gate, consent_envelope(withdrawal).model_dump_json().encode(), topics.CONSENT_RECORDS)
            assert (
                await process_inbound(gate, h.unconsented.model_dump_json().encode(), EDUCATION_INBOUND) == "withhold"
            )
        finally:
            await ledger.close()

    asyncio.run(build())
    return h


def mash(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"MASH_DATA_DIR": str(data_dir), "MASH_LOG_LEVEL": "WARNING"})
    return result.exit_code, result.stdout, result.stderr


def test_explain_a_share_says_what_went_to_whom_and_on_what_basis(history: History) -> None:
    code, out, err = mash(history.data_dir, "gate", "explain", str(history.shared.message_id)[:8])
    assert (code, err) == (0, "")
    assert f"message {history.shared.message_id} (contact) from school:900001" in out
    assert "lawful basis: Article 6 consent" in out
    assert "decision: SHARE under policy" in out
    assert "rules tried:" in out
    assert "released to early_help:team-north: subject.given_name, subject.family_name" in out
    assert f"relied on consent {history.consent.consent_id}" in out


def test_explain_a_share_stopped_by_a_withdrawal_says_why(history: History) -> None:
    code, out, _ = mash(history.data_dir, "gate", "explain", str(history.withdrawn.message_id))
    assert code == 0
    assert "decision: WITHHOLD" in out
    assert "consent_withdrawn" in out
    assert "withdrawn before it was sent (consent withdrawn)" in out
    assert "withdrawn from early_help:team-north at " in out


def test_explain_a_withhold_names_the_missing_consent(history: History) -> None:
    code, out, _ = mash(history.data_dir, "gate", "explain", str(history.unconsented.message_id))
    assert code == 0
    assert "decision: WITHHOLD" in out
    assert not [line for line in out.splitlines() if line.startswith("released to")]
    assert "not released to early_help:team-north (withhold)" in out


def test_explain_an_unknown_message_exits_4(history: History) -> None:
    code, _, err = mash(history.data_dir, "gate", "explain", "ffffffff")
    assert code == 4
    assert "not found: no message ffffffff in the ledger" in err


def test_check_decides_with_the_ledgers_consent_and_sends_nothing(history: History, tmp_path: Path) -> None:
    before = (history.data_dir / "ledger.sqlite3").stat().st_size
    message = tmp_path / "contact.json"
    message.write_text(contact().model_dump_json())
    code, out, _ = mash(history.data_dir, "gate", "check", str(message), "--json")
    assert code == 0
    decision = json.loads(out)
    assert decision["verdict"] == "withhold", "the consent on record has been withdrawn"
    assert "consent_withdrawn" in decision["reasons"]
    assert decision["released"] == {}

    message.write_text(contact(subject=OTHER_CHILD).model_dump_json())
    code, out, _ = mash(history.data_dir, "gate", "check", str(message))
    assert code == 0
    assert "decision: WITHHOLD" in out
    assert (history.data_dir / "ledger.sqlite3").stat().st_size == before


def test_check_refuses_a_malformed_message_naming_the_field(history: History, tmp_path: Path) -> None:
    doc = json.loads(contact().model_dump_json())
    del doc["subject"]["date_of_birth"]
    message = tmp_path / "bad.json"
    message.write_text(json.dumps(doc))
    code, _, err = mash(history.data_dir, "gate", "check", str(message))
    assert code == 2
    assert "subject.date_of_birth: Field required" in err
    assert "Zebedee" not in err, "the message's values are not quoted back"


def test_what_if_the_shipped_policy_changes_nothing(history: History) -> None:
    code, out, _ = mash(history.data_dir, "gate", "what-if", "--policy", str(SHIPPED_POLICY), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["replayed"] == 3
    assert report["changes"] == []


def test_what_if_lists_the_decisions_a_new_policy_would_change(history: History, tmp_path: Path) -> None:
    text = SHIPPED_POLICY.read_text()
    head, early_help = text.split('name = "early-help-with-consent"')
    narrower = (
        head
        + 'name = "early-help-with-consent"'
        + early_help.replace(
            '"payload.referrer_name", "payload.referrer_role", "payload.what_happened", "payload.worried_about",',
            '"payload.what_happened",',
            1,
        )
    )
    assert narrower != text
    new = tmp_path / "policy.toml"
    new.write_text(narrower.replace('version = "', 'version = "next-', 1))
    code, out, _ = mash(history.data_dir, "gate", "what-if", "--policy", str(new), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["policy_version"].startswith("next-")
    # Both referrals were shared when decided (the second was stopped later by the withdrawal).
    changes = {c["message_id"]: c for c in report["changes"]}
    assert set(changes) == {str(history.shared.message_id), str(history.withdrawn.message_id)}
    for change in changes.values():
        assert (change["was"], change["would_be"]) == ("share", "share")
        assert change["fields_removed"] == ["payload.referrer_name", "payload.referrer_role", "payload.worried_about"]
        assert change["fields_added"] == []

    code, out, _ = mash(history.data_dir, "gate", "what-if", "--policy", str(new))
    assert code == 0
    assert "replayed 3 recorded decisions under policy next-" in out
    assert "2 would change" in out


def test_what_if_refuses_a_broken_policy_naming_the_field(history: History, tmp_path: Path) -> None:
    broken = tmp_path / "policy.toml"
    broken.write_text(SHIPPED_POLICY.read_text().replace('content_level = "full"', 'content_level = "everything"', 1))
    code, _, err = mash(history.data_dir, "gate", "what-if", "--policy", str(broken))
    assert code == 2
    assert "content_level" in err
