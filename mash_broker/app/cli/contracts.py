"""`mash contracts ...`: the published contracts."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.app.bootstrap import asyncapi_document
from mash_broker.app.cli._common import out, settings

app = typer.Typer(no_args_is_help=True, help="Event contracts.")


@app.command("export")
def export(directory: Annotated[Path, typer.Argument()]) -> None:
    """Write JSON Schema for every contract and the app's AsyncAPI document into DIRECTORY."""
    from mash_broker.contracts.schemas import write_schemas

    cfg = settings()
    written = write_schemas(directory)
    (directory / "asyncapi.json").write_text(asyncapi_document(cfg) + "\n")
    out.print(f"wrote {len(written) + 1} files to {directory}", markup=False)
