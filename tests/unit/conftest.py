"""Fixtures shared by the in-process command-line tests (typer's runner)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A temporary MASH_DATA_DIR, with the settings that would point elsewhere unset and JSON logs."""
    for name in ("MASH_KAFKA_BOOTSTRAP", "MASH_DATABASE_URL", "MASH_POLICY_FILE", "MASH_TIMEZONE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MASH_LOG_JSON", "true")
    return tmp_path
