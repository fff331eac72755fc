"""What a test does when a service it needs is missing: skip on a developer's machine, fail under CI.

A green CI run then proves every test ran; nothing in it passed by being skipped. CI is recognised by the
``CI`` environment variable being ``true`` or ``1`` (any case), which every CI service sets.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def in_ci() -> bool:
    """True when the environment says this is a CI run (``CI=true`` or ``CI=1``)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def unavailable(reason: str, *, allow_module_level: bool = False) -> NoReturn:
    """Skip the test with ``reason`` (what it needs and how to get it); under CI, fail with it instead.

    ``allow_module_level`` is for calls at import time of a test module, as ``pytest.skip`` has it.
    """
    if in_ci():
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason, allow_module_level=allow_module_level)
