"""Every setting an operator may set is documented in the README (the settings table or a section)."""

from __future__ import annotations

from pathlib import Path

from mash_broker.core.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [f"MASH_{name.upper()}" for name in Settings.model_fields if f"MASH_{name.upper()}" not in README]
    assert missing == [], f"document these in README.md: {missing}"
