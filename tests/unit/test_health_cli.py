"""`mash health ...` in process (typer's runner) on a temporary data dir: the teams check, a GP's inbox, a
named read and the s47 answered-on-time status. All synthetic."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from consent_builders import CHILD, POLICY, ROOT
from typer.testing import CliRunner

from mash_broker.agencies.health import HEALTH_INBOUND
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.cli import app
from mash_broker.contracts import Envelope
from mash_broker.core.clocks import load_calendar
from mash_broker.core.gate_service import GateContext, process_inbound
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

runner = CliRunner()
NOW = datetime.now(UTC)
S47 = {
    "article6": "public_task",
    "statutory_power": "children_act_1989_s47",
    "article9": "dpa2018_sch1_para18",
    "consent_not_used_because": "would_put_child_at_risk",
}


def s47_request() -> Envelope:
    return Envelope.model_validate(
        {
            "message_id": uuid.uuid4(),
            "kind": "s47.info_request",
            "sender_org": "la:999",
            "correlation_id": uuid.uuid4(),
            "produced_at": NOW,
            "subject": CHILD,
            "lawful_basis": S47,
            "purpose": "child_protection_enquiry",
            "recipients": ["gp:A12345"],
            "special_category": True,
            "payload": {
                "kind": "s47.info_request",
                "questions": "Known to the practice?",
                "answer_by": (NOW + timedelta(days=3)).isoformat(),
                "requested_by": "Synthetic Social Worker",
            },
        }
    )


async def gate_receives(directory: Path, message: Envelope) -> None:
    ledger = await Ledger.open(Settings(data_dir=directory).ledger_url)
    try:
        gate = GateContext(
            registry=REGISTRY,
            ledger=ledger,
            policy=POLICY,
            calendar=load_calendar(None),
            notify_by=time(10, 0),
            school_day_starts=time(8, 30),
            clock=lambda: NOW,
        )
        assert await process_inbound(gate, message.model_dump_json().encode(), HEALTH_INBOUND) == "share"
    finally:
        await ledger.close()


def test_teams_check_names_each_row_problem(tmp_path: Path) -> None:
    good = runner.invoke(app, ["health", "teams", str(ROOT / "mash_broker/demo/data/health-teams.csv")])
    assert good.exit_code == 0, good.output
    assert "2 postcode districts with a health visitor team, 3 schools" in good.output
    bad = tmp_path / "teams.csv"
    bad.write_text("team_id,team_type,covers\nhv,health_visitor,ZZ99\nsn,dentist,900001\n")
    result = runner.invoke(app, ["health", "teams", str(bad)])
    assert result.exit_code == 1
    assert "team_type" in result.output
    header = tmp_path / "header.csv"
    header.write_text("a,b\n1,2\n")
    assert runner.invoke(app, ["health", "teams", str(header)]).exit_code == 2


def test_gp_inbox_read_and_s47_status(data_dir: Path) -> None:
    request = s47_request()
    asyncio.run(gate_receives(data_dir, request))

    listed = runner.invoke(app, ["health", "inbox", "gp:A12345", "--json"])
    assert listed.exit_code == 0, listed.output
    (row,) = json.loads(listed.output)["deliveries"]
    assert (row["kind"], row["read_by"]) == ("s47.info_request", None)

    read = runner.invoke(app, ["health", "ack", "gp:A12345", row["id"], "--by", "Dr Example"])
    assert read.exit_code == 0, read.output
    assert "read by Dr Example" in read.output

    status = runner.invoke(app, ["health", "s47", str(request.message_id)[:8], "--json"])
    assert status.exit_code == 0, status.output
    assert json.loads(status.output)["status"] == "awaiting"
    assert runner.invoke(app, ["health", "s47", "00000000"]).exit_code == 4
