"""`mash clocks ...`: the declared clocks running in the ledger (mash_broker/defaults/clocks.toml)."""

from __future__ import annotations

from typing import Annotated

import typer

from mash_broker.app.cli._area import AreaOption, checked_area
from mash_broker.app.cli._common import out, print_json, settings, with_ledger
from mash_broker.core import views
from mash_broker.core.clocks.status import ClockState, list_clocks
from mash_broker.core.records import ClockRecord
from mash_broker.core.scope import area_scope
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The declared clocks: what is running, warned, breached or stopped.")


@app.command("list")
def list_(
    state: Annotated[ClockState | None, typer.Option(help="Only clocks in this state.")] = None,
    area: AreaOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Clocks, soonest deadline first: name, subject message id, started, due, state, who is escalated to.
    With --area, only the clocks of that authority's messages and deliveries."""
    cfg = settings()
    own = checked_area(cfg, area)

    async def work(ledger: Ledger) -> list[ClockRecord]:
        rows = await list_clocks(ledger, state)
        if own is None:
            return rows
        scope = area_scope(await ledger.events(), own.code)
        return [r for r in rows if r.subject_id in scope.deliveries or r.subject_id in scope.messages]

    rows = with_ledger(cfg, work)
    if as_json:
        print_json(
            [
                {
                    k: getattr(r, k)
                    for k in (
                        "clock_id",
                        "name",
                        "subject_id",
                        "started_at",
                        "due_at",
                        "warn_at",
                        "warned_at",
                        "breached_at",
                        "stopped_at",
                        "state",
                        "escalate_to",
                    )
                }
                for r in rows
            ]
        )
        return
    title = f"Clocks{f' of authority {own.code}' if own else ''}{f' ({state.value})' if state else ''}: {len(rows)}"
    out.print(
        views.rows_table(
            title,
            ["clock", "subject", "started", "due", "state", "escalate to"],
            [
                [
                    r.name,
                    r.subject_id[:8],
                    r.started_at.isoformat(timespec="minutes"),
                    r.due_at.isoformat(timespec="minutes"),
                    r.state.value,
                    r.escalate_to,
                ]
                for r in rows
            ],
        )
    )
