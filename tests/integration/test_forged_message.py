"""Forged messages over the embedded broker (issue 4): a police Encompass notification that names the
right sender but is not signed with that sender's registered key is quarantined, its (claimed) sender
gets a rejected receipt, and it never reaches a school's inbox. So is an unsigned one.

One `mash up` serves the module. Five notifications about five synthetic children at school 900001
go over aiokafka at once: one genuine (signed with police:examplepolice's registered key), so the
tests prove the path works, and four that are not.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mash_broker.agencies.education import EDUCATION_DELIVERIES
from mash_broker.agencies.police import POLICE_NOTIFICATIONS, POLICE_RECEIPTS
from mash_broker.contracts import Envelope, deterministic_id, topics
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.signing import sign

from .helpers import DEMO, Mash, mash_session, read_topic, send_all, signing_key, wait_for

pytestmark = pytest.mark.embedded

FORCE = "police:examplepolice"
OTHER_FORCE = "police:syntheticpolice"  # registered too, with a key of its own
URN = "900001"
SCHOOL = f"school:{URN}"
GENUINE = "genuine"


@dataclass(frozen=True)
class Forgery:
    """One way of sending a notification as police:examplepolice without its key."""

    case: str
    reason: str  # the verifier's reason code (broker.signing.SignatureReason)
    detail: Callable[[str, str], str]  # what the detail says, given (forged key id, registered key id)


FORGERIES = (
    Forgery("unregistered-key", "unknown_key", lambda forged, _: f"key {forged} is not in the key registry"),
    Forgery(
        "registered-key-id-wrong-key",
        "bad_signature",
        lambda _, real: f"the signature does not match the message under key {real}",
    ),
    Forgery(
        "another-forces-key", "sender_mismatch", lambda _, __: f"belongs to {OTHER_FORCE}, not to the sender {FORCE}"
    ),
    Forgery("unsigned", "unsigned", lambda _, __: "the message carries no signature"),
)
CASES = [pytest.param(f, id=f.case) for f in FORGERIES]


@dataclass
class Sent:
    """What was sent, and what the stack made of it once everything had settled."""

    mash: Mash
    messages: dict[str, Envelope]  # by case, GENUINE included
    forged_key_id: str
    real_key_id: str
    inbox: dict[str, Any]
    receipts: list[dict[str, Any]]  # envelopes on police.receipt.v1
    notices: list[dict[str, Any]]  # Quarantined notices on gate.quarantine.v1
    deliveries: list[dict[str, Any]]  # envelopes on education.delivery.v1

    def receipt_for(self, case: str) -> dict[str, Any]:
        mid = str(self.messages[case].message_id)
        [receipt] = [r["payload"] for r in self.receipts if r["payload"]["receipted_message_id"] == mid]
        return receipt


def notification(n: int, given: str, family: str) -> Envelope:
    """An Encompass notification as the police adapter makes it (all synthetic)."""
    now = datetime.now(UTC)
    reference = f"FRG/2026/{n:04d}"
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "notification.encompass",
            "sender_org": FORCE,
            "sender_local_id": reference,
            "correlation_id": uuid.uuid4(),
            "produced_at": now,
            "subject": {"given_name": given, "family_name": family, "date_of_birth": date(2016, 9, n).isoformat()},
            "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
            "payload": {
                "kind": "notification.encompass",
                "police_reference": reference,
                "force": "examplepolice",
                "occurred_at": (now - timedelta(hours=10)).isoformat(),
                "reported_at": (now - timedelta(hours=9)).isoformat(),
                "child_present": "yes",
                "school_urn": URN,
                "summary_for_school": "Officers attended a synthetic incident.",
            },
        }
    )


def with_key_id(env: Envelope, key_id: str) -> Envelope:
    """The signature as it is, but claiming another key id."""
    assert env.signature is not None
    algorithm, _, raw = env.signature.split(":")
    assert len(base64.b64decode(raw)) == 64
    return env.model_copy(update={"signature": f"{algorithm}:{key_id}:{raw}"})


@pytest.fixture(scope="module")
def sent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sent]:
    base = tmp_path_factory.mktemp("forged-message")
    with mash_session(base) as mash:
        real = signing_key(mash, FORCE)
        other = signing_key(mash, OTHER_FORCE)
        # The forger's own key pair for police:examplepolice, never put in the registry.
        forged = KeyStore(base / "forger-keys").signer(FORCE)
        assert forged.key_id != real.key_id

        mash.up()
        load = mash.run("school", "load", str(DEMO / "schools.csv"))
        assert load.returncode == 0, load

        names = [
            ("Juniper", "Ashgrove"),
            ("Tobias", "Wrenfield"),
            ("Clementine", "Harrowby"),
            ("Ossian", "Merriweather"),
            ("Philippa", "Dunmarsh"),
        ]
        cases = [GENUINE, *(f.case for f in FORGERIES)]
        plain = {case: notification(n, *names[n - 1]) for n, case in enumerate(cases, start=1)}
        messages = {
            GENUINE: sign(plain[GENUINE], real),
            "unregistered-key": sign(plain["unregistered-key"], forged),
            "registered-key-id-wrong-key": with_key_id(sign(plain["registered-key-id-wrong-key"], forged), real.key_id),
            "another-forces-key": sign(plain["another-forces-key"], other),
            "unsigned": plain["unsigned"],
        }
        send_all(mash.bootstrap(), [(POLICE_NOTIFICATIONS, m.model_dump_json().encode()) for m in messages.values()])

        genuine_id = str(messages[GENUINE].message_id)

        def settled() -> bool:
            delivered = mash.scalar(
                "SELECT count(*) FROM deliveries WHERE message_id = ? AND delivered_at IS NOT NULL", genuine_id
            )
            return (
                delivered == 1
                and mash.count("quarantine") == len(FORGERIES)
                and mash.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
            )

        wait_for("the genuine notification delivered and every forgery quarantined", settled, 60, 0.2)
        inbox = mash.run("school", "inbox", URN, "--json")
        assert inbox.returncode == 0, inbox
        bootstrap = mash.bootstrap()
        yield Sent(
            mash=mash,
            messages=messages,
            forged_key_id=forged.key_id,
            real_key_id=real.key_id,
            inbox=inbox.json(),
            receipts=[json.loads(r.value) for r in read_topic(bootstrap, POLICE_RECEIPTS)],
            notices=[json.loads(r.value) for r in read_topic(bootstrap, topics.GATE_QUARANTINE)],
            deliveries=[json.loads(r.value) for r in read_topic(bootstrap, EDUCATION_DELIVERIES)],
        )


def test_genuine_notification_sent_alongside_reaches_the_school_inbox(sent: Sent) -> None:
    genuine = sent.messages[GENUINE]
    delivery_id = str(deterministic_id("delivery", str(genuine.message_id), SCHOOL))
    [row] = sent.inbox["notifications"]
    assert row["message_id"] == delivery_id
    assert row["police_reference"] == genuine.sender_local_id
    assert row["delivered_at"] is not None
    assert sent.receipt_for(GENUINE)["status"] == "accepted"
    assert [d["payload"]["source_message_id"] for d in sent.deliveries] == [str(genuine.message_id)]


@pytest.mark.parametrize("forgery", CASES)
def test_forged_notification_is_quarantined_with_the_verifiers_reason(sent: Sent, forgery: Forgery) -> None:
    mid = str(sent.messages[forgery.case].message_id)
    expected = forgery.detail(sent.forged_key_id, sent.real_key_id)
    [(reason, detail, sender, topic)] = sent.mash.sql(
        "SELECT reason_code, detail, sender_org, topic FROM quarantine WHERE message_id = ?", mid
    )
    assert (reason, sender, topic) == (forgery.reason, FORCE, POLICE_NOTIFICATIONS)
    assert expected in detail
    [notice] = [n for n in sent.notices if n["source_message_id"] == mid]
    assert (notice["reason_code"], notice["sender_org"]) == (forgery.reason, FORCE)
    assert expected in notice["detail"]


@pytest.mark.parametrize("forgery", CASES)
def test_forged_notification_gets_a_rejected_receipt_on_the_police_receipts_topic(sent: Sent, forgery: Forgery) -> None:
    receipt = sent.receipt_for(forgery.case)
    assert (receipt["status"], receipt["reason_code"]) == ("rejected", forgery.reason)
    assert forgery.detail(sent.forged_key_id, sent.real_key_id) in receipt["detail"]


@pytest.mark.parametrize("forgery", CASES)
def test_forged_notification_never_reaches_an_inbox(sent: Sent, forgery: Forgery) -> None:
    message = sent.messages[forgery.case]
    mid = str(message.message_id)
    delivery_id = str(deterministic_id("delivery", mid, SCHOOL))
    assert delivery_id not in {n["message_id"] for n in sent.inbox["notifications"]}
    assert message.sender_local_id not in {n["police_reference"] for n in sent.inbox["notifications"]}
    assert mid not in {d["payload"]["source_message_id"] for d in sent.deliveries}
    # Refused before the gate decided anything: no message, decision or delivery in the ledger.
    for table in ("messages", "decisions", "deliveries"):
        assert sent.mash.sql(f"SELECT count(*) FROM {table} WHERE message_id = ?", mid) == [(0,)], table  # noqa: S608
