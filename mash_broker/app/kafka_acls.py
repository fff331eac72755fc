"""The Kafka ACLs each agency's principal needs, derived from the agency registry.

Nothing here names an agency: what a principal may do follows from what its agency declares
(``mash_broker.core.agency.Agency``):

- an agency whose systems send (``sender_areas``) may WRITE its inbound topic (``mash.inbound.v1`` when it
  has none of its own) and ``consent.record.v1`` (consent records have their own topic, whoever sends them),
  and READ ``<area>.receipt.v1`` and ``<area>.acknowledgement.v1`` for each of its areas;
- an agency with a delivery topic may READ that topic, and no other agency's;
- every reader may READ consumer groups whose names start ``<agency>.`` (``police.``, ``education.``);
- only the gate reads the inbound topics (group ``mash-gate``) and writes the deliveries, receipts,
  acknowledgements, the MASH queue, quarantine and the dead letters (``gate.deadletter.v1``: a record no
  subscriber can act on is parked there, and without WRITE the partition behind it would stop, retried as a
  broker failure). The inboxes ``mash serve`` runs for the agencies are the
  gate's too: it reads their delivery topics in groups ``mash-<agency>``. It may CREATE the topics it uses,
  so ``mash serve`` can create them.

Principals come from a mapping, agency name (or ``gate``) to ``User:<name>``: SCRAM user names, or a client
certificate's CN. An agency without a principal gets no ACLs (and is said to be skipped).
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from mash_broker.app.bootstrap import GATE_GROUP, inbox_group
from mash_broker.contracts import topics
from mash_broker.contracts.errors import InputFileError
from mash_broker.core.intake import DEAD_LETTERS
from mash_broker.core.registry import Registry

GATE = "gate"  # the principal mapping's key for the gate's own principal

ResourceType = Literal["Topic", "Group", "Cluster"]
PatternType = Literal["LITERAL", "PREFIXED"]
Permission = Literal["ALLOW", "DENY"]


@dataclass(frozen=True, order=True)
class AclBinding:
    """One ACL: ``principal`` may ``operation`` the resource ``resource_type:pattern:name``."""

    principal: str
    resource_type: ResourceType
    name: str
    operation: str
    pattern: PatternType = "LITERAL"
    permission: Permission = "ALLOW"
    host: str = "*"

    def line(self) -> str:
        """``User:police ALLOW WRITE Topic:LITERAL:police.notification.v1``: Kafka's own notation."""
        return f"{self.principal} {self.permission} {self.operation} {self.resource_type}:{self.pattern}:{self.name}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    def command(self, bootstrap: str = "BOOTSTRAP", config: str = "admin.properties") -> str:
        """The ``kafka-acls.sh`` command line that adds this ACL."""
        resource = {"Topic": ["--topic", self.name], "Group": ["--group", self.name], "Cluster": ["--cluster"]}
        args = [
            "kafka-acls.sh",
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            config,
            "--add",
            "--allow-principal" if self.permission == "ALLOW" else "--deny-principal",
            self.principal,
            "--operation",
            self.operation.title().replace("_", ""),
            *resource[self.resource_type],
            *(["--resource-pattern-type", "prefixed"] if self.pattern == "PREFIXED" else []),
        ]
        return shlex.join(args)


def principal(text: str) -> str:
    """``User:name`` for ``name`` or ``User:name``; refuses an empty name."""
    name = text.strip().removeprefix("User:")
    if not name or any(c.isspace() for c in name):
        raise InputFileError(f"{text!r} is not a principal (User:<name>)", field="principal")
    return f"User:{name}"


def parse_principals(pairs: Iterable[str], file: Path | None, known: Iterable[str]) -> dict[str, str]:
    """The mapping from ``--principal AGENCY=User:NAME`` options and a TOML file (``[principals]``);
    options win over the file. Refuses an agency the registry does not know, naming it."""
    found: dict[str, str] = {}
    if file is not None:
        try:
            doc = tomllib.loads(file.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InputFileError(f"cannot read the principals file: {exc}", record=str(file)) from exc
        table = doc.get("principals", {})
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise InputFileError("[principals] must map agency names to 'User:<name>'", record=str(file))
        found |= {k: principal(v) for k, v in table.items()}
    for pair in pairs:
        agency, sep, who = pair.partition("=")
        if not sep:
            raise InputFileError(f"{pair!r}: expected AGENCY=User:NAME", field="--principal")
        found[agency.strip()] = principal(who)
    allowed = {GATE, *known}
    unknown = sorted(set(found) - allowed)
    if unknown:
        raise InputFileError(f"unknown agency {', '.join(unknown)} (known: {', '.join(sorted(allowed))})")
    return found


def _topic(who: str, operation: str, *names: str) -> list[AclBinding]:
    return [AclBinding(who, "Topic", name, operation) for name in names]


def gate_acls(registry: Registry, who: str) -> list[AclBinding]:
    """The gate (and the inboxes it hosts): reads inbound and the inboxes' deliveries, writes the rest, and
    parks what it cannot act on (the gate's subscriber and every inbox's) on the dead-letter topic."""
    inbox_topics = [sub.topic for sub in registry.inboxes]
    groups = [GATE_GROUP, *(inbox_group(sub.agency) for sub in registry.inboxes)]
    return [
        *_topic(who, "READ", *registry.inbound_topics, *inbox_topics),
        *_topic(who, "WRITE", *registry.outbound_topics, DEAD_LETTERS),
        *_topic(who, "CREATE", *registry.all_topics),
        *(AclBinding(who, "Group", g, "READ") for g in dict.fromkeys(groups)),
    ]


def agency_acls(registry: Registry, name: str, who: str) -> list[AclBinding]:
    """What one agency's systems need: write what they send, read their receipts and their deliveries."""
    agency = next(a for a in registry.agencies if a.name == name)
    found: list[AclBinding] = []
    if agency.sender_areas:
        found += _topic(who, "WRITE", agency.inbound_topic or topics.MASH_INBOUND, topics.CONSENT_RECORDS)
        for area in sorted(agency.sender_areas):
            found += _topic(who, "READ", f"{area}.receipt.v1", topics.acknowledgements_topic(f"{area}:"))
    if agency.delivery_topic:
        found += _topic(who, "READ", agency.delivery_topic)
    if any(b.operation == "READ" for b in found):
        found.append(AclBinding(who, "Group", f"{name}.", "READ", pattern="PREFIXED"))
    return found


def derive_acls(registry: Registry, principals: Mapping[str, str]) -> list[AclBinding]:
    """Every ACL for the mapped principals, in registry order, each once."""
    found: list[AclBinding] = []
    if GATE in principals:
        found += gate_acls(registry, principals[GATE])
    for agency in registry.agencies:
        if agency.name in principals:
            found += agency_acls(registry, agency.name, principals[agency.name])
    return list(dict.fromkeys(found))


def unmapped(registry: Registry, principals: Mapping[str, str]) -> list[str]:
    """Agencies (and the gate) with no principal: they get no ACLs."""
    return [n for n in (GATE, *(a.name for a in registry.agencies)) if n not in principals]
