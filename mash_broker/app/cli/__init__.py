"""`mash`: the command line. Thin: parse arguments, call broker.commands, print, choose the exit code."""

from __future__ import annotations

import typer

from mash_broker.app.cli import (
    audit,
    clocks,
    contact,
    contracts,
    gate,
    health,
    kafka,
    keys,
    police,
    queue,
    replay,
    report,
    school,
    send,
    stack,
    web,
)

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="MASH Broker: lawful, provable multi-agency safeguarding information sharing.",
)
stack.register(app)
app.add_typer(police.app, name="police")
app.add_typer(school.app, name="school")
app.add_typer(health.app, name="health")
app.add_typer(queue.app, name="queue")
app.add_typer(contracts.app, name="contracts")
app.add_typer(keys.app, name="keys")
app.add_typer(audit.app, name="audit")
app.add_typer(gate.app, name="gate")
app.add_typer(contact.app, name="contact")
app.add_typer(clocks.app, name="clocks")
app.add_typer(web.app, name="web")
app.add_typer(kafka.app, name="kafka")
app.command("replay", help=replay.HELP)(replay.replay_)
app.command("report")(report.report)
app.command("send")(send.send)


def main() -> None:
    app()
