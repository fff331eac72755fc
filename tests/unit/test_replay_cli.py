"""`mash replay`'s options, in process (typer's runner) on a temporary data dir: bad input is exit 2 naming
the option, before anything is opened or sent; an empty window is exit 4."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from mash_broker.app.cli import app

runner = CliRunner()
WINDOW = ["--from", "2026-11-17T07:00", "--to", "2026-11-17T08:00Z"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        pytest.param(["--from", "yesterday", "--to", "2026-11-17"], "--from", id="from-not-a-time"),
        pytest.param(["--from", "2026-11-17", "--to", "2026-13-01"], "--to", id="to-not-a-date"),
        pytest.param(["--from", "2026-11-17T08:00", "--to", "2026-11-17T08:00"], "--to", id="empty-window"),
        pytest.param(["--from", "2026-11-18", "--to", "2026-11-17"], "--to", id="to-before-from"),
        pytest.param([*WINDOW, "--recipient", "school 900001"], "--recipient", id="recipient-not-an-org"),
        pytest.param([*WINDOW, "--kind", "Contact!"], "--kind", id="kind-not-a-kind"),
        pytest.param([*WINDOW, "--to-topic", "no spaces"], "--to-topic", id="to-topic-not-a-topic"),
        pytest.param([*WINDOW, "--to-topic", "police.notification.v1"], "--to-topic", id="to-topic-inbound"),
    ],
)
def test_a_bad_option_is_exit_2_naming_it_and_opens_nothing(data_dir: Path, args: list[str], named: str) -> None:
    result = runner.invoke(app, ["replay", *args])

    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"unusable: {named}: ")
    assert not (data_dir / "ledger.sqlite3").exists(), "nothing was opened"


def test_a_missing_window_is_refused_by_the_command_line(data_dir: Path) -> None:
    result = runner.invoke(app, ["replay", "--from", "2026-11-17"])

    assert result.exit_code == 2
    assert "--to" in result.stderr


def test_a_window_with_nothing_received_is_exit_4(data_dir: Path) -> None:
    result = runner.invoke(app, ["replay", *WINDOW, "--dry-run"])

    assert result.exit_code == 4, result.output
    assert "not found: no recorded message was received from 2026-11-17T07:00:00+00:00" in result.stderr


def test_a_replay_that_would_send_needs_a_broker_and_records_nothing_without_one(data_dir: Path) -> None:
    assert runner.invoke(app, ["keys", "new", "mash:gate"]).exit_code == 0

    result = runner.invoke(app, ["replay", *WINDOW])

    assert result.exit_code == 3, result.output
    assert result.stderr.startswith("broker unavailable:")
    assert not (data_dir / "ledger.sqlite3").exists(), "nothing was recorded"


def test_a_replay_that_would_send_needs_the_gate_key(data_dir: Path) -> None:
    result = runner.invoke(app, ["replay", *WINDOW])

    assert result.exit_code == 2, result.output
    assert "mash keys new mash:gate" in result.stderr
