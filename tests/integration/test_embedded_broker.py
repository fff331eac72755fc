"""The embedded tansu broker over real sockets: lifecycle, round trip, topics, discovery, orphan safety."""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from mash_broker.app.embedded import EmbeddedBroker, pid_alive, resolve_bootstrap
from mash_broker.app.kafka import ensure_topics, is_embedded, producer_kwargs
from mash_broker.contracts.errors import BrokerUnavailable
from mash_broker.core.settings import Settings

pytestmark = pytest.mark.embedded

ROOT = Path(__file__).resolve().parents[2]


def _decode_proc_addr(hex_addr: str) -> str:
    raw = bytes.fromhex(hex_addr)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    return socket.inet_ntop(socket.AF_INET6, b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4)))


def listening_addresses(pid: int) -> list[tuple[str, int]]:
    """Every TCP (host, port) the process listens on, read from /proc."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in ("tcp", "tcp6"):
        path = Path(f"/proc/net/{table}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                host, port = local.split(":")
                found.append((_decode_proc_addr(host), int(port, 16)))
    return found


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def wait_dead(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return not pid_alive(pid)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads listening sockets from Linux /proc")
async def test_start_writes_broker_json_listens_on_loopback_only_and_stop_cleans_up(tmp_path: Path) -> None:
    broker = EmbeddedBroker()
    bootstrap = await broker.start(tmp_path)
    try:
        pid = broker.pid
        assert pid is not None
        record = json.loads((tmp_path / "broker.json").read_text())
        assert record["bootstrap"] == bootstrap
        assert record["pid"] == pid
        assert record["owner_pid"] == os.getpid()
        assert record["started_at"]
        host, port = bootstrap.rsplit(":", 1)
        assert host == "127.0.0.1"
        assert listening_addresses(pid) == [("127.0.0.1", int(port))]
    finally:
        broker.stop()
    assert wait_dead(pid, 1)
    assert not (tmp_path / "broker.json").exists()
    assert "tansu" in (tmp_path / "tansu.log").read_text()
    broker.stop()  # idempotent


async def test_round_trip_with_key_and_binary_headers_is_byte_identical(
    embedded_bootstrap: str, unique_topic: str
) -> None:
    key = b"\x00key\xff"
    value = bytes(range(256)) * 8
    headers = [
        ("message_id", b"\x00\x01\xfe\xff"),
        ("utf8", "£ é".encode()),
        ("nul", b"\x00" * 16),
        ("empty", b""),
    ]
    producer = AIOKafkaProducer(**producer_kwargs(embedded_bootstrap, embedded=True))
    await producer.start()
    try:
        await producer.send_and_wait(unique_topic, value, key=key, headers=headers)
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(unique_topic, bootstrap_servers=embedded_bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), timeout=30)
    finally:
        await consumer.stop()
    assert record.key == key
    assert record.value == value
    assert list(record.headers) == headers


async def test_ensure_topics_is_idempotent(embedded_bootstrap: str, unique_topic: str) -> None:
    names = [f"{unique_topic}.a", f"{unique_topic}.b"]
    producer = AIOKafkaProducer(**producer_kwargs(embedded_bootstrap, embedded=True))
    await producer.start()
    try:  # tansu auto-creates this one: ensure_topics must leave it alone
        await producer.send_and_wait(f"{unique_topic}.auto", b"x")
    finally:
        await producer.stop()

    await ensure_topics(embedded_bootstrap, [*names, names[0]], partitions=3)
    await ensure_topics(embedded_bootstrap, iter(names), partitions=3)
    await ensure_topics(embedded_bootstrap, [*names, f"{unique_topic}.auto"], partitions=3)
    await ensure_topics(embedded_bootstrap, [])

    admin = AIOKafkaAdminClient(bootstrap_servers=embedded_bootstrap)
    await admin.start()
    try:
        described = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
    finally:
        await admin.close()
    assert described == {names[0]: 3, names[1]: 3}


def test_resolve_bootstrap_prefers_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MASH_KAFKA_BOOTSTRAP", "kafka-1.example:9092")
    monkeypatch.setenv("MASH_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert not is_embedded(settings)
    assert resolve_bootstrap(settings) == "kafka-1.example:9092"


def test_resolve_bootstrap_reads_a_live_broker_json(embedded_broker: EmbeddedBroker) -> None:
    settings = Settings(data_dir=embedded_broker.data_dir, kafka_bootstrap=None)
    assert is_embedded(settings)
    assert resolve_bootstrap(settings) == embedded_broker.bootstrap
    assert settings.broker_file.exists()


@pytest.mark.parametrize(("tansu_dead", "owner_dead"), [(True, True), (True, False), (False, True)])
def test_resolve_bootstrap_removes_a_stale_broker_json(tmp_path: Path, tansu_dead: bool, owner_dead: bool) -> None:
    gone = dead_pid()
    record = {
        "bootstrap": "127.0.0.1:1",
        "pid": gone if tansu_dead else os.getpid(),
        "owner_pid": gone if owner_dead else os.getpid(),
        "started_at": "2026-01-01T00:00:00+00:00",
    }
    settings = Settings(data_dir=tmp_path, kafka_bootstrap=None)
    settings.broker_file.write_text(json.dumps(record))
    with pytest.raises(BrokerUnavailable, match="no broker is running: start one with `mash up`"):
        resolve_bootstrap(settings)
    assert not settings.broker_file.exists()
    with pytest.raises(BrokerUnavailable):  # and no file at all says the same
        resolve_bootstrap(settings)


async def test_start_refuses_a_second_broker_for_the_same_data_dir(embedded_broker: EmbeddedBroker) -> None:
    with pytest.raises(BrokerUnavailable, match="already running"):
        await EmbeddedBroker().start(embedded_broker.data_dir)
    assert resolve_bootstrap(Settings(data_dir=embedded_broker.data_dir, kafka_bootstrap=None))


async def test_a_broker_that_never_answers_fails_with_the_log_tail(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = tmp_path / "fake-tansu"
    fake.write_text("#!/bin/sh\necho 'fake tansu: cannot start'\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CALF_TANSU_BIN", str(fake))
    with pytest.raises(BrokerUnavailable, match="fake tansu: cannot start"):
        await EmbeddedBroker(ready_timeout_s=5).start(tmp_path / "data")
    assert not (tmp_path / "data" / "broker.json").exists()


OWNER_SCRIPT = """
import asyncio, sys, time
from pathlib import Path
from mash_broker.app.embedded import EmbeddedBroker
from mash_broker.core.logging import configure_logging
configure_logging(stream=sys.stderr)
broker = EmbeddedBroker()
asyncio.run(broker.start(Path(sys.argv[1])))
print("TANSU_PID", broker.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
def test_tansu_dies_when_its_owner_is_sigkilled(tmp_path: Path) -> None:
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER_SCRIPT, str(tmp_path)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert owner.stdout is not None
    out = owner.stdout
    tansu_pid = None
    try:
        deadline = time.monotonic() + 30
        while tansu_pid is None and time.monotonic() < deadline:
            ready, _, _ = select.select([out], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            line = out.readline()
            if not line:
                break
            if line.startswith("TANSU_PID "):
                tansu_pid = int(line.split()[1])
        assert tansu_pid is not None, "the owner never reported a running broker"
        assert pid_alive(tansu_pid)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        assert wait_dead(tansu_pid, 5), f"tansu pid {tansu_pid} outlived its SIGKILLed owner"
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        if tansu_pid is not None and pid_alive(tansu_pid):
            os.kill(tansu_pid, signal.SIGKILL)
