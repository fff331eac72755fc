"""Kafka's CreateAcls and DescribeAcls requests, sent through aiokafka's admin client.

aiokafka 0.14 defines the request structures (``aiokafka.protocol.admin``) but no admin method for them, and
its own ``CreateAclsRequest`` sends one binding per request; ``DescribeAclsRequest`` would pick a v2 whose
schema is not the flexible one Kafka expects. So this module builds v1 of each (Kafka 4 accepts v1 to v3) and
sends it with ``AIOKafkaAdminClient._send_request``: the one private call, kept here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code
from aiokafka.protocol.admin import CreateAclsRequest_v1, DescribeAclsRequest_v1
from aiokafka.protocol.api import Request

from mash_broker.app.kafka_acls import AclBinding
from mash_broker.app.kafka_security import KafkaSecurity
from mash_broker.contracts.errors import BrokerUnavailable, MashError

# Kafka's codes (org.apache.kafka.common.resource / acl): resource types, pattern types, operations, permissions.
RESOURCE_TYPES = {"Any": 1, "Topic": 2, "Group": 3, "Cluster": 4, "TransactionalId": 5}
PATTERN_TYPES = {"ANY": 1, "MATCH": 2, "LITERAL": 3, "PREFIXED": 4}
OPERATIONS = {"ANY": 1, "ALL": 2, "READ": 3, "WRITE": 4, "CREATE": 5, "DELETE": 6, "ALTER": 7, "DESCRIBE": 8}
OPERATIONS |= {"CLUSTER_ACTION": 9, "DESCRIBE_CONFIGS": 10, "ALTER_CONFIGS": 11, "IDEMPOTENT_WRITE": 12}
PERMISSIONS = {"ANY": 1, "DENY": 2, "ALLOW": 3}


class AclRequestRefused(MashError):
    """Kafka refused to create or describe ACLs (not an administrator, or a binding it does not accept)."""

    code = "kafka_acls_refused"


class _CreateAcls(Request[CreateAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 30

    def __init__(self, creations: list[tuple[Any, ...]]) -> None:
        self._creations = creations

    def build(self, request_struct_class: type[Any]) -> Any:
        return request_struct_class(self._creations)


class _DescribeAcls(Request[DescribeAclsRequest_v1]):  # type: ignore[misc]  # aiokafka ships no types
    API_KEY = 29

    def __init__(self, principal: str | None) -> None:
        self._principal = principal

    def build(self, request_struct_class: type[Any]) -> Any:
        any_ = RESOURCE_TYPES["Any"], None, PATTERN_TYPES["ANY"]
        return request_struct_class(*any_, self._principal, None, OPERATIONS["ANY"], PERMISSIONS["ANY"])


def _wire(b: AclBinding) -> tuple[Any, ...]:
    return (
        RESOURCE_TYPES[b.resource_type],
        b.name,
        PATTERN_TYPES[b.pattern],
        b.principal,
        b.host,
        OPERATIONS[b.operation],
        PERMISSIONS[b.permission],
    )


def _name(codes: dict[str, int], code: int) -> str:
    return next((name for name, c in codes.items() if c == code), str(code))


async def _admin(bootstrap: str, security: KafkaSecurity) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap, client_id="mash-acls", request_timeout_ms=20_000, **security.client_kwargs()
    )
    try:
        await admin.start()
    except KafkaError as exc:
        await admin.close()
        raise BrokerUnavailable(f"could not connect to Kafka at {bootstrap}: {exc}") from exc
    return admin


async def create_acls(bootstrap: str, security: KafkaSecurity, bindings: Sequence[AclBinding]) -> int:
    """Create ``bindings`` (one request); returns how many. An existing binding is not an error."""
    if not bindings:
        return 0
    admin = await _admin(bootstrap, security)
    try:
        response = await admin._send_request(_CreateAcls([_wire(b) for b in bindings]))  # private: see the docstring
    except KafkaError as exc:
        raise BrokerUnavailable(f"CreateAcls at {bootstrap} failed: {exc}") from exc
    finally:
        await admin.close()
    for binding, (code, message) in zip(bindings, response.creation_responses, strict=True):
        if code != 0:
            reason = message or for_code(code).__name__
            raise AclRequestRefused(f"Kafka refused the ACL: {reason}", record=binding.line())
    return len(bindings)


async def describe_acls(bootstrap: str, security: KafkaSecurity, principal: str | None = None) -> list[AclBinding]:
    """Every ACL the cluster holds (for ``principal`` only, if given), as bindings."""
    admin = await _admin(bootstrap, security)
    try:
        response = await admin._send_request(_DescribeAcls(principal))  # private: see the docstring
    except KafkaError as exc:
        raise BrokerUnavailable(f"DescribeAcls at {bootstrap} failed: {exc}") from exc
    finally:
        await admin.close()
    if response.error_code != 0:
        reason = response.error_message or for_code(response.error_code).__name__
        raise AclRequestRefused(f"Kafka refused to describe ACLs: {reason}")
    found = [
        AclBinding(
            principal=who,
            resource_type=_name(RESOURCE_TYPES, rtype),  # type: ignore[arg-type]
            name=name,
            pattern=_name(PATTERN_TYPES, ptype),  # type: ignore[arg-type]
            operation=_name(OPERATIONS, op),
            permission=_name(PERMISSIONS, perm),  # type: ignore[arg-type]
            host=host,
        )
        for rtype, name, ptype, acls in response.resources
        for who, host, op, perm in acls
    ]
    return sorted(found)
