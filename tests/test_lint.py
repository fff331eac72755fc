"""House style is checked by the suite: ruff over everything, mypy --strict over the product code."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from services.require import unavailable

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ["mash_broker"]
EVERYTHING = [*PRODUCT, "tests", "bench"]


def _tool(name: str) -> str:
    path = shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        unavailable(f"needs {name} (installed by the test extras: pip install -e '.[test]')")
    return path


def test_ruff_passes_on_everything() -> None:
    result = subprocess.run([_tool("ruff"), "check", *EVERYTHING], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_passes_on_product_code() -> None:
    result = subprocess.run([_tool("mypy"), *PRODUCT], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
