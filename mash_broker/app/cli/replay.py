"""`mash replay`: re-send recorded messages for integration engineers, through the gate as it stands now."""

from __future__ import annotations

import re
from typing import Annotated, NoReturn
from zoneinfo import ZoneInfo

import typer

from mash_broker.agencies.registry import REGISTRY
from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, moment, out, print_json, run, settings
from mash_broker.app.embedded import resolve_bootstrap
from mash_broker.app.region import deployed_region
from mash_broker.app.runtime import open_ledger, producer
from mash_broker.contracts import MashError
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.explain import reason_line
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.policy import load_policy
from mash_broker.core.replay import ReplayPlan, ReplayRequest, replay
from mash_broker.core.signing import require_signer
from mash_broker.storage import OutboxRow

_ORG = re.compile(r"[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
_KIND = re.compile(r"[a-z][a-z0-9_.]{0,63}")


HELP = "\n\n".join(
    [
        "Re-send recorded messages; each passes the gate again under the policy and consent in force now.",
        "Selects the messages the gate received in \\[--from, --to) (of --kind) and re-sends each original delivery "
        "(to --recipient) that the gate releases now, with the fields it releases now, on the recipient's delivery "
        "topic (or --to-topic): the same message id as the original, so recipients deduplicate by it, marked as a "
        "replay in the envelope the gate signs and in a 'mash-replay: <replay id>' header.",
        "A delivery the gate would not release now (a consent withdrawn since, a narrower policy, a school gone from "
        "the directory) is withheld, and the ledger records why. A replay never shares with a recipient the original "
        "did not deliver to: such decisions are listed as differences, not sent. The ledger's audited log records "
        "replay.decided, then message.replayed or replay.withheld for each original delivery.",
        "--dry-run sends and records nothing: it lists what would be re-sent and withheld, and every decision that "
        "differs from the original (verdict, recipients, fields).",
        "With MASH_AREAS_DIR set, each delivery is decided again as the gate decides it in the region: the school's "
        "under its authority's policy, the home authority's MASH (mash:<code>) under that authority's.",
        "Exit codes: 0 done; 2 a bad option, policy or missing gate key; 3 no broker reachable (nothing recorded), or "
        "publishing failed once recorded (the running relay publishes it later); "
        "4 no recorded message in the window.",
    ]
)


def replay_(
    from_: Annotated[
        str,
        typer.Option(
            "--from",
            help="Start of the window, inclusive: when the gate received the "
            "message (ISO 8601; no offset means MASH_TIMEZONE local time).",
        ),
    ],
    to: Annotated[str, typer.Option("--to", help="End of the window, exclusive (as --from).")],
    kind: Annotated[
        str | None, typer.Option(help="Only messages of this kind (e.g. contact, notification.encompass).")
    ] = None,
    recipient: Annotated[
        str | None, typer.Option(help="Only deliveries to this recipient (e.g. school:900001).")
    ] = None,
    to_topic: Annotated[
        str | None,
        typer.Option(
            "--to-topic",
            help="Publish here instead of each recipient's delivery topic (not an inbound topic of the gate).",
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Send nothing, record nothing: list what would be "
            "sent and every decision that differs from the original.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Re-send recorded messages; each passes the gate again under the policy and consent in force now."""
    cfg = settings()
    tz = ZoneInfo(cfg.timezone)
    start, end = moment("--from", from_, tz), moment("--to", to, tz)
    if end <= start:
        _unusable("--to", f"must be after --from ({end.isoformat()} is not after {start.isoformat()})")
    if kind is not None and not _KIND.fullmatch(kind):
        _unusable("--kind", "not a message kind (e.g. contact, notification.encompass)")
    if recipient is not None and not _ORG.fullmatch(recipient):
        _unusable("--recipient", "not an organisation id (<class>:<id>, e.g. school:900001)")
    if to_topic is not None and not _TOPIC.fullmatch(to_topic):
        _unusable("--to-topic", "not a topic name (letters, digits, '.', '_', '-')")
    if to_topic in REGISTRY.inbound_topics:
        _unusable("--to-topic", f"{to_topic} is an inbound topic of the gate; a replay publishes deliveries")
    try:
        policy = load_policy(cfg.policy_file, REGISTRY.policy_kinds)
        directories = REGISTRY.load_directories(cfg)
        region = deployed_region(cfg, policy)  # each authority's policy and calendar, as the gate decides
    except MashError as exc:
        err.print(f"unusable ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    request = ReplayRequest(start, end, kind=kind, recipient=recipient, to_topic=to_topic)

    async def main() -> ReplayPlan:
        if dry_run:
            ledger = await open_ledger(cfg)
            try:
                return await replay(
                    ledger,
                    request,
                    policy=policy,
                    registry=REGISTRY,
                    directories=directories,
                    region=region,
                    clock=utc_now,
                    dry_run=True,
                )
            finally:
                await ledger.close()
        signer = require_signer(KeyStore(cfg.keys_dir), GATE_ORG)  # what the gate publishes, it signs
        bootstrap = resolve_bootstrap(cfg)  # no broker: exit 3 before anything is recorded
        ledger = await open_ledger(cfg)
        try:
            async with producer(cfg, bootstrap) as prod:

                async def publish(row: OutboxRow) -> None:
                    await prod.send_and_wait(
                        row.topic,
                        value=row.value.encode(),
                        key=row.key.encode() if row.key else None,
                        headers=[(k, v.encode()) for k, v in row.headers.items()],
                    )

                return await replay(
                    ledger,
                    request,
                    policy=policy,
                    registry=REGISTRY,
                    directories=directories,
                    region=region,
                    clock=utc_now,
                    publish=publish,
                    signer=signer,
                    consent_settle_s=cfg.consent_settle_s,
                )
        finally:
            await ledger.close()

    plan = run(main)
    if as_json:
        print_json(plan.as_json())
        return
    _print(plan, tz)


def _print(plan: ReplayPlan, tz: ZoneInfo) -> None:
    r = plan.request
    what = "dry run, nothing sent or recorded" if plan.dry_run else f"{plan.published} published"
    out.print(
        f"replay {plan.replay_id} ({what}): {plan.selected} messages received "
        f"{views.local(r.received_from, tz)} to {views.local(r.received_to, tz)}, under policy "
        f"{plan.policy_version}: {len(plan.sends)} re-sent, {len(plan.withheld)} withheld, "
        f"{len(plan.changes)} decisions differ from the original",
        markup=False,
        soft_wrap=True,
    )
    if plan.sends:
        out.print(
            views.rows_table(
                "Would re-send" if plan.dry_run else "Re-sent",
                ["message", "kind", "to", "delivery id", "topic", "fields"],
                [
                    [i.message_id[:8], i.kind, i.recipient, i.delivery_id, i.topic, ", ".join(i.fields)]
                    for i in plan.sends
                ],
            )
        )
    if plan.withheld:
        out.print(
            views.rows_table(
                "Withheld now",
                ["message", "kind", "to", "now", "why"],
                [
                    [i.message_id[:8], i.kind, i.recipient, i.verdict, reason_line(i.reasons[-1]) if i.reasons else ""]
                    for i in plan.withheld
                ],
            )
        )
    if plan.changes:
        out.print(views.changes_table("Decisions that differ from the original", plan.changes))


def _unusable(option: str, problem: str) -> NoReturn:
    err.print(f"unusable: {option}: {problem}", markup=False)
    raise typer.Exit(EXIT_UNUSABLE)
