"""The contract suites live in plain modules, not test modules: have pytest rewrite their asserts."""

from __future__ import annotations

import pytest

pytest.register_assert_rewrite(
    f"{__package__}.contract",
    f"{__package__}.gate_contract",
    f"{__package__}.audit_contract",
    f"{__package__}.consent_contract",
    f"{__package__}.replay_contract",
    f"{__package__}.front_door_contract",
    f"{__package__}.corrections_contract",
)
