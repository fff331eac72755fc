"""An envelope whose content is sealed to its recipient (HPKE, RFC 9180): routing readable, the rest not.

What anyone on the path (a topic reader, a broker's disk, a backup) can read is the routing metadata: ids,
kind, sender, recipients, times, classification, the replay flag and the signature. Everything about the
child (``SEALED_FIELDS``: the subject, the lawful basis and its flags, the payload) travels only inside
``payload.ct``, which only the holder of the private key named by ``payload.key_id`` can open.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from typing import Annotated, Final, Literal

from pydantic import AfterValidator, Field

from mash_broker.contracts._base import SCHEMA_VERSION, Contract, OrgId, Timestamp
from mash_broker.contracts.envelope import Classification

HPKE_ALG: Final = "HPKE-base-X25519-SHA256-AES256GCM"

# The Envelope fields that stay readable beside the ciphertext; every other Envelope field is sealed.
ROUTING_FIELDS: Final = (
    "message_id",
    "kind",
    "schema_version",
    "sender_org",
    "sender_local_id",
    "correlation_id",
    "causation_id",
    "produced_at",
    "recipients",
    "classification",
    "replay",
    "signature",
)
SEALED_FIELDS: Final = (
    "subject",
    "lawful_basis",
    "consent_ref",
    "purpose",
    "special_category",
    "significant_harm_risk",
    "do_not_notify_subject",
    "payload",
)
# Kafka's default largest record is 1 MB; its base64 is about 1.34 million characters.
_MAX_CIPHERTEXT_CHARS = 1_400_000


def _canonical_base64url(value: str) -> str:
    """Unpadded base64url (RFC 4648 section 5), in its one canonical spelling."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64url") from exc
    if base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii") != value:
        raise ValueError("is not canonical unpadded base64url")
    return value


Base64Url = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]*$"), AfterValidator(_canonical_base64url)]


class EncryptedPayload(Contract):
    """The sealed content: to whom, under which of their keys, and the HPKE output (base64url, unpadded)."""

    alg: Literal["HPKE-base-X25519-SHA256-AES256GCM"] = HPKE_ALG
    recipient_org: OrgId
    key_id: Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]
    enc: Annotated[Base64Url, Field(min_length=43, max_length=43)]  # 32 bytes
    ct: Annotated[Base64Url, Field(min_length=22, max_length=_MAX_CIPHERTEXT_CHARS)]  # at least the 16-byte tag


class EncryptedEnvelope(Contract):
    """A message on a MASH topic with its content sealed to ``payload.recipient_org``."""

    message_id: uuid.UUID
    kind: str
    schema_version: Literal["1"] = SCHEMA_VERSION
    sender_org: OrgId
    sender_local_id: Annotated[str, Field(max_length=128)] | None = None
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None
    produced_at: Timestamp
    recipients: tuple[OrgId, ...] = ()
    classification: Classification = Classification.OFFICIAL_SENSITIVE
    replay: bool = False
    signature: Annotated[str, Field(max_length=512)] | None = None
    payload: EncryptedPayload
