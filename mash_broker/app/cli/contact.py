"""`mash contact check`: the form for agencies without a system, checked before it is sent."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.app.cli._common import EXIT_ROWS_REJECTED, EXIT_UNUSABLE, err, out, print_json, read_envelope
from mash_broker.contracts import Contact
from mash_broker.contracts.quality import contact_quality

app = typer.Typer(no_args_is_help=True, help="Contacts to the MASH.")


@app.command("check")
def check(
    contact_file: Annotated[Path, typer.Argument(help="A contact as JSON (an envelope of kind contact).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check a contact as the gate will: exit 2 if it fails its contract (field and reason), exit 1 if
    screening will lack something (each field named, as the referrer's quality receipt will), else 0."""
    message = read_envelope(contact_file)
    if not isinstance(message.payload, Contact):
        err.print(f"unusable: {contact_file}: kind: {message.kind} is not a contact", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    gaps = contact_quality(message)
    if as_json:
        print_json(
            {
                "message_id": str(message.message_id),
                "complete": not gaps,
                "missing": [{"field": g.field, "why": g.why} for g in gaps],
            }
        )
    elif gaps:
        out.print(f"contact {message.message_id} will be accepted but flagged: screening needs", markup=False)
        for gap in gaps:
            out.print(f"  {gap}", markup=False)
    else:
        out.print(f"contact {message.message_id} is complete", markup=False)
    raise typer.Exit(EXIT_ROWS_REJECTED if gaps else 0)
