"""Consent withdrawn over the embedded broker (issue 3): a share that rests on consent waits out the
settle window in the outbox, and a withdrawal that arrives meanwhile stops it for good.

One `mash up` serves the module, with a five-second settle window so that "while a second message
waits" is a real wait. A school sends consent records and early-help referrals (contacts) as its own
system would: signed with its key, over aiokafka. Each test uses its own synthetic child, so the
tests do not share consent state.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import Envelope, deterministic_id, topics
from mash_broker.core.audit.keys import Ed25519Signer
from mash_broker.core.messages import outbox_id
from mash_broker.core.signing import sign

from .helpers import Mash, mash_session, read_topic, send_all, signing_key, wait_for

pytestmark = pytest.mark.embedded

SETTLE_S = 5.0
SCHOOL = "school:900001"
EARLY_HELP = "early_help:team-north"
DELIVERIES = REGISTRY.delivery_topic(EARLY_HELP)  # mash.delivery.v1
RECEIPTS = topics.receipts_topic(SCHOOL)  # school.receipt.v1
DECIDE_TIMEOUT_S = 30.0


@dataclass
class Stack:
    """The running `mash up` and the school's signing key."""

    mash: Mash
    school_key: Ed25519Signer


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    base = tmp_path_factory.mktemp("consent-withdrawal")
    with mash_session(base, MASH_CONSENT_SETTLE_S=str(SETTLE_S)) as mash:
        key = signing_key(mash, SCHOOL)  # the school signs what it sends; the gate refuses unsigned messages
        mash.up()
        yield Stack(mash, key)


# -- what the school sends (all synthetic) ------------------------------------------------------------


def child(given: str, family: str) -> dict[str, Any]:
    return {"given_name": given, "family_name": family, "date_of_birth": date(2018, 3, 14).isoformat()}


def consent_record(subject: dict[str, Any], consent_id: uuid.UUID, status: str, recorded_at: datetime) -> Envelope:
    """A parent's consent (or its withdrawal) to early help, as the school records it."""
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "consent",
            "sender_org": SCHOOL,
            "correlation_id": uuid.uuid4(),
            "produced_at": datetime.now(UTC),
            "subject": subject,
            "payload": {
                "kind": "consent",
                "consent_id": str(consent_id),
                "status": status,
                "given_by": "parent",
                "recipients": ["early_help"],
                "purposes": ["early_help"],
                "valid_from": (recorded_at - timedelta(days=1)).isoformat(),
                "recorded_by": "Sam Exampleworker",
                "recorded_at": recorded_at.isoformat(),
            },
        }
    )


def referral(subject: dict[str, Any]) -> Envelope:
    """An early-help referral to the early help team, resting on parental consent."""
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "contact",
            "sender_org": SCHOOL,
            "correlation_id": uuid.uuid4(),
            "produced_at": datetime.now(UTC),
            "subject": subject,
            "lawful_basis": {"article6": "consent"},
            "purpose": "early_help",
            "recipients": [EARLY_HELP],
            "payload": {
                "kind": "contact",
                "referrer_name": "Ms Example",
                "referrer_role": "DSL",
                "what_happened": "Synthetic concern.",
                "worried_about": "Synthetic worry.",
                "consent_sought": True,
                "consent_given": True,
            },
        }
    )


def send(stack: Stack, topic: str, *messages: Envelope) -> None:
    send_all(stack.mash.bootstrap(), [(topic, sign(m, stack.school_key).model_dump_json().encode()) for m in messages])


# -- reading the ledger and the wire --------------------------------------------------------------------


def decision(mash: Mash, message: Envelope) -> tuple[str, list[str]] | None:
    rows = mash.sql("SELECT verdict, reasons FROM decisions WHERE message_id = ?", str(message.message_id))
    return (rows[0][0], json.loads(rows[0][1])) if rows else None


def decided(mash: Mash, message: Envelope, what: str) -> tuple[str, list[str]]:
    return wait_for(f"the gate to decide {what}", lambda: decision(mash, message), DECIDE_TIMEOUT_S)


def delivery_id(message: Envelope) -> uuid.UUID:
    return deterministic_id("delivery", str(message.message_id), EARLY_HELP)


def outbox_row(mash: Mash, message: Envelope) -> dict[str, datetime | None]:
    """The outbox record of a referral's early-help delivery; its times in UTC."""
    columns = ("created_at", "not_before", "cancelled_at", "published_at")
    [row] = mash.sql(
        f"SELECT {', '.join(columns)} FROM outbox WHERE outbox_id = ?",  # noqa: S608 (our columns)
        str(outbox_id(delivery_id(message), DELIVERIES)),
    )
    return {k: datetime.fromisoformat(v).replace(tzinfo=UTC) if v else None for k, v in zip(columns, row, strict=True)}


def deliveries_on_the_wire(mash: Mash) -> dict[str, dict[str, Any]]:
    """Early-help deliveries on the delivery topic, by the message they release."""
    found = {}
    for record in read_topic(mash.bootstrap(), DELIVERIES):
        env = json.loads(record.value)
        if env["payload"]["recipient"] == EARLY_HELP:
            found[env["payload"]["source_message_id"]] = env
    return found


def events_of(mash: Mash, message: Envelope, event_type: str) -> list[dict[str, Any]]:
    return [
        json.loads(d)
        for (d,) in mash.sql(
            "SELECT detail FROM events WHERE message_id = ? AND event_type = ?", str(message.message_id), event_type
        )
    ]


def give_consent(stack: Stack, subject: dict[str, Any]) -> uuid.UUID:
    """A parent consents to early help; returns once the gate has recorded it."""
    consent_id = uuid.uuid4()
    given = consent_record(subject, consent_id, "given", datetime.now(UTC) - timedelta(minutes=5))
    send(stack, topics.CONSENT_RECORDS, given)
    assert decided(stack.mash, given, "the consent") == ("recorded", ["consent_recorded"])
    return consent_id


def refer(stack: Stack, subject: dict[str, Any], what: str) -> tuple[Envelope, tuple[str, list[str]]]:
    """The school refers the child to early help; returns the referral once the gate has decided it."""
    message = referral(subject)
    send(stack, EDUCATION_INBOUND, message)
    return message, decided(stack.mash, message, what)


# -- the tests ------------------------------------------------------------------------------------------


def test_consent_withdrawn_while_a_share_waits_stops_that_share_and_the_ledger_says_why(stack: Stack) -> None:
    mash = stack.mash
    subject = child("Zebedee", "Quillfeather")
    consent_id = give_consent(stack, subject)

    # A referral shares under the consent: held for the settle window, then on the early help team's topic.
    first, (verdict, reasons) = refer(stack, subject, "the first referral")
    assert verdict == "share"
    assert "consent_given" in reasons
    wait_for(
        "the first share on the delivery topic",
        lambda: str(first.message_id) in deliveries_on_the_wire(mash),
        SETTLE_S + 20,
        0.5,
    )

    # A second referral shares too, and waits in the outbox...
    second, (verdict_second, _) = refer(stack, subject, "the second referral")
    assert verdict_second == "share"
    held = outbox_row(mash, second)
    assert held["created_at"] is not None
    assert held["not_before"] == held["created_at"] + timedelta(seconds=SETTLE_S), "held for the settle window"
    assert held["published_at"] is None

    # ...when the parent withdraws consent.
    withdrawn = consent_record(subject, consent_id, "withdrawn", datetime.now(UTC))
    send(stack, topics.CONSENT_RECORDS, withdrawn)
    assert decided(mash, withdrawn, "the withdrawal") == ("recorded", ["consent_recorded"])
    stopped = outbox_row(mash, second)
    assert stopped["cancelled_at"] is not None, "the waiting share is cancelled"
    assert held["not_before"] is not None
    assert stopped["cancelled_at"] < held["not_before"], "the withdrawal arrived while the share waited"

    # The withhold is in the ledger, with its reason.
    assert decision(mash, second) == ("withhold", ["consent_withdrawn"])
    [event] = events_of(mash, second, "share.withdrawn")
    assert event["reason"] == "consent_withdrawn"
    assert event["consent_id"] == str(consent_id)
    assert event["recipient"] == EARLY_HELP
    assert event["delivery_id"] == str(delivery_id(second))
    [(withdrawn_at,)] = mash.sql("SELECT withdrawn_at FROM deliveries WHERE delivery_id = ?", str(delivery_id(second)))
    assert withdrawn_at is not None

    # Well after the hold has passed, the second share has still not gone; the first one stands.
    time.sleep(max((held["not_before"] - datetime.now(UTC)).total_seconds() + 2.0, 0.0))
    on_the_wire = deliveries_on_the_wire(mash)
    assert str(first.message_id) in on_the_wire
    assert str(second.message_id) not in on_the_wire, "a share withdrawn while it waited was published"
    assert outbox_row(mash, second)["published_at"] is None
    assert decision(mash, first) == (verdict, reasons), "what was sent before the withdrawal stays on record"
    # The first share went out with only the early-help agreement's fields.
    released = on_the_wire[str(first.message_id)]["payload"]["released"]
    assert set(released) == {
        "subject.given_name",
        "subject.family_name",
        "subject.date_of_birth",
        "payload.referrer_name",
        "payload.referrer_role",
        "payload.what_happened",
        "payload.worried_about",
    }


def test_malformed_consent_record_is_quarantined_naming_the_field_its_sender_told_and_consent_stands(
    stack: Stack,
) -> None:
    mash = stack.mash
    subject = child("Marigold", "Fennickworth")
    consent_id = give_consent(stack, subject)
    _, decided_before = refer(stack, subject, "the referral before")
    assert decided_before[0] == "share"
    consents_before = mash.sql(
        "SELECT message_id, status FROM consents WHERE record_id = ? ORDER BY row_id", str(consent_id)
    )

    # A withdrawal whose status is not one the contract knows: signed, but not a valid consent record.
    malformed = json.loads(
        sign(consent_record(subject, consent_id, "withdrawn", datetime.now(UTC)), stack.school_key).model_dump_json()
    )
    malformed["payload"]["status"] = "maybe"
    bad_id = malformed["message_id"]
    send_all(mash.bootstrap(), [(topics.CONSENT_RECORDS, json.dumps(malformed).encode())])

    def quarantined() -> list[tuple[Any, ...]]:
        return mash.sql("SELECT reason_code, detail, sender_org, topic FROM quarantine WHERE message_id = ?", bad_id)

    [(reason, detail, sender, topic)] = wait_for(
        "the malformed record to be quarantined", quarantined, DECIDE_TIMEOUT_S
    )
    assert (reason, sender, topic) == ("contract_invalid", SCHOOL, topics.CONSENT_RECORDS)
    assert "payload.consent.status: Input should be 'given', 'refused', 'withdrawn' or 'expired'" in detail
    assert "maybe" not in detail, "the detail names the field, never the value sent"

    # The quarantine notice and the sender's rejected receipt are on the wire.
    def notice(records: list[Any]) -> dict[str, Any] | None:
        found = [json.loads(r.value) for r in records]
        return next((n for n in found if n.get("source_message_id") == bad_id), None)

    def receipt(records: list[Any]) -> dict[str, Any] | None:
        found = [json.loads(r.value)["payload"] for r in records]
        return next((p for p in found if p.get("receipted_message_id") == bad_id), None)

    published = wait_for(
        "the quarantine notice and the receipt to be published",
        lambda: (
            (n := notice(read_topic(mash.bootstrap(), topics.GATE_QUARANTINE)))
            and (r := receipt(read_topic(mash.bootstrap(), RECEIPTS)))
            and (n, r)
        ),
        DECIDE_TIMEOUT_S,
        0.5,
    )
    quarantine_notice, rejected = published
    assert (quarantine_notice["reason_code"], quarantine_notice["sender_org"]) == ("contract_invalid", SCHOOL)
    assert "payload.consent.status" in quarantine_notice["detail"]
    assert (rejected["status"], rejected["reason_code"]) == ("rejected", "contract_invalid")
    assert "payload.consent.status" in rejected["detail"]

    # The child's consent state is unchanged: nothing recorded, and the next referral decides as before.
    assert mash.sql("SELECT count(*) FROM messages WHERE message_id = ?", bad_id) == [(0,)]
    assert (
        mash.sql("SELECT message_id, status FROM consents WHERE record_id = ? ORDER BY row_id", str(consent_id))
        == consents_before
    )
    after, decided_after = refer(stack, subject, "the referral after")
    assert decided_after == decided_before
    [(relied_on,)] = mash.sql("SELECT consent_id FROM deliveries WHERE message_id = ?", str(after.message_id))
    assert relied_on == str(consent_id)
