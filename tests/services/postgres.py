"""A PostgreSQL server for the test session: the one named by ``MASH_TEST_POSTGRES_URL``, or a throwaway one.

Without ``MASH_TEST_POSTGRES_URL`` the suite starts its own server from the PostgreSQL binaries under
``/usr/lib/postgresql/*/bin`` (the highest version; installed with apt-get when missing and we are root), in
a fresh temporary directory, on a free loopback port, with trust authentication and durability switched off
(fsync, synchronous_commit, full_page_writes: a test database never needs to survive a crash). It is
started only when a test first asks for it (the session fixture ``postgres_url`` in tests/conftest.py) and
stopped and deleted at the end of the session. PostgreSQL refuses to run as root, so as root the server runs
as the ``postgres`` system user (created if missing).

``pg_ctl start`` detaches the server, so a test run that dies without cleaning up would leave it running.
Three things stop it: the fixture's finalizer, an ``atexit`` hook, and a watchdog process that waits on a
pipe from this one and, when the pipe closes (this process ended, however it ended, even by SIGKILL), stops
the server and removes its directory.

When no server can be had, ``services.require.unavailable`` says why: a skip on a developer's machine, a
failure under CI=true.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type information
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .require import unavailable

ENV_URL = "MASH_TEST_POSTGRES_URL"
DATABASE = "test"
SUPERUSER = "postgres"
SYSTEM_USER = "postgres"  # the account the server runs as when we are root
PACKAGE_ROOT = Path("/usr/lib/postgresql")
NEEDED = ("initdb", "pg_ctl", "postgres")
INSTALL_HINT = "apt-get install postgresql"
APT_TIMEOUT = 600  # seconds for one apt-get install (or update)
START_TIMEOUT = 60  # seconds pg_ctl waits for the server to accept connections
SETTINGS = {  # -c options: loopback only, and no durability (throwaway data)
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
}


class ServerError(Exception):
    """The throwaway server could not be set up; the message says which step failed and why."""


@dataclass(frozen=True)
class Binaries:
    """Where initdb, pg_ctl and postgres are, and their major version (for the report)."""

    bindir: Path
    version: str

    def __getitem__(self, name: str) -> str:
        return str(self.bindir / name)


@dataclass
class Started:
    """What the session got, for the terminal summary."""

    description: str
    seconds: float


started: list[Started] = []  # the session's server once it is ready (for tests/conftest.py's summary)


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def find_binaries(root: Path | None = None) -> Binaries | None:
    """The highest-versioned ``root/<version>/bin`` with all of initdb, pg_ctl and postgres, else from PATH."""
    found = [
        bindir
        for bindir in (root or PACKAGE_ROOT).glob("*/bin")
        if _version_key(bindir.parent.name) and all(_executable(bindir / name) for name in NEEDED)
    ]
    if found:
        best = max(found, key=lambda bindir: _version_key(bindir.parent.name))
        return Binaries(best, best.parent.name)
    on_path = [shutil.which(name) for name in NEEDED]
    if all(on_path) and len({Path(str(path)).parent for path in on_path}) == 1:
        return Binaries(Path(str(on_path[0])).parent, "from PATH")
    return None


def _tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _apt_get(apt: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    return subprocess.run(
        [apt, "-o", "DPkg::Lock::Timeout=120", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=APT_TIMEOUT,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def install_with_apt() -> str | None:
    """Install the ``postgresql`` package (root with apt-get only); None when done, else why not."""
    apt = shutil.which("apt-get")
    if os.geteuid() != 0 or apt is None:
        return "cannot install it here (installing needs root and apt-get)"
    install = ("install", "-y", "-qq", "--no-install-recommends", "postgresql")
    try:
        result = _apt_get(apt, *install)
        if result.returncode != 0:  # the package lists may be stale or missing: refresh them once
            _apt_get(apt, "update", "-qq")
            result = _apt_get(apt, *install)
    except subprocess.TimeoutExpired:
        return f"apt-get took more than {APT_TIMEOUT} s"
    if result.returncode != 0:
        return f"apt-get install postgresql failed: {_tail(result.stdout + result.stderr, 5)}"
    return None


def _server_user_prefix() -> list[str]:
    """The command prefix that runs a program as the server's account: nothing, or runuser as postgres."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SYSTEM_USER)
    except KeyError:
        useradd = shutil.which("useradd") or "/usr/sbin/useradd"
        result = subprocess.run(
            [useradd, "--system", "--user-group", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ServerError(
                f"PostgreSQL will not run as root and useradd {SYSTEM_USER} failed: {_tail(result.stderr, 3)}"
            ) from None
    if runuser := shutil.which("runuser"):
        return [runuser, "-u", SYSTEM_USER, "--"]
    if setpriv := shutil.which("setpriv"):
        account = pwd.getpwnam(SYSTEM_USER)
        return [setpriv, f"--reuid={account.pw_uid}", f"--regid={account.pw_gid}", "--init-groups", "--"]
    raise ServerError(
        f"PostgreSQL will not run as root, and neither runuser nor setpriv is here to drop to the {SYSTEM_USER} user"
    )


def _temp_parent() -> str:
    """A temporary directory the server's account can reach (every ancestor searchable by others)."""
    parent = Path(tempfile.gettempdir()).resolve()
    if os.geteuid() == 0 and not all(p.stat().st_mode & stat.S_IXOTH for p in (parent, *parent.parents)):
        return "/tmp"  # noqa: S108  # TMPDIR is private to root; the server runs as postgres
    return str(parent)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _connect(url: str) -> asyncpg.Connection:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    return await asyncpg.connect(dsn, timeout=5)


def _run_async(coro: Coroutine[Any, Any, None]) -> None:
    """Run a coroutine to completion on a fresh event loop in a worker thread (safe inside a running loop)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, coro).result()


def check_reachable(url: str) -> str | None:
    """None if ``url`` accepts a connection, else the error."""

    async def probe() -> None:
        conn = await _connect(url)
        await conn.close()

    try:
        _run_async(probe())
    except (OSError, TimeoutError, ValueError, ArgumentError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# The watchdog: blocks reading its stdin (our pipe); at EOF, whatever the reason, stops the server and
# removes the directory. argv: base directory, then the pg_ctl stop command.
_WATCHDOG = """
import shutil, subprocess, sys
sys.stdin.buffer.read()
try:
    subprocess.run(sys.argv[2:], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60, check=False)
finally:
    shutil.rmtree(sys.argv[1], ignore_errors=True)
"""


class ThrowawayServer:
    """One PostgreSQL server in its own temporary directory; ``start`` returns its URL, ``stop`` removes it."""

    def __init__(self, binaries: Binaries) -> None:
        self.binaries = binaries
        self.prefix = _server_user_prefix()
        self.base = Path(tempfile.mkdtemp(prefix="mash-test-pg-", dir=_temp_parent()))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port = 0
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._stopped = False
        if self.prefix:
            account = pwd.getpwnam(SYSTEM_USER)
            os.chown(self.base, account.pw_uid, account.pw_gid)
        atexit.register(self.stop)

    def _run(self, *args: str, timeout: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.prefix, *args],
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def _stop_command(self) -> list[str]:
        return [*self.prefix, self.binaries["pg_ctl"], "-D", str(self.data), "-m", "immediate", "-s", "stop"]

    def _server_log(self) -> str:
        try:
            return _tail(self.log.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            return "(no server log)"

    def start(self) -> str:
        init = self._run(
            self.binaries["initdb"],
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            SUPERUSER,
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
            timeout=120,
        )
        if init.returncode != 0:
            raise ServerError(f"initdb failed:\n{_tail(init.stdout + init.stderr)}")
        self._watchdog = subprocess.Popen(  # from here on the server is cleaned up however we end
            [sys.executable, "-c", _WATCHDOG, str(self.base), *self._stop_command()],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for _attempt in range(3):  # another process may take the free port between choosing and binding it
            self.port = free_port()
            settings = {**SETTINGS, "port": str(self.port), "unix_socket_directories": str(self.base)}
            options = " ".join(f"-c {shlex.quote(f'{key}={value}')}" for key, value in settings.items())
            result = self._run(
                self.binaries["pg_ctl"],
                "-D",
                str(self.data),
                "-l",
                str(self.log),
                "-w",
                "-t",
                str(START_TIMEOUT),
                "-o",
                options,
                "start",
                timeout=START_TIMEOUT + 30,
            )
            if result.returncode == 0:
                break
            if "could not bind" not in self._server_log():
                raise ServerError(
                    f"the server did not accept connections within {START_TIMEOUT} s "
                    f"(pg_ctl: {_tail(result.stdout + result.stderr, 3)}); server log:\n"
                    f"{self._server_log()}"
                )
        else:
            raise ServerError(f"the server could not bind a free port; server log:\n{self._server_log()}")
        url = f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        admin = f"postgresql+asyncpg://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

        async def create_database() -> None:
            deadline = time.monotonic() + 10
            while True:
                try:
                    conn = await _connect(admin)
                    break
                except (OSError, asyncpg.CannotConnectNowError):
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.1)
            try:
                await conn.execute(f'CREATE DATABASE "{DATABASE}"')
            finally:
                await conn.close()

        try:
            _run_async(create_database())
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise ServerError(
                f"could not create database {DATABASE}: {type(exc).__name__}: {exc}; server log:\n{self._server_log()}"
            ) from exc
        return url

    def stop(self) -> None:
        """Stop the server at once (no checkpoint: the data is thrown away) and delete its directory."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if self.data.exists():
                subprocess.run(
                    self._stop_command(),
                    cwd=self.base,
                    capture_output=True,
                    timeout=60,
                    check=False,
                    stdin=subprocess.DEVNULL,
                )
        except (OSError, subprocess.TimeoutExpired):
            pass  # the watchdog tries again
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            if self._watchdog is not None:
                assert self._watchdog.stdin is not None
                self._watchdog.stdin.close()  # EOF: the watchdog's stop finds nothing left to do
                try:
                    self._watchdog.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    self._watchdog.kill()


def _without_password(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not even a URL: say so without echoing it
        return "(an unparsable URL)"


def session_url() -> Iterator[str]:
    """The PostgreSQL URL for this session (a generator for a session fixture: cleanup after ``yield``)."""
    began = time.monotonic()
    if url := os.environ.get(ENV_URL, "").strip():
        if error := check_reachable(url):
            unavailable(
                f"needs the PostgreSQL server named by {ENV_URL}, but "
                f"{_without_password(url)} is not reachable: {error}"
            )
        started.append(Started(f"the server named by {ENV_URL} ({_without_password(url)})", time.monotonic() - began))
        yield url
        return
    binaries = find_binaries()
    if binaries is None:
        why_not = install_with_apt()
        binaries = find_binaries()
        if binaries is None:
            unavailable(
                f"needs PostgreSQL server binaries ({INSTALL_HINT}): none under {PACKAGE_ROOT}/*/bin "
                f"or on PATH, and {why_not or 'the installed package has none'}; or set {ENV_URL} to "
                "a server of your own"
            )
    try:
        server = ThrowawayServer(binaries)
    except ServerError as exc:
        unavailable(f"needs a throwaway PostgreSQL server: {exc}")
    try:
        try:
            url = server.start()
        except (ServerError, OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"needs a throwaway PostgreSQL server ({binaries.bindir}), which did not start: {exc}")
        started.append(
            Started(
                f"a throwaway PostgreSQL {binaries.version} server on 127.0.0.1:{server.port}", time.monotonic() - began
            )
        )
        yield url
    finally:
        server.stop()
