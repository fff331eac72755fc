"""The package ships its defaults: a wheel built from this tree, installed into a fresh venv, runs `mash demo`
from an unrelated folder (issue 10, bug 5: the policy and clocks files were looked up beside the source tree).

The fresh venv gets the wheel alone (``--no-deps``); its dependencies come from the test venv's site-packages,
appended to ``sys.path`` by a plain ``.pth`` line. A plain path line does not run the ``.pth`` files inside
that folder, so the test venv's editable install of this tree is not active there: ``mash_broker`` can only be
imported from the wheel, which the test checks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
from services.require import unavailable

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.embedded


def _run(cmd: list[str], *, cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    assert done.returncode == 0, f"{cmd[:3]} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with only the wheel of this tree installed; returns its bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    dist = work / "dist"
    try:
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
                "-w",
                str(dist),
                str(ROOT),
            ],
            cwd=work,
            timeout=300,
        )
    except AssertionError as exc:  # building needs setuptools from the package index in pip's isolated build
        unavailable(f"needs pip to build a wheel of this tree (setuptools>=77 from PyPI): {exc}")
    wheel = next(dist.glob("mash_broker-*.whl"))
    env_dir = work / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(py),
            "install",
            "--no-deps",
            "--quiet",
            "--disable-pip-version-check",
            str(wheel),
        ],
        cwd=work,
        timeout=300,
    )
    fresh_site = Path(
        _run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work, timeout=60).strip()
    )
    (fresh_site / "zz_test_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return env_dir / "bin"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASH_", "PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = os.defpath
    return env


def test_the_wheel_carries_its_defaults_and_demo_data(installed: Path, tmp_path: Path) -> None:
    where = _run(
        [
            str(installed / "python"),
            "-c",
            "import mash_broker, mash_broker.defaults as d, mash_broker.demo.data as demo; "
            "print(mash_broker.__file__); print(d.POLICY_FILE.is_file(), d.CLOCKS_FILE.is_file()); "
            "print(sorted(p.name for p in demo.DEMO_DIR.glob('*.csv')))",
        ],
        cwd=tmp_path,
        timeout=60,
        env=_clean_env(),
    ).splitlines()
    assert "site-packages" in where[0], where[0]
    assert str(ROOT) not in where[0], where[0]
    assert where[1] == "True True"
    assert "overnight-export.csv" in where[2]
    assert "schools.csv" in where[2]


def test_mash_demo_runs_from_an_unrelated_folder(installed: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    done = subprocess.run(
        [str(installed / "mash"), "demo", "--data-dir", str(tmp_path / "data")],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        timeout=300,
        env=_clean_env(),
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "rows: 14;" in done.stdout
    assert (tmp_path / "data" / "ledger.sqlite3").is_file()
