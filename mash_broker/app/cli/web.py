"""`mash web ...`: accounts for the web pages (Key Adult inbox, MASH board)."""

from __future__ import annotations

import getpass
import sys
from typing import Annotated

import typer

from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, settings, with_ledger
from mash_broker.app.region import deployed_region
from mash_broker.app.web.accounts import NotAForce, NotAnAuthority, WeakPassword, set_password
from mash_broker.contracts import MashError
from mash_broker.core.settings import Settings

app = typer.Typer(no_args_is_help=True, help="The web pages: Key Adult and MASH accounts.")


def _read_password() -> str:
    """From a prompt (twice) on a terminal, else the first line of stdin; never from the command line."""
    if sys.stdin.isatty():
        first = getpass.getpass("New password: ")
        if getpass.getpass("Again: ") != first:
            err.print("the two passwords differ; nothing changed", markup=False)
            raise typer.Exit(EXIT_UNUSABLE)
        return first
    return sys.stdin.readline().rstrip("\r\n")


@app.command("set-password")
def set_password_(
    who: Annotated[
        str,
        typer.Argument(
            help="The school's URN (a Key Adult), `mash` (the regional or single-area MASH manager), "
            "`mash:<code>` (the MASH manager of one authority of the region: they see only its board), or "
            "`police:<force>` (a police force: it sees only what became of its own notifications)."
        ),
    ],
    name: Annotated[
        str, typer.Argument(help="The Key Adult's name as in the school directory, or the MASH manager's user name.")
    ],
) -> None:
    """Set a person's web password (read from a prompt or stdin, never from arguments)."""
    cfg = settings()
    if who.startswith("mash:"):
        _check_authority(cfg, who.partition(":")[2])
    elif who.startswith("police:"):
        _check_force(cfg, who)
    password = _read_password()
    try:
        account = with_ledger(cfg, lambda ledger: set_password(ledger, who, name, password, utc_now()))
    except (WeakPassword, NotAnAuthority, NotAForce) as exc:
        err.print(f"unusable: {exc}; nothing changed", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    role = (
        f"Key Adult of school {account.urn}"
        if account.urn
        else f"MASH manager of authority {account.area}"
        if account.area
        else f"police force {account.force}"
        if account.force
        else "MASH manager"
    )
    out.print(f"password set for {account.name} ({role}); they sign in as {account.login}", markup=False)


def _check_authority(cfg: Settings, code: str) -> None:
    """``mash:<code>`` must name an authority of the region MASH_AREAS_DIR configures; else exit 2."""
    try:
        region = deployed_region(cfg)
    except MashError as exc:
        err.print(f"unusable ({exc.code}): MASH_AREAS_DIR: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    if region is None or region.area(code) is None:
        where = f"region {region.name} ({', '.join(region.areas)})" if region else "no region (MASH_AREAS_DIR is unset)"
        err.print(f"unusable: mash:{code}: not an authority of {where}; nothing changed", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)


def _check_force(cfg: Settings, force: str) -> None:
    """In a region that names its forces (``region.toml`` ``forces``), ``police:<force>`` must be one; else exit 2."""
    try:
        region = deployed_region(cfg)
    except MashError as exc:
        err.print(f"unusable ({exc.code}): MASH_AREAS_DIR: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    if region is not None and region.forces and force not in region.forces:
        err.print(
            f"unusable: {force}: not a force of region {region.name} ({', '.join(region.forces)}); nothing changed",
            markup=False,
        )
        raise typer.Exit(EXIT_UNUSABLE)
