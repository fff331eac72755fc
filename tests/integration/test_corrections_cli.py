"""Corrections and withdrawals through the real commands over the embedded broker (issue 11, problem 2).

Before, a row sent again with another school or summary was reported ``accepted`` (exit 0) and nothing was
sent, and `mash send` with a reused message id and other content was "accepted" too. Now a changed row is
a correction (``corrected``: the first school's copy withdrawn, the right school delivered), `mash police
withdraw` withdraws one sent in error, and a reused id with other content is ``rejected`` with its reason.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mash_broker.agencies.police.export import EXPORT_COLUMNS

from .helpers import DEMO, Mash, mash_session, wait_for

pytestmark = pytest.mark.embedded

EXIT_ROWS_REJECTED, EXIT_NOT_FOUND = 1, 4
YESTERDAY = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)


def row(ref: str, given: str, **changes: str) -> dict[str, str]:
    """One synthetic export row for school 900001 (an incident yesterday evening)."""
    return {
        "incident_ref": ref,
        "occurred_at": YESTERDAY.isoformat(),
        "reported_at": (YESTERDAY + timedelta(minutes=15)).isoformat(),
        "force": "examplepolice",
        "incident_type": "domestic_abuse",
        "child_given_name": given,
        "child_family_name": "Correctionson",
        "child_dob": "2016-04-04",
        "child_present": "yes",
        "school_urn": "900001",
        "home_postcode": "ZZ99 1AA",
        "summary": "Officers attended a synthetic incident.",
        **changes,
    }


def export(path: Path, *rows: dict[str, str]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, EXPORT_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return path


def settled(mash: Mash) -> None:
    wait_for(
        "the outbox to be published and every delivery received",
        lambda: (
            mash.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL AND cancelled_at IS NULL") == 0
            and mash.scalar("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL AND withdrawn_at IS NULL") == 0
        ),
        30,
    )


@pytest.fixture(scope="module")
def mash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mash]:
    with mash_session(tmp_path_factory.mktemp("corrections")) as m:
        m.up()
        assert m.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
        yield m


def test_a_corrected_export_reports_corrected_rows_and_exits_0(mash: Mash, tmp_path: Path) -> None:
    first, other = row("COR/2026/0001", "Wren"), row("COR/2026/0002", "Birch")
    sent = mash.run("police", "ingest", str(export(tmp_path / "first.csv", first, other)), "--json")
    assert sent.returncode == 0, sent
    old_id = sent.json()["receipts"][0]["message_id"]
    settled(mash)

    fixed = {**first, "school_urn": "900002"}
    corrected = mash.run("police", "ingest", str(export(tmp_path / "fixed.csv", fixed, other)), "--json")

    assert corrected.returncode == 0, corrected
    report = corrected.json()
    assert report["ok"] is True
    assert [(r["line"], r["status"]) for r in report["receipts"]] == [(2, "corrected"), (3, "accepted")]
    new_id = report["receipts"][0]["message_id"]
    assert new_id != old_id
    assert report["receipts"][1]["attempts"] == 0, "the unchanged row is not sent again"
    assert report["counts"] == {"accepted": 1, "corrected": 1}
    settled(mash)
    assert mash.sql("SELECT recipient, withdrawn_at IS NOT NULL FROM deliveries WHERE message_id = ?", old_id) == [
        ("school:900001", 1)
    ]
    assert mash.sql("SELECT recipient, delivered_at IS NOT NULL FROM deliveries WHERE message_id = ?", new_id) == [
        ("school:900002", 1)
    ]
    wait_for(
        "the first school's inbox to record the withdrawal notice",
        lambda: (
            mash.scalar(
                "SELECT count(*) FROM withdrawn_copies WHERE message_id = ? AND notice_received_at IS NOT NULL", old_id
            )
            == 1
        ),
        30,
    )
    inbox = mash.run("school", "inbox", "900001", "--json")
    (shown,) = [n for n in inbox.json()["notifications"] if n["police_reference"] is None]
    assert shown["withdrawn_at"]
    assert not shown["child"]
    assert not shown["summary"]
    assert "Wren" not in inbox.stdout

    again = mash.run("police", "ingest", str(tmp_path / "fixed.csv"), "--json")
    assert again.returncode == 0, again
    assert [(r["status"], r["message_id"], r["attempts"]) for r in again.json()["receipts"]] == [
        ("corrected", new_id, 0),
        ("accepted", report["receipts"][1]["message_id"], 0),
    ]

    # Yesterday's file run again after the correction: its row repeats the replaced version. It is answered
    # "superseded" and nothing is sent; before, it was sent as a correction back to the wrong school.
    replayed = mash.run("police", "ingest", str(tmp_path / "first.csv"), "--json")
    assert replayed.returncode == 0, replayed
    assert [(r["line"], r["status"]) for r in replayed.json()["receipts"]] == [(2, "superseded"), (3, "accepted")]
    assert "earlier version" in replayed.json()["receipts"][0]["reason"]
    settled(mash)
    assert mash.sql(
        "SELECT recipient FROM deliveries WHERE message_id IN "
        "(SELECT message_id FROM messages WHERE sender_local_id = ?) AND withdrawn_at IS NULL",
        "COR/2026/0001",
    ) == [("school:900002",)]


def test_police_withdraw_a_notification_sent_in_error(mash: Mash, tmp_path: Path) -> None:
    sent = mash.run("police", "ingest", str(export(tmp_path / "one.csv", row("COR/2026/0003", "Rowan"))), "--json")
    assert sent.returncode == 0, sent
    settled(mash)

    withdrawn = mash.run("police", "withdraw", "COR/2026/0003", "--json")

    assert withdrawn.returncode == 0, withdrawn
    ((receipt,),) = [withdrawn.json()["receipts"]]
    assert (receipt["status"], receipt["reason"]) == ("withdrawn", "notification_withdrawn")
    assert mash.sql(
        "SELECT withdrawn_at IS NOT NULL FROM deliveries WHERE message_id = ?", sent.json()["receipts"][0]["message_id"]
    ) == [(1,)]
    again = mash.run("police", "withdraw", "COR/2026/0003")
    assert again.returncode == EXIT_NOT_FOUND, again
    assert "already withdrawn" in again.stderr + again.stdout
    resent = mash.run("police", "ingest", str(tmp_path / "one.csv"), "--json")
    assert [r["status"] for r in resent.json()["receipts"]] == ["withdrawn"], "the same row again sends nothing"
    assert "Rowan" not in withdrawn.stdout + again.stdout + again.stderr


def test_mash_send_with_a_reused_message_id_and_other_content_is_rejected(mash: Mash, tmp_path: Path) -> None:
    sent = mash.run("police", "ingest", str(export(tmp_path / "one.csv", row("COR/2026/0004", "Hazel"))), "--json")
    assert sent.returncode == 0, sent
    mid = sent.json()["receipts"][0]["message_id"]
    [(stored,)] = mash.sql("SELECT envelope FROM messages WHERE message_id = ?", mid)
    doc = json.loads(stored)
    doc.pop("signature", None)
    doc["produced_at"] = datetime.now(UTC).isoformat()
    doc["payload"]["summary_for_school"] = "Another account under the same message id."
    (tmp_path / "reused.json").write_text(json.dumps(doc))

    result = mash.run("send", str(tmp_path / "reused.json"), "--json")

    assert result.returncode == EXIT_ROWS_REJECTED, result
    ((receipt,),) = [result.json()["receipts"]]
    assert (receipt["status"], receipt["message_id"], receipt["reason"]) == ("rejected", mid, "message_id_reused")
    [(envelope,)] = mash.sql("SELECT envelope FROM messages WHERE message_id = ?", mid)
    assert "Another account" not in envelope, "the first version stands"
