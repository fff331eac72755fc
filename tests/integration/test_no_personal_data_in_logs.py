"""No personal data in logs: every line `mash up` and each CLI command wrote to stderr during the demo
flow is checked for the children's names, dates of birth and home postcodes from the export.

The flow is the one `test_cli_end_to_end` runs (shared, run once per session). Stdout is not a log:
`school inbox --json` prints a child's name to the Key Adult on purpose, so only stderr is checked.
"""

from __future__ import annotations

import json

import pytest

from .helpers import DEMO, DemoFlow, demo_flow, leaks, log_lines, personal_data

pytestmark = pytest.mark.embedded

# The CLI's own one-line messages to people share stderr with the JSON log lines.
HUMAN_PREFIXES = ("mash up: ", "mash serve: ", "mash broker: ", "unusable: ", "not found: ",
                  "broker unavailable: ", "error (")


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
    assert not hits('{"event": "stack.started", "path": "/tmp/pytest/demo-flow0/data/ledger.sqlite3", '
                    '"topic": "education.delivery.v1", "agency": "police:examplepolice", "maxsize": 1}')
