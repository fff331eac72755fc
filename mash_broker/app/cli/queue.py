"""`mash queue ...`: work waiting for a person, and what the gate would not deliver."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from mash_broker.app.cli._common import out, print_json, settings, with_ledger
from mash_broker.core import views

app = typer.Typer(no_args_is_help=True, help="Work waiting for a person.")


@app.command("list")
def list_(
    queue: Annotated[str, typer.Option(help="Which queue: mash (routing) or advice (uncertain cases).")] = "mash",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open items in a queue: messages a person must route or decide, with the reason."""
    items = with_ledger(settings(), lambda ledger: ledger.queue(queue))
    if as_json:
        print_json(items)
    else:
        out.print(
            views.rows_table(
                f"{queue} queue: {len(items)} open",
                ["item", "message id", "reason", "since"],
                [[i.item_id, i.message_id[:8], i.detail, i.created_at.isoformat(timespec="minutes")] for i in items],
            )
        )


@app.command("quarantine")
def quarantine(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Messages the gate would not deliver (withheld or malformed), with the reason and sender."""
    rows = with_ledger(settings(), lambda ledger: ledger.quarantined())
    items = [{k: v for k, v in asdict(i).items() if k != "raw"} for i in rows]
    if as_json:
        print_json(items)
    else:
        out.print(
            views.rows_table(
                f"Quarantine: {len(items)}",
                ["item", "message id", "sender", "reason", "detail", "since"],
                [
                    [
                        i["item_id"],
                        (i["message_id"] or "")[:8],
                        i["sender_org"],
                        i["reason_code"],
                        i["detail"],
                        i["created_at"].isoformat(timespec="minutes"),
                    ]
                    for i in items
                ],
            )
        )
