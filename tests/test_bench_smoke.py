"""The audit-verify bench still runs: a tiny log, every figure printed, and the verify it times succeeded.

Not a timed test: it checks that the bench works, never how fast anything is.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RATE = r"\s+(\d+) in\s+[\d.]+ s =\s+[\d,]+ entries/s"


def test_audit_verify_bench_prints_its_figures() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench.audit_verify", "--entries", "250", "--checkpoint-every", "100", "--repeat", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr

    assert "built the log: 250 entries and 2 checkpoints" in out
    assert "verify OK: 250 entries, 2 checkpoints, newest covers 200" in out
    for label in (
        r"\(a\) verify_log \(what `mash audit verify` runs\)",
        r"\(a\) `mash audit verify --json`, whole command",
        r"\(b\) plain SHA-256, one digest per leaf",
        r"\(b\) plain SHA-256, leaves \+ RFC 6962 tree \(root\)",
    ):
        match = re.search(label + RATE, out)
        assert match, f"no figure for {label} in:\n{out}"
        assert match.group(1) == "250"
    assert re.search(r"one digest per leaf.* MB/s", out)
    assert re.search(r"ratio verify_log / plain SHA-256 per leaf: [\d.]+ \(plain is [\d,]+x faster\)", out)
    assert "(c) where verify's time goes" in out
    assert re.search(r"canonical bytes \(RFC 8785 JSON, Entry.canonical\)\s+[\d.]+ s", out)


def test_transport_pace_bench_prints_its_figures() -> None:
    """The smallest sizes of the two figures that run in seconds: replay (both runs) and the inbox page."""
    result = subprocess.run(
        [sys.executable, "-m", "bench.transport_pace", "--only", "replay,inbox", "--replay", "5", "--inbox", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"summary: replay_dry_run \[5 messages\] = .* exit 0, selected 5, published 0", out), out
    assert re.search(r"summary: replay \[5 messages\] = .* exit 0, selected 5, published 5", out), out
    assert re.search(r"summary: inbox_page \[10 notifications, .*\] = \d+ ms best.*target < 200 ms", out), out
