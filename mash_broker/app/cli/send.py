"""`mash send`: any agency's messages, from a file, through the gate, with a receipt for each."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.agencies.police.ingest import IngestReport
from mash_broker.app import commands
from mash_broker.app.cli._common import run, settings
from mash_broker.app.cli.police import show_receipts
from mash_broker.app.embedded import resolve_bootstrap
from mash_broker.app.kafka_refusals import explained
from mash_broker.app.runtime import open_ledger


def send(
    file: Annotated[Path, typer.Argument(help="Envelopes as JSON: one object, an array, or JSON Lines.")],
    as_json: Annotated[bool, typer.Option("--json", help="Receipts as JSON for machines.")] = False,
) -> None:
    """Send messages as their senders (contacts from any agency, outcomes, consent records, s47 requests...).

    Each record is checked against its contract first: a bad one is reported with its record number
    (its line, for JSON Lines) and each field and reason, and the others still go. Each is signed with
    its sender's key from the data dir (`mash keys new ORG`), published on the sender's inbound topic
    (police, health, education, consent, else mash.inbound.v1), and counted as accepted only when the
    gate's receipt is in the ledger. Exit 1 if any record was not accepted; 2 if the file is unusable
    or a sender has no key (nothing is sent); 3 if no broker is reachable.
    """
    cfg = settings()

    async def main() -> IngestReport:
        bootstrap = resolve_bootstrap(cfg)
        ledger = await open_ledger(cfg)
        try:
            return await commands.send_messages(cfg, ledger, bootstrap, file)
        finally:
            await ledger.close()

    show_receipts(run(lambda: explained(cfg, main())), file, as_json, place="record", school=False)
