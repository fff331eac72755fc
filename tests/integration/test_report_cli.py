"""`mash report` and `mash demo --week` over a SQLite ledger in a temporary data dir (no broker needed)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mash_broker.app.cli import app

WEEK = ("--from", "2026-11-16", "--to", "2026-11-23")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("report") / "mash"
    code, out, err = mash(data, "demo", "--week", "--data-dir", str(data))
    assert code == 0, err
    assert "a synthetic week of front-door traffic" in out
    assert f"MASH_DATA_DIR={data} mash report --from 2026-11-16 --to 2026-11-23" in out
    return data


def mash(data_dir: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), env={"MASH_DATA_DIR": str(data_dir), "MASH_LOG_LEVEL": "WARNING"})
    return result.exit_code, result.stdout, result.stderr


def test_the_three_formats_give_the_same_figures(data_dir: Path) -> None:
    code, out, _ = mash(data_dir, "report", *WEEK, "--format", "json")
    assert code == 0
    figures = json.loads(out)
    assert figures["from"] == "2026-11-16T00:00:00+00:00"
    encompass = figures["sections"]["encompass"]["rows"]
    assert encompass, "the week has Encompass notifications"

    code, out, _ = mash(data_dir, "report", *WEEK, "--format", "csv")
    assert code == 0
    blocks = out.strip().split("\n\n")
    assert len(blocks) == len(figures["sections"]) == 6
    rows = list(csv.DictReader(io.StringIO(blocks[0])))
    assert {r["section"] for r in rows} == {"encompass"}
    assert [{k: v for k, v in r.items() if k != "section"} for r in rows] == [
        {k: str(v) for k, v in r.items()} for r in encompass
    ]

    code, out, _ = mash(data_dir, "report", *WEEK)
    assert code == 0
    assert "Operation Encompass: delivered and read before the deadline" in out
    assert "Shares that did not happen" in out


def test_a_verified_export_gives_the_same_figures_and_a_tampered_one_none(data_dir: Path, tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    code, _, err = mash(data_dir, "audit", "export", "--from", "2026-11-15", "--to", "2026-11-26", "--out", str(export))
    assert code == 0, err
    key = mash(data_dir, "audit", "public-key")[1].strip()
    from_ledger = json.loads(mash(data_dir, "report", *WEEK, "--format", "json")[1])
    code, out, _ = mash(data_dir, "report", *WEEK, "--format", "json", "--log", str(export), "--key", key)
    assert code == 0
    assert json.loads(out) == from_ledger

    doc = json.loads(export.read_text())
    doc["entries"][3]["entry"] = doc["entries"][4]["entry"]
    export.write_text(json.dumps(doc))
    code, out, err = mash(data_dir, "report", *WEEK, "--log", str(export), "--key", key)
    assert code == 1
    assert err.startswith(f"INVALID: {export}: entry seq ")
    assert out == ""


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--from", "last week", "--to", "2026-11-23"), "unusable: --from: 'last week' is not a date or time"),
        (("--from", "2026-11-23", "--to", "2026-11-16"), "unusable: --to: '2026-11-16' is not after --from"),
        ((*WEEK, "--log", "export.json"), "unusable: --log needs --key"),
    ],
)
def test_an_unusable_option_exits_2_naming_it(data_dir: Path, args: tuple[str, ...], says: str) -> None:
    code, _, err = mash(data_dir, "report", *args)
    assert code == 2
    assert err.startswith(says)
