"""House style is checked by the suite: ruff (lint and format) over everything, mypy --strict over the product
code, and the layering contracts in pyproject.toml ([tool.importlinter]) with import-linter."""

from __future__ import annotations

import re
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


def test_ruff_format_is_applied_to_everything() -> None:
    result = subprocess.run([_tool("ruff"), "format", "--check", *EVERYTHING], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_layering_contracts_hold() -> None:
    result = subprocess.run([_tool("lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    counts = re.search(r"Contracts: (\d+) kept, (\d+) broken", result.stdout)
    assert counts is not None, result.stdout
    assert int(counts.group(1)) >= 3, result.stdout  # at least: layers, the pure core, independent agencies
    assert counts.group(2) == "0"
