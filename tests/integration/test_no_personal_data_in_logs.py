"""No personal data in logs: every line `mash up` and each CLI command wrote to stderr during the demo
flow is checked for the children's names, dates of birth and home postcodes from the export.

The flow is the one `test_cli_end_to_end` runs (shared, run once per session). Stdout is not a log:
`school inbox --json` prints a child's name to the Key Adult on purpose, so only stderr is checked.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from .helpers import (
    DEMO,
    DemoFlow,
    Mash,
    Needle,
    demo_flow,
    leaks,
    log_lines,
    mash_session,
    personal_data,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.embedded

# The CLI's own one-line messages to people share stderr with the JSON log lines.
HUMAN_PREFIXES = (
    "mash up: ",
    "mash serve: ",
    "mash broker: ",
    "unusable: ",
    "not found: ",
    "broker unavailable: ",
    "error (",
)


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> DemoFlow:
    return demo_flow(tmp_path_factory.mktemp("demo-flow"))


def flow_log_lines(flow: DemoFlow) -> list[tuple[str, int, str]]:
    files = flow.mash.log_files()
    assert any(f.name.endswith("-up.stderr") for f in files), "mash up's stderr was captured"
    assert len(files) >= 10, "every command's stderr was captured"
    return log_lines(files)


def test_logs_hold_no_names_dates_of_birth_or_postcodes(flow: DemoFlow) -> None:
    needles = personal_data(flow.export)
    assert len(needles) > 40
    lines = flow_log_lines(flow)
    # The services did log the flow (one decision per message, one receipt per delivery, one read).
    events = [json.loads(t).get("event") for _, _, t in lines if t.startswith("{")]
    assert events.count("message.decided") >= 11
    assert events.count("delivery.received") == 9
    assert "notification.read" in events

    found = leaks(flow.mash.log_files(), needles)
    assert not found, "personal data in the logs:\n" + "\n".join(found)


def test_log_lines_are_json_with_an_event(flow: DemoFlow) -> None:
    problems = []
    for name, n, text in flow_log_lines(flow):
        if text.startswith(HUMAN_PREFIXES):
            continue
        try:
            doc = json.loads(text)
        except ValueError:
            problems.append(f"{name}:{n}: not JSON: {text[:200]}")
            continue
        if not isinstance(doc, dict) or not doc.get("event"):
            problems.append(f"{name}:{n}: no event: {text[:200]}")
        elif doc.get("level") not in {"debug", "info", "warning", "error", "critical"}:
            problems.append(f"{name}:{n}: no level: {text[:200]}")
    assert not problems, "\n".join(problems)


def test_the_checks_would_catch_a_leak() -> None:
    """The needles find what they must (so the test above cannot pass vacuously), and nothing else."""
    needles = personal_data(DEMO / "overnight-export.csv")

    def hits(text: str) -> set[str]:
        return {n.what for n in needles if n.pattern.search(text)}

    assert hits('{"event": "x", "child": "ava test"}') >= {"full name on line 2", "given name on line 2"}
    assert "date of birth on line 2" in hits('{"dob": "2016-05-12"}')
    assert "home postcode on line 6" in hits('{"p": "ZZ994EF"}')
    assert "home postcode on line 2" in hits('{"p": "zz99 1aa"}')
    # Whole words only: an id, a path or a topic that merely contains a name is not a leak.
    assert not hits(
        '{"event": "stack.started", "path": "/tmp/pytest/demo-flow0/data/ledger.sqlite3", '
        '"topic": "education.delivery.v1", "agency": "police:examplepolice", "maxsize": 1}'
    )


# -- records carrying synthetic names onto every topic a subscriber reads (issue 11, problem 6) ---------

# The last is short: pydantic's input_value keeps about the first 25 characters of a record it quotes.
NAMES = ("Thaddeus Wimberleigh", "Perpetua Scrimgeour", "Octavian Brindlecombe", "Eglantine Haverstock", "Ivo Qell")
NAME_NEEDLES = [Needle(f"synthetic name {n}", re.compile(re.escape(n).replace(r"\ ", r"\s+"), re.I)) for n in NAMES]
NAME_NEEDLES += [
    Needle(f"synthetic word {w}", re.compile(rf"(?<![\w-]){w}(?![\w-])", re.I)) for n in NAMES for w in n.split()
]


def named_records(topic: str, gate_reads_it: bool) -> list[bytes]:
    """Valid and invalid records, each carrying a synthetic name where an error could quote it."""
    a, b, c, d, e = NAMES
    now = datetime.now(UTC).isoformat()
    doc = {
        "message_id": str(uuid.uuid4()),
        "kind": "notification.encompass",
        "sender_org": "police:examplepolice",
        "correlation_id": str(uuid.uuid4()),
        "produced_at": now,
        "subject": {"given_name": a.split()[0], "family_name": a.split()[1], "date_of_birth": "2016-09-03"},
        "lawful_basis": {"article6": "legal_obligation", "statutory_power": "encompass_duty_vpa_2024"},
        "payload": {
            "kind": "notification.encompass",
            "police_reference": "PDL/1",
            "force": "examplepolice",
            "occurred_at": now,
            "reported_at": now,
            "child_present": "yes",
            "school_urn": "900001",
            "summary_for_school": f"{b} was seen.",
        },
    }
    bad_value = json.loads(json.dumps(doc)) | {"message_id": str(uuid.uuid4())}
    bad_value["payload"]["child_present"] = c  # an enum given a name: pydantic quotes input values
    bad_key = json.loads(json.dumps(doc)) | {"message_id": str(uuid.uuid4())}
    bad_key["payload"][d] = 1  # a name as an unknown key
    named = json.dumps({"given_name": a, "note": b}).encode()
    records = [
        json.dumps(bad_value).encode(),
        json.dumps(bad_key).encode(),
        f'{{"n":"{e}","x":'.encode() + b"[" * 100_000 + b"]" * 100_000 + b"}",  # too deep, a name up front
        b"\xff\xfe" + named,  # not UTF-8
        named + b"\x00" * 64,  # NULs after a name
        json.dumps(doc)
        .encode()
        .replace(
            b'"school_urn"', f'"given_name":"{c}","given_name":"{d}","school_urn"'.encode(), 1
        ),  # a key given twice
        named[:-1] + b', "pad": "' + b"x" * 1_100_000 + b'"}',  # over the size limit
    ]
    if gate_reads_it:
        records.append(json.dumps(doc | {"message_id": str(uuid.uuid4())}).encode())  # valid, unsigned
    return records


@dataclass
class Named:
    mash: Mash
    sent: int
    answered: int


@pytest.fixture(scope="module")
def named(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Named]:
    from mash_broker.agencies.registry import REGISTRY
    from mash_broker.core.intake import DEAD_LETTERS

    from .test_bad_records import produce

    with mash_session(tmp_path_factory.mktemp("named-records")) as mash:
        mash.up()
        records = [(t, r, []) for t in REGISTRY.inbound_topics for r in named_records(t, True)]
        inboxes = [i.topic for i in REGISTRY.inboxes]
        records += [(t, r, []) for t in inboxes for r in named_records(t, False)]
        produce(mash.bootstrap(), records)
        unreadable = (len(REGISTRY.inbound_topics) + len(inboxes)) * 7

        def parked() -> int:
            return len(read_topic(mash.bootstrap(), DEAD_LETTERS))

        # Bounded: a stalled subscriber must fail the assertions below, not hang the suite.
        with contextlib.suppress(AssertionError):
            wait_for("every unreadable record parked", lambda: parked() >= unreadable, 90, 0.5)
        yield Named(mash, unreadable, parked())


def test_no_name_from_any_record_on_any_topic_reaches_a_log(named: Named) -> None:
    files = sorted(named.mash.logs_dir.glob("*.std*"))  # stdout too: `mash up` prints nothing for people
    assert any(f.name.endswith("-up.stderr") for f in files)
    assert NAME_NEEDLES[0].pattern.search(f"x {NAMES[0].upper()} y"), "the needles find what they must"
    found = leaks(files, NAME_NEEDLES)
    assert not found, "a synthetic name in the logs:\n" + "\n".join(found)
    assert named.answered == named.sent, "every unreadable record on every topic was parked"
