"""`mash keys ...`: Ed25519 signing keys, X25519 encryption keys, and the key registry that holds both."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer

from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, print_json, settings
from mash_broker.contracts import PolicyError
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.crypto import encryption_key_id
from mash_broker.core.signing import KeyRegistry, RegistryFile, existing_signer, new_key
from mash_broker.core.signing.registry_file import new_encryption_key

app = typer.Typer(no_args_is_help=True, help="Signing keys, encryption keys and the key registry.")
encryption = typer.Typer(
    no_args_is_help=True, help="X25519 encryption keys: what senders seal an organisation's messages to."
)
app.add_typer(encryption, name="encryption")

_ORG = re.compile(r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}$")
JsonFlag = Annotated[bool, typer.Option("--json")]


@app.command("new")
def new(
    org: Annotated[str, typer.Argument(help="The organisation, e.g. police:examplepolice, school:900001, mash:gate.")],
    valid_days: Annotated[int | None, typer.Option(min=1, help="Days the key is valid (default: no end).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Create a key pair for ORG: the private key (0600) in the data dir, the public key in the registry.

    An organisation's earlier keys stay in the registry, so messages they signed still verify (rotation).
    """
    cfg = settings()
    if not _ORG.match(org):
        err.print(f"not an organisation id: {org!r} (expected area:name, e.g. police:examplepolice)", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    try:
        key, entry = new_key(KeyStore(cfg.keys_dir), cfg.key_registry_file, org, utc_now(), valid_days)
    except PolicyError as exc:
        err.print(f"key registry refused ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    path = KeyStore(cfg.keys_dir).path(org)
    if as_json:
        print_json({**entry.model_dump(mode="json"), "private_key": str(path), "registry": str(cfg.key_registry_file)})
        return
    out.print(f"created key {key.key_id} for {org}, valid {entry.validity()}", markup=False)
    out.print(f"private key: {path} (mode 0600)\nregistry: {cfg.key_registry_file}", markup=False)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """The key registry: each organisation's public keys, their validity, and which are current here."""
    cfg = settings()
    try:
        registry = RegistryFile(cfg.key_registry_file).load()
    except PolicyError as exc:
        err.print(f"key registry refused ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    rows = _rows(registry, KeyStore(cfg.keys_dir))
    if as_json:
        print_json(rows)
        return
    out.print(
        views.rows_table(
            f"Key registry {cfg.key_registry_file}: {len(rows)} keys",
            ["organisation", "key id", "valid from", "valid until", "now", "private key here"],
            [
                [
                    r["org"],
                    r["key_id"],
                    r["valid_from"],
                    r["valid_until"] or "",
                    r["status"],
                    "current" if r["current_here"] else "",
                ]
                for r in rows
            ],
        )
    )


def _rows(registry: KeyRegistry, store: KeyStore) -> list[dict[str, Any]]:
    now = utc_now()
    current: dict[str, str | None] = {}
    rows = []
    for k in sorted(registry.key, key=lambda k: (k.org, k.valid_from)):
        if k.org not in current:
            signer = existing_signer(store, k.org)
            current[k.org] = signer.key_id if signer else None
        status = "valid" if k.valid_at(now) else ("not yet valid" if now < k.valid_from else "expired")
        rows.append({**k.model_dump(mode="json"), "status": status, "current_here": current[k.org] == k.key_id})
    return rows


# -- encryption keys ---------------------------------------------------------------------------------------

OrgArgument = Annotated[str, typer.Argument(help="The organisation, e.g. school:900001, gp:A12345, mash:gate.")]
ValidDays = Annotated[int | None, typer.Option(min=1, help="Days the key may be sealed to (default: no end).")]


@encryption.command("new")
def encryption_new(org: OrgArgument, valid_days: ValidDays = None, as_json: JsonFlag = False) -> None:
    """Create ORG's first encryption key: the private key (0600) in the data dir, the public key in the registry."""
    store = _encryption_store(org)
    if (current := store.encryption_key(org)) is not None:
        kid = encryption_key_id(current.public_key())
        err.print(f"{org} has encryption key {kid} already: `mash keys encryption rotate {org}`", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    _made(org, valid_days, as_json, "created")


@encryption.command("rotate")
def encryption_rotate(org: OrgArgument, valid_days: ValidDays = None, as_json: JsonFlag = False) -> None:
    """A new encryption key for ORG, in force from now; the old one stops being sealed to but still opens
    what was sealed to it (its private key is kept, retired)."""
    store = _encryption_store(org)
    if store.encryption_key(org) is None:
        err.print(f"{org} has no encryption key to rotate: `mash keys encryption new {org}`", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    _made(org, valid_days, as_json, "rotated to")


@encryption.command("list")
def encryption_list(as_json: JsonFlag = False) -> None:
    """Every organisation's encryption keys: validity, the one in force now, and which private keys are here."""
    cfg = settings()
    registry = _registry(cfg.key_registry_file)
    rows = _encryption_rows(registry, KeyStore(cfg.keys_dir))
    if as_json:
        print_json(rows)
        return
    out.print(
        views.rows_table(
            f"Encryption keys in {cfg.key_registry_file}: {len(rows)}",
            ["organisation", "key id", "valid from", "valid until", "now", "in force", "private key here"],
            [
                [
                    r["org"],
                    r["key_id"],
                    r["valid_from"],
                    r["valid_until"] or "",
                    r["status"],
                    "yes" if r["in_force"] else "",
                    r["private_key_here"] or "",
                ]
                for r in rows
            ],
        )
    )


def _encryption_store(org: str) -> KeyStore:
    cfg = settings()
    if not _ORG.match(org):
        err.print(f"not an organisation id: {org!r} (expected area:name, e.g. school:900001)", markup=False)
        raise typer.Exit(EXIT_UNUSABLE)
    return KeyStore(cfg.keys_dir)


def _made(org: str, valid_days: int | None, as_json: bool, verb: str) -> None:
    cfg = settings()
    store = KeyStore(cfg.keys_dir)
    try:
        entry = new_encryption_key(store, cfg.key_registry_file, org, utc_now(), valid_days)
    except PolicyError as exc:
        err.print(f"key registry refused ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc
    path = store.encryption_path(org)
    if as_json:
        print_json({**entry.model_dump(mode="json"), "private_key": str(path), "registry": str(cfg.key_registry_file)})
        return
    out.print(f"{verb} encryption key {entry.key_id} for {org}, valid {entry.validity()}", markup=False)
    out.print(f"private key: {path} (mode 0600)\nregistry: {cfg.key_registry_file}", markup=False)


def _registry(path: Path) -> KeyRegistry:
    try:
        return RegistryFile(path).load()
    except PolicyError as exc:
        err.print(f"key registry refused ({exc.code}): {exc}", markup=False)
        raise typer.Exit(EXIT_UNUSABLE) from exc


def _encryption_rows(registry: KeyRegistry, store: KeyStore) -> list[dict[str, Any]]:
    now = utc_now()
    rows = []
    for k in sorted(registry.encryption_key, key=lambda k: (k.org, k.valid_from)):
        in_force = registry.encryption_key_in_force(k.org, now)
        here = store.encryption_keys(k.org)
        current = store.encryption_key(k.org)
        status = "valid" if k.valid_at(now) else ("not yet valid" if now < k.valid_from else "expired")
        held = None
        if k.key_id in here:
            held = (
                "current" if current is not None and encryption_key_id(current.public_key()) == k.key_id else "retired"
            )
        rows.append(
            {**k.model_dump(mode="json"), "status": status, "in_force": in_force == k, "private_key_here": held}
        )
    return rows
