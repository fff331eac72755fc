"""Probes and metrics for a supervisor: /healthz, /readyz and /metrics.

``/healthz`` answers 200 while the event loop runs (liveness: restart me if this stops answering).
``/readyz`` answers 200 only when the ledger answers a trivial read, Kafka answers a metadata request
(cached for ``kafka_cache_s``), and the gate's consumer has joined its group and been given its
assignment; else 503, with a JSON body naming what is not ready. With more gate replicas than
partitions a replica is assigned none: it is ready (a standby), and the body says so.

The web pages serve the two probes on their own port (app.web.app); `mash serve` and `mash up` also
serve them, with /metrics, on ``MASH_HEALTH_HOST:MASH_HEALTH_PORT`` (loopback:8081 by default).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from faststream.kafka import KafkaBroker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from mash_broker.app.observability import GateMetrics
from mash_broker.contracts import MashError
from mash_broker.core.logging import get_logger
from mash_broker.core.ports import ObservedLedger
from mash_broker.core.settings import Settings

log = get_logger("mash.health")

PROBE_TIMEOUT_S = 2.0


class HealthUnavailable(MashError):
    """The probe port could not listen on its address."""

    code = "health_unavailable"


@dataclass(frozen=True, slots=True)
class Check:
    """One part of readiness: whether it is ready, and a short reason an operator can act on."""

    ok: bool
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "detail": self.detail}


def gate_consumer_state(broker: KafkaBroker, group: str) -> Check:
    """Has this process's consumer in ``group`` joined and been assigned its partitions (maybe none)?"""
    subs = [s for s in broker.subscribers if getattr(s, "group_id", None) == group]
    if not subs:
        return Check(False, f"no consumer in group {group} in this process")
    for sub in subs:
        consumer = getattr(sub, "consumer", None)
        if consumer is None:
            return Check(False, "consumer not started")
        # aiokafka keeps the group state on the subscription: no assignment yet, or a rebalance under way.
        subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
        if subscription is None or subscription.assignment is None or subscription._reassignment_in_progress:
            return Check(False, f"joining group {group}")
    held = sum(len(getattr(s, "consumer").assignment()) for s in subs)  # noqa: B009 - checked above
    if held == 0:
        return Check(True, f"joined {group}; assigned no partitions (more replicas than partitions: a standby)")
    return Check(True, f"joined {group}; assigned {held} partitions")


@dataclass
class Readiness:
    """What /readyz asks. The web pages alone check the ledger; a stack with services adds Kafka and the
    gate's consumer once they have started (``watch``)."""

    ledger: ObservedLedger
    kafka_cache_s: float = 2.0
    monotonic: Callable[[], float] = time.monotonic
    broker: KafkaBroker | None = None
    group: str | None = None
    _kafka: tuple[float, Check] | None = field(default=None, repr=False)

    def watch(self, broker: KafkaBroker, group: str) -> None:
        self.broker, self.group = broker, group

    async def _ledger(self) -> Check:
        try:
            ok = await asyncio.wait_for(self.ledger.ledger_answers(), PROBE_TIMEOUT_S)
        except Exception as exc:
            return Check(False, f"the ledger did not answer ({type(exc).__name__})")
        return Check(ok, "answered" if ok else "the ledger did not answer")

    async def _kafka_reachable(self, broker: KafkaBroker) -> Check:
        now = self.monotonic()
        if self._kafka is not None and now - self._kafka[0] < self.kafka_cache_s:
            return self._kafka[1]
        try:
            ok = await asyncio.wait_for(broker.ping(timeout=PROBE_TIMEOUT_S), PROBE_TIMEOUT_S + 0.5)
        except Exception as exc:
            ok, why = False, type(exc).__name__
        else:
            why = "no metadata answer"
        check = Check(True, "metadata answered") if ok else Check(False, f"Kafka unreachable ({why})")
        self._kafka = (self.monotonic(), check)
        return check

    async def checks(self) -> dict[str, Check]:
        found = {"ledger": await self._ledger()}
        if self.broker is not None and self.group is not None:
            found["kafka"] = await self._kafka_reachable(self.broker)
            found["gate_consumer"] = gate_consumer_state(self.broker, self.group)
        return found


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "alive"})


async def readyz(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    checks = await readiness.checks()
    not_ready = sorted(name for name, c in checks.items() if not c.ok)
    body = {
        "status": "not_ready" if not_ready else "ready",
        "not_ready": not_ready,
        "checks": {name: c.as_json() for name, c in checks.items()},
    }
    return JSONResponse(body, status_code=503 if not_ready else 200)


async def metrics(request: Request) -> Response:
    gate_metrics: GateMetrics = request.app.state.metrics
    return PlainTextResponse(await gate_metrics.exposition(), media_type="text/plain; version=0.0.4")


PROBE_ROUTES = [Route("/healthz", healthz), Route("/readyz", readyz)]


def health_app(readiness: Readiness, gate_metrics: GateMetrics) -> Starlette:
    app = Starlette(routes=[*PROBE_ROUTES, Route("/metrics", metrics)])
    app.state.readiness, app.state.metrics = readiness, gate_metrics
    return app


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the stack stops it in order."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class HealthServer:
    """The running probe port: where it is, and how to stop it."""

    host: str
    port: int
    server: uvicorn.Server
    task: asyncio.Task[None]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def stop(self) -> None:
        self.server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(self.task, 5)


async def start_health(settings: Settings, readiness: Readiness, gate_metrics: GateMetrics) -> HealthServer:
    """Serve the probes and /metrics on MASH_HEALTH_HOST:MASH_HEALTH_PORT (a socket we bind: a port in
    use is a clear error naming the setting)."""
    host = settings.health_host
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, settings.health_port))
    except OSError as exc:
        sock.close()
        raise HealthUnavailable(
            f"cannot listen on {host}:{settings.health_port} ({exc.strerror}); "
            "set MASH_HEALTH_PORT to a free port (0: any)"
        ) from exc
    sock.listen(64)
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(
        health_app(readiness, gate_metrics), log_config=None, access_log=False, lifespan="off", server_header=False
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]), name="health-server")
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    log.info("health.started", port=port)
    return HealthServer(host=host, port=port, server=server, task=task)
