"""Loading the sharing policy file and recording each version in the ledger before it is used."""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from mash_broker import defaults
from mash_broker.consent_gate import Policy, parse_policy
from mash_broker.consent_gate.policy import ANY_PAYLOAD_KINDS, AgreementSpec, policy_from_document
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


# An authority's overrides of the regional policy (``core.areas``): what the file may say.
_OVERRIDE_KEYS = frozenset({"version", "base", "gillick_age", "default_recipients", "agreement", "remove"})


def load_override(path: Path, base: LoadedPolicy, kinds: Mapping[str, type[BaseModel]] | None = None) -> LoadedPolicy:
    """An authority's own agreements over the regional ``base``: a versioned file naming the regional
    version it overrides (``base``); each ``[[agreement]]`` replaces the regional one of the same name or
    adds one, ``remove`` drops regional agreements by name. The result is validated as a whole policy and
    recorded under the override's own version, with the override's text (the base is recorded too)."""
    record = str(path)
    try:
        text = path.read_text(encoding="utf-8")
        raw: dict[str, Any] = tomllib.loads(text)
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"cannot read the policy file ({exc})", record=record) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=record) from exc
    if unknown := sorted(raw.keys() - _OVERRIDE_KEYS):
        raise PolicyError(
            f"{unknown[0]}: not a key of an authority's policy overrides", record=record, field=unknown[0]
        )
    for key in ("version", "base"):
        if not isinstance(raw.get(key), str):
            raise PolicyError(f"{key}: required (a string)", record=record, field=key)
    if raw["base"] != base.policy.version:
        raise PolicyError(
            f"base: overrides {raw['base']!r} but the regional policy is {base.policy.version!r}",
            record=record,
            field="base",
        )
    merged = _merged(tomllib.loads(base.text), raw, record, kinds)
    return LoadedPolicy(policy_from_document(merged, source=record, kinds=kinds), record, text)


def _merged(
    base: dict[str, Any], over: dict[str, Any], record: str, kinds: Mapping[str, type[BaseModel]] | None
) -> dict[str, Any]:
    agreements: dict[str, Any] = {a.get("name"): a for a in base.get("agreement", [])}
    for i, name in enumerate(over.get("remove", [])):
        if agreements.pop(name, None) is None:
            raise PolicyError(f"remove[{i}]: no regional agreement {name!r}", record=record, field=f"remove[{i}]")
    for i, agreement in enumerate(over.get("agreement", [])):
        try:  # checked on its own first, so a problem is named by its place in this file
            AgreementSpec.model_validate(agreement, context={"kinds": kinds or ANY_PAYLOAD_KINDS})
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise PolicyError(
                f"agreement[{i}].{where}: {first['msg']}", record=record, field=f"agreement[{i}]"
            ) from exc
        agreements[agreement["name"]] = agreement
    doc = {k: v for k, v in base.items() if k != "agreement"}
    doc["version"] = over["version"]
    if "gillick_age" in over:
        doc["gillick_age"] = over["gillick_age"]
    doc["default_recipients"] = {**base.get("default_recipients", {}), **over.get("default_recipients", {})}
    doc["agreement"] = list(agreements.values())
    return doc
