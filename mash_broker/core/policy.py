"""Loading the sharing policy file and recording each version in the ledger before it is used."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from mash_broker import defaults
from mash_broker.consent_gate import Policy, parse_policy
from mash_broker.contracts import PolicyError
from mash_broker.core.logging import get_logger
from mash_broker.core.ports import PolicyLedger

log = get_logger("mash.policy")

DEFAULT_POLICY = defaults.POLICY_FILE


@dataclass(frozen=True)
class LoadedPolicy:
    """A validated policy and the exact text it came from (recorded in the ledger)."""

    policy: Policy
    source: str
    text: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


def load_policy(path: Path | None, kinds: Mapping[str, type[BaseModel]] | None = None) -> LoadedPolicy:
    """Read and validate a policy file (the shipped one by default). PolicyError names the field.
    ``kinds``: the message kinds its agreements may name (the registry's; None: any payload contract)."""
    path = path or DEFAULT_POLICY
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file ({exc})", record=str(path)) from exc
    return LoadedPolicy(parse_policy(text, source=str(path), kinds=kinds), str(path), text)


async def record_policy(ledger: PolicyLedger, loaded: LoadedPolicy, now: datetime) -> None:
    """Record the policy version (and its exact text) in the ledger; a new version is an audited event."""
    version = loaded.policy.version
    async with ledger.transaction() as tx:
        if await tx.record_policy(
            version=version, sha256=loaded.sha256, source=loaded.source, text=loaded.text, at=now
        ):
            await tx.event(
                "policy.loaded", None, now, version=version, sha256=loaded.sha256, source=Path(loaded.source).name
            )
            log.info("policy.loaded", version=version)
