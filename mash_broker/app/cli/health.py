"""`mash health ...`: the health adapter's directory check, inboxes, reads and s47 answer status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mash_broker.agencies.health import inbox as health_inbox
from mash_broker.agencies.health.teams import parse_teams
from mash_broker.agencies.health.tracking import s47_status
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_ROWS_REJECTED, EXIT_UNUSABLE, err, out, print_json, settings, with_ledger
from mash_broker.contracts import Delivery, Envelope, InputFileError, NotFound
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.records import DeliveryRecord
from mash_broker.core.signing import Signers
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The health adapter: teams, inboxes, reads and s47 answers.")


@app.command("teams")
def teams(file: Annotated[Path, typer.Argument(help="Health teams CSV: team_id,team_type,covers")]) -> None:
    """Check a health teams file (MASH_HEALTH_TEAMS): each row problem by line and field; exit 1 if any."""
    try:
        result = parse_teams(file.read_bytes(), source=str(file))
    except (OSError, InputFileError) as exc:
        err.print(f"unusable: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    t = result.teams
    out.print(
        f"{len(t.health_visitors)} postcode districts with a health visitor team, "
        f"{len(t.school_nurses)} schools with a school nurse team",
        markup=False,
    )
    if result.problems:
        out.print(
            views.rows_table(
                "Rows not used", ["line", "field", "reason"], [[p.line, p.field, p.reason] for p in result.problems]
            )
        )
        raise typer.Exit(EXIT_ROWS_REJECTED)


@app.command("inbox")
def inbox(
    recipient: Annotated[str, typer.Argument(help="e.g. gp:A12345, health:lac-team, school_nurse:sn-north")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A health recipient's deliveries: what, due by, received by its system, read by whom."""
    cfg = settings()
    rows = [_row(d) for d in with_ledger(cfg, lambda ledger: ledger.deliveries_for(recipient))]
    if as_json:
        print_json({"recipient": recipient, "deliveries": rows})
        return
    out.print(
        views.rows_table(
            f"{recipient}: {len(rows)} deliveries",
            ["id", "kind", "due by", "delivered", "read by"],
            [[r["id"], r["kind"], r["due_by"] or "", r["delivered_at"] or "", r["read_by"] or ""] for r in rows],
        )
    )


def _row(d: DeliveryRecord) -> dict[str, Any]:
    payload = Envelope.model_validate_json(d.envelope).payload
    kind = payload.source_kind if isinstance(payload, Delivery) else payload.kind
    iso = {k: v.isoformat() if (v := getattr(d, k)) else None for k in ("notify_by", "delivered_at", "read_at")}
    return {
        "id": d.delivery_id[:8],
        "kind": kind,
        "due_by": iso["notify_by"],
        "delivered_at": iso["delivered_at"],
        "read_at": iso["read_at"],
        "read_by": d.read_by,
    }


@app.command("ack")
def ack(
    recipient: Annotated[str, typer.Argument(help="The recipient whose inbox holds it, e.g. gp:A12345")],
    message_id: Annotated[str, typer.Argument(help="The delivery's id (or its first 8 characters).")],
    by: Annotated[str, typer.Option("--by", help="Who read it (recorded by name).")],
) -> None:
    """Record that a named person read a delivery; an acknowledgement goes back to its sender."""
    cfg = settings()
    sign = Signers(KeyStore(cfg.keys_dir))
    row = with_ledger(
        cfg, lambda ledger: health_inbox.record_read(ledger, recipient, message_id, by, utc_now(), sign=sign)
    )
    if row.already_read:
        out.print(f"already read by {row.read_by} at {row.read_at.isoformat() if row.read_at else ''}", markup=False)
    else:
        out.print(f"recorded: {row.delivery_id[:8]} read by {row.read_by}; the sender will be told", markup=False)


@app.command("s47")
def s47(
    request_id: Annotated[str, typer.Argument(help="The s47 request's message id (or its first 8 characters).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Was this s47 report request answered on time: the one recorded answer."""
    cfg = settings()

    async def work(ledger: Ledger) -> dict[str, Any]:
        full = await ledger.find_message_id(request_id)
        status = await s47_status(ledger, full, utc_now()) if full else None
        if status is None:
            raise NotFound(f"no s47 report request {request_id} was shared", record=request_id)
        return status

    status = with_ledger(cfg, work)
    if as_json:
        print_json({k: v.isoformat() if hasattr(v, "isoformat") else v for k, v in status.items()})
        return
    answered = status["answered_at"].isoformat() if status["answered_at"] else "not yet"
    out.print(
        f"{status['request_message_id'][:8]}: {status['status']} (answer by "
        f"{status['answer_by'].isoformat()}, answered {answered})",
        markup=False,
    )
