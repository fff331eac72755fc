"""`mash gate ...`: explain a decision, check a message without sending it, and what-if a new policy.

Each decides through the gate's own pipeline with the gate's inputs: with MASH_AREAS_DIR set, the region
as `mash up` builds it, so each recipient is decided under its own authority's policy and calendar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, print_json, read_envelope, settings, with_ledger
from mash_broker.app.region import deployed_region
from mash_broker.consent_gate import Decision
from mash_broker.contracts import MashError
from mash_broker.core import views
from mash_broker.core.areas import Region
from mash_broker.core.explain import Change, describe_decision, explain, redecide, what_if
from mash_broker.core.policy import LoadedPolicy, load_policy
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The consent gate: explain, check, what-if.")


@app.command("explain")
def explain_(message_id: Annotated[str, typer.Argument(help="The message's id (or its first 8 characters).")]) -> None:
    """Why a recorded message went where it went: rules tried, which held, what was released to whom."""
    cfg = settings()
    region = _region(cfg)
    lines = with_ledger(cfg, lambda ledger: explain(ledger, message_id, region))
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
    region = _region(cfg)

    async def work(ledger: Ledger) -> Decision:
        return await redecide(
            ledger, message, policy=policy, registry=REGISTRY, directories=directories, now=utc_now(), region=region
        )

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
                "authorities": {  # in a region: whose agreements decided each recipient
                    **{r.recipient: r.area for r in decision.not_released if r.area},
                    **{r.recipient: r.area for r in decision.releases if r.area},
                },
                "trace": list(decision.trace),
            }
        )
        return
    for line in describe_decision(message, decision, region):
        out.print(line, markup=False, soft_wrap=True)


@app.command("what-if")
def what_if_(
    policy_file: Annotated[
        Path,
        typer.Option(
            "--policy",
            help="The policy file to try. In a region (MASH_AREAS_DIR) it is the regional policy, each authority's "
            "overrides applied over it as `mash up` would (their `base` must name its version).",
        ),
    ],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Replay the gate over the recorded history under another policy; list the decisions that would change."""
    cfg = settings()
    try:
        loaded = load_policy(policy_file, REGISTRY.policy_kinds)
        directories = REGISTRY.load_directories(cfg)  # the same directories the gate routes by
    except MashError as exc:
        err.print(f"unusable ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    policy, region = loaded.policy, _region(cfg, loaded)
    if region is not None and region.policy.policy.version != policy.version:
        err.print(
            f"unusable: --policy: region {region.name}'s region.toml names its own regional policy "
            f"({region.policy.source}); try a changed copy of the areas folder as MASH_AREAS_DIR instead",
            markup=False,
        )
        raise typer.Exit(EXIT_UNUSABLE)

    async def work(ledger: Ledger) -> tuple[int, list[Change]]:
        return await what_if(ledger, policy, registry=REGISTRY, directories=directories, region=region)

    total, changes = with_ledger(cfg, work)
    versions = [p.policy.version for p in region.policies] if region is not None else [policy.version]
    if as_json:
        print_json(
            {
                "policy_version": policy.version,
                "policy_versions": versions,
                "replayed": total,
                "changes": [c.__dict__ for c in changes],
            }
        )
        return
    under = f"policy {policy.version}" if region is None else f"region {region.name}'s policies {', '.join(versions)}"
    out.print(f"replayed {total} recorded decisions under {under}: {len(changes)} would change", markup=False)
    if changes:
        out.print(views.changes_table("Decisions that would change", changes))


def _region(cfg: Settings, policy: LoadedPolicy | None = None) -> Region | None:
    """The region the gate decides in (None: one area), loaded as `mash up` does; a broken one exits 2."""
    try:
        return deployed_region(cfg, policy)
    except MashError as exc:
        err.print(f"unusable ({exc.code}): MASH_AREAS_DIR: {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
