"""`mash send`: any agency's messages, from a file, through the gate, with a receipt for each."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from mash_broker.agencies.police.ingest import RowReceipt
from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.cli._common import EXIT_ROWS_REJECTED, out, run, settings
from mash_broker.app.embedded import resolve_bootstrap
from mash_broker.app.kafka_refusals import explained
from mash_broker.app.message_file import send_records
from mash_broker.app.runtime import open_ledger
from mash_broker.core import views

ACCEPTED = ("accepted", "referred")
COLUMNS = ["record", "status", "message id", "field", "reason"]


def send(
    file: Annotated[Path, typer.Argument(help="Envelopes as JSON: one object, an array, or JSON Lines.")],
    as_json: Annotated[bool, typer.Option("--json", help="Receipts as JSON for machines.")] = False,
) -> None:
    """Send messages as their senders (contacts from any agency, outcomes, consent records, s47 requests...).

    Each record is checked first: one over the size limit, nested too deep, not JSON, with a key given
    twice or not an envelope is reported with its record number (its line, for JSON Lines) and each
    field and reason, and the others still go. Each is signed with its sender's key from the data dir
    (`mash keys new ORG`), published on the sender's inbound topic (police, health, education, consent,
    else mash.inbound.v1), and counted as accepted only when the gate's receipt is in the ledger. The
    file is read and answered a batch at a time, so a file of any size runs in bounded memory. Exit 1
    if any record was not accepted; 2 if the file is unusable or a sender has no key (nothing is sent);
    3 if no broker is reachable.
    """
    cfg = settings()
    printer = _JsonReceipts(file) if as_json else _TableReceipts(file)

    async def main() -> Counter[str]:
        bootstrap = resolve_bootstrap(cfg)
        ledger = await open_ledger(cfg)
        try:
            return await send_records(
                cfg,
                ledger,
                bootstrap,
                file,
                topic_for=lambda env: REGISTRY.inbound_topic(env.sender_org, env.kind),
                emit=printer.emit,
            )
        finally:
            await ledger.close()

    counts = run(lambda: explained(cfg, main()))
    ok = all(status in ACCEPTED for status in counts)
    printer.close(counts, ok)
    raise typer.Exit(0 if ok else EXIT_ROWS_REJECTED)


class _JsonReceipts:
    """``{"source", "receipts": [...], "counts", "ok"}``, the receipts written as they come."""

    def __init__(self, file: Path) -> None:
        self.file, self.started, self.first = file, False, True

    def _start(self) -> None:
        if not self.started:
            sys.stdout.write('{\n  "source": ' + json.dumps(str(self.file)) + ',\n  "receipts": [')
            self.started = True

    def emit(self, receipts: list[RowReceipt]) -> None:
        self._start()
        for r in receipts:
            sys.stdout.write(("\n    " if self.first else ",\n    ") + json.dumps(asdict(r)))
            self.first = False
        sys.stdout.flush()

    def close(self, counts: Counter[str], ok: bool) -> None:
        self._start()
        tail = {"counts": dict(sorted(counts.items())), "ok": ok}
        sys.stdout.write("\n  ],\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in tail.items()))
        sys.stdout.write("\n}\n")


class _TableReceipts:
    """A table per batch of receipts (the header once), then the counts."""

    def __init__(self, file: Path) -> None:
        self.file, self.first = file, True

    def emit(self, receipts: list[RowReceipt]) -> None:
        if not receipts:
            return
        rows: list[list[object]] = [[r.line, r.status, (r.message_id or "")[:8], r.field, r.reason] for r in receipts]
        table = views.rows_table(f"Receipts for {self.file.name}" if self.first else "", COLUMNS, rows)
        table.show_header = self.first
        out.print(table)
        self.first = False

    def close(self, counts: Counter[str], ok: bool) -> None:
        if self.first:
            out.print(views.rows_table(f"Receipts for {self.file.name}", COLUMNS, []))
        out.print(", ".join(f"{k}: {v}" for k, v in sorted(counts.items())), markup=False)
