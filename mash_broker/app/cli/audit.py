"""`mash audit ...`: the tamper-evident log: verify it, sign a checkpoint, prove entries, check proofs offline."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated
from zoneinfo import ZoneInfo

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from mash_broker.app.bootstrap import utc_now
from mash_broker.app.cli._common import EXIT_UNUSABLE, err, moment, out, print_json, settings, with_ledger
from mash_broker.contracts import InputFileError
from mash_broker.core.audit import keys, proofs
from mash_broker.core.audit.checkpoints import Checkpointer, gate_signer
from mash_broker.core.audit.log import Checkpoint
from mash_broker.core.audit.proof_file import ProofFile, check_proof
from mash_broker.core.audit.verify import Report, verify_log
from mash_broker.core.messages import GATE_ORG
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

app = typer.Typer(no_args_is_help=True, help="The audited log: verify, checkpoint, prove, check proofs, export.")

KeyOption = Annotated[str, typer.Option("--key", help="The gate's public key: a file (PEM or base64) or the base64.")]
OutOption = Annotated[Path | None, typer.Option("--out", help="Write the JSON here (default: standard output).")]


def _gate_key(cfg: Settings) -> Ed25519PublicKey:
    return keys.KeyStore(cfg.keys_dir).public_key(GATE_ORG)


def _gate_keys_b64(cfg: Settings) -> dict[str, str]:
    """Every key the gate has signed checkpoints with here, current and retired, by key id."""
    return {kid: keys.public_key_b64(k) for kid, k in keys.KeyStore(cfg.keys_dir).public_keys(GATE_ORG).items()}


def key_from(value: str) -> Ed25519PublicKey:
    path = Path(value)
    try:
        return keys.load_public_key(path.read_text() if path.is_file() else value)
    except InputFileError as exc:
        err.print(f"unusable: --key: {exc}", markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_UNUSABLE) from exc


@app.command("verify")
def verify(
    key: Annotated[
        list[str] | None,
        typer.Option(
            "--key",
            help="Verify signatures with this public key (a file or the base64; repeatable) instead of the gate's own.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Recompute every entry and checkpoint and check every stored copy of a message against the hash the log
    recorded; print OK, or FAILS naming the first place that does not match (table, id and field for a copy)."""
    cfg = settings()
    trusted = (
        {keys.key_id(k): k for k in map(key_from, key)} if key else keys.KeyStore(cfg.keys_dir).public_keys(GATE_ORG)
    )
    report: Report = with_ledger(cfg, lambda ledger: verify_log(ledger, trusted))
    if as_json:
        print_json(
            {
                "ok": report.ok,
                "entries": report.entries,
                "checkpoints": report.checkpoints,
                "covered": report.covered,
                "more": report.more,
                "copies": report.copies,
                "unrecorded": report.unrecorded,
                "problems": [{"code": p.code, "place": p.place, "detail": p.detail} for p in report.problems],
            }
        )
    elif report.ok:
        out.print(
            f"OK: {report.entries} entries and {report.checkpoints} signed checkpoints verified; the newest "
            f"checkpoint covers {report.covered} entries ({report.entries - report.covered} not yet signed); "
            f"{report.copies} stored copies match the hashes the log recorded",
            markup=False,
            soft_wrap=True,
        )
        _warn_unrecorded(report)
    else:
        err.print(f"FAILS: {report.problems[0]}", markup=False, soft_wrap=True)
        for problem in report.problems[1:20]:
            err.print(f"  also: {problem}", markup=False, soft_wrap=True)
        for code, n in report.more.items():
            err.print(f"  and {n} more {code}", markup=False, soft_wrap=True)
        _warn_unrecorded(report)
    raise typer.Exit(0 if report.ok else 1)


def _warn_unrecorded(report: Report) -> None:
    """Rows no entry records a hash of: written before hashes were recorded, or never queued by an entry."""
    for column, n in report.unrecorded.items():
        out.print(
            f"warning: {n} {column} with no hash in the audited log (written before stored copies were "
            "audited, or not queued by an audited entry, such as receipts): not checked",
            markup=False,
            soft_wrap=True,
        )


@app.command("checkpoint")
def checkpoint() -> None:
    """Sign a checkpoint of the log now (the running stack also signs one every MASH_CHECKPOINT_INTERVAL_S)."""
    cfg = settings()
    signer = gate_signer(cfg)

    async def work(ledger: Ledger) -> Checkpoint | None:
        return await Checkpointer(ledger, signer, utc_now).checkpoint()

    head = with_ledger(cfg, work)
    if head is None:
        out.print(
            "no new entries since the last checkpoint (or none at all): nothing signed", markup=False, soft_wrap=True
        )
    else:
        out.print(f"signed {head.describe()}: root {head.root_hash}, key {head.key_id}", markup=False, soft_wrap=True)


def _write(proof: ProofFile, dest: Path | None, what: str) -> None:
    text = proof.model_dump_json(indent=2) + "\n"
    if dest is None:
        sys.stdout.write(text)
    else:
        dest.write_text(text)
    err.print(
        f"{what}: {len(proof.entries)} entries proven against checkpoint at tree size "
        f"{proof.checkpoint.tree_size}{f', written to {dest}' if dest else ''}",
        markup=False,
        soft_wrap=True,
    )


@app.command("prove")
def prove(
    message_id: Annotated[str, typer.Argument(help="The message's id (or a unique prefix of 8+ characters).")],
    every: Annotated[bool, typer.Option("--all", help="Prove every entry about the message.")] = False,
    dest: OutOption = None,
) -> None:
    """An inclusion proof for a message's `message.received` entry, against the newest signed checkpoint."""
    cfg = settings()
    signer, public = gate_signer(cfg), _gate_keys_b64(cfg)
    proof = with_ledger(
        cfg, lambda ledger: proofs.prove(Checkpointer(ledger, signer, utc_now), public, message_id, every=every)
    )
    _write(proof, dest, "proof")


@app.command("export")
def export(
    start: Annotated[str, typer.Option("--from", help="From (inclusive): ISO date or date-time; local if no offset.")],
    end: Annotated[str, typer.Option("--to", help="To (exclusive): ISO date or date-time; local if no offset.")],
    org: Annotated[
        str | None,
        typer.Option("--org", help="Only messages this organisation sent or was delivered, e.g. police:northumbria."),
    ] = None,
    dest: OutOption = None,
) -> None:
    """A period's entries (one agency's, with --org), each with an inclusion proof against one checkpoint."""
    cfg = settings()
    tz = ZoneInfo(cfg.timezone)
    since, until = moment("--from", start, tz), moment("--to", end, tz)
    signer, public = gate_signer(cfg), _gate_keys_b64(cfg)
    proof = with_ledger(
        cfg, lambda ledger: proofs.export(Checkpointer(ledger, signer, utc_now), public, since, until, org)
    )
    _write(proof, dest, "export")


@app.command("check-proof")
def check_proof_(
    file: Annotated[Path, typer.Argument(help="A proof or export file from `mash audit prove` or `export`.")],
    key: KeyOption,
) -> None:
    """Check a proof offline, as a third party: needs only the file and the gate's public key."""
    public = key_from(key)
    try:
        raw = file.read_bytes()
    except OSError as exc:
        err.print(f"INVALID: cannot read {file}: {exc.strerror}", markup=False, soft_wrap=True)
        raise typer.Exit(1) from exc
    result = check_proof(raw, public)
    if not result.ok or result.checkpoint is None:
        err.print(f"INVALID: {result.problems[0]}", markup=False, soft_wrap=True)
        for problem in result.problems[1:10]:
            err.print(f"  also: {problem}", markup=False, soft_wrap=True)
        raise typer.Exit(1)
    head = result.checkpoint
    out.print(
        f"VALID: key {head.key_id} signed, at {head.at}, that the {head.log} log held {head.tree_size} "
        f"entries with root {head.root_hash}; these {len(result.entries)} entries are in it, unaltered:",
        markup=False,
        soft_wrap=True,
    )
    for e in result.entries:
        about = f" message {e['message_id']}" if e["message_id"] else ""
        out.print(
            f"  seq {e['seq']}  {e['at']}  {e['event_type']}{about}  {json.dumps(e['detail'], sort_keys=True)}",
            markup=False,
            soft_wrap=True,
        )


@app.command("public-key")
def public_key(pem: Annotated[bool, typer.Option("--pem", help="PEM instead of raw base64.")] = False) -> None:
    """Print the gate's checkpoint-signing public key (made on first use), to hand to whoever checks proofs."""
    key = _gate_key(settings())
    sys.stdout.write(keys.public_key_pem(key) if pem else keys.public_key_b64(key) + "\n")
