"""`mash up` supervises its embedded broker, as a real process: when tansu dies (SIGKILL, its pid from
broker.json) `mash up` says so within seconds, starts it again and the stack works again (undelivered
notifications are republished from the ledger); the aiokafka clients' complaints meanwhile are a few
rate-limited lines, not thousands; and SIGTERM stops the stack within 10 s, even mid-restart."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration.helpers import DEMO, READY_TIMEOUT_S, Mash, mash_session, wait_for
from mash_broker.app.embedded import pid_alive

NOTICED_WITHIN_S = 10.0
STOPPED_WITHIN_S = 10.0
MAX_STDERR_LINES = 200  # one life of `mash up` logs about 20; the old code wrote ~200 a second once tansu died


@pytest.fixture
def mash(tmp_path: Path) -> Iterator[Mash]:
    with mash_session(tmp_path) as m:
        yield m


def kill_the_broker(mash: Mash) -> int:
    record = mash.broker_record()
    assert record is not None
    pid = int(record["pid"])
    assert pid_alive(pid)
    os.kill(pid, signal.SIGKILL)
    return pid


def test_a_dead_embedded_broker_is_noticed_started_again_and_the_stack_works(mash: Mash) -> None:
    up = mash.up()
    dead = kill_the_broker(mash)
    killed_at = time.monotonic()
    up.wait_for_stderr("the embedded broker", NOTICED_WITHIN_S)
    assert time.monotonic() - killed_at < NOTICED_WITHIN_S
    assert f"(pid {dead}) exited" in up.stderr()

    wait_for("mash up ready again", lambda: up.stderr().count("mash up: ready") == 2, READY_TIMEOUT_S)
    record = mash.broker_record()
    assert record is not None
    assert record["pid"] != dead
    assert pid_alive(int(record["pid"]))
    assert up.running()

    assert mash.run("school", "load", str(DEMO / "schools.csv")).returncode == 0
    ingest = mash.run("police", "ingest", str(DEMO / "overnight-export.csv"), "--json")
    assert ingest.returncode in (0, 1), ingest  # 1: the demo export has one bad row, named
    wait_for(
        "the notifications in the schools' inboxes",
        lambda: (
            mash.count("deliveries") > 0
            and not mash.scalar("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL")
        ),
        60,
    )
    assert len(up.stderr().splitlines()) < MAX_STDERR_LINES, up.stderr()[-3000:]

    stopping = time.monotonic()
    assert up.stop(timeout_s=STOPPED_WITHIN_S) == 0
    assert time.monotonic() - stopping < STOPPED_WITHIN_S


def test_sigterm_stops_the_stack_within_ten_seconds_even_mid_restart(mash: Mash) -> None:
    up = mash.up()
    kill_the_broker(mash)
    up.wait_for_stderr("starting it again", NOTICED_WITHIN_S)
    time.sleep(2)  # the new broker is starting and the services are joining their groups
    stopping = time.monotonic()
    up.signal_group(signal.SIGTERM)
    code = up.popen.wait(STOPPED_WITHIN_S + 5)
    took = time.monotonic() - stopping
    assert took < STOPPED_WITHIN_S, f"took {took:.1f} s"
    assert code == 0
    assert "mash up: stopped" in up.stderr()
    assert len(up.stderr().splitlines()) < MAX_STDERR_LINES
