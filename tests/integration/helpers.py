"""Driving the real `mash` command as subprocesses, over real sockets, and always cleaning up.

Each :class:`Mash` has its own data dir (so its own SQLite ledger and ``broker.json``) and a logs
dir where every command's stdout and stderr land, one file each, so tests can read what a
process logged after it is gone. Every long-running process is started in its own session and
stopped by process group; the embedded broker (tansu) runs in a session of its own, so its pid is
read from ``broker.json`` and killed at cleanup if it outlived its owner.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from mash_broker.app.embedded import pid_alive
from mash_broker.core.audit.keys import Ed25519Signer, KeyStore
from mash_broker.core.settings import Settings
from mash_broker.core.signing import ensure_key

T = TypeVar("T")

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "mash_broker" / "demo" / "data"
READY_TIMEOUT_S = 60.0  # two tansu consumer group joins take ~10 s; a crashed member's session adds ~10 s
COMMAND_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 20.0
FORCES = ("police:examplepolice", "police:syntheticpolice")  # the demo's and synthetic_export's forces


def mash_executable() -> str:
    """The `mash` script of the interpreter running the tests (the project's virtualenv)."""
    beside = Path(sys.executable).with_name("mash")
    if beside.exists():
        return str(beside)
    return str(ROOT / ".venv" / "bin" / "mash")


def wait_for(what: str, check: Callable[[], T], timeout_s: float, interval_s: float = 0.05) -> T:
    """Poll ``check`` until it returns something truthy; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what} (last: {value!r})")
        time.sleep(interval_s)


@dataclass
class Result:
    """A finished command: exit code, stdout, and stderr (also kept in ``stderr_path``)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    stderr_path: Path

    def json(self) -> Any:
        return json.loads(self.stdout)

    def __str__(self) -> str:
        return (
            f"mash {' '.join(self.args)} -> {self.returncode}\n--- stdout ---\n{self.stdout[-3000:]}"
            f"\n--- stderr ---\n{self.stderr[-3000:]}"
        )


@dataclass
class Proc:
    """A `mash` process started in its own session (process group id == pid)."""

    args: tuple[str, ...]
    popen: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path
    tansu_pid: int | None = None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def running(self) -> bool:
        return self.popen.poll() is None

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_for_stderr(self, marker: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Wait until ``marker`` appears on stderr; fail at once, with the tail, if the process exits."""
        deadline = time.monotonic() + timeout_s
        while marker not in self.stderr():
            if not self.running():
                raise AssertionError(
                    f"mash {' '.join(self.args)} exited ({self.popen.returncode}) before "
                    f"{marker!r}:\n{self.stderr()[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"mash {' '.join(self.args)}: no {marker!r} after {timeout_s:g} s:\n{self.stderr()[-3000:]}"
                )
            time.sleep(0.05)

    def signal_group(self, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    def kill(self) -> int:
        """SIGKILL the whole process group: a crash, no clean-up code runs."""
        self.signal_group(signal.SIGKILL)
        return self.popen.wait(STOP_TIMEOUT_S)

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int:
        """SIGTERM the process group (a clean stop), then SIGKILL it if it is still there."""
        if self.running():
            self.signal_group(signal.SIGTERM)
            self.signal_group(signal.SIGCONT)  # in case a test froze it
            try:
                return self.popen.wait(timeout_s)
            except subprocess.TimeoutExpired:
                pass
        self.signal_group(signal.SIGKILL)
        return self.popen.wait(timeout_s)

    def wait(self, timeout_s: float = COMMAND_TIMEOUT_S) -> Result:
        """Wait for the process to exit by itself; SIGKILL it and fail if it takes longer."""
        try:
            code = self.popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"mash {' '.join(self.args)} still running after {timeout_s:g} s:\n{self.stderr()[-3000:]}"
            ) from None
        return Result(self.args, code, self.stdout(), self.stderr(), self.stderr_path)


@dataclass
class Mash:
    """The `mash` CLI bound to one data dir, with JSON logs, every process tracked for clean-up."""

    data_dir: Path
    logs_dir: Path
    env_overrides: Mapping[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    _n: int = 0

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.logs_dir.mkdir(parents=True, exist_ok=True)

    # -- environment ---------------------------------------------------------------------------

    def env(self, extra: Mapping[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MASH_")}
        env.update(
            {
                "MASH_DATA_DIR": str(self.data_dir),
                "MASH_LOG_JSON": "true",
                "MASH_WEB_PORT": "0",  # the web pages on any free port: tests never fight over 8080
                "MASH_HEALTH_PORT": "0",  # the probes too (8081 by default)
                "PYTHONUNBUFFERED": "1",
                # Rich wraps the CLI's human lines at 80 columns when not on a terminal: one line each.
                "COLUMNS": "400",
            }
        )
        env.update(self.env_overrides)
        env.update(extra or {})
        return env

    def _paths(self, args: tuple[str, ...]) -> tuple[Path, Path]:
        self._n += 1
        stem = f"{self._n:03d}-" + "-".join(a for a in args[:3] if not a.startswith("-")).replace("/", "_")
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)[:60]
        return self.logs_dir / f"{stem}.stdout", self.logs_dir / f"{stem}.stderr"

    # -- processes -----------------------------------------------------------------------------

    def start(
        self,
        *args: str,
        ready: str | None = None,
        env: Mapping[str, str] | None = None,
        timeout_s: float = READY_TIMEOUT_S,
    ) -> Proc:
        """Start ``mash ARGS`` in its own session; wait for ``ready`` on its stderr if given."""
        out_path, err_path = self._paths(args)
        with out_path.open("wb") as out, err_path.open("wb") as err:
            popen = subprocess.Popen(
                [mash_executable(), *args],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=self.env(env),
                cwd=ROOT,
                start_new_session=True,
            )
        proc = Proc(args, popen, out_path, err_path)
        self.procs.append(proc)
        if ready is not None:
            proc.wait_for_stderr(ready, timeout_s)
            record = self.broker_record()
            if record and record.get("owner_pid") == proc.pid:
                proc.tansu_pid = int(record["pid"])
        return proc

    def run(self, *args: str, env: Mapping[str, str] | None = None, timeout_s: float = COMMAND_TIMEOUT_S) -> Result:
        """Run ``mash ARGS`` to completion."""
        return self.start(*args, env=env).wait(timeout_s)

    def run_all(self, *commands: tuple[str, ...], timeout_s: float = COMMAND_TIMEOUT_S) -> list[Result]:
        """Run independent commands at the same time (each CLI start costs ~2 s of imports)."""
        procs = [self.start(*c) for c in commands]
        return [p.wait(timeout_s) for p in procs]

    def up(self) -> Proc:
        return self.start("up", ready="mash up: ready")

    def close(self) -> None:
        """Stop every process this Mash started, then any embedded broker that outlived its owner."""
        for proc in reversed(self.procs):
            if proc.running():
                proc.stop()
        for pid in self.tansu_pids():
            kill_tansu(pid)

    def tansu_pids(self) -> set[int]:
        pids = {p.tansu_pid for p in self.procs if p.tansu_pid}
        record = self.broker_record()
        if record and isinstance(record.get("pid"), int):
            pids.add(record["pid"])
        return pids

    def broker_record(self) -> dict[str, Any] | None:
        try:
            data = json.loads((self.data_dir / "broker.json").read_text())
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def bootstrap(self) -> str:
        record = self.broker_record()
        assert record is not None, "no broker.json: is a broker running?"
        return str(record["bootstrap"])

    def log_files(self) -> list[Path]:
        return sorted(self.logs_dir.glob("*.stderr"))

    # -- the ledger ----------------------------------------------------------------------------

    @property
    def ledger_path(self) -> Path:
        return self.data_dir / "ledger.sqlite3"

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        """Read the SQLite ledger directly (WAL: readers never block the running services)."""
        if not self.ledger_path.exists():
            return []
        conn = sqlite3.connect(self.ledger_path, timeout=30)
        try:
            return list(conn.execute(query, params))
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return []
            raise
        finally:
            conn.close()

    def scalar(self, query: str, *params: Any) -> Any:
        rows = self.sql(query, *params)
        return rows[0][0] if rows else 0

    def count(self, table: str) -> int:
        return int(self.scalar(f"SELECT count(*) FROM {table}") or 0)  # noqa: S608 (our table names)


def kill_tansu(pid: int) -> None:
    """SIGKILL an embedded broker we started, if it is still alive and still a tansu process."""
    if not pid_alive(pid):
        return
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return
    if b"tansu" in cmdline:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def mash_session(base: Path, **env: str) -> Iterator[Mash]:
    """A :class:`Mash` under ``base`` (data dir and logs dir), cleaned up however the block exits."""
    mash = Mash(base / "data", base / "logs", env_overrides=env)
    # The forces in the exports sign what they send; the gate refuses unsigned messages.
    settings = Settings(data_dir=mash.data_dir)
    for force in FORCES:
        ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, force, datetime.now(UTC))
    try:
        yield mash
    finally:
        mash.close()


@contextlib.asynccontextmanager
async def _from_the_beginning(bootstrap: str, topic: str) -> AsyncIterator[tuple[Any, list[Any]]]:
    """An aiokafka consumer (no group) assigned every partition of ``topic``, at the beginning."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or {0}
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        yield consumer, tps
    finally:
        await consumer.stop()


def consume_all(
    bootstrap: str, topic: str, *, until: Callable[[list[Any]], bool], timeout_s: float = 30.0
) -> list[Any]:
    """Read ``topic`` from the beginning with aiokafka (no group) until ``until(records)`` or timeout."""
    import asyncio

    async def main() -> list[Any]:
        async with _from_the_beginning(bootstrap, topic) as (consumer, tps):
            records: list[Any] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while not until(records) and loop.time() < deadline:
                batch = await consumer.getmany(*tps, timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
            return records

    return asyncio.run(main())


def read_topic(bootstrap: str, topic: str, timeout_s: float = 30.0) -> list[Any]:
    """Every record on ``topic`` up to its end offsets when called: what has arrived, and nothing
    that has not (unlike ``consume_all``, it need not wait out a timeout to show an absence)."""
    import asyncio

    async def main() -> list[Any]:
        async with _from_the_beginning(bootstrap, topic) as (consumer, tps):
            ends = await consumer.end_offsets(tps)
            records: list[Any] = []
            loop = asyncio.get_running_loop()
            deadline = loop.time() + timeout_s
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                if loop.time() > deadline:
                    raise AssertionError(f"timed out after {timeout_s:g} s reading {topic} to offsets {ends}")
                batch = await consumer.getmany(*tps, timeout_ms=500)
                for recs in batch.values():
                    records.extend(recs)
            return records

    return asyncio.run(main())


def send_all(bootstrap: str, records: Iterable[tuple[str, bytes]]) -> None:
    """Publish ``(topic, value)`` records with aiokafka, as an agency's system would, each one
    acknowledged by the broker (acks=all) before this returns."""
    import asyncio

    from aiokafka import AIOKafkaProducer

    from mash_broker.app.kafka import producer_kwargs

    async def main() -> None:
        producer = AIOKafkaProducer(**producer_kwargs(bootstrap, embedded=True))
        await producer.start()
        try:
            for topic, value in records:
                await producer.send_and_wait(topic, value)
        finally:
            await producer.stop()

    asyncio.run(main())


def signing_key(mash: Mash, org: str) -> Ed25519Signer:
    """``org``'s key in this data dir's key store, made and registered if it has none (`mash keys new`)."""
    settings = Settings(data_dir=mash.data_dir)
    return ensure_key(KeyStore(settings.keys_dir), settings.key_registry_file, org, datetime.now(UTC))


# -- the demo flow (tests 1 and 3 share one run) -------------------------------------------------

SCHOOL = "900001"
KEY_ADULT = "Alex Keyadult"
ANOTHER_SCHOOLS_KEY_ADULT = "Jo Testperson"  # a Key Adult of 900002, not of 900001
NOT_A_KEY_ADULT = "Pat Stranger"
OTHER_SCHOOL = "900002"


@dataclass
class DemoFlow:
    """Everything the demo flow did, for tests to assert on after the stack has stopped."""

    mash: Mash
    export: Path
    load: Result
    ingest: Result
    inbox: Result
    acked_id: str
    other_school_id: str
    ack_first: Result
    ack_again: Result
    ack_not_key_adult: Result
    ack_other_schools_key_adult: Result
    ack_other_schools_notification: Result
    queue: Result
    deliveries_before_reingest: int
    reingest: Result
    inbox_after_reingest: Result
    deliveries_after_reingest: int
    bad_header: Result
    bad_bytes: Result
    messages_before_bad: int
    messages_after_bad: int
    acknowledgements: list[dict[str, Any]]
    up_exit: int


_flow: dict[str, DemoFlow | BaseException] = {}


def demo_flow(base: Path) -> DemoFlow:
    """Run the demo flow once per test session (the first caller's ``base``); later callers share it."""
    if "flow" not in _flow:
        try:
            _flow["flow"] = _run_demo_flow(base)
        except BaseException as exc:
            _flow["flow"] = exc
    found = _flow["flow"]
    if isinstance(found, BaseException):
        raise AssertionError(f"the demo flow failed: {found}") from found
    return found


def _run_demo_flow(base: Path) -> DemoFlow:
    export = DEMO / "overnight-export.csv"
    bad_header = base / "wrong-header.csv"
    bad_header.write_text("ref,when,who\nEXP/1,2026-11-20T21:40:00,Someone\n")
    bad_bytes = base / "undecodable.csv"
    bad_bytes.write_bytes(export.read_bytes().replace(b"Officers attended", b"Officers \xff\xfe attended"))

    with mash_session(base) as mash:
        up = mash.up()
        load = mash.run("school", "load", str(DEMO / "schools.csv"))
        ingest = mash.run("police", "ingest", str(export), "--json")

        def settled() -> bool:
            return (
                mash.count("deliveries") > 0
                and mash.scalar("SELECT count(*) FROM deliveries WHERE delivered_at IS NULL") == 0
            )

        wait_for("every delivery to be delivered", settled, 30)
        inbox = mash.run("school", "inbox", SCHOOL, "--json")
        acked_id = inbox.json()["notifications"][0]["message_id"] if inbox.returncode == 0 else ""
        other = mash.sql(
            "SELECT delivery_id FROM deliveries WHERE recipient = ? ORDER BY delivery_id", f"school:{OTHER_SCHOOL}"
        )
        other_school_id = other[0][0]

        messages_before_bad = mash.count("messages")
        (ack_first, ack_not_key_adult, ack_other_adult, ack_other_notification, queue, bad_h, bad_b) = mash.run_all(
            ("school", "ack", SCHOOL, acked_id[:8], "--by", KEY_ADULT),
            ("school", "ack", SCHOOL, acked_id[:8], "--by", NOT_A_KEY_ADULT),
            ("school", "ack", SCHOOL, acked_id[:8], "--by", ANOTHER_SCHOOLS_KEY_ADULT),
            ("school", "ack", SCHOOL, other_school_id[:8], "--by", KEY_ADULT),
            ("queue", "list", "--json"),
            ("police", "ingest", str(bad_header), "--json"),
            ("police", "ingest", str(bad_bytes), "--json"),
        )
        messages_after_bad = mash.count("messages")

        deliveries_before = mash.count("deliveries")
        ack_again, reingest = mash.run_all(
            ("school", "ack", SCHOOL, acked_id[:8], "--by", KEY_ADULT),
            ("police", "ingest", str(export), "--json"),
        )
        inbox_after = mash.run("school", "inbox", SCHOOL, "--json")
        deliveries_after = mash.count("deliveries")

        # The person-read acknowledgement is on its way to police once the relay has published it.
        wait_for(
            "the outbox to be published",
            lambda: mash.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL") == 0,
            30,
        )

        def person_read(records: list[Any]) -> bool:
            return any(json.loads(r.value).get("kind") == "ack.person_read" for r in records)

        records = consume_all(mash.bootstrap(), "police.acknowledgement.v1", until=person_read)
        acknowledgements = [json.loads(r.value) for r in records]
        up_exit = up.stop()

        return DemoFlow(
            mash=mash,
            export=export,
            load=load,
            ingest=ingest,
            inbox=inbox,
            acked_id=acked_id,
            other_school_id=other_school_id,
            ack_first=ack_first,
            ack_again=ack_again,
            ack_not_key_adult=ack_not_key_adult,
            ack_other_schools_key_adult=ack_other_adult,
            ack_other_schools_notification=ack_other_notification,
            queue=queue,
            deliveries_before_reingest=deliveries_before,
            reingest=reingest,
            inbox_after_reingest=inbox_after,
            deliveries_after_reingest=deliveries_after,
            bad_header=bad_h,
            bad_bytes=bad_b,
            messages_before_bad=messages_before_bad,
            messages_after_bad=messages_after_bad,
            acknowledgements=acknowledgements,
            up_exit=up_exit,
        )


# -- personal data in logs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Needle:
    """One piece of a child's personal data, and how to find it in a log line."""

    what: str
    pattern: re.Pattern[str]


def personal_data(export: Path) -> list[Needle]:
    """What an export holds about each child, as patterns: the full name, the given and family names
    as whole words, the date of birth, and the home postcode with or without its space; all
    case-insensitive. Whole words, so an id, a path or a topic that merely contains a name is not a
    hit (``examplepolice``, ``pytest-of-root``)."""
    needles: list[Needle] = []
    with export.open(newline="", encoding="utf-8") as f:
        for line, row in enumerate(csv.DictReader(f), start=2):
            given, family = row["child_given_name"].strip(), row["child_family_name"].strip()
            dob, postcode = row["child_dob"].strip(), row["home_postcode"].strip()
            for what, word in ((f"given name on line {line}", given), (f"family name on line {line}", family)):
                if word:
                    needles.append(Needle(what, re.compile(rf"(?<![\w-]){re.escape(word)}(?![\w-])", re.I)))
            if given and family:
                needles.append(
                    Needle(f"full name on line {line}", re.compile(rf"{re.escape(given)}\s+{re.escape(family)}", re.I))
                )
            if dob:
                needles.append(Needle(f"date of birth on line {line}", re.compile(re.escape(dob))))
            squashed = postcode.replace(" ", "")
            if len(squashed) > 3:
                spaced = rf"{re.escape(squashed[:-3])}\s*{re.escape(squashed[-3:])}"
                needles.append(Needle(f"home postcode on line {line}", re.compile(spaced, re.I)))
    return needles


def log_lines(files: list[Path]) -> list[tuple[str, int, str]]:
    """``(file name, line number, text)`` for every non-blank line of ``files``."""
    return [
        (f.name, n, text)
        for f in files
        for n, text in enumerate(f.read_text(errors="replace").splitlines(), start=1)
        if text.strip()
    ]


def leaks(files: list[Path], needles: list[Needle]) -> list[str]:
    """Where any needle is found: ``file:line: what`` (never the value itself)."""
    return [
        f"{name}:{n}: {needle.what}"
        for name, n, text in log_lines(files)
        for needle in needles
        if needle.pattern.search(text)
    ]
