"""`mash replay`: re-send recorded messages, each passing the gate again as it stands now.

A replay selects recorded inbound messages by the time the gate received them (optionally of one kind,
and only their deliveries to one recipient) and decides each again with the policy and the consent the
ledger holds now. It re-sends only what that decision releases, and only to recipients the original
delivered to: the same delivery message id as the original (recipients deduplicate by it), the fields
released now, marked as a replay in the signed envelope (``replay``) and in a ``mash-replay`` header.
What the original shared and the current decision does not release is withheld, and the ledger says why
(a consent withdrawn since never leaks through a replay). A replay never makes a new share: a recipient
the original did not deliver to is listed as a difference, not sent to. A dry run records and sends
nothing. In a region (``core.areas``) each delivery is decided again under its own authority's policy, as
at the gate: the school's under its authority's, the home authority's MASH under that authority's.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from mash_broker.consent_gate import RECORD_ONLY_KINDS, Decision
from mash_broker.contracts import BrokerUnavailable, Envelope, NotFound, deterministic_id
from mash_broker.core.areas import Region
from mash_broker.core.audit.copies import COPY_ALTERED, replay_refusals, stored_sha256
from mash_broker.core.corrections import REASONS as CORRECTION_REASONS
from mash_broker.core.explain import Change, compare, redecide
from mash_broker.core.logging import get_logger
from mash_broker.core.messages import delivery_envelope, encode, headers_for
from mash_broker.core.policy import LoadedPolicy, record_policy
from mash_broker.core.ports import ReplayLedger
from mash_broker.core.records import DeliveryRecord, OutboxRow
from mash_broker.core.registry import Registry
from mash_broker.core.signing import Signer, sign

REPLACED = frozenset(CORRECTION_REASONS.values())

log = get_logger("mash.replay")

REPLAY_HEADER = "mash-replay"
# The command publishes what it records itself; the running relay leaves those records alone this long,
# then publishes any the command did not (it died or lost the broker): at least once, normally once.
PUBLISH_LEASE = timedelta(seconds=30)
REFUSED = "refused"  # a replay item's verdict when a stored copy fails its recorded hash

Publish = Callable[[OutboxRow], Awaitable[None]]


@dataclass(frozen=True)
class ReplayRequest:
    """Messages received in [``received_from``, ``received_to``), of ``kind`` if given; only their deliveries
    to ``recipient`` if given; published on each recipient's delivery topic, or on ``to_topic``."""

    received_from: datetime
    received_to: datetime
    kind: str | None = None
    recipient: str | None = None
    to_topic: str | None = None


@dataclass(frozen=True)
class ReplayItem:
    """One original delivery, decided again now: re-sent (``send``) or withheld (``withhold``), and why."""

    message_id: str
    kind: str
    recipient: str
    delivery_id: str
    action: str
    verdict: str  # the current decision for this recipient: share, withhold or refer
    reasons: tuple[str, ...]
    fields: tuple[str, ...]  # released now (empty when withheld)
    topic: str
    consent_id: str | None = None
    detail: str | None = None  # why a refused re-send was refused (which stored copy fails its hash)
    policy_version: str | None = None  # a re-send's: the version it is released under (its authority's)


@dataclass
class ReplayPlan:
    """What a replay decided: every original delivery in scope and what happens to it now, and every
    decision that differs from the original."""

    replay_id: str
    request: ReplayRequest
    policy_version: str
    decided_at: datetime
    selected: int
    items: list[ReplayItem]
    changes: list[Change]
    envelopes: dict[str, Envelope] = field(default_factory=dict, repr=False)  # by delivery id, unsigned
    dry_run: bool = True
    published: int = 0

    @property
    def sends(self) -> list[ReplayItem]:
        return [i for i in self.items if i.action == "send"]

    @property
    def withheld(self) -> list[ReplayItem]:
        return [i for i in self.items if i.action == "withhold"]

    @property
    def refused(self) -> list[ReplayItem]:
        """Withheld because a stored copy fails the hash the audited log recorded for it."""
        return [i for i in self.items if i.verdict == REFUSED]

    def as_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "replay_id": self.replay_id,
            "dry_run": self.dry_run,
            "from": r.received_from.isoformat(),
            "to": r.received_to.isoformat(),
            "kind": r.kind,
            "recipient": r.recipient,
            "to_topic": r.to_topic,
            "policy_version": self.policy_version,
            "decided_at": self.decided_at.isoformat(),
            "selected": self.selected,
            "published": self.published,
            "resend": [asdict(i) for i in self.sends],
            "withheld": [asdict(i) for i in self.withheld],
            "refused": len(self.refused),
            "changes": [asdict(c) for c in self.changes],
        }


async def replay(
    ledger: ReplayLedger,
    request: ReplayRequest,
    *,
    policy: LoadedPolicy,
    registry: Registry,
    directories: Mapping[str, Any],
    clock: Callable[[], datetime],
    dry_run: bool = False,
    publish: Publish | None = None,
    signer: Signer | None = None,
    consent_settle_s: float = 0.0,
    region: Region | None = None,
) -> ReplayPlan:
    """Decide the replay now; unless ``dry_run``, record it in the ledger, then publish what it re-sends.

    NotFound if nothing was received in the window. A re-send resting on consent waits ``consent_settle_s``
    and the replay is decided again, so a withdrawal already on its way stops it, as at the gate.
    BrokerUnavailable if publishing fails: the replay is recorded and the relay publishes it later.
    """
    replay_id = str(uuid.uuid4())
    scope: dict[str, Any] = {"policy": policy, "registry": registry, "directories": directories, "region": region}
    plan = await plan_replay(ledger, request, now=clock(), replay_id=replay_id, **scope)
    if dry_run:
        _log_finished(plan)
        return plan
    if consent_settle_s and any(i.consent_id for i in plan.sends):
        await asyncio.sleep(consent_settle_s)
        plan = await plan_replay(ledger, request, now=clock(), replay_id=replay_id, **scope)
    plan.dry_run = False
    for loaded in (policy, *(region.policies if region is not None else ())):
        await record_policy(ledger, loaded, plan.decided_at)  # the region's and each authority's, as at `mash up`
    ids = await _record(ledger, plan, signer, lease_until=clock() + PUBLISH_LEASE)
    rows = await ledger.unpublished(ids)
    try:
        if rows and publish is None:
            raise LookupError("no publisher given")
        for row in rows:
            await publish(row)  # type: ignore[misc]  # not None when there are rows (checked above)
    except Exception as exc:  # recorded: the relay publishes the rest once the lease is over
        log.warning("replay.publish_failed", replay_id=replay_id, error=type(exc).__name__)
        raise BrokerUnavailable(
            f"replay {replay_id} is recorded but was not published ({type(exc).__name__}): "
            f"the running stack's relay publishes it after {PUBLISH_LEASE}"
        ) from exc
    await ledger.mark_published([r.seq for r in rows], clock())
    plan.published = len(rows)
    _log_finished(plan)
    return plan


async def plan_replay(
    ledger: ReplayLedger,
    request: ReplayRequest,
    *,
    policy: LoadedPolicy,
    registry: Registry,
    directories: Mapping[str, Any],
    now: datetime,
    replay_id: str,
    region: Region | None = None,
) -> ReplayPlan:
    """Decide every selected message again at ``now``, through the gate's pipeline (in a ``region``, with
    each authority's policy); nothing is written."""
    rows = [
        r
        for r in await ledger.decided_messages(
            received_from=request.received_from, received_to=request.received_to, kind=request.kind
        )
        if r.kind not in RECORD_ONLY_KINDS
    ]
    versions = [p.policy.version for p in region.policies] if region is not None else [policy.policy.version]
    plan = ReplayPlan(replay_id, request, "+".join(versions), now, 0, [], [])
    for row in rows:
        deliveries = await ledger.deliveries_of(row.message_id)
        if REPLACED & set(row.reasons):  # corrected or withdrawn by its sender: a withdrawn copy never goes again
            deliveries = [d for d in deliveries if d.withdrawn_at is None]
            if not deliveries:
                continue
        if request.recipient is not None:
            deliveries = [d for d in deliveries if d.recipient == request.recipient]
            if not deliveries:
                continue
        plan.selected += 1
        refused = replay_refusals(row.message_id, row.envelope, deliveries, await ledger.events_of(row.message_id))
        plan.items.extend(
            _refused(plan, row.message_id, row.kind, d, refused[d.delivery_id], registry)
            for d in deliveries
            if d.delivery_id in refused
        )
        if not (deliveries := [d for d in deliveries if d.delivery_id not in refused]):
            continue  # a stored copy fails its hash: nothing of it is sent (``REFUSED``)
        message = Envelope.model_validate_json(row.envelope)
        decision = await redecide(
            ledger, message, policy=policy.policy, registry=registry, directories=directories, now=now, region=region
        )
        if change := await compare(ledger, row, decision):
            plan.changes.append(change)
        for delivery in deliveries:
            plan.items.append(_item(plan, message, decision, delivery, registry))
    if not plan.selected:
        scope = "".join(
            [
                f" of kind {request.kind}" if request.kind else "",
                f" delivered to {request.recipient}" if request.recipient else "",
            ]
        )
        raise NotFound(
            f"no recorded message{scope} was received from {request.received_from.isoformat()} "
            f"to {request.received_to.isoformat()}"
        )
    return plan


def _refused(
    plan: ReplayPlan, message_id: str, kind: str, delivery: DeliveryRecord, why: str, registry: Registry
) -> ReplayItem:
    """A delivery whose stored copy (or its message's) fails the hash the audited log recorded: withheld as
    ``refused``, with the table, id and field, and never re-sent."""
    topic = plan.request.to_topic or registry.delivery_topic(delivery.recipient)
    return ReplayItem(
        message_id,
        kind,
        delivery.recipient,
        delivery.delivery_id,
        "withhold",
        REFUSED,
        (COPY_ALTERED,),
        (),
        topic,
        detail=why,
    )


def _item(
    plan: ReplayPlan, message: Envelope, decision: Decision, delivery: DeliveryRecord, registry: Registry
) -> ReplayItem:
    """What happens now to one original delivery; a re-send's envelope goes into ``plan.envelopes``."""
    recipient = delivery.recipient
    topic = plan.request.to_topic or registry.delivery_topic(recipient)
    base = {
        "message_id": str(message.message_id),
        "kind": message.kind,
        "recipient": recipient,
        "delivery_id": delivery.delivery_id,
        "topic": topic,
    }
    release = next((r for r in decision.releases if r.recipient == recipient), None)
    if release is None:
        refusal = next((r for r in decision.not_released if r.recipient == recipient), None)
        verdict, reasons = (refusal.verdict, refusal.reasons) if refusal else (decision.verdict, decision.reasons)
        return ReplayItem(
            **base, action="withhold", verdict=verdict.value, reasons=tuple(r.value for r in reasons), fields=()
        )
    env = delivery_envelope(message, release, decision, notify_by=delivery.notify_by, now=plan.decided_at, replay=True)
    assert str(env.message_id) == delivery.delivery_id  # the original's id: recipients deduplicate by it
    plan.envelopes[delivery.delivery_id] = env
    consent = str(release.consent_id) if release.consent_id else None
    return ReplayItem(
        **base,
        action="send",
        verdict="share",
        reasons=tuple(r.value for r in release.reasons),
        fields=tuple(release.released),
        consent_id=consent,
        policy_version=release.policy_version or decision.policy_version,
    )


async def _record(
    ledger: ReplayLedger, plan: ReplayPlan, signer: Signer | None, *, lease_until: datetime
) -> list[uuid.UUID]:
    """One transaction: the replay, each re-send (an outbox record and ``message.replayed``) and each
    delivery withheld now (``replay.withheld``, with the reasons). Returns the outbox ids."""
    now, rid, r = plan.decided_at, plan.replay_id, plan.request
    ids: list[uuid.UUID] = []
    async with ledger.transaction() as tx:
        await tx.event(
            "replay.decided",
            None,
            now,
            replay_id=rid,
            received_from=r.received_from.isoformat(),
            received_to=r.received_to.isoformat(),
            kind=r.kind,
            recipient=r.recipient,
            to_topic=r.to_topic,
            policy_version=plan.policy_version,
            selected=plan.selected,
            resend=len(plan.sends),
            withheld=len(plan.withheld),
            refused=len(plan.refused),
            changed=len(plan.changes),
        )
        for item in plan.items:
            if item.action == "withhold":
                await tx.event(
                    "replay.withheld",
                    item.message_id,
                    now,
                    replay_id=rid,
                    delivery_id=item.delivery_id,
                    recipient=item.recipient,
                    verdict=item.verdict,
                    reasons=list(item.reasons),
                    policy_version=plan.policy_version,
                    **({"detail": item.detail} if item.detail else {}),
                )
                continue
            env = plan.envelopes[item.delivery_id]
            env = sign(env, signer) if signer is not None else env
            oid = deterministic_id("replay", rid, item.delivery_id, item.topic)
            await tx.enqueue(
                outbox_id=oid,
                topic=item.topic,
                key=item.recipient,
                value=encode(env),
                headers=headers_for(env, **{REPLAY_HEADER: rid}),
                at=now,
                not_before=lease_until,
            )
            await tx.event(
                "message.replayed",
                item.message_id,
                now,
                replay_id=rid,
                delivery_id=item.delivery_id,
                recipient=item.recipient,
                topic=item.topic,
                fields=list(item.fields),
                policy_version=item.policy_version or plan.policy_version,
                consent_id=item.consent_id,
                outbox_id=str(oid),
                outbox_sha256=stored_sha256(encode(env)),
            )
            ids.append(oid)
    return ids


def _log_finished(plan: ReplayPlan) -> None:
    for item in plan.sends if not plan.dry_run else ():
        log.info(
            "message.replayed",
            message_id=item.message_id,
            agency=item.recipient,
            topic=item.topic,
            replay_id=plan.replay_id,
            delivery_id=item.delivery_id,
        )
    for item in plan.withheld:
        log.info(
            "replay.withheld",
            message_id=item.message_id,
            agency=item.recipient,
            replay_id=plan.replay_id,
            reason=item.reasons[-1] if item.reasons else None,
            dry_run=plan.dry_run,
        )
    log.info(
        "replay.finished",
        replay_id=plan.replay_id,
        dry_run=plan.dry_run,
        selected=plan.selected,
        resend=len(plan.sends),
        withheld=len(plan.withheld),
        refused=len(plan.refused),
        changed=len(plan.changes),
        published=plan.published,
        policy_version=plan.policy_version,
    )
