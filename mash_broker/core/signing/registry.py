"""The key registry file: which public key belongs to which organisation, and when it is valid.

```toml
[[key]]
org = "police:examplepolice"
key_id = "3f1c0a9b5e7d2c44"          # first 16 hex digits of SHA-256 over the raw public key
public_key = "base64 of the raw 32-byte Ed25519 public key"
valid_from = 2026-11-23T07:00:00Z
valid_until = 2027-11-23T07:00:00Z  # optional
```

An organisation may have several keys with overlapping validity (rotation). An invalid file is refused
as a whole with a ``PolicyError`` naming the field.

Beside the signing keys, each organisation may have X25519 encryption keys (what senders seal payloads to):

```toml
[[encryption_key]]
org = "school:900001"
key_id = "9a0e6c1d2b3f4a58"          # first 16 hex digits of SHA-256 over the raw public key
public_key = "base64 of the raw 32-byte X25519 public key"
valid_from = 2026-11-23T07:00:00Z
valid_until = 2027-11-23T07:00:00Z  # optional; rotation sets it on the key it replaces
```

The key in force for an organisation at a time is the valid one that began last. Validity governs only
sealing: a retired key's private half still opens what was sealed to it (the envelope names its key id).
"""

from __future__ import annotations

import base64
import binascii
import json
import tomllib
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails

from mash_broker.contracts._base import OrgId
from mash_broker.contracts.errors import PolicyError
from mash_broker.core.audit.keys import key_id, load_public_key
from mash_broker.core.crypto import keys as encryption_keys

PUBLIC_KEY_BYTES = 32
KeyId = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$")]


class _DatedKey(BaseModel, frozen=True, extra="forbid"):
    """What every registry entry has: whose public key it is, its id, and when it is valid."""

    org: OrgId
    public_key: str
    key_id: KeyId
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = None

    @field_validator("valid_until")
    @classmethod
    def _after_valid_from(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value <= start:
            raise ValueError("is not after valid_from")
        return value

    def valid_at(self, when: datetime) -> bool:
        return self.valid_from <= when and (self.valid_until is None or when < self.valid_until)

    def validity(self) -> str:
        return f"from {_toml_time(self.valid_from)}" + (
            f" until {_toml_time(self.valid_until)}" if self.valid_until else ""
        )


class RegisteredKey(_DatedKey, frozen=True, extra="forbid"):
    """One ``[[key]]`` entry: an organisation's public key and its validity."""

    @field_validator("public_key")
    @classmethod
    def _raw_ed25519_key(cls, value: str) -> str:
        _public_bytes(value)
        return value

    @field_validator("key_id")
    @classmethod
    def _id_of_the_key(cls, value: str, info: ValidationInfo) -> str:
        public = info.data.get("public_key")
        if public is not None and (derived := key_id(load_public_key(public))) != value:
            raise ValueError(f"is not the id of this public_key (that is {derived})")
        return value


class RegisteredEncryptionKey(_DatedKey, frozen=True, extra="forbid"):
    """One ``[[encryption_key]]`` entry: an organisation's X25519 public key and when senders may seal to it."""

    @field_validator("public_key")
    @classmethod
    def _raw_x25519_key(cls, value: str) -> str:
        encryption_keys.load_public_key(value)
        return value

    @field_validator("key_id")
    @classmethod
    def _id_of_the_key(cls, value: str, info: ValidationInfo) -> str:
        public = info.data.get("public_key")
        if public is not None:
            derived = encryption_keys.encryption_key_id(encryption_keys.load_public_key(public))
            if derived != value:
                raise ValueError(f"is not the id of this public_key (that is {derived})")
        return value


class KeyRegistry(BaseModel, frozen=True, extra="forbid"):
    """The whole file: every organisation's public signing keys, and their encryption keys."""

    key: tuple[RegisteredKey, ...] = ()
    encryption_key: tuple[RegisteredEncryptionKey, ...] = ()

    @field_validator("key", "encryption_key")
    @classmethod
    def _unique_ids(cls, keys: tuple[_DatedKey, ...]) -> tuple[_DatedKey, ...]:
        seen: set[str] = set()
        for k in keys:
            if k.key_id in seen:
                raise ValueError(f"key_id {k.key_id} appears more than once")
            seen.add(k.key_id)
        return keys

    def find(self, key_id: str) -> RegisteredKey | None:
        return next((k for k in self.key if k.key_id == key_id), None)

    def for_org(self, org: str) -> tuple[RegisteredKey, ...]:
        return tuple(k for k in self.key if k.org == org)

    def with_key(self, entry: RegisteredKey) -> KeyRegistry:
        """This registry with ``entry`` added, or replacing the entry with the same key id."""
        rest = tuple(k for k in self.key if k.key_id != entry.key_id)
        return self.model_copy(update={"key": (*rest, entry)})

    # -- encryption keys

    def find_encryption_key(self, key_id: str) -> RegisteredEncryptionKey | None:
        return next((k for k in self.encryption_key if k.key_id == key_id), None)

    def encryption_keys_for(self, org: str) -> tuple[RegisteredEncryptionKey, ...]:
        return tuple(k for k in self.encryption_key if k.org == org)

    def encryption_key_in_force(self, org: str, when: datetime) -> RegisteredEncryptionKey | None:
        """The key to seal to ``org`` at ``when``: of those valid then, the one that began last."""
        valid = [k for k in self.encryption_keys_for(org) if k.valid_at(when)]
        return max(valid, key=lambda k: k.valid_from, default=None)

    def with_encryption_key(self, entry: RegisteredEncryptionKey) -> KeyRegistry:
        """This registry with ``entry`` added, or replacing the entry with the same key id."""
        rest = tuple(k for k in self.encryption_key if k.key_id != entry.key_id)
        return self.model_copy(update={"encryption_key": (*rest, entry)})


def load_registry(path: Path) -> KeyRegistry:
    """Read and validate a registry file. Raises PolicyError naming the file and the field."""
    record = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise PolicyError("no key registry file (create keys with `mash keys new ORG`)", record=record) from exc
    except OSError as exc:
        raise PolicyError(f"cannot read the key registry: {exc.strerror or exc}", record=record) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise PolicyError(f"not valid TOML: {exc}", record=record) from exc
    return parse_registry(raw, record=record)


def parse_registry(raw: object, *, record: str) -> KeyRegistry:
    try:
        return KeyRegistry.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        raise PolicyError(
            "; ".join(_describe(e) for e in errors), record=record, field=_field_name(errors[0]["loc"]) or None
        ) from exc


def dump_registry(registry: KeyRegistry) -> str:
    """The registry as TOML, in the layout ``load_registry`` reads."""
    lines = [
        "# MASH Broker key registry: the public keys the gate verifies signatures with.",
        "# Maintained by `mash keys new ORG`; see broker/signing/registry.py for the format.",
    ]
    for k in registry.key:
        lines += [
            "",
            "[[key]]",
            f"org = {json.dumps(k.org)}",
            f"key_id = {json.dumps(k.key_id)}",
            f"public_key = {json.dumps(k.public_key)}",
            f"valid_from = {_toml_time(k.valid_from)}",
        ]
        if k.valid_until is not None:
            lines.append(f"valid_until = {_toml_time(k.valid_until)}")
    for e in registry.encryption_key:
        lines += [
            "",
            "[[encryption_key]]",
            f"org = {json.dumps(e.org)}",
            f"key_id = {json.dumps(e.key_id)}",
            f"public_key = {json.dumps(e.public_key)}",
            f"valid_from = {_toml_time(e.valid_from)}",
        ]
        if e.valid_until is not None:
            lines.append(f"valid_until = {_toml_time(e.valid_until)}")
    return "\n".join(lines) + "\n"


def _public_bytes(value: str) -> bytes:
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("is not base64") from exc
    if len(raw) != PUBLIC_KEY_BYTES:
        raise ValueError(f"is {len(raw)} bytes; an Ed25519 public key is {PUBLIC_KEY_BYTES}")
    return raw


def _toml_time(when: datetime) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _field_name(loc: tuple[int | str, ...]) -> str:
    """("key", 2, "public_key") -> "key[2].public_key"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _describe(error: ErrorDetails) -> str:
    return f"{_field_name(error['loc']) or '<file>'}: {error['msg']}"
