"""`mash replay` over the real wire: `mash up` on the embedded broker, agencies publishing signed consent
records and referrals with aiokafka, and the real `mash replay` command, as subprocesses.

One story, run once: two children's parents consent to early help and each child's referral is shared;
one parent withdraws. A replay of the window then withholds that child's referral (nothing reaches the
early-help topic for it, the ledger records the replay and why) and re-sends the other child's, with the
same message id and a replay header. All data is synthetic.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from consent_builders import consent, contact

from mash_broker.agencies.education import EDUCATION_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.contracts import ChildSubject, ConsentRecord, Envelope, topics
from mash_broker.core.settings import Settings
from mash_broker.core.signing import load_registry, sign, verify

from .helpers import Mash, Result, mash_session, read_topic, send_all, signing_key, wait_for

SCHOOL = "school:900001"  # the school's safeguarding lead records consent and makes the referral
EARLY_HELP = "early_help:team-north"
WITHDRAWN = ChildSubject(given_name="Wilhelmina", family_name="Testwood", date_of_birth=date(2017, 2, 3))
KEPT = ChildSubject(given_name="Kasimir", family_name="Testwood", date_of_birth=date(2015, 8, 21))


@dataclass(frozen=True)
class Story:
    """What happened, for the tests to assert on after the stack has stopped."""

    mash: Mash
    withdrawn: Envelope  # the referral whose consent was withdrawn after it was shared
    kept: Envelope  # the referral whose consent stands
    dry_run: Result
    replay: Result
    on_topic: list[Any]  # every record on the early-help delivery topic after the replay
    registry_file: Path


def signed(env: Envelope, mash: Mash) -> bytes:
    return sign(env, signing_key(mash, env.sender_org)).model_dump_json().encode()


def about(subject: ChildSubject, record: ConsentRecord, at: datetime) -> Envelope:
    """A consent record about ``subject``, as the school sends it on the consent topic."""
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": record.kind,
            "sender_org": SCHOOL,
            "correlation_id": uuid.uuid4(),
            "produced_at": at,
            "subject": subject.model_dump(mode="json"),
            "payload": record.model_dump(mode="json"),
        }
    )


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Story:
    base = tmp_path_factory.mktemp("replay")
    with mash_session(base, MASH_CONSENT_SETTLE_S="0") as mash:
        signing_key(mash, SCHOOL)
        mash.up()
        bootstrap = mash.bootstrap()
        start = datetime.now(UTC)
        before = start - timedelta(minutes=1)
        given = {child.given_name: consent(recipients=(EARLY_HELP,), recorded=before) for child in (WITHDRAWN, KEPT)}
        referrals = {
            child.given_name: contact(recipients=(EARLY_HELP,)).model_copy(
                update={"subject": child, "sender_org": SCHOOL, "produced_at": start}
            )
            for child in (WITHDRAWN, KEPT)
        }
        send_all(
            bootstrap,
            [(topics.CONSENT_RECORDS, signed(about(c, given[c.given_name], start), mash)) for c in (WITHDRAWN, KEPT)],
        )
        # The gate reads the consent and inbound topics independently: consent first, then the referrals.
        wait_for(
            "both consents to be recorded",
            lambda: mash.scalar("SELECT count(DISTINCT message_id) FROM consents WHERE status = 'given'") == 2,
            30,
        )
        send_all(bootstrap, [(EDUCATION_INBOUND, signed(r, mash)) for r in referrals.values()])
        wait_for(
            "both referrals to be shared and published",
            lambda: (
                mash.scalar(
                    "SELECT count(*) FROM outbox WHERE topic = ? AND published_at IS NOT NULL",
                    REGISTRY.delivery_topic(EARLY_HELP),
                )
                == 2
            ),
            30,
        )

        withdrawn_at = datetime.now(UTC)
        withdrawal = consent(
            "withdrawn",
            recipients=(EARLY_HELP,),
            recorded=withdrawn_at,
            consent_id=given[WITHDRAWN.given_name].consent_id,
        )
        send_all(bootstrap, [(topics.CONSENT_RECORDS, signed(about(WITHDRAWN, withdrawal, withdrawn_at), mash))])
        wait_for(
            "the withdrawal to be recorded",
            lambda: mash.scalar("SELECT count(*) FROM consents WHERE status = 'withdrawn'") > 0,
            30,
        )

        window = [
            "--from",
            (start - timedelta(minutes=5)).isoformat(),
            "--to",
            (datetime.now(UTC) + timedelta(minutes=5)).isoformat(),
            "--json",
        ]
        dry_run, replay = mash.run_all(("replay", *window, "--dry-run"), ("replay", *window))
        on_topic = read_topic(bootstrap, REGISTRY.delivery_topic(EARLY_HELP))
        return Story(
            mash,
            referrals[WITHDRAWN.given_name],
            referrals[KEPT.given_name],
            dry_run,
            replay,
            on_topic,
            Settings(data_dir=mash.data_dir).key_registry_file,
        )


def records_for(story: Story, referral: Envelope) -> list[Any]:
    wanted = str(referral.message_id)
    return [r for r in story.on_topic if json.loads(r.value)["payload"]["source_message_id"] == wanted]


def headers(record: Any) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}


def test_a_replay_after_a_consent_withdrawal_withholds_what_the_original_shared(story: Story) -> None:
    assert story.replay.returncode == 0, story.replay
    out = story.replay.json()
    [withheld] = out["withheld"]
    assert (withheld["message_id"], withheld["recipient"]) == (str(story.withdrawn.message_id), EARLY_HELP)
    assert withheld["reasons"][-1] == "consent_withdrawn"

    [original] = records_for(story, story.withdrawn)
    assert "mash-replay" not in headers(original), "only the original share, sent before the withdrawal"

    mash = story.mash
    [(replay_id, reasons)] = [
        (json.loads(d)["replay_id"], json.loads(d)["reasons"])
        for (d,) in mash.sql(
            "SELECT detail FROM events WHERE event_type = 'replay.withheld' AND message_id = ?",
            str(story.withdrawn.message_id),
        )
    ]
    assert (replay_id, reasons[-1]) == (out["replay_id"], "consent_withdrawn")
    assert (
        mash.sql(
            "SELECT 1 FROM events WHERE event_type = 'message.replayed' AND message_id = ?",
            str(story.withdrawn.message_id),
        )
        == []
    )


def test_a_replay_of_a_share_still_allowed_resends_it_with_the_replay_header_and_the_same_id(story: Story) -> None:
    out = story.replay.json()
    assert (out["dry_run"], out["published"]) == (False, 1)
    first, again = records_for(story, story.kept)
    assert "mash-replay" not in headers(first)
    assert headers(again)["mash-replay"] == out["replay_id"]
    assert headers(again)["message-id"] == headers(first)["message-id"]
    replayed = Envelope.model_validate_json(again.value)
    assert str(replayed.message_id) == headers(first)["message-id"], "recipients deduplicate by it"
    assert replayed.replay is True
    assert verify(replayed, load_registry(story.registry_file), datetime.now(UTC)).ok, "signed by mash:gate"
    [(detail,)] = story.mash.sql(
        "SELECT detail FROM events WHERE event_type = 'message.replayed' AND message_id = ?", str(story.kept.message_id)
    )
    assert json.loads(detail)["replay_id"] == out["replay_id"]


def test_a_dry_run_lists_what_would_be_sent_and_the_decision_that_differs(story: Story) -> None:
    assert story.dry_run.returncode == 0, story.dry_run
    out = story.dry_run.json()
    assert (out["dry_run"], out["published"]) == (True, 0)
    assert [i["message_id"] for i in out["resend"]] == [str(story.kept.message_id)]
    assert [i["message_id"] for i in out["withheld"]] == [str(story.withdrawn.message_id)]
    [change] = out["changes"]
    assert (change["message_id"], change["was"], change["would_be"]) == (
        str(story.withdrawn.message_id),
        "share",
        "withhold",
    )
    assert (
        story.mash.sql(
            "SELECT 1 FROM events WHERE event_type = 'replay.decided' AND detail LIKE ?", f"%{out['replay_id']}%"
        )
        == []
    ), "a dry run records nothing"
