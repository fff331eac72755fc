"""`mash send` over the embedded broker: an agency with no system of its own sends a contact, the
MASH sends its outcome, and a bad record among them is answered with its field and reason."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mash_broker.contracts import topics

from .helpers import Mash, mash_session, signing_key

pytestmark = pytest.mark.embedded

CHILD = {
    "given_name": "Ottoline",
    "family_name": "Marchbanks",
    "date_of_birth": "2015-03-02",
    "identifiers": [{"scheme": "nhs_number", "value": "9990000026"}],
}  # synthetic 999 range
S47 = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}
HOUSING = "housing:north"  # an agency with no topic of its own: it uses the MASH's inbound topic


def now() -> str:
    """Produced now: a message produced before its sender's key became valid is refused (key_not_valid)."""
    return datetime.now(UTC).isoformat()


def contact(**payload: Any) -> dict[str, Any]:
    return {
        "message_id": str(uuid.uuid4()),
        "kind": "contact",
        "sender_org": HOUSING,
        "correlation_id": str(uuid.uuid4()),
        "produced_at": now(),
        "subject": CHILD,
        "lawful_basis": S47,
        "recipients": ["mash:hub"],
        "payload": {
            "kind": "contact",
            "referrer_name": "Synthetic Officer",
            "referrer_role": "Housing officer",
            "what_happened": "Synthetic concern.",
            "worried_about": "Synthetic worry.",
            "consent_sought": False,
            **payload,
        },
    }


@pytest.fixture(scope="module")
def mash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mash]:
    with mash_session(tmp_path_factory.mktemp("send")) as m:
        signing_key(m, HOUSING)
        signing_key(m, "la:999")
        m.up()
        yield m


def test_a_file_of_records_is_sent_each_answered_and_a_bad_one_named(mash: Mash, tmp_path: Path) -> None:
    good, bad = contact(), contact()
    del bad["payload"]["what_happened"]
    lines = tmp_path / "contacts.jsonl"
    lines.write_text("\n".join(json.dumps(r) for r in (good, bad)) + "\n{not json\n")

    result = mash.run("send", str(lines), "--json")

    assert result.returncode == 1, result  # some records not accepted
    receipts = result.json()["receipts"]
    assert [(r["line"], r["status"]) for r in receipts] == [(1, "accepted"), (2, "rejected"), (3, "rejected")]
    assert receipts[0]["message_id"] == good["message_id"]
    assert (receipts[1]["field"], receipts[1]["reason"]) == ("payload.contact.what_happened", "Field required")
    assert receipts[1]["message_id"] is None
    assert (receipts[2]["field"], receipts[2]["reason"]) == ("(record)", "not JSON")
    [(topic, sender)] = mash.sql("SELECT topic, sender_org FROM messages WHERE message_id = ?", good["message_id"])
    assert (topic, sender) == (topics.MASH_INBOUND, HOUSING)
    [(recipient,)] = mash.sql("SELECT recipient FROM deliveries WHERE message_id = ?", good["message_id"])
    assert recipient == "mash:hub"
    assert "Marchbanks" not in result.stdout + result.stderr, "no personal data in what the command prints"


def test_the_mash_outcome_is_sent_on_its_own_inbound_topic(mash: Mash, tmp_path: Path) -> None:
    first = contact()
    (tmp_path / "contact.json").write_text(json.dumps(first))
    assert mash.run("send", str(tmp_path / "contact.json"), "--json").returncode == 0
    outcome = {
        "message_id": str(uuid.uuid4()),
        "kind": "outcome",
        "sender_org": "la:999",
        "correlation_id": first["correlation_id"],
        "produced_at": now(),
        "subject": CHILD,
        "lawful_basis": S47,
        "payload": {
            "kind": "outcome",
            "contact_message_id": first["message_id"],
            "decision": "information_and_advice",
            "rationale": "Synthetic rationale.",
            "decided_at": now(),
        },
    }
    (tmp_path / "outcome.json").write_text(json.dumps([outcome]))

    result = mash.run("send", str(tmp_path / "outcome.json"), "--json")

    assert result.returncode in (0, 1), result
    [receipt] = result.json()["receipts"]
    assert receipt["message_id"] == outcome["message_id"]
    [(topic,)] = mash.sql("SELECT topic FROM messages WHERE message_id = ?", outcome["message_id"])
    assert topic == topics.MASH_INBOUND
    stopped = mash.sql(
        "SELECT detail FROM events WHERE event_type = 'clock.stopped' AND message_id = ?", first["message_id"]
    )
    assert [json.loads(d)["clock"] for (d,) in stopped] == ["contact_decision"]


def test_a_sender_without_a_key_sends_nothing_and_says_how_to_make_one(mash: Mash, tmp_path: Path) -> None:
    stranger = contact()
    stranger["sender_org"] = "probation:west"
    (tmp_path / "stranger.json").write_text(json.dumps(stranger))
    before = mash.count("messages")

    result = mash.run("send", str(tmp_path / "stranger.json"))

    assert result.returncode == 2, result
    assert "mash keys new probation:west" in result.stderr
    assert mash.count("messages") == before


def test_a_message_the_gate_refuses_is_reported_rejected_with_the_gates_reason(mash: Mash, tmp_path: Path) -> None:
    early = contact()
    early["produced_at"] = "2020-01-01T00:00:00+00:00"  # before the sender's key was valid
    (tmp_path / "early.json").write_text(json.dumps(early))

    result = mash.run("send", str(tmp_path / "early.json"), "--json")

    assert result.returncode == 1, result
    [receipt] = result.json()["receipts"]
    assert (receipt["status"], receipt["reason"], receipt["attempts"]) == ("rejected", "key_not_valid", 1)
    assert mash.count("messages") == mash.scalar(
        "SELECT count(*) FROM messages WHERE message_id != ?", early["message_id"]
    ), "never recorded as received"


# -- bad records among good ones, and files too large to hold (issue 11, problem 5) ---------------------


def test_every_bad_record_is_answered_with_its_number_field_and_reason_and_the_good_ones_go(
    mash: Mash, tmp_path: Path
) -> None:
    before, after, twice = contact(), contact(), contact()
    huge = contact(what_happened="x" * 4_500_000)  # 4.5 MB: over the broker's limit
    lines = [
        json.dumps(before),
        json.dumps(huge),
        "[" * 100_000 + "]" * 100_000,
        "{not json",
        json.dumps(twice).replace('"kind": "contact"', '"kind": "outcome", "kind": "contact"', 1),
        "{}",
        json.dumps(after),
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")

    result = mash.run("send", str(path), "--json")

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    receipts = result.json()["receipts"]
    by_line: dict[int, list[tuple[str, str | None, str | None]]] = {}
    for r in receipts:
        by_line.setdefault(r["line"], []).append((r["status"], r["field"], r["reason"]))
    assert by_line[1][0][0] == "accepted"
    assert by_line[2] == [("rejected", "(record)", f"record 2 is {len(lines[1])} bytes, over the limit of 1000000")]
    assert by_line[3] == [("rejected", "(record)", "too deep: nested 100000 deep, over the limit of 64")]
    assert by_line[4] == [("rejected", "(record)", "not JSON")]
    assert by_line[5] == [("rejected", "kind", "key given more than once")]
    assert ("rejected", "message_id", "Field required") in by_line[6]
    assert by_line[7][0][0] == "accepted"
    assert {r["message_id"] for r in receipts if r["status"] == "accepted"} == {
        before["message_id"],
        after["message_id"],
    }
    assert mash.sql(
        "SELECT count(*) FROM messages WHERE message_id IN (?, ?)", huge["message_id"], twice["message_id"]
    ) == [(0,)]


def test_an_array_with_bad_elements_is_answered_per_element(mash: Mash, tmp_path: Path) -> None:
    good = contact()
    path = tmp_path / "array.json"
    path.write_text(
        "["
        + ",".join([json.dumps(contact(what_happened="y" * 1_200_000)), "[" * 5000 + "]" * 5000, json.dumps(good), "7"])
        + "]"
    )

    result = mash.run("send", str(path))

    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr
    table = result.stdout
    assert "over the limit of 1000000" in table
    assert "too deep: nested 5000 deep" in table
    assert "Input should be an object" in table
    assert "accepted: 1" in table
    assert mash.sql("SELECT count(*) FROM messages WHERE message_id = ?", good["message_id"]) == [(1,)]


def test_a_hundred_thousand_records_are_answered_in_bounded_memory(mash: Mash, tmp_path: Path) -> None:
    import subprocess
    import sys

    from .helpers import mash_executable

    path = tmp_path / "empty.jsonl"
    path.write_text("{}\n" * 100_000)
    out = tmp_path / "receipts.json"

    # The command runs under a fresh Python whose only child it is, which reports that child's peak RSS:
    # this process's RUSAGE_CHILDREN would be the largest of every process the suite has run (a JVM, a stack).
    measure = (
        "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"
    )
    with out.open("wb") as stdout:
        proc = subprocess.run(
            [sys.executable, "-c", measure, mash_executable(), "send", str(path), "--json"],
            stdout=stdout,
            stderr=subprocess.PIPE,
            env=mash.env(),
            timeout=300,
            check=False,
        )
    peak_mb = int(proc.stderr.decode().strip().splitlines()[-1]) / 1024

    assert proc.returncode == 1, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["counts"] == {"rejected": 600_000}  # six required fields missing from each
    assert report["receipts"][-1]["line"] == 100_000
    assert peak_mb < 400, f"{peak_mb:.0f} MB"  # 1.24 GB before: the whole file and every receipt held
