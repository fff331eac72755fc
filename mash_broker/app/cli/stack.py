"""`mash up`, `mash broker`, `mash serve`, `mash demo`: running the parts."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from mash_broker.app.cli._common import EXIT_UNAVAILABLE, err, out, run, safe_url, settings, until_signalled
from mash_broker.app.runtime import running
from mash_broker.core.logging import configure_logging
from mash_broker.core.settings import Settings

RESTARTS_ALLOWED = 3  # embedded broker restarts within RESTART_WINDOW_S; one more death and `mash up` exits
RESTART_WINDOW_S = 600.0
STOP_WITHIN_S = 5.0  # SIGTERM to exit in order; then what is left is cancelled (under systemd's and k8s's 10 s)


def up() -> None:
    """Start the embedded broker (unless MASH_KAFKA_BOOTSTRAP is set), the gate, the inboxes and the relay.
    If the embedded broker dies, it is started again and undelivered notifications republished from the
    ledger; if it dies again and again, `mash up` exits non-zero (exit 3) for a supervisor to restart."""
    cfg = settings()
    code = run(lambda: supervise(cfg))
    if code:
        raise typer.Exit(code)


async def supervise(cfg: Settings) -> int:
    """Run the stack until Ctrl-C or SIGTERM (exit 0), restarting it when its embedded broker dies."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    deaths: list[float] = []
    while True:
        ready = asyncio.Event()
        life = asyncio.create_task(_one_life(cfg, stop, ready, again=bool(deaths)))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({life, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if stop.is_set():
            await _stop_within(life, STOP_WITHIN_S if ready.is_set() else 0.0)  # a start is just cancelled
            err.print("mash up: stopped", markup=False)
            return 0
        broker_code = life.result()
        now = time.monotonic()
        deaths = [t for t in deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(deaths) > RESTARTS_ALLOWED:
            err.print(
                f"mash up: the embedded broker died {len(deaths)} times in {RESTART_WINDOW_S / 60:.0f} minutes "
                f"(last exit code {broker_code}); stopping (exit {EXIT_UNAVAILABLE}) for a supervisor to restart "
                f"mash up, or see {cfg.data_dir / 'tansu.log'}",
                markup=False,
            )
            return EXIT_UNAVAILABLE


async def _one_life(cfg: Settings, stop: asyncio.Event, ready: asyncio.Event, *, again: bool) -> int | None:
    """The stack from start to stop; returns the embedded broker's exit code if it died, else None."""
    async with running(cfg, web=True) as stack:
        where = "embedded broker" if stack.embedded else "Kafka"
        err.print(f"mash up: ready on {where} {stack.bootstrap}, ledger {safe_url(cfg)}. Ctrl-C stops.", markup=False)
        if stack.health:
            err.print(f"mash up: probes and metrics at {stack.health.url}/readyz and /metrics", markup=False)
        if stack.web:
            err.print(f"mash up: Key Adult inbox and MASH board at {stack.web.url}/", markup=False)
            if cfg.oidc_enabled and not again:
                err.print(f"mash up: sign-in also through {cfg.oidc_issuer}", markup=False)
        ready.set()
        if stack.broker is None:
            await stop.wait()
            return None
        died, stopped = asyncio.create_task(stack.broker.exited()), asyncio.create_task(stop.wait())
        await asyncio.wait({died, stopped}, return_when=asyncio.FIRST_COMPLETED)
        for task in (died, stopped):
            task.cancel()
        code = died.result() if died.done() and not died.cancelled() else None
        if code is None or stop.is_set():
            return None
        err.print(
            f"mash up: the embedded broker (pid {stack.broker.pid}) exited with code {code}; starting it again "
            "and republishing undelivered notifications from the ledger",
            markup=False,
        )
        return code


async def _stop_within(life: asyncio.Task[int | None], seconds: float) -> None:
    """Let the stack stop in order; after ``seconds``, cancel what is left (a client waiting on a dead
    broker must not hold up a SIGTERM)."""
    err.print("mash up: stopping…", markup=False)
    done = (await asyncio.wait({life}, timeout=seconds))[0] if seconds else set()
    if not done:
        life.cancel()
        await asyncio.wait({life}, timeout=STOP_WITHIN_S)
    failure = life.exception() if life.done() and not life.cancelled() else None
    if failure is not None:
        raise failure


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
            if stack.health:
                err.print(f"mash serve: probes and metrics at {stack.health.url}/readyz and /metrics", markup=False)
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
