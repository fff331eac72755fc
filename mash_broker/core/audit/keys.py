"""Ed25519 keys behind a small port: a key store on disk, a signer, and public-key helpers.

``KeyStore(dir).load_or_create(org)`` is generic (any organisation id, e.g. ``mash:gate`` for the
gate's checkpoints or an agency for signed envelopes). Each private key is one PKCS#8 PEM file,
mode 0600, created on first use. A key id is the first 16 hex digits of SHA-256 of the raw
32-byte public key; public keys travel as raw base64 (or PEM).

The same store keeps each organisation's X25519 encryption keys (``<org>.x25519.pem``), made only on
purpose (`mash keys encryption new ORG`); rotation keeps the old one beside it as
``<org>.x25519.<key_id>.retired.pem``, so what was sealed to it still opens.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from mash_broker.contracts import InputFileError
from mash_broker.core.crypto.keys import encryption_key_id, private_key_pem

_ORG = re.compile(r"^[a-z][a-z0-9_-]*(:[A-Za-z0-9_.-]{1,64})?$")
_RAW = serialization.Encoding.Raw, serialization.PublicFormat.Raw


class Signer(Protocol):
    """What signs: a key id and a signature over bytes."""

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def public_raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(*_RAW)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_raw(key)).hexdigest()[:16]


def public_key_b64(key: Ed25519PublicKey) -> str:
    return base64.b64encode(public_raw(key)).decode()


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key given as PEM or as the base64 of the raw 32 bytes."""
    text = text.strip()
    try:
        if text.startswith("-----BEGIN"):
            key = serialization.load_pem_public_key(text.encode())
            if isinstance(key, Ed25519PublicKey):
                return key
            raise InputFileError("the PEM public key is not an Ed25519 key")
        return Ed25519PublicKey.from_public_bytes(base64.b64decode(text, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise InputFileError(f"not an Ed25519 public key (PEM or base64 of 32 bytes): {exc}") from exc


def verify_signature(key: Ed25519PublicKey, data: bytes, signature: bytes) -> bool:
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


class Ed25519Signer:
    """A private key as a ``Signer``."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self.public_key = private_key.public_key()
        self._key_id = key_id(self.public_key)

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


class KeyStore:
    """Private keys, one file per organisation, in one directory (``$MASH_DATA_DIR/keys``)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, org: str) -> Path:
        if not _ORG.match(org):
            raise InputFileError(f"not an organisation id: {org!r}", field="org")
        return self.directory / f"{org.replace(':', '+')}.key.pem"

    def load_or_create(self, org: str) -> Ed25519PrivateKey:
        path = self.path(org)
        if not path.exists():
            self._create(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, Ed25519PrivateKey):
            raise InputFileError("not an Ed25519 private key", record=str(path))
        return key

    def exists(self, org: str) -> bool:
        return self.path(org).exists()

    def signer(self, org: str) -> Ed25519Signer:
        return Ed25519Signer(self.load_or_create(org))

    def public_key(self, org: str) -> Ed25519PublicKey:
        return self.load_or_create(org).public_key()

    def public_keys(self, org: str) -> dict[str, Ed25519PublicKey]:
        """Every key ``org`` has had here, by key id: the current one and any retired beside it
        (``<org>.<key_id>.retired.pem``, as key rotation leaves them). Creates none."""
        path = self.path(org)
        stem = path.name.removesuffix(".key.pem")
        found: dict[str, Ed25519PublicKey] = {}
        retired = [
            p
            for p in sorted(self.directory.glob(f"{stem}.*.retired.pem"))
            if "." not in p.name[len(stem) + 1 : -len(".retired.pem")]  # not another org's (`x:a.b` beside `x:a`)
        ]
        for pem in [*retired, path]:
            if pem.is_file():
                key = serialization.load_pem_private_key(pem.read_bytes(), password=None)
                if isinstance(key, Ed25519PrivateKey):
                    found[key_id(key.public_key())] = key.public_key()
        return found

    # -- X25519 encryption keys

    def encryption_path(self, org: str) -> Path:
        return self.path(org).with_name(self._stem(org) + ".x25519.pem")

    def encryption_key(self, org: str) -> X25519PrivateKey | None:
        """``org``'s current encryption key, or None; never creates one."""
        path = self.encryption_path(org)
        return _load_x25519(path) if path.exists() else None

    def encryption_keys(self, org: str) -> dict[str, X25519PrivateKey]:
        """Every encryption key ``org`` has had here, by key id: the current one and the retired ones."""
        stem = self._stem(org) + ".x25519."
        paths = [p for p in self.directory.glob(f"{stem}*.retired.pem") if _RETIRED.fullmatch(p.name[len(stem) :])]
        found: dict[str, X25519PrivateKey] = {}
        for pem in [*sorted(paths), self.encryption_path(org)]:
            if pem.is_file():
                key = _load_x25519(pem)
                found[encryption_key_id(key.public_key())] = key
        return found

    def new_encryption_key(self, org: str) -> X25519PrivateKey:
        """A new X25519 key becomes ``org``'s current one; the one it replaces is kept as retired."""
        path, old = self.encryption_path(org), self.encryption_key(org)
        new = X25519PrivateKey.generate()
        tmp = self._write_private(private_key_pem(new))
        try:
            if old is not None:
                retired = path.with_name(f"{self._stem(org)}.x25519.{encryption_key_id(old.public_key())}.retired.pem")
                with contextlib.suppress(FileExistsError):  # kept already by an interrupted earlier rotation
                    os.link(path, retired)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        return new

    def _stem(self, org: str) -> str:
        return self.path(org).name.removesuffix(".key.pem")

    def _write_private(self, pem: bytes) -> str:
        """``pem`` in a new private (0600) temporary file in the store; its path."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".new-key-")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(pem)
                f.flush()
                os.fsync(f.fileno())
        except BaseException:
            os.unlink(tmp)
            raise
        return tmp

    def _create(self, path: Path) -> None:
        # Written to a private temporary file, then linked into place: a concurrent creator loses the
        # race cleanly (FileExistsError) and both use the one key that won.
        tmp = self._write_private(
            Ed25519PrivateKey.generate().private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        try:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            os.unlink(tmp)


_RETIRED = re.compile(r"[0-9a-f]{16}\.retired\.pem")


def _load_x25519(path: Path) -> X25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, X25519PrivateKey):
        raise InputFileError("not an X25519 private key", record=str(path))
    return key
