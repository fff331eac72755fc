"""Crash recovery over real sockets: SIGKILL mid-batch, restart, re-run the ingest, and every row is
delivered exactly once.

(a) The gate dies (`mash serve` killed; `mash broker` keeps running): what it had consumed but not
    committed comes again and is deduplicated; what it had committed to the ledger but not
    published is published by the next relay.
(b) The whole stack dies (`mash up` killed; the embedded broker is memory only and dies with it):
    everything on the wire is gone, so the ledger is the record the restarted stack works from.
"""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mash_broker.app.embedded import pid_alive

from .helpers import DEMO, Mash, Proc, Result, leaks, mash_session, personal_data, wait_for
from .synthetic_export import SyntheticRow, write_export

pytestmark = pytest.mark.embedded

ROWS = 300
DELIVERIES = "education.delivery.v1"
# The ingest running at the crash gives up soon on rows the dead gate never receipted; the re-runs
# wait long enough for a restarted gate to work through the rest of the batch.
CRASHED_INGEST = {"MASH_RECEIPT_TIMEOUT_S": "2", "MASH_SEND_ATTEMPTS": "2"}
RERUN_INGEST = {"MASH_RECEIPT_TIMEOUT_S": "20", "MASH_SEND_ATTEMPTS": "2"}
MAX_INGEST_RUNS = 5


@pytest.fixture
def mash(tmp_path: Path) -> Iterator[Mash]:
    with mash_session(tmp_path) as m:
        yield m


@pytest.fixture
def export(tmp_path: Path) -> tuple[Path, list[SyntheticRow]]:
    path = tmp_path / "synthetic-export.csv"
    return path, write_export(path, ROWS)


def some_but_not_all(mash: Mash, low: int = 40) -> bool:
    return low <= mash.count("messages") < ROWS


def ingest_until_ok(mash: Mash, export: Path) -> Result:
    """Re-run the ingest until every row has the gate's receipt (exit 0), a bounded number of times."""
    for _ in range(MAX_INGEST_RUNS):
        result = mash.run("police", "ingest", str(export), "--json", env=RERUN_INGEST)
        assert result.returncode in (0, 1), result
        if result.returncode == 0:
            return result
    raise AssertionError(f"ingest still not accepted after {MAX_INGEST_RUNS} runs:\n{result}")


def wait_settled(mash: Mash, timeout_s: float = 60) -> None:
    """Every delivery delivered and every outbox record published."""

    def state() -> dict[str, int]:
        return {
            "deliveries": mash.count("deliveries"),
            "undelivered": mash.scalar("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL"),
            "unpublished": mash.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL"),
        }

    done = {"deliveries": ROWS, "undelivered": 0, "unpublished": 0}
    try:
        wait_for("every row delivered and the outbox drained", lambda: state() == done, timeout_s, 0.2)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; ledger: {state()}") from None


def assert_exactly_once(mash: Mash, final: Result) -> None:
    receipts = final.json()["receipts"]
    assert len(receipts) == ROWS
    assert Counter(r["status"] for r in receipts) == {"accepted": ROWS}
    message_ids = {r["message_id"] for r in receipts}
    assert len(message_ids) == ROWS

    assert {m for (m,) in mash.sql("SELECT message_id FROM messages")} == message_ids
    deliveries = mash.sql("SELECT delivery_id, message_id, delivered_at FROM deliveries")
    per_row = Counter(m for _, m, _ in deliveries)
    assert set(per_row) == message_ids, "a row without a delivery (or a delivery without a row)"
    assert set(per_row.values()) == {1}, "a row with more than one delivery"
    assert all(at is not None for _, _, at in deliveries), "a delivery never delivered"

    received = [
        json.loads(d)["delivery_id"]
        for (d,) in mash.sql("SELECT detail FROM events WHERE event_type = 'delivery.received'")
    ]
    assert len(received) == len(deliveries), "delivered more (or fewer) times than there are deliveries"
    assert Counter(received).most_common(1)[0][1] == 1, "a delivery received twice"
    assert set(received) == {d for d, _, _ in deliveries}
    assert mash.scalar("SELECT count(*) FROM events WHERE event_type = 'message.received'") == ROWS
    assert mash.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0
    # One delivery record and one receipt to police per row, however often each was published.
    assert mash.scalar("SELECT count(*) FROM outbox WHERE topic = ?", DELIVERIES) == ROWS


def events(proc: Proc) -> list[dict[str, Any]]:
    return [json.loads(line) for line in proc.stderr().splitlines() if line.startswith("{")]


def assert_no_personal_data_logged(mash: Mash, export: Path) -> None:
    """Crashes, retries and redeliveries take the error paths; they must not log a child either."""
    found = leaks(mash.log_files(), personal_data(export))
    assert not found, "personal data in the logs:\n" + "\n".join(found[:50])


def test_gate_crash_mid_batch_then_restart_delivers_each_row_exactly_once(
    mash: Mash, export: tuple[Path, list[SyntheticRow]]
) -> None:
    path, _ = export
    mash.start("broker", ready="mash broker: ready")
    assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
    serve = mash.start("serve", ready="mash serve: ready")
    first = mash.start("police", "ingest", str(path), "--json", env=CRASHED_INGEST)

    wait_for("the gate to be part-way through the batch", lambda: some_but_not_all(mash), 60, 0.01)
    serve.kill()
    at_crash = mash.count("messages")
    assert 0 < at_crash < ROWS, "the gate must die mid-batch"

    mash.start("serve", ready="mash serve: ready")
    result = first.wait()
    assert result.returncode in (0, 1), result  # rows without a receipt in time: exit 1, never a crash
    statuses = Counter(r["status"] for r in result.json()["receipts"])
    assert set(statuses) <= {"accepted", "not_accepted"}, statuses

    final = ingest_until_ok(mash, path)
    wait_settled(mash)
    assert_exactly_once(mash, final)
    assert_no_personal_data_logged(mash, path)


def test_whole_stack_crash_mid_batch_then_restart_delivers_each_row_exactly_once(
    mash: Mash, export: tuple[Path, list[SyntheticRow]]
) -> None:
    path, _ = export
    up = mash.up()
    tansu = up.tansu_pid
    assert tansu is not None
    assert pid_alive(tansu)
    assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
    first = mash.start("police", "ingest", str(path), "--json", env=CRASHED_INGEST)

    # Freeze the stack at a moment when the ledger holds deliveries not yet published and deliveries
    # published but not yet in a school's inbox, read the ledger (exactly the state the crash
    # leaves), then SIGKILL it: frozen or not, nothing more of it runs.
    deadline = time.monotonic() + 60
    while True:
        assert time.monotonic() < deadline, "never caught the stack mid-batch in the state wanted"
        if some_but_not_all(mash):
            up.signal_group(signal.SIGSTOP)
            unpublished = {
                d
                for (d,) in mash.sql(
                    "SELECT outbox_id FROM outbox WHERE topic = ? AND published_at IS NULL", DELIVERIES
                )
            }
            undelivered = {d for (d,) in mash.sql("SELECT delivery_id FROM deliveries WHERE delivered_at IS NULL")}
            # Only a published delivery can have been delivered, so the difference is on the wire.
            if unpublished and len(undelivered) > len(unpublished) and mash.count("messages") < ROWS:
                up.kill()
                break
            up.signal_group(signal.SIGCONT)
        time.sleep(0.02)
    assert wait_for("the embedded broker to die with its owner", lambda: not pid_alive(tansu), 10)
    # The first ingest's broker is gone: it would wait out aiokafka's 40 s request timeout.
    first.kill()

    restarted = mash.up()
    final = ingest_until_ok(mash, path)
    wait_settled(mash)
    assert_exactly_once(mash, final)
    # What the ledger had committed but the dead stack had not published went out after the restart,
    # and what had been on the dead broker's wire but not yet in a school's inbox arrived too: the
    # restarted stack published those again from the ledger.
    published = {o for (o,) in mash.sql("SELECT outbox_id FROM outbox WHERE published_at IS NOT NULL")}
    delivered = {d for (d,) in mash.sql("SELECT delivery_id FROM deliveries WHERE delivered_at IS NOT NULL")}
    assert unpublished <= published
    assert undelivered <= delivered
    [republished] = [e for e in events(restarted) if e["event"] == "outbox.republished"]
    assert republished["count"] == len(undelivered) - len(unpublished)
    assert_no_personal_data_logged(mash, path)
