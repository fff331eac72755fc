"""`mash kafka ...`: running on Apache Kafka (the ACLs each agency's principal needs)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, print_json, run, settings
from mash_broker.app.kafka_acl_wire import create_acls
from mash_broker.app.kafka_acls import derive_acls, parse_principals, unmapped
from mash_broker.app.kafka_security import kafka_security
from mash_broker.contracts import InputFileError

app = typer.Typer(no_args_is_help=True, help="Apache Kafka: the ACLs per agency principal.")


@app.command("acls")
def acls(
    principal: Annotated[
        list[str] | None,
        typer.Option(
            "--principal",
            help="AGENCY=User:NAME (repeatable): the SCRAM user or certificate CN of an agency's systems, "
            "or gate=User:NAME for the gate's. Agencies: gate and the registry's.",
        ),
    ] = None,
    principals_file: Annotated[
        Path | None,
        typer.Option("--principals", help='A TOML file with a [principals] table, AGENCY = "User:NAME".'),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The ACLs as JSON.")] = False,
    commands: Annotated[
        bool, typer.Option("--commands", help="Print kafka-acls.sh command lines instead (for an operator).")
    ] = False,
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Create them on MASH_KAFKA_BOOTSTRAP as the admin user the MASH_KAFKA_* settings name.",
        ),
    ] = False,
) -> None:
    """The ACLs each agency's principal needs, derived from the agency registry: print them (one a line),
    or create them with --apply. Existing ACLs are left alone; creating one twice is harmless."""
    names = [a.name for a in REGISTRY.agencies]
    try:
        principals = parse_principals(principal or [], principals_file, names)
    except InputFileError as exc:
        err.print(f"unusable: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    if not principals:
        err.print("unusable: no principals: give --principal AGENCY=User:NAME or --principals FILE", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    bindings = derive_acls(REGISTRY, principals)
    for name in unmapped(REGISTRY, principals):
        err.print(f"mash kafka acls: no principal for {name}: none of its ACLs", markup=False)
    if apply:
        cfg = settings()
        if not cfg.kafka_bootstrap:
            err.print("unusable: --apply needs MASH_KAFKA_BOOTSTRAP (the embedded broker has no ACLs)", markup=False)
            raise typer.Exit(EXIT_UNUSABLE)
        bootstrap = cfg.kafka_bootstrap

        async def create() -> int:
            return await create_acls(bootstrap, kafka_security(cfg), bindings)  # a bad setting: one line

        created = run(create)
        err.print(f"mash kafka acls: {created} ACLs created (or already there) on {bootstrap}", markup=False)
    if as_json:
        print_json([b.as_json() for b in bindings])
    elif commands:
        for b in bindings:
            out.print(b.command(), markup=False)
    elif not apply:
        for b in bindings:
            out.print(b.line(), markup=False)
