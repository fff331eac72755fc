"""Serving the web app inside the stack's event loop (uvicorn on a socket we bind ourselves, so a
port already in use is our clear error, not uvicorn's exit)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import uvicorn

from mash_broker.agencies.education.inbox import Sign
from mash_broker.app.health import Readiness
from mash_broker.app.web.app import create_app
from mash_broker.contracts import MashError
from mash_broker.core.logging import get_logger
from mash_broker.core.settings import Settings
from mash_broker.storage import Ledger

log = get_logger("mash.web")


class WebUnavailable(MashError):
    """The web pages could not listen on their address."""

    code = "web_unavailable"


@dataclass
class WebServer:
    """The running pages: where they are, and how to stop them."""

    url: str
    port: int
    settings: Settings  # as served: MASH_WEB_PORT=0 replaced by the port it got (links in alerts use it)
    server: uvicorn.Server
    task: asyncio.Task[None]

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.wait_for(self.task, 10)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the stack stops it (Ctrl-C, SIGTERM) in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def start_web(
    settings: Settings,
    ledger: Ledger,
    clock: Callable[[], datetime],
    sign: Sign | None,
    readiness: Readiness | None = None,
) -> WebServer:
    sock = socket.socket(socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.web_host, settings.web_port))
    except OSError as exc:
        sock.close()
        raise WebUnavailable(
            f"cannot listen on {settings.web_host}:{settings.web_port} ({exc.strerror}); "
            "set MASH_WEB_PORT to a free port (0: any)"
        ) from exc
    sock.listen(128)
    port = int(sock.getsockname()[1])
    if settings.web_port == 0 and settings.web_base_url is None:
        settings = settings.model_copy(update={"web_port": port})
    app = create_app(settings, ledger, clock=clock, sign=sign, readiness=readiness)
    config = uvicorn.Config(app, log_config=None, access_log=False, lifespan="off", server_header=False)
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    log.info("web.started", port=port)
    return WebServer(url=settings.web_url, port=port, settings=settings, server=server, task=task)
