"""The registry file on disk: read again when it changes (keys added while `mash up` runs), updated atomically.

Also where an organisation's encryption key is made or rotated: the private key in the key store first,
then its public key in the registry (so a registered key always has its private half somewhere).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path

from mash_broker.contracts.errors import PolicyError
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.crypto.keys import encryption_key_id, public_key_b64
from mash_broker.core.logging import get_logger
from mash_broker.core.signing.registry import (
    KeyRegistry,
    RegisteredEncryptionKey,
    RegisteredKey,
    dump_registry,
    load_registry,
)

log = get_logger("mash.signing")


class RegistryFile:
    """A registry file, re-read whenever it changes on disk.

    A missing file is an empty registry (every key unknown). A file that becomes invalid while running
    is refused and the last valid registry kept, so one bad edit does not stop the gate.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: tuple[int, int, int] | None = None
        self._registry = KeyRegistry()

    def load(self) -> KeyRegistry:
        """Read the file now. Raises PolicyError if it is invalid (used at start-up: refuse to run)."""
        self._stamp = None
        if self.path.exists():
            self._stamp = _stamp(self.path)
            self._registry = load_registry(self.path)
        return self._registry

    def __call__(self) -> KeyRegistry:
        """The registry as the file is now; never raises."""
        try:
            stamp = _stamp(self.path)
        except FileNotFoundError:
            self._stamp, self._registry = None, KeyRegistry()
            return self._registry
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._registry = load_registry(self.path)
            except PolicyError as exc:
                log.error("key_registry.refused", error=str(exc), code=exc.code, kept=len(self._registry.key))
            else:
                log.info("key_registry.loaded", keys=len(self._registry.key))
        return self._registry


def _stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return st.st_mtime_ns, st.st_size, st.st_ino


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_name(f".{path.name}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def register_key(path: Path, entry: RegisteredKey) -> KeyRegistry:
    """Add ``entry`` to the registry file (or update the entry with its key id); returns the new registry."""
    return _update(path, lambda current: current.with_key(entry))


def register_encryption_key(path: Path, entry: RegisteredEncryptionKey, *, supersede: bool = False) -> KeyRegistry:
    """Add ``entry`` (or update the entry with its key id). ``supersede``: the organisation's other keys
    still valid when ``entry`` begins stop being valid then (rotation), so ``entry`` is the one in force."""

    def change(current: KeyRegistry) -> KeyRegistry:
        updated = current.with_encryption_key(entry)
        if supersede:
            for old in current.encryption_keys_for(entry.org):
                if old.key_id != entry.key_id and _ends_after(old, entry.valid_from):
                    updated = updated.with_encryption_key(old.model_copy(update={"valid_until": entry.valid_from}))
        return updated

    return _update(path, change)


def new_encryption_key(
    store: KeyStore, path: Path, org: str, now: datetime, valid_days: int | None = None
) -> RegisteredEncryptionKey:
    """A new X25519 key for ``org`` in force from ``now``: the first, or a rotation. The key it replaces
    stays in the store (retired) and in the registry with its validity ended at ``now``."""
    if path.exists():
        load_registry(path)  # an invalid registry is refused before the key store changes
    key = store.new_encryption_key(org)
    entry = RegisteredEncryptionKey(
        org=org,
        key_id=encryption_key_id(key.public_key()),
        public_key=public_key_b64(key.public_key()),
        valid_from=now,
        valid_until=now + timedelta(days=valid_days) if valid_days else None,
    )
    register_encryption_key(path, entry, supersede=True)
    return entry


def _ends_after(key: RegisteredEncryptionKey, when: datetime) -> bool:
    # A key that begins at or after ``when`` is left alone: its validity cannot end before it starts.
    return key.valid_from < when and (key.valid_until is None or key.valid_until > when)


def _update(path: Path, change: Callable[[KeyRegistry], KeyRegistry]) -> KeyRegistry:
    with _locked(path):
        current = load_registry(path) if path.exists() else KeyRegistry()
        updated = change(current)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(dump_registry(updated), encoding="utf-8")
        os.replace(tmp, path)
    return updated
