"""Reading the deploy files for tests/deploy: the compose file's secrets, kustomize's output (rendered here,
so no kubectl is needed), Dockerfile stages, the CLI's commands, and a TLS handshake in memory."""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
import yaml

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"


def compose_secret_files(compose: dict[str, Any]) -> list[str]:
    """The files under ./secrets the compose file reads (its secrets and the configs kept beside them)."""
    entries = [*compose["secrets"].values(), *compose["configs"].values()]
    return [e["file"].removeprefix("./secrets/") for e in entries if e["file"].startswith("./secrets/")]


def documented_files(readme: Path) -> set[str]:
    """File names in the first column of the README's table: | `name` | or | `a`, `b` |."""
    names: set[str] = set()
    for line in readme.read_text(encoding="utf-8").splitlines():
        cells = line.split("|")
        if len(cells) > 2:
            names |= set(re.findall(r"`([^`]+)`", cells[1]))
    return names


def _kustomize_config_maps(kustomization: dict[str, Any], root: Path) -> list[dict[str, Any]]:
    """What ``configMapGenerator`` makes, without the hash suffix: ``files`` keyed by file name, ``envs``
    as KEY=VALUE lines (comments and blank lines skipped), as kustomize reads them."""
    made = []
    for gen in kustomization.get("configMapGenerator", []):
        data: dict[str, str] = {}
        for name in gen.get("files", []):
            data[Path(name).name] = (root / name).read_text(encoding="utf-8")
        for name in gen.get("envs", []):
            for line in (root / name).read_text(encoding="utf-8").splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    key, _, value = line.partition("=")
                    data[key.strip()] = value
        made.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": gen["name"]}, "data": data})
    return made


def k8s_objects(root: Path = DEPLOY / "k8s") -> list[dict[str, Any]]:
    """Every object ``kubectl kustomize`` would print (namespace and labels applied; names unsuffixed)."""
    kustomization = yaml.safe_load((root / "kustomization.yaml").read_text(encoding="utf-8"))
    listed = set(kustomization["resources"])
    on_disk = {p.name for p in root.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk, f"kustomization.yaml resources and the folder differ: {sorted(listed ^ on_disk)}"
    objects = [o for name in kustomization["resources"] for o in yaml.safe_load_all((root / name).read_text()) if o]
    objects += _kustomize_config_maps(kustomization, root)
    labels = {k: v for entry in kustomization.get("labels", []) for k, v in entry["pairs"].items()}
    for obj in objects:
        meta = obj["metadata"]
        meta["labels"] = {**meta.get("labels", {}), **labels}
        if obj["kind"] != "Namespace":
            meta["namespace"] = kustomization["namespace"]
    return objects


def pod_specs(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [o["spec"]["template"]["spec"] for o in objects if o["kind"] == "Deployment"]


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its base, its name, its RUN commands and other instructions."""

    base: str
    name: str
    runs: list[str] = field(default_factory=list)
    instructions: dict[str, list[str]] = field(default_factory=dict)


def dockerfile_stages(path: Path) -> list[Stage]:
    """The stages, with continuation lines joined and ARG defaults substituted into FROM."""
    text = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word, rest = word.upper(), rest.strip()
        if word == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        elif word == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            stages.append(Stage(base=base, name=parts[2] if len(parts) > 2 else str(len(stages))))
        elif stages:
            stages[-1].instructions.setdefault(word, []).append(rest)
            if word == "RUN":
                stages[-1].runs.append(" ".join(rest.split()))
    return stages


def cli_accepts(args: list[str]) -> bool:
    """True when ``mash ARGS`` names a command and only options that command has (nothing is run).
    Typer carries its own copy of click, so groups are recognised by what they do, not by class."""
    from mash_broker.app.cli import app

    command: Any = typer.main.get_command(app)
    words = list(args)
    while hasattr(command, "get_command") and words and not words[0].startswith("-"):
        command = command.get_command(None, words.pop(0))
        if command is None:
            return False
    options = {opt for param in command.params for opt in getattr(param, "opts", [])}
    return not hasattr(command, "get_command") and all(w.split("=")[0] in options for w in words if w.startswith("-"))


def tls_handshake(server_pem: Path, client_pem: Path, ca: Path, hostname: str) -> bool:
    """A mutual-TLS handshake in memory: the server with ``server_pem`` (key and chain), the client with
    ``client_pem``, both trusting ``ca``, the client checking ``hostname``. Raises what ssl raises."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(server_pem)
    server.load_verify_locations(ca)
    server.verify_mode = ssl.CERT_REQUIRED
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.load_cert_chain(client_pem)
    client.load_verify_locations(ca)
    pipes = [(ssl.MemoryBIO(), ssl.MemoryBIO()) for _ in range(2)]
    s = server.wrap_bio(pipes[0][0], pipes[0][1], server_side=True)
    c = client.wrap_bio(pipes[1][0], pipes[1][1], server_hostname=hostname)
    done = {"s": False, "c": False}
    for _ in range(20):
        for key, end in (("c", c), ("s", s)):
            if not done[key]:
                try:
                    end.do_handshake()
                    done[key] = True
                except ssl.SSLWantReadError:
                    pass
        pipes[0][0].write(pipes[1][1].read())  # client -> server
        pipes[1][0].write(pipes[0][1].read())  # server -> client
        if all(done.values()):
            return s.getpeercert() is not None
    return False


__all__ = [
    "DEPLOY",
    "REPO",
    "Stage",
    "cli_accepts",
    "compose_secret_files",
    "documented_files",
    "k8s_objects",
    "pod_specs",
    "tls_handshake",
]
