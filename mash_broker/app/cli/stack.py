"""`mash up`, `mash broker`, `mash serve`, `mash demo`: running the parts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from mash_broker.app.cli._common import err, out, run, safe_url, settings, until_signalled
from mash_broker.app.runtime import running
from mash_broker.core.logging import configure_logging


def up() -> None:
    """Start the embedded broker (unless MASH_KAFKA_BOOTSTRAP is set), the gate, the inboxes and the relay."""
    cfg = settings()

    async def main() -> None:
        async with running(cfg, web=True) as stack:
            where = "embedded broker" if stack.embedded else "Kafka"
            err.print(
                f"mash up: ready on {where} {stack.bootstrap}, ledger {safe_url(cfg)}. Ctrl-C stops.", markup=False
            )
            if stack.web:
                err.print(f"mash up: Key Adult inbox and MASH board at {stack.web.url}/", markup=False)
                if cfg.oidc_enabled:
                    err.print(f"mash up: sign-in also through {cfg.oidc_issuer}", markup=False)
            await until_signalled()
            err.print("mash up: stopping…", markup=False)
        err.print("mash up: stopped", markup=False)

    run(main)


def broker() -> None:
    """Start only the embedded broker (services run separately with `mash serve`)."""
    cfg = settings()

    async def main() -> None:
        async with running(cfg, services=False) as stack:
            err.print(f"mash broker: ready on {stack.bootstrap}", markup=False)
            await until_signalled()

    run(main)


def serve() -> None:
    """Run the gate, the inboxes and the relay against a running broker (`mash broker` or Kafka)."""
    cfg = settings()

    async def main() -> None:
        async with running(cfg, start_broker=False, web=True) as stack:
            err.print(f"mash serve: ready on {stack.bootstrap}", markup=False)
            if stack.web:
                err.print(f"mash serve: Key Adult inbox and MASH board at {stack.web.url}/", markup=False)
                if cfg.oidc_enabled:
                    err.print(f"mash serve: sign-in also through {cfg.oidc_issuer}", markup=False)
            await until_signalled()

    run(main)


def demo(
    data_dir: Annotated[
        Path | None, typer.Option(help="Where to keep the demo's ledger (default: a new temporary folder).")
    ] = None,
    week: Annotated[
        bool,
        typer.Option(
            "--week",
            help="Instead: a synthetic week of front-door traffic through the gate (no broker), "
            "then `mash report` for it.",
        ),
    ] = False,
) -> None:
    """The main job in one command: an overnight Encompass export, end to end, on the embedded broker."""
    cfg = settings()
    if "MASH_LOG_LEVEL" not in os.environ:
        # The demo tells its own story on stdout; the services' info lines would bury it. Warnings and
        # errors still show; MASH_LOG_LEVEL=INFO brings the rest back.
        configure_logging("WARNING", cfg.log_json)
    if week:
        from mash_broker.demo.week import run_week_demo

        code = run(lambda: run_week_demo(cfg, out, data_dir))
    else:
        from mash_broker.demo.story import run_demo

        code = run(lambda: run_demo(cfg, out, data_dir))
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    for command in (up, broker, serve, demo):
        app.command()(command)
