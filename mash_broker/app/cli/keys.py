"""`mash keys ...`: Ed25519 signing keys and the key registry the gate verifies signatures with."""

from __future__ import annotations

import re
from typing import Annotated, Any

import typer

from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, out, print_json, settings
from mash_broker.contracts import PolicyError
from mash_broker.core import views
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.signing import KeyRegistry, RegistryFile, existing_signer, new_key

app = typer.Typer(no_args_is_help=True, help="Signing keys and the key registry.")

_ORG = re.compile(r"^[a-z][a-z0-9_-]*:[A-Za-z0-9_.-]{1,64}$")


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
