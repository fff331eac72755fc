"""The main job as a person runs it (`./run demo` is `mash demo`): a real process, the embedded broker on a
real socket, SQLite in a temporary folder. Its story is on stdout, and the services' info lines stay out
of it unless MASH_LOG_LEVEL asks for them."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from integration.helpers import mash_executable


def run_demo(data: Path, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MASH_")}
    return subprocess.run(
        [mash_executable(), "demo", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**environ, **env},
        check=False,
    )


def test_mash_demo_runs_the_overnight_path_end_to_end_and_tells_it_plainly(tmp_path: Path) -> None:
    done = run_demo(tmp_path / "data")
    assert done.returncode == 0, done.stderr[-2000:]
    steps = re.findall(r"^(\d)\. ", done.stdout, re.M)
    assert steps == [str(n) for n in range(1, 9)], done.stdout[-2000:]
    summary = re.search(r"rows: (\d+); acknowledgements sent to police: (\d+); ledger events: (\d+)", done.stdout)
    assert summary is not None
    rows, acks, events = (int(g) for g in summary.groups())
    assert rows == 14
    assert 0 < acks <= 3 * rows  # per row at most: its school's receipt and read, its home MASH's receipt
    assert events > rows
    assert "<script>" in done.stdout  # agency text shown as text on a terminal, never run
    assert "message.decided" not in done.stderr  # no info lines from the services
    assert (tmp_path / "data" / "ledger.sqlite3").exists()
    # and what it did is on an audited log that verifies
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MASH_")}
    verify = subprocess.run(
        [mash_executable(), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environ, "MASH_DATA_DIR": str(tmp_path / "data")},
        check=False,
    )
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert str(events) in verify.stdout
