"""`mash report`: the front door's figures for a period, from the audited log."""

from __future__ import annotations

import sys
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from rich.console import Console

from mash_broker.app.cli._area import AreaOption, checked_area
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, moment, out, print_json, settings, with_ledger
from mash_broker.app.cli.audit import key_from
from mash_broker.core import views
from mash_broker.core.audit.proof_file import check_proof
from mash_broker.core.report import Report, front_door_report, report_from_events
from mash_broker.storage import Ledger


class Format(StrEnum):
    TABLE = "table"
    CSV = "csv"
    JSON = "json"


def report(
    from_: Annotated[str, typer.Option("--from", help="Start (ISO 8601 date or time; local time without an offset).")],
    to: Annotated[str, typer.Option("--to", help="End, not included.")],
    format_: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.TABLE,
    log: Annotated[
        Path | None,
        typer.Option("--log", help="Compute from this `mash audit export` file instead of the ledger (needs --key)."),
    ] = None,
    key: Annotated[
        str | None, typer.Option("--key", help="With --log: the gate's public key the export is checked against.")
    ] = None,
    area: AreaOption = None,
    force: Annotated[
        str | None, typer.Option("--force", help="Only one police force's messages (police:<force>), region-wide.")
    ] = None,
) -> None:
    """Front-door performance for [--from, --to): Encompass notifications delivered and read before the
    deadline per school and day, contacts decided within 24 hours, outcomes fed back to referrers,
    s47 GP reports answered on time per practice, shares that did not happen by reason, referrals.
    Every figure is a count over the audited log (`mash audit verify` checks it); with --log and
    --key, over a verified export of it, so anyone with the export and the key gets the same figures."""
    cfg = settings()
    code = own.code if (own := checked_area(cfg, area)) is not None else None
    tz = ZoneInfo(cfg.timezone)
    start, end = moment("--from", from_, tz), moment("--to", to, tz)
    if end <= start:
        err.print(f"unusable: --to: {to!r} is not after --from {from_!r}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)

    if log is not None:
        show(_from_export(log, key, start, end, tz, code, force), format_, out)
        return

    async def work(ledger: Ledger) -> Report:
        return await front_door_report(ledger, start, end, tz, area=code, force=force)

    show(with_ledger(cfg, work), format_, out)


def _from_export(
    log: Path, key: str | None, start: datetime, end: datetime, tz: ZoneInfo, area: str | None, force: str | None
) -> Report:
    if key is None:
        err.print("unusable: --log needs --key: the export is checked before any figure is computed", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    try:
        raw = log.read_bytes()
    except OSError as exc:
        err.print(f"unusable: --log: cannot read {log}: {exc.strerror}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    checked = check_proof(raw, key_from(key))
    if not checked.ok:
        err.print(f"INVALID: {log}: " + "; ".join(checked.problems[:5]), markup=False)
        raise typer.Exit(1)
    return report_from_events(checked.proven, start, end, tz, area=area, force=force)


def show(figures: Report, format_: Format, console: Console) -> None:
    if format_ is Format.JSON:
        print_json(figures.as_json())
    elif format_ is Format.CSV:
        sys.stdout.write(figures.as_csv())
    else:
        whose = f" of {figures.scope}" if figures.scope else ""
        console.print(f"Front door{whose}, {figures.start.isoformat()} to {figures.end.isoformat()}", markup=False)
        for section in figures.sections:
            console.print(views.rows_table(section.title, list(section.columns), [list(r) for r in section.rows]))
