"""The registry file on disk: read again when it changes (keys added while `mash up` runs), updated atomically."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mash_broker.contracts.errors import PolicyError
from mash_broker.core.logging import get_logger
from mash_broker.core.signing.registry import KeyRegistry, RegisteredKey, dump_registry, load_registry

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
    with _locked(path):
        current = load_registry(path) if path.exists() else KeyRegistry()
        updated = current.with_key(entry)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(dump_registry(updated), encoding="utf-8")
        os.replace(tmp, path)
    return updated
