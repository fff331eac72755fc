"""`mash queue ...`: work waiting for a person, and what the gate would not deliver."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

import typer

from mash_broker.app.cli._area import AreaOption, checked_area
from mash_broker.app.cli._common import out, print_json, settings, with_ledger
from mash_broker.core import views
from mash_broker.core.scope import area_scope
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="Work waiting for a person.")


@app.command("list")
def list_(
    queue: Annotated[str, typer.Option(help="Which queue: mash (routing) or advice (uncertain cases).")] = "mash",
    area: AreaOption = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Open items in a queue: messages a person must route or decide, with the reason. With --area, that
    authority's own queue (mash:<code> or advice:<code>); without, the regional (or single-area) one."""
    cfg = settings()
    own = checked_area(cfg, area)
    if own is not None:
        queue = own.advice if queue == "advice" else own.mash
    items = with_ledger(cfg, lambda ledger: ledger.queue(queue))
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
def quarantine(area: AreaOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Messages the gate would not deliver (withheld or malformed), with the reason and sender; with --area,
    only messages decided under that authority's agreements."""
    cfg = settings()
    own = checked_area(cfg, area)

    async def work(ledger: Ledger) -> list[Any]:
        rows = await ledger.quarantined()
        if own is None:
            return rows
        mine = area_scope(await ledger.events(), own.code).messages
        return [r for r in rows if r.message_id in mine]

    rows = with_ledger(cfg, work)
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


@app.command("triage")
def triage(area: AreaOption = None, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Police notifications delivered to an authority's MASH for its daily triage (--area CODE; in a region,
    the home authority of each child is told, under its own agreement)."""
    cfg = settings()
    own = checked_area(cfg, area)
    recipient = own.mash if own is not None else "mash:hub"
    rows = with_ledger(cfg, lambda ledger: ledger.deliveries_for(recipient))
    items: list[dict[str, Any]] = [
        {"delivery_id": r.delivery_id, "message_id": r.message_id, "purpose": r.purpose, "created_at": r.created_at}
        for r in rows
    ]
    if as_json:
        print_json(items)
        return
    out.print(
        views.rows_table(
            f"{recipient}: {len(items)} police notifications for triage",
            ["delivery", "message id", "purpose", "since"],
            [
                [i["delivery_id"][:8], i["message_id"][:8], i["purpose"], i["created_at"].isoformat(timespec="minutes")]
                for i in items
            ],
        )
    )
