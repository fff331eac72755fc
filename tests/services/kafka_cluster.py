"""A real Apache Kafka 4.x cluster for the tests: three KRaft nodes on loopback, secured as production runs it.

Nothing here is a fake. The jars are Apache Kafka's own, from Maven Central (``deploy/kafka/fetch.sh``, cached
after the first run); each node is ``kafka.Kafka`` in its own JVM with ``process.roles=broker,controller`` and a
static three-voter quorum (``controller.quorum.voters``); storage is formatted for each run with
``kafka.tools.StorageTool`` (the class behind ``kafka-storage.sh format``), one cluster id for all nodes.

Security (see docs/kafka.md for every setting):

- a throwaway CA, per-broker and per-client certificates, made here with ``cryptography`` (EC P-256, PEM; the
  brokers read PEM keystores and truststores directly, ``ssl.keystore.type=PEM``);
- listener ``SASL_SSL`` (SCRAM-SHA-512, server-only TLS), listener ``SSL`` (mutual TLS, client certificate
  required; principal from the certificate's CN via ``ssl.principal.mapping.rules``), an inter-broker listener
  ``INTERNAL`` and the ``CONTROLLER`` listener, both mutual TLS with the brokers' certificates (principal
  ``User:broker`` for every node);
- ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found=false``; ``super.users`` is the admin user and the
  brokers' own principal, nothing else;
- replication factor 3 by default, ``min.insync.replicas=2``, no automatic topic creation.

The admin user (``User:admin``, SCRAM) is created at format time (``--add-scram``), so are any ``scram_users``
passed in; later users and ACLs go through Kafka's own command-line classes (``ConfigCommand``,
``AclCommand`` from ``kafka-tools``) on the same classpath: aiokafka has no API for SCRAM credentials, and its
ACL requests are not public.

Use it from pytest through :func:`kafka_cluster_fixture`; without Java or Maven, or when the jars cannot be
fetched, ``services.require.unavailable`` says what is missing (a skip, or a failure under CI=true).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import contextlib
import datetime as dt
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

try:
    from .require import unavailable
except ImportError:  # pragma: no cover - the shared helper is missing: the same rule, locally
    from typing import NoReturn

    def unavailable(reason: str, *, allow_module_level: bool = False) -> NoReturn:
        if os.environ.get("CI", "").strip().lower() in {"true", "1"}:
            pytest.fail(f"CI=true: {reason}", pytrace=False)
        pytest.skip(reason, allow_module_level=allow_module_level)


REPO = Path(__file__).resolve().parents[2]
FETCH_SCRIPT = REPO / "deploy" / "kafka" / "fetch.sh"
FETCH_TIMEOUT = 600  # seconds: a cold fetch of about 45 MB of jars from Maven Central
START_TIMEOUT = 120  # seconds for all three nodes to log "Kafka Server started"
TOOL_TIMEOUT = 60  # seconds for one Kafka command-line tool (format, ACLs, SCRAM)
STOP_GRACE = 10  # seconds a node gets after SIGTERM before SIGKILL
# One node's clean stop in a rolling restart: its controlled shutdown took 3 to 4 s on a quiet machine and over 10
# s with other test suites running (load 8).
NODE_STOP_GRACE = 60
SESSION_STOP_GRACE = 2  # the same at the end of a test session
HEAP = os.environ.get("MASH_KAFKA_HEAP", "384m")
STARTED_LINE = "Kafka Server started"  # KafkaRaftServer logs it once the broker is unfenced
ADMIN_USER = "admin"
BROKER_PRINCIPAL = "broker"  # every node's certificate (CN=broker-N) maps to User:broker
SCRAM_MECHANISM = "SCRAM-SHA-512"
SCRAM_ITERATIONS = 4096  # the minimum Kafka accepts for SCRAM-SHA-512

JVM_OPTIONS = [
    "-Xms64m",
    f"-Xmx{HEAP}",
    "-XX:MaxMetaspaceSize=128m",
    "-XX:+UseSerialGC",  # two cores, three JVMs: no parallel GC threads fighting each other
    "-XX:TieredStopAtLevel=1",  # C1 only: faster start-up, enough speed for tests
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
]
TOOL_JVM_OPTIONS = ["-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"]


# --------------------------------------------------------------------------------------------------- jars


def fetch_libs(timeout: float = FETCH_TIMEOUT) -> Path:
    """The directory of Kafka's jars, fetched by deploy/kafka/fetch.sh (at once when already cached).

    Calls :func:`unavailable` naming what is missing when Java or Maven is absent or the fetch fails."""
    missing = [tool for tool in ("java", "mvn") if shutil.which(tool) is None]
    if "java" in missing and Path(java_binary()).is_file():
        missing.remove("java")  # JAVA_HOME names one
    cached = os.environ.get("MASH_KAFKA_LIBS")
    if "java" in missing:
        unavailable(
            "Apache Kafka tests need Java 17+ on PATH (apt-get install openjdk-17-jre-headless) "
            "and Maven to fetch Kafka's jars (apt-get install maven)"
        )
    major = java_major_version()
    if major is not None and major < 17:
        unavailable(
            f"Apache Kafka 4 needs Java 17 or newer; {java_binary()} is Java {major} "
            "(apt-get install openjdk-17-jre-headless, or set JAVA_HOME)"
        )
    if missing and not (cached and (Path(cached) / ".complete").is_file()):
        unavailable(
            "Apache Kafka tests need Maven on PATH to fetch Kafka's jars from Maven Central "
            "(apt-get install maven), or MASH_KAFKA_LIBS naming a directory fetch.sh filled"
        )
    try:
        done = subprocess.run(
            [shutil.which("bash") or "/bin/bash", str(FETCH_SCRIPT)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, "MASH_KAFKA_FETCH_TIMEOUT": str(int(timeout))},
        )
    except subprocess.TimeoutExpired:
        unavailable(f"deploy/kafka/fetch.sh did not finish in {timeout:.0f} s (Maven Central reachable?)")
    if done.returncode != 0:
        unavailable(
            f"deploy/kafka/fetch.sh failed (exit {done.returncode}); Apache Kafka's jars come from Maven "
            f"Central through mvn: {done.stderr.strip()[-1500:]}"
        )
    libs = Path(done.stdout.strip().splitlines()[-1])
    if not any(libs.glob("kafka_2.13-*.jar")):
        unavailable(f"deploy/kafka/fetch.sh printed {libs}, which holds no kafka_2.13 jar")
    return libs


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` when JAVA_HOME is set, else ``java`` from PATH."""
    home = os.environ.get("JAVA_HOME")
    if home and (Path(home) / "bin" / "java").is_file():
        return str(Path(home) / "bin" / "java")
    return shutil.which("java") or "java"


def java_major_version() -> int | None:
    """The major version ``java -version`` reports (17 for "17.0.15", 8 for "1.8.0_402"), or None."""
    try:
        done = subprocess.run([java_binary(), "-version"], capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', done.stderr)
    if match is None:
        return None
    first = int(match.group(1))
    return int(match.group(2) or 0) if first == 1 else first


def kafka_version(libs: Path) -> str:
    jar = next(libs.glob("kafka_2.13-*.jar"))
    return jar.name.removeprefix("kafka_2.13-").removesuffix(".jar")


# ---------------------------------------------------------------------------------------------- certificates


@dataclass(frozen=True)
class ClientCert:
    """A client's certificate chain (leaf then CA) and private key, as PEM files."""

    name: str
    cert_file: Path
    key_file: Path

    @property
    def principal(self) -> str:
        return f"User:{self.name}"


class Pki:
    """A throwaway certificate authority and the certificates it issues (EC P-256, SHA-256, PEM files)."""

    def __init__(self, directory: Path, *, days: int = 2) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._now = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
        self._until = self._now + dt.timedelta(days=days)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "MASH Broker test CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self._key.public_key())
        self.ca_cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._until)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(ski, critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def issue(self, common_name: str, *, server: bool) -> tuple[bytes, bytes]:
        """(certificate chain PEM, unencrypted PKCS#8 key PEM) for ``CN=common_name``.

        Server certificates name 127.0.0.1 and localhost (the brokers verify each other's host names)."""
        key = ec.generate_private_key(ec.SECP256R1())
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH] + ([ExtendedKeyUsageOID.SERVER_AUTH] if server else [])
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._now)
            .not_valid_after(self._until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if server:
            builder = builder.add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, hashes.SHA256())
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.ca_cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return chain, key_pem

    def client(self, name: str) -> ClientCert:
        chain, key = self.issue(name, server=False)
        cert_file, key_file = self.directory / f"client-{name}.crt", self.directory / f"client-{name}.key"
        cert_file.write_bytes(chain)
        _write_private(key_file, key)
        return ClientCert(name, cert_file, key_file)

    def broker_keystore(self, node_id: int, path: Path) -> None:
        """One PEM file holding the broker's key and chain: what ``ssl.keystore.type=PEM`` reads."""
        chain, key = self.issue(f"broker-{node_id}", server=True)
        _write_private(path, key + chain)


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


# ---------------------------------------------------------------------------------------------------- nodes


def _free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports (all held open until all are chosen)."""
    held: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            held.append(sock)
        return [s.getsockname()[1] for s in held]
    finally:
        for sock in held:
            sock.close()


def _cluster_id() -> str:
    """A Kafka Uuid as ``kafka-storage random-uuid`` prints it: 16 random bytes, URL-safe base64, unpadded."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def _pdeathsig() -> Callable[[], None] | None:
    """A preexec_fn that has the kernel SIGKILL the child when this process dies (Linux), so no JVM outlives a
    test run killed hard. Only from the main thread: the signal fires when the forking *thread* ends."""
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return None

    def preexec() -> None:
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    return preexec


@dataclass
class Node:
    node_id: int
    directory: Path
    sasl_port: int
    ssl_port: int
    internal_port: int
    controller_port: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready_seconds: float = 0.0
    log_offset: int = 0  # where server.log stood when the current process was started

    @property
    def config_file(self) -> Path:
        return self.directory / "server.properties"

    @property
    def server_log(self) -> Path:
        return self.directory / "logs" / "server.log"

    @property
    def console_log(self) -> Path:
        return self.directory / "console.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def rss_mb(self) -> float | None:
        """Resident memory of the node's JVM in MiB (from /proc), or None when it is not running."""
        if not self.running or self.process is None:
            return None
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return f"({path} not readable)"
    return "\n".join(text[-lines:])


class KafkaClusterError(RuntimeError):
    pass


LOG4J2_TEMPLATE = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
logger.state.name = state.change.logger
logger.state.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = INFO
"""

TOOLS_LOG4J2 = """\
status = warn
appender.err.type = Console
appender.err.name = STDERR
appender.err.target = SYSTEM_ERR
appender.err.layout.type = PatternLayout
appender.err.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.err.ref = STDERR
"""


@dataclass
class KafkaCluster:
    """Three KRaft nodes (broker and controller each) on loopback; see the module's docstring.

    ``start()`` formats storage and starts every node; ``stop()`` stops them (the directory stays, for the logs).
    ``kill(node)`` SIGKILLs one node (a crash), ``stop_node(node)`` stops one cleanly (a rolling restart's step),
    ``restart(node)`` starts it again on its own data, ``wait_in_sync()`` waits for every replica to catch up."""

    workdir: Path
    libs: Path
    nodes_count: int = 3
    scram_users: dict[str, str] = field(default_factory=dict, repr=False)
    client_names: Sequence[str] = ("app-mtls",)
    extra_config: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.scram_users = dict(self.scram_users)  # add_scram_user adds to it: not the caller's dict
        self.cluster_id = _cluster_id()
        self.admin_password = uuid.uuid4().hex
        self.version = kafka_version(self.libs)
        self.nodes: list[Node] = []
        self.pki: Pki | None = None
        self.clients: dict[str, ClientCert] = {}
        self.format_seconds = 0.0
        self.start_seconds = 0.0
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- addresses and files for clients

    @property
    def bootstrap_sasl(self) -> str:
        """``host:port,...`` of every node's SASL_SSL (SCRAM-SHA-512) listener."""
        return ",".join(f"127.0.0.1:{n.sasl_port}" for n in self.nodes)

    @property
    def bootstrap_mtls(self) -> str:
        """``host:port,...`` of every node's SSL listener (client certificate required)."""
        return ",".join(f"127.0.0.1:{n.ssl_port}" for n in self.nodes)

    @property
    def ca_file(self) -> Path:
        assert self.pki is not None, "start() the cluster first"
        return self.pki.ca_file

    def client_cert(self, name: str) -> ClientCert:
        """A client certificate (``CN=name``, so principal ``User:name``), made on first use."""
        assert self.pki is not None, "start() the cluster first"
        with self._lock:
            if name not in self.clients:
                self.clients[name] = self.pki.client(name)
            return self.clients[name]

    def ssl_context(self, client: str | None = None) -> ssl.SSLContext:
        """A TLS context trusting only the test CA; with ``client``, presenting that client's certificate."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.ca_file))
        if client is not None:
            cert = self.client_cert(client)
            context.load_cert_chain(str(cert.cert_file), str(cert.key_file))
        return context

    def sasl_kwargs(self, user: str = ADMIN_USER, password: str | None = None) -> dict[str, Any]:
        """aiokafka keyword arguments for the SASL_SSL listener as ``user``."""
        if password is None:
            password = self.admin_password if user == ADMIN_USER else self.scram_users[user]
        return {
            "bootstrap_servers": self.bootstrap_sasl,
            "security_protocol": "SASL_SSL",
            "sasl_mechanism": SCRAM_MECHANISM,
            "sasl_plain_username": user,
            "sasl_plain_password": password,
            "ssl_context": self.ssl_context(),
        }

    def mtls_kwargs(self, client: str) -> dict[str, Any]:
        """aiokafka keyword arguments for the SSL listener with ``client``'s certificate."""
        return {
            "bootstrap_servers": self.bootstrap_mtls,
            "security_protocol": "SSL",
            "ssl_context": self.ssl_context(client),
        }

    # ------------------------------------------------------------------------------------ life cycle

    def start(self, timeout: float = START_TIMEOUT) -> KafkaCluster:
        began = time.monotonic()
        self.pki = Pki(self.workdir / "tls")
        for name in self.client_names:
            self.client_cert(name)
        ports = _free_ports(4 * self.nodes_count)
        self.nodes = [
            Node(
                i,
                self.workdir / f"node-{i}",
                sasl_port=ports[4 * i],
                ssl_port=ports[4 * i + 1],
                internal_port=ports[4 * i + 2],
                controller_port=ports[4 * i + 3],
            )
            for i in range(self.nodes_count)
        ]
        for node in self.nodes:
            (node.directory / "logs").mkdir(parents=True, exist_ok=True)
            self.pki.broker_keystore(node.node_id, node.directory / "broker.pem")
            node.config_file.write_text(self._server_properties(node))
            (node.directory / "log4j2.properties").write_text(LOG4J2_TEMPLATE.format(log_file=node.server_log))
        (self.workdir / "tools-log4j2.properties").write_text(TOOLS_LOG4J2)
        self._write_admin_properties()
        self._format()
        self.format_seconds = time.monotonic() - began
        atexit.register(self.stop)
        try:
            for node in self.nodes:
                self._launch(node)
            self._wait_started(self.nodes, began + timeout)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began
        return self

    def stop(self, grace: float = STOP_GRACE) -> None:
        """Stop every node: SIGTERM, then SIGKILL after ``grace`` seconds. Safe to call twice.

        All nodes stopping at once take about 5.5 s: the active controller waits 5 s for the others to see it
        resign, and they are going too. A test session passes a shorter grace (its data is thrown away)."""
        running = [n for n in self.nodes if n.running]
        for node in running:
            assert node.process is not None
            node.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        for node in running:
            assert node.process is not None
            try:
                node.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(10)
        with contextlib.suppress(Exception):
            atexit.unregister(self.stop)

    def kill(self, node_id: int) -> None:
        """Crash one node: SIGKILL, no controlled shutdown, nothing flushed."""
        node = self.nodes[node_id]
        if node.process is None:
            raise KafkaClusterError(f"node {node_id} was never started")
        node.process.kill()
        node.process.wait(10)

    def stop_node(self, node_id: int, grace: float = NODE_STOP_GRACE) -> float:
        """Stop one node cleanly, as a rolling restart does: SIGTERM, so Kafka's controlled shutdown moves its
        partitions' leadership to the others before it exits. Returns the seconds until it exited; raises if it
        had to be SIGKILLed after ``grace`` seconds (that is a crash, not a clean stop)."""
        node = self.nodes[node_id]
        if not node.running or node.process is None:
            raise KafkaClusterError(f"node {node_id} is not running")
        began = time.monotonic()
        node.process.send_signal(signal.SIGTERM)
        try:
            node.process.wait(grace)
        except subprocess.TimeoutExpired:
            node.process.kill()
            node.process.wait(10)
            raise KafkaClusterError(
                f"node {node_id} did not stop within {grace:g} s of SIGTERM and was killed\n"
                + self.describe_failure(node)
            ) from None
        return time.monotonic() - began

    def wait_in_sync(self, timeout: float = 60.0) -> float:
        """Wait until every partition of every topic (``__consumer_offsets`` included) has a leader and all its
        replicas in sync; returns the seconds it took. Raises naming the partitions still short."""
        return asyncio.run(self._wait_in_sync(within=timeout))

    async def _wait_in_sync(self, *, within: float) -> float:
        from aiokafka.admin import AIOKafkaAdminClient

        began = time.monotonic()
        short: list[str] = ["(not asked yet)"]
        while True:
            # A new client each round: one that knew a node before it stopped may still ask it first.
            admin = AIOKafkaAdminClient(**self.sasl_kwargs(), request_timeout_ms=10_000)
            try:
                await admin.start()
                topics = await admin.list_topics()
                described = await admin.describe_topics([*topics, "__consumer_offsets"])
                short = [
                    f"{d['topic']}/{p['partition']} leader {p['leader']} isr {sorted(p['isr'])}"
                    for d in described
                    for p in d["partitions"]
                    if p["leader"] < 0 or sorted(p["isr"]) != sorted(p["replicas"])
                ]
                if not short and described:
                    return time.monotonic() - began
            except Exception as exc:  # a node still starting or just gone: ask again
                short = [f"({type(exc).__name__}: {exc})"]
            finally:
                with contextlib.suppress(Exception):
                    await admin.close()
            if time.monotonic() - began > within:
                raise KafkaClusterError(
                    f"partitions not fully in sync after {within:g} s: {len(short)}, e.g. {short[:5]}"
                )
            await asyncio.sleep(0.5)

    def restart(self, node_id: int, timeout: float = START_TIMEOUT) -> float:
        """Start a stopped or killed node again on its own data; returns the seconds it took to be ready."""
        node = self.nodes[node_id]
        if node.running:
            raise KafkaClusterError(f"node {node_id} is still running; kill() it first")
        self._launch(node)
        self._wait_started([node], time.monotonic() + timeout)
        return node.ready_seconds

    def _launch(self, node: Node) -> None:
        node.log_offset = node.server_log.stat().st_size if node.server_log.exists() else 0
        console = node.console_log.open("ab")
        cmd = [
            java_binary(),
            *JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={node.directory / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={node.directory / 'logs'}",
            "-cp",
            f"{self.libs}/*",
            "kafka.Kafka",
            str(node.config_file),
        ]
        node.process = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=console,
            stderr=subprocess.STDOUT,
            cwd=node.directory,
            preexec_fn=_pdeathsig(),
        )
        console.close()
        node.started_at = time.monotonic()

    def _wait_started(self, nodes: Iterable[Node], deadline: float) -> None:
        waiting = list(nodes)
        while waiting:
            for node in list(waiting):
                if not node.running:
                    code = node.process.returncode if node.process else "?"
                    raise KafkaClusterError(
                        f"Kafka node {node.node_id} exited with {code} while starting\n{self.describe_failure(node)}"
                    )
                if self._log_since_start(node).find(STARTED_LINE) >= 0:
                    node.ready_seconds = time.monotonic() - node.started_at
                    waiting.remove(node)
            if not waiting:
                return
            if time.monotonic() > deadline:
                names = ", ".join(str(n.node_id) for n in waiting)
                raise KafkaClusterError(
                    f"Kafka nodes {names} did not start in time\n"
                    + "\n".join(self.describe_failure(n) for n in waiting)
                )
            time.sleep(0.2)

    def _log_since_start(self, node: Node) -> str:
        try:
            with node.server_log.open("rb") as handle:
                handle.seek(node.log_offset)
                return handle.read().decode(errors="replace")
        except OSError:
            return ""

    def describe_failure(self, node: Node, lines: int = 30) -> str:
        """The first errors this node logged since its last start, the end of its log and its console."""
        errors = [line for line in self._log_since_start(node).splitlines() if " ERROR " in line or " FATAL " in line][
            :5
        ]
        first = "\n".join(errors) or "(none)"
        return (
            f"--- node {node.node_id}: first errors in {node.server_log}:\n{first}\n"
            f"--- node {node.node_id} {node.server_log} (last {lines} lines):\n{_tail(node.server_log, lines)}\n"
            f"--- node {node.node_id} {node.console_log}:\n{_tail(node.console_log, 15)}"
        )

    def log_lines(self, needle: str) -> list[str]:
        """Lines of every node's server.log containing ``needle`` (e.g. the authorizer's denials)."""
        found: list[str] = []
        for node in self.nodes:
            with contextlib.suppress(OSError):
                found += [line for line in node.server_log.read_text(errors="replace").splitlines() if needle in line]
        return found

    def rss_mb(self) -> dict[int, float | None]:
        return {n.node_id: n.rss_mb() for n in self.nodes}

    # ----------------------------------------------------------------------------------- configuration

    def _server_properties(self, node: Node) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        rf = min(3, self.nodes_count)
        settings: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": voters,
            "controller.listener.names": "CONTROLLER",
            "listeners": (
                f"SASL_SSL://127.0.0.1:{node.sasl_port},SSL://127.0.0.1:{node.ssl_port},"
                f"INTERNAL://127.0.0.1:{node.internal_port},CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": (
                f"SASL_SSL://127.0.0.1:{node.sasl_port},SSL://127.0.0.1:{node.ssl_port},"
                f"INTERNAL://127.0.0.1:{node.internal_port}"
            ),
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,SSL:SSL,INTERNAL:SSL,CONTROLLER:SSL",
            "inter.broker.listener.name": "INTERNAL",
            "log.dirs": str(node.directory / "data"),
            # TLS: PEM key+chain file and PEM CA; brokers check each other's host names (SAN 127.0.0.1).
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(node.directory / "broker.pem"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.ca_file),
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
            "ssl.client.auth": "required",  # SSL, INTERNAL and CONTROLLER: mutual TLS
            "listener.name.sasl_ssl.ssl.client.auth": "none",  # SCRAM authenticates there (KIP-684)
            "ssl.principal.mapping.rules": f"RULE:^CN=broker-[0-9]+$/{BROKER_PRINCIPAL}/,RULE:^CN=([^,]+)$/$1/,DEFAULT",
            # SASL: SCRAM-SHA-512 only, on the SASL_SSL listener.
            "sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.sasl.enabled.mechanisms": SCRAM_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # Authorization.
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "allow.everyone.if.no.acl.found": "false",
            "super.users": f"User:{ADMIN_USER};User:{BROKER_PRINCIPAL}",
            # Durability.
            "default.replication.factor": str(rf),
            "min.insync.replicas": str(min(2, rf)),
            "unclean.leader.election.enable": "false",
            "auto.create.topics.enable": "false",
            "num.partitions": "3",
            "offsets.topic.replication.factor": str(rf),
            "offsets.topic.num.partitions": "6",  # 50 in production; fewer makes the first group join quick
            "transaction.state.log.replication.factor": str(rf),
            "transaction.state.log.min.isr": str(min(2, rf)),
            "transaction.state.log.num.partitions": "3",
            "share.coordinator.state.topic.replication.factor": str(rf),
            "share.coordinator.state.topic.min.isr": str(min(2, rf)),
            # Test speed: join groups at once; notice a dead broker in 6 s rather than 9 s.
            "group.initial.rebalance.delay.ms": "0",
            "broker.session.timeout.ms": "6000",
            "broker.heartbeat.interval.ms": "1000",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "num.recovery.threads.per.data.dir": "1",
            "log.segment.bytes": str(64 * 1024 * 1024),
        }
        settings.update(self.extra_config)
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def _write_admin_properties(self) -> None:
        self.admin_properties = self.workdir / "admin.properties"
        self.admin_properties.write_text(
            "security.protocol=SASL_SSL\n"
            f"sasl.mechanism={SCRAM_MECHANISM}\n"
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="{ADMIN_USER}" password="{self.admin_password}";\n'
            "ssl.truststore.type=PEM\n"
            f"ssl.truststore.location={self.ca_file}\n"
        )
        os.chmod(self.admin_properties, 0o600)

    def _format(self) -> None:
        scram = [f"{SCRAM_MECHANISM}=[name={ADMIN_USER},password={self.admin_password}]"]
        scram += [f"{SCRAM_MECHANISM}=[name={name},password={pw}]" for name, pw in self.scram_users.items()]
        args: list[str] = []
        for entry in scram:
            args += ["--add-scram", entry]
        procs = [
            self._tool_process(
                [
                    "kafka.tools.StorageTool",
                    "format",
                    "--config",
                    str(n.config_file),
                    "--cluster-id",
                    self.cluster_id,
                    *args,
                ]
            )
            for n in self.nodes
        ]
        for node, proc in zip(self.nodes, procs, strict=True):
            out, _ = proc.communicate(timeout=TOOL_TIMEOUT)
            if proc.returncode != 0:
                raise KafkaClusterError(f"kafka-storage format failed for node {node.node_id}:\n{out[-3000:]}")

    # -------------------------------------------------------------------------------- admin helpers

    def _tool_process(self, args: list[str]) -> subprocess.Popen[str]:
        cmd = [
            java_binary(),
            *TOOL_JVM_OPTIONS,
            f"-Dlog4j2.configurationFile={self.workdir / 'tools-log4j2.properties'}",
            "-cp",
            f"{self.libs}/*",
            *args,
        ]
        return subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=self.workdir
        )

    def run_tool(self, main_class: str, *args: str, timeout: float = TOOL_TIMEOUT) -> str:
        """Run a Kafka command-line class (e.g. ``org.apache.kafka.tools.AclCommand``) against the cluster as
        the admin user (``--bootstrap-server`` and ``--command-config`` are added). Returns its output."""
        live = [n for n in self.nodes if n.running]
        bootstrap = ",".join(f"127.0.0.1:{n.sasl_port}" for n in live)
        proc = self._tool_process(
            [main_class, "--bootstrap-server", bootstrap, "--command-config", str(self.admin_properties), *args]
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            raise KafkaClusterError(
                f"{main_class} {' '.join(args)} timed out after {timeout} s:\n{out[-3000:]}"
            ) from None
        if proc.returncode != 0:
            raise KafkaClusterError(f"{main_class} {' '.join(args)} failed ({proc.returncode}):\n{out[-3000:]}")
        return out

    def add_scram_user(self, name: str, password: str) -> None:
        """Create (or change) a SCRAM-SHA-512 user through the admin API (``ConfigCommand``)."""
        self.run_tool(
            "org.apache.kafka.tools.ConfigCommand",
            "--alter",
            "--entity-type",
            "users",
            "--entity-name",
            name,
            "--add-config",
            f"{SCRAM_MECHANISM}=[iterations={SCRAM_ITERATIONS},password={password}]",
        )
        self.scram_users[name] = password

    def create_acls(
        self,
        principal: str,
        *,
        topics: Sequence[str] = (),
        groups: Sequence[str] = (),
        producer: bool = False,
        consumer: bool = False,
        operations: Sequence[str] = (),
        prefixed: bool = False,
        deny: bool = False,
    ) -> str:
        """Add ACLs for ``principal`` (``User:name``) in one ``AclCommand`` run.

        ``producer``/``consumer`` are AclCommand's own bundles (WRITE, DESCRIBE, CREATE on the topics; READ,
        DESCRIBE on the topics and READ on the groups); ``operations`` (e.g. ``("Read", "Write")``) grant
        exactly those on ``topics`` (or on ``groups`` when no topic is named). Returns the tool's output."""
        if not principal.startswith("User:"):
            raise ValueError("a principal looks like 'User:name'")
        args = ["--add", "--force", ("--deny-principal" if deny else "--allow-principal"), principal]
        for topic in topics:
            args += ["--topic", topic]
        for group in groups:
            args += ["--group", group]
        if prefixed:
            args += ["--resource-pattern-type", "prefixed"]
        if producer:
            args.append("--producer")
        if consumer:
            args.append("--consumer")
        for operation in operations:
            args += ["--operation", operation]
        if not (producer or consumer or operations):
            raise ValueError("name operations, or producer/consumer")
        return self.run_tool("org.apache.kafka.tools.AclCommand", *args)

    def list_acls(self) -> str:
        return self.run_tool("org.apache.kafka.tools.AclCommand", "--list")


# ------------------------------------------------------------------------------------------ pytest glue


def start_cluster(workdir: Path | None = None, **kwargs: Any) -> KafkaCluster:
    """Fetch the jars (or call :func:`unavailable`), then start a cluster in ``workdir`` (a temporary one)."""
    libs = fetch_libs()
    if workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="mash-kafka-"))
    cluster = KafkaCluster(workdir=workdir, libs=libs, **kwargs)
    return cluster.start()


def kafka_cluster_fixture(name: str = "kafka_cluster", **kwargs: Any) -> Any:
    """A session-scoped pytest fixture named ``name`` yielding a started :class:`KafkaCluster`.

    In a test module or conftest: ``kafka_cluster = kafka_cluster_fixture(scram_users={"alice": "pw"})``."""

    @pytest.fixture(scope="session", name=name)
    def _fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
        cluster = start_cluster(tmp_path_factory.mktemp("kafka-cluster"), **kwargs)
        try:
            yield cluster
        finally:
            cluster.stop(grace=SESSION_STOP_GRACE)

    return _fixture
