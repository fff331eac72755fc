"""What signing adds to the audit key store (``broker.audit.keys``): load without creating, and rotate.

Private keys live where ``KeyStore`` puts them (``$MASH_DATA_DIR/keys``, one 0600 PEM per organisation).
``KeyStore.load_or_create`` suits the gate, which may make its own key; an agency's key is made only on
purpose (`mash keys new ORG`), so senders use ``require_signer``. Rotation swaps in a new key atomically
and keeps the old one beside it as ``<org>.<key_id>.retired.pem``; the old public key stays in the
registry, so what it signed still verifies.
"""

from __future__ import annotations

import contextlib
import os
import tempfile

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from mash_broker.contracts.errors import MashError
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore


class KeyMissing(MashError):
    """An organisation has no private key in the key store."""

    code = "key_missing"


def existing_signer(store: KeyStore, org: str) -> Ed25519Signer | None:
    """``org``'s current key if the store has one; never creates one."""
    return store.signer(org) if store.path(org).exists() else None


def require_signer(store: KeyStore, org: str) -> Ed25519Signer:
    """``org``'s current key; KeyMissing, saying how to create one, if the store has none."""
    signer = existing_signer(store, org)
    if signer is None:
        raise KeyMissing(f"no signing key for {org} in {store.directory}: create one with `mash keys new {org}`")
    return signer


def rotate(store: KeyStore, org: str) -> Ed25519Signer:
    """A new key pair becomes ``org``'s current key (the first one if it had none)."""
    path = store.path(org)
    old = existing_signer(store, org)
    store.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    new = Ed25519PrivateKey.generate()
    pem = new.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd, tmp = tempfile.mkstemp(dir=store.directory, prefix=".new-key-")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        if old is not None:
            retired = path.with_name(path.name.removesuffix(".key.pem") + f".{old.key_id}.retired.pem")
            with contextlib.suppress(FileExistsError):  # kept already by an interrupted earlier rotation
                os.link(path, retired)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return Ed25519Signer(new)
