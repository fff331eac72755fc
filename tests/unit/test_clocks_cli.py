"""`mash clocks list`, in process (typer's runner) on a temporary data dir with clocks in the ledger."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from mash_broker.app.cli import clocks
from mash_broker.app.runtime import open_ledger
from mash_broker.core.clocks.keeper import clock_id
from mash_broker.core.settings import load_settings

runner = CliRunner()
app = typer.Typer()
app.add_typer(clocks.app, name="clocks")  # as broker/cli registers it
T0 = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
SUBJECTS = {state: str(uuid.uuid4()) for state in ("running", "warned", "breached", "stopped")}


async def seed() -> None:
    ledger = await open_ledger(load_settings())
    try:
        async with ledger.transaction() as tx:
            for n, (state, subject) in enumerate(SUBJECTS.items()):
                cid = clock_id("contact_decision", subject)
                await tx.start_clock(
                    clock_id=cid,
                    name="contact_decision",
                    subject_id=subject,
                    started_at=T0,
                    due_at=T0 + timedelta(hours=24 + n),
                    warn_at=T0 + timedelta(hours=20),
                    escalate_to="mash:team-manager",
                )
                if state in ("warned", "breached"):
                    await tx.flag_clock(str(cid), "warned_at", T0 + timedelta(hours=20))
                if state == "breached":
                    await tx.flag_clock(str(cid), "breached_at", T0 + timedelta(hours=25))
                if state == "stopped":
                    await tx.stop_clock(cid, T0 + timedelta(hours=2))
    finally:
        await ledger.close()


def test_clocks_are_listed_with_their_state_and_escalation(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    asyncio.run(seed())
    result = runner.invoke(app, ["clocks", "list"])
    assert result.exit_code == 0, result.output
    assert "Clocks: 4" in result.output
    for state, subject in SUBJECTS.items():
        line = next(line for line in result.output.splitlines() if subject[:8] in line)
        assert "contact_decision" in line
        assert state in line
        assert "mash:team-manager" in line


def test_clocks_filtered_by_state_as_json(data_dir: Path) -> None:
    asyncio.run(seed())
    result = runner.invoke(app, ["clocks", "list", "--state", "breached", "--json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert (row["subject_id"], row["state"], row["escalate_to"]) == (
        SUBJECTS["breached"],
        "breached",
        "mash:team-manager",
    )
    assert runner.invoke(app, ["clocks", "list", "--state", "late"]).exit_code == 2  # not a state: refused
