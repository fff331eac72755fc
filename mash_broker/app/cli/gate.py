"""`mash gate ...`: explain a decision, check a message without sending it, and what-if a new policy."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, print_json, read_envelope, settings, with_ledger
from mash_broker.consent_gate import Decision
from mash_broker.contracts import MashError
from mash_broker.core import views
from mash_broker.core.explain import Change, describe_decision, explain, redecide, what_if
from mash_broker.core.policy import load_policy
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The consent gate: explain, check, what-if.")


@app.command("explain")
def explain_(message_id: Annotated[str, typer.Argument(help="The message's id (or its first 8 characters).")]) -> None:
    """Why a recorded message went where it went: rules tried, which held, what was released to whom."""
    lines = with_ledger(settings(), lambda ledger: explain(ledger, message_id))
    for line in lines:
        out.print(line, markup=False, soft_wrap=True)


@app.command("check")
def check(
    message_file: Annotated[Path, typer.Argument(help="A contract as JSON (an envelope).")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Decide a message as the gate would now, with the ledger's consent and directory; nothing is sent."""
    cfg = settings()
    message = read_envelope(message_file)
    try:
        policy = load_policy(cfg.policy_file, REGISTRY.policy_kinds).policy
        directories = REGISTRY.load_directories(cfg)
    except MashError as exc:
        err.print(f"unusable ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc

    async def work(ledger: Ledger) -> Decision:
        return await redecide(ledger, message, policy=policy, registry=REGISTRY, directories=directories, now=utc_now())

    decision = with_ledger(cfg, work)
    if as_json:
        print_json(
            {
                "verdict": decision.verdict.value,
                "reasons": [r.value for r in decision.reasons],
                "policy_version": decision.policy_version,
                "refer_to": decision.refer_to,
                "released": {r.recipient: sorted(r.released) for r in decision.releases},
                "not_released": {r.recipient: [x.value for x in r.reasons] for r in decision.not_released},
                "trace": list(decision.trace),
            }
        )
        return
    for line in describe_decision(message, decision):
        out.print(line, markup=False, soft_wrap=True)


@app.command("what-if")
def what_if_(
    policy_file: Annotated[Path, typer.Option("--policy", help="The policy file to try.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay the gate over the recorded history under another policy; list the decisions that would change."""
    cfg = settings()
    try:
        policy = load_policy(policy_file, REGISTRY.policy_kinds).policy
        directories = REGISTRY.load_directories(cfg)  # the same directories the gate routes by
    except MashError as exc:
        err.print(f"unusable ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc

    async def work(ledger: Ledger) -> tuple[int, list[Change]]:
        return await what_if(ledger, policy, registry=REGISTRY, directories=directories)

    total, changes = with_ledger(cfg, work)
    if as_json:
        print_json({"policy_version": policy.version, "replayed": total, "changes": [c.__dict__ for c in changes]})
        return
    out.print(
        f"replayed {total} recorded decisions under policy {policy.version}: {len(changes)} would change", markup=False
    )
    if changes:
        out.print(views.changes_table("Decisions that would change", changes))
