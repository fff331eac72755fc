"""`mash keys new` and `mash keys list`, in process (typer's runner) on a temporary data dir."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mash_broker.app.cli import app
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.signing import load_registry

POLICE = "police:examplepolice"
runner = CliRunner()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MASH_KEY_REGISTRY", "MASH_REQUIRE_SIGNATURES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MASH_LOG_JSON", "true")
    monkeypatch.setenv("COLUMNS", "300")  # one table row per line
    return tmp_path


def test_keys_new_writes_a_private_key_and_registers_the_public_one(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "new", POLICE, "--valid-days", "30", "--json"])

    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    registry = load_registry(data_dir / "keys" / "registry.toml")
    (entry,) = registry.key
    assert (entry.org, entry.key_id) == (POLICE, made["key_id"])
    assert entry.valid_until is not None
    assert (entry.valid_until - entry.valid_from).days == 30
    private = Path(made["private_key"])
    assert private == KeyStore(data_dir / "keys").path(POLICE)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert "PRIVATE KEY" not in result.stdout


def test_a_second_key_rotates_and_both_are_listed(data_dir: Path) -> None:
    first = json.loads(runner.invoke(app, ["keys", "new", POLICE, "--json"]).stdout)
    second = json.loads(runner.invoke(app, ["keys", "new", POLICE, "--json"]).stdout)

    listed = runner.invoke(app, ["keys", "list", "--json"])

    assert listed.exit_code == 0, listed.output
    rows = {r["key_id"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {first["key_id"], second["key_id"]}
    assert [rows[k]["current_here"] for k in (first["key_id"], second["key_id"])] == [False, True]
    assert {r["status"] for r in rows.values()} == {"valid"}
    table = runner.invoke(app, ["keys", "list"])
    assert first["key_id"] in table.stdout
    assert second["key_id"] in table.stdout


def test_keys_use_the_configured_registry(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    elsewhere = data_dir / "shared" / "registry.toml"
    monkeypatch.setenv("MASH_KEY_REGISTRY", str(elsewhere))
    assert runner.invoke(app, ["keys", "new", POLICE]).exit_code == 0
    assert [k.org for k in load_registry(elsewhere).key] == [POLICE]
    assert not (data_dir / "keys" / "registry.toml").exists()


def test_not_an_organisation_id_exits_2(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "new", "examplepolice"])
    assert result.exit_code == 2
    assert "not an organisation id" in result.stderr


def test_an_invalid_registry_is_named_and_exits_2(data_dir: Path) -> None:
    (data_dir / "keys").mkdir()
    (data_dir / "keys" / "registry.toml").write_text('[[key]]\norg = "police:x"\n')
    for args in (["keys", "list"], ["keys", "new", POLICE]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "key[0].key_id" in result.stderr


# -- mash keys encryption ---------------------------------------------------------------------------------------

SCHOOL = "school:900001"


def test_encryption_new_writes_a_private_key_and_registers_the_public_one(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "encryption", "new", SCHOOL, "--valid-days", "30", "--json"])

    assert result.exit_code == 0, result.output
    made = json.loads(result.stdout)
    registry = load_registry(data_dir / "keys" / "registry.toml")
    assert registry.key == (), "an encryption key is not a signing key"
    (entry,) = registry.encryption_key
    assert (entry.org, entry.key_id) == (SCHOOL, made["key_id"])
    assert entry.valid_until is not None
    assert (entry.valid_until - entry.valid_from).days == 30
    private = Path(made["private_key"])
    store = KeyStore(data_dir / "keys")
    assert private == store.encryption_path(SCHOOL)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert set(store.encryption_keys(SCHOOL)) == {entry.key_id}
    assert "PRIVATE KEY" not in result.stdout


def test_encryption_new_twice_says_rotate_and_exits_2(data_dir: Path) -> None:
    assert runner.invoke(app, ["keys", "encryption", "new", SCHOOL]).exit_code == 0
    again = runner.invoke(app, ["keys", "encryption", "new", SCHOOL])
    assert again.exit_code == 2
    assert f"mash keys encryption rotate {SCHOOL}" in again.stderr
    assert len(load_registry(data_dir / "keys" / "registry.toml").encryption_key) == 1


def test_rotate_without_a_key_says_new_and_exits_2(data_dir: Path) -> None:
    result = runner.invoke(app, ["keys", "encryption", "rotate", SCHOOL])
    assert result.exit_code == 2
    assert f"mash keys encryption new {SCHOOL}" in result.stderr
    assert not (data_dir / "keys" / "registry.toml").exists()


def test_rotate_puts_a_new_key_in_force_and_lists_both(data_dir: Path) -> None:
    first = json.loads(runner.invoke(app, ["keys", "encryption", "new", SCHOOL, "--json"]).stdout)
    rotated = runner.invoke(app, ["keys", "encryption", "rotate", SCHOOL, "--json"])
    assert rotated.exit_code == 0, rotated.output
    second = json.loads(rotated.stdout)

    listed = runner.invoke(app, ["keys", "encryption", "list", "--json"])

    assert listed.exit_code == 0, listed.output
    rows = {r["key_id"]: r for r in json.loads(listed.stdout)}
    old, new = rows[first["key_id"]], rows[second["key_id"]]
    assert (old["in_force"], new["in_force"]) == (False, True)
    assert (old["private_key_here"], new["private_key_here"]) == ("retired", "current")
    assert old["valid_until"] == new["valid_from"]
    assert (old["status"], new["status"]) == ("expired", "valid")
    table = runner.invoke(app, ["keys", "encryption", "list"])
    assert first["key_id"] in table.stdout
    assert second["key_id"] in table.stdout
    signing = runner.invoke(app, ["keys", "list", "--json"])
    assert json.loads(signing.stdout) == [], "`mash keys list` still lists signing keys only"


def test_encryption_keys_refuse_a_bad_org_and_an_invalid_registry(data_dir: Path) -> None:
    bad = runner.invoke(app, ["keys", "encryption", "new", "900001"])
    assert bad.exit_code == 2
    assert "not an organisation id" in bad.stderr
    (data_dir / "keys").mkdir()
    (data_dir / "keys" / "registry.toml").write_text('[[encryption_key]]\norg = "school:900001"\n')
    for args in (["keys", "encryption", "list"], ["keys", "encryption", "new", SCHOOL]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "encryption_key[0].public_key" in result.stderr
    assert KeyStore(data_dir / "keys").encryption_key(SCHOOL) is None, "refused before a key was made"
