"""The `mash` CLI end to end over real sockets: `mash up`, a school directory, the demo overnight export.

One run of the flow (see ``helpers.demo_flow``) drives the real commands as subprocesses against the
embedded broker; each test here checks one part of what the commands printed, exited with, and
left in the ledger and on the wire.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    DEMO,
    KEY_ADULT,
    SCHOOL,
    DemoFlow,
    demo_flow,
)

pytestmark = pytest.mark.embedded

EXIT_ROWS_REJECTED, EXIT_UNUSABLE, EXIT_NOT_FOUND = 1, 2, 4
REFERRED_LINES = {6: "school_not_given", 7: "school_not_in_directory"}
REJECTED_LINE = 10


@pytest.fixture(scope="module")
def flow(tmp_path_factory: pytest.TempPathFactory) -> DemoFlow:
    return demo_flow(tmp_path_factory.mktemp("demo-flow"))


def export_rows() -> dict[int, dict[str, str]]:
    """The demo export's rows by physical line (the header is line 1; no cell spans lines)."""
    with (DEMO / "overnight-export.csv").open(newline="") as f:
        return {line: row for line, row in enumerate(csv.DictReader(f), start=2)}


def receipts_by_line(flow: DemoFlow) -> dict[int, list[dict[str, Any]]]:
    out: dict[int, list[dict[str, Any]]] = {}
    for r in flow.ingest.json()["receipts"]:
        out.setdefault(r["line"], []).append(r)
    return out


def test_ingest_exits_1_with_a_receipt_per_row(flow: DemoFlow) -> None:
    assert flow.load.returncode == 0, flow.load
    assert flow.ingest.returncode == EXIT_ROWS_REJECTED, flow.ingest
    report = flow.ingest.json()
    assert report["ok"] is False
    rows, receipts = export_rows(), receipts_by_line(flow)
    assert set(receipts) == set(rows), "one receipt (or more, for a rejected row) per line"

    for line in rows:
        got = receipts[line]
        if line == REJECTED_LINE:
            assert {r["status"] for r in got} == {"rejected"}
            assert {r["field"] for r in got} == {"child_dob", "child_present"}
            assert all(r["message_id"] is None and r["attempts"] == 0 for r in got), "never sent"
        elif line in REFERRED_LINES:
            [r] = got
            assert r["status"] == "referred", r
            assert REFERRED_LINES[line] in r["reason"], r
        else:
            [r] = got
            assert r["status"] == "accepted", r
            assert r["school_urn"] == rows[line]["school_urn"], r
    passed = [r for line, got in receipts.items() if line != REJECTED_LINE for r in got]
    # 12 data rows: 9 accepted, 2 referred, line 10 rejected (once per bad field).
    assert len(passed) == len(rows) - 1 == 11
    assert report["counts"] == {"accepted": 9, "referred": 2, "rejected": 2}
    assert len({r["message_id"] for r in passed}) == len(passed), "a distinct message id per row"


def test_school_inbox_lists_exactly_its_own_notifications_delivered(flow: DemoFlow) -> None:
    assert flow.inbox.returncode == 0, flow.inbox
    inbox = flow.inbox.json()
    assert inbox["urn"] == SCHOOL
    rows = export_rows()
    rejected = {REJECTED_LINE}
    expected = Counter(
        (r["incident_ref"], f"{r['child_given_name']} {r['child_family_name']}")
        for line, r in rows.items()
        if r["school_urn"] == SCHOOL and line not in rejected
    )
    got = Counter((n["police_reference"], n["child"]) for n in inbox["notifications"])
    assert got == expected
    assert len(expected) == 3  # Ava, Lily and Freya

    others = {f"{r['child_given_name']} {r['child_family_name']}" for r in rows.values() if r["school_urn"] != SCHOOL}
    postcodes = {r["home_postcode"].replace(" ", "").upper() for r in rows.values() if r["home_postcode"]}
    text = flow.inbox.stdout
    squashed = text.replace(" ", "").upper()
    assert not [name for name in others if name in text], "another school's child is in this inbox"
    assert not [p for p in postcodes if p in squashed], "a home postcode is in the inbox"
    assert "postcode" not in text.lower()

    for n in inbox["notifications"]:
        assert n["notify_by"], n
        assert n["delivered_at"], n
        assert n["delivery_status"] in {"on_time", "late"}, n


def test_ack_records_once_and_refuses_strangers_and_other_schools(flow: DemoFlow) -> None:
    assert flow.ack_first.returncode == 0, flow.ack_first
    assert f"recorded: {flow.acked_id[:8]} read by {KEY_ADULT}" in flow.ack_first.stdout
    assert flow.ack_again.returncode == 0, flow.ack_again
    assert f"already read by {KEY_ADULT}" in flow.ack_again.stdout

    for refused in (flow.ack_not_key_adult, flow.ack_other_schools_key_adult, flow.ack_other_schools_notification):
        assert refused.returncode == EXIT_NOT_FOUND, refused
        assert "not found:" in refused.stderr, refused
        assert "Traceback" not in refused.stderr, refused

    [(read_by, read_at)] = flow.mash.sql("SELECT read_by, read_at FROM deliveries WHERE delivery_id = ?", flow.acked_id)
    assert read_by == KEY_ADULT
    assert read_at
    assert flow.mash.scalar("SELECT count(*) FROM deliveries WHERE read_at IS NOT NULL") == 1
    [(other_read,)] = flow.mash.sql("SELECT read_at FROM deliveries WHERE delivery_id = ?", flow.other_school_id)
    assert other_read is None, "an ack from the wrong school marked another school's notification"
    assert flow.mash.scalar("SELECT count(*) FROM events WHERE event_type = 'notification.read'") == 1


def test_person_read_acknowledgement_reaches_police(flow: DemoFlow) -> None:
    [(source_id,)] = flow.mash.sql("SELECT message_id FROM deliveries WHERE delivery_id = ?", flow.acked_id)
    reads = [a for a in flow.acknowledgements if a["kind"] == "ack.person_read"]
    assert len(reads) == 1, [a["kind"] for a in flow.acknowledgements]
    [ack] = reads
    assert ack["payload"]["read_message_id"] == source_id
    assert ack["payload"]["reader_name"] == KEY_ADULT
    assert ack["payload"]["reader_org"] == f"school:{SCHOOL}"
    assert ack["sender_org"] == f"school:{SCHOOL}"
    assert ack["causation_id"] == flow.acked_id
    # The system receipts (delivered) travel on the same topic, one per delivery.
    delivered = [a for a in flow.acknowledgements if a["kind"] == "ack.system_receipt"]
    assert len({a["message_id"] for a in delivered}) == flow.deliveries_after_reingest


def test_queue_lists_the_two_referred_rows_with_reasons(flow: DemoFlow) -> None:
    assert flow.queue.returncode == 0, flow.queue
    items = flow.queue.json()
    referred = {r["line"]: r for got in receipts_by_line(flow).values() for r in got if r["status"] == "referred"}
    assert len(items) == 2
    assert {i["message_id"]: i["reason_code"] for i in items} == {
        referred[line]["message_id"]: reason for line, reason in REFERRED_LINES.items()
    }
    assert all(i["queue"] == "mash" and i["detail"] and i["resolved_at"] is None for i in items)


def test_ingesting_the_same_file_again_delivers_nothing_new(flow: DemoFlow) -> None:
    assert flow.reingest.returncode == EXIT_ROWS_REJECTED, flow.reingest  # line 10 is still bad
    first = {(r["line"], r["status"], r["message_id"]) for r in flow.ingest.json()["receipts"]}
    again = {(r["line"], r["status"], r["message_id"]) for r in flow.reingest.json()["receipts"]}
    assert again == first
    assert all(r["attempts"] == 0 for r in flow.reingest.json()["receipts"]), "nothing was sent again"
    assert flow.deliveries_after_reingest == flow.deliveries_before_reingest == 9
    before = {n["message_id"] for n in flow.inbox.json()["notifications"]}
    after = {n["message_id"] for n in flow.inbox_after_reingest.json()["notifications"]}
    assert after == before
    assert len(flow.inbox_after_reingest.json()["notifications"]) == len(before)
    assert flow.mash.count("messages") == 11


@pytest.mark.parametrize(("which", "why"), [("bad_header", "not the expected header"), ("bad_bytes", "not UTF-8")])
def test_an_unusable_file_exits_2_says_why_and_publishes_nothing(flow: DemoFlow, which: str, why: str) -> None:
    result = getattr(flow, which)
    assert result.returncode == EXIT_UNUSABLE, result
    assert "unusable:" in result.stderr, result
    assert why in result.stderr, result
    assert Path(result.args[2]).name in result.stderr, "the message names the file"
    assert "Traceback" not in result.stderr
    assert result.stdout == "", "no receipts: the file was refused as a whole"
    assert flow.messages_after_bad == flow.messages_before_bad == 11


def test_mash_up_stops_cleanly(flow: DemoFlow) -> None:
    assert flow.up_exit == 0
    assert flow.mash.broker_record() is None, "broker.json is removed when the broker stops"
    assert not flow.mash.sql("SELECT outbox_id FROM outbox WHERE published_at IS NULL")
