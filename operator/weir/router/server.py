"""Running a router: uvicorn on uvloop and httptools, plus its two background loops.

Two listeners: the OpenAI API, and `/metrics` on a port of its own (the
metrics say what the hosted budget is and how much of it is left: the
API's clients need not see that, and a NetworkPolicy can open the metrics
port to Prometheus alone). Both use weir's guarded HTTP protocol
(`weir.serving`: head size and read deadline, idle and connection limits).

The background loops feed the router what changes under it: discovery
publishes the endpoint set (EndpointSlices or a fixed list) and the policy
loop re-reads the mounted policy file every `poll_s` (a ConfigMap update
swaps the file's symlink, so polling the content is the portable way to
notice). A policy that does not validate is logged, counted and ignored.
The hosted API key file is re-read the same way, so a rotated Secret
applies without a restart (its value is never logged).
Tests start routers in-process on port 0 with `started_router`; the
command line runs `serve` in the foreground.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.types import Receive, Scope, Send

from weir.router.backends import Discovery
from weir.router.config import PolicyFile, RouterPolicy, RouterSettings, read_secret
from weir.router.errors import ConfigError
from weir.router.proxy import Router
from weir.router.rawhttp import RawUpstream
from weir.router.upstream import HttpxUpstream, SchemeUpstream, Upstream
from weir.serving import error_json, uvicorn_config

log = logging.getLogger("weir.router")
_STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningRouter:
    """A started router: where it listens and the live object behind it."""

    url: str
    router: Router
    metrics_url: str | None = None


class MetricsApp:
    """The metrics port's ASGI app: `GET /metrics`, and a JSON 404 for anything else."""

    def __init__(self, router: Router) -> None:
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/metrics" and scope["method"] == "GET":
            await self.router.serve_metrics(send)
            return
        body = error_json(
            "the metrics port serves GET /metrics only", "invalid_request_error", "unknown_url"
        )
        head = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 404, "headers": head})
        await send({"type": "http.response.body", "body": body, "more_body": False})


async def _watch_policy(router: Router, policy_file: PolicyFile, poll_s: float) -> None:
    while True:
        try:
            policy = policy_file.read_if_changed()
        except ConfigError as exc:
            router.metrics.reloads.labels("invalid").inc()
            log.warning("policy not applied, keeping the last good one: %s", exc)
            policy_file.digest = ""  # try again next time, even if unchanged
        else:
            if policy is not None:
                try:
                    router.set_policy(policy)
                except ConfigError as exc:
                    router.metrics.reloads.labels("invalid").inc()
                    log.warning("policy not applied, keeping the last good one: %s", exc)
                else:
                    router.metrics.reloads.labels("ok").inc()
                    log.info("policy applied from %s", policy_file.path)
        await asyncio.sleep(poll_s)


async def _watch_key(router: Router, path: Path, poll_s: float) -> None:
    """Pick up a rotated hosted API key (a mounted Secret is updated in place)."""
    last = hashlib.sha256(router.hosted_key_bytes()).digest()
    while True:
        await asyncio.sleep(poll_s)
        try:
            key = read_secret(path, "hosted API key")
        except ConfigError as exc:
            log.warning("hosted API key not re-read, keeping the current one: %s", exc)
            continue
        digest = hashlib.sha256(key.encode()).digest()
        if digest != last:
            router.set_hosted_key(key)
            last = digest
            log.info("hosted API key reloaded from %s", path)


def build_router(
    settings: RouterSettings, policy: RouterPolicy, upstream: Upstream | None = None
) -> Router:
    """A router with the default upstream clients (raw http for pods, httpx for https)."""
    timeouts = {
        "connect_timeout_s": settings.connect_timeout_s,
        "idle_timeout_s": settings.idle_timeout_s,
    }
    client = upstream or SchemeUpstream(RawUpstream(**timeouts), HttpxUpstream(**timeouts))
    return Router(settings, policy, client, clock=time.monotonic)


@contextlib.asynccontextmanager
async def background(
    router: Router,
    discovery: Discovery,
    policy_file: PolicyFile | None,
    poll_s: float,
    key_file: Path | None = None,
) -> AsyncIterator[None]:
    """Discovery, policy and key loops for the lifetime of the block."""
    tasks = [asyncio.create_task(discovery.run(router.backends.update))]
    if policy_file is not None:
        tasks.append(asyncio.create_task(_watch_policy(router, policy_file, poll_s)))
    if key_file is not None:
        tasks.append(asyncio.create_task(_watch_key(router, key_file, poll_s)))
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await router.upstream.aclose()


def _config(router: Router, app: object | None = None, **extra: object) -> uvicorn.Config:
    return uvicorn_config(app or router, router.settings.limits, **extra)


def _listen(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    return sock


async def _wait_started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    deadline = time.monotonic() + _STARTUP_TIMEOUT_S
    while not server.started:
        if task.done():
            task.result()
            raise ConfigError("the router stopped during startup")
        if time.monotonic() > deadline:
            raise ConfigError("the router did not start in time")
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def started_router(
    router: Router,
    discovery: Discovery,
    *,
    policy_file: PolicyFile | None = None,
    poll_s: float = 0.05,
    host: str = "127.0.0.1",
    port: int = 0,
    key_file: Path | None = None,
    metrics_port: int | None = 0,
) -> AsyncIterator[RunningRouter]:
    """Serve `router` (and its metrics port, unless None) in the running loop; stop on exit."""
    socks = [_listen(host, port)]
    servers = [uvicorn.Server(_config(router))]
    if metrics_port is not None:
        socks.append(_listen(host, metrics_port))
        servers.append(uvicorn.Server(_config(router, MetricsApp(router))))
    async with background(router, discovery, policy_file, poll_s, key_file):
        pairs = zip(servers, socks, strict=True)
        tasks = [asyncio.create_task(server.serve(sockets=[sock])) for server, sock in pairs]
        try:
            for server, task in zip(servers, tasks, strict=True):
                await _wait_started(server, task)
            urls = [f"http://{host}:{k.getsockname()[1]}" for k in socks]
            yield RunningRouter(urls[0], router, urls[1] if len(urls) > 1 else None)
        finally:
            for server in servers:
                server.should_exit = True
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            for sock in socks:
                sock.close()


async def serve(
    router: Router,
    discovery: Discovery,
    *,
    policy_file: PolicyFile | None,
    poll_s: float,
    host: str,
    port: int,
    key_file: Path | None = None,
    metrics_port: int | None = None,
) -> None:  # pragma: no cover - the CLI's foreground loop
    """Serve until SIGINT/SIGTERM (the API server's signal ends the metrics server too)."""
    api = uvicorn.Server(_config(router, host=host, port=port))
    async with background(router, discovery, policy_file, poll_s, key_file):
        if metrics_port is None:
            await api.serve()
            return
        metrics = uvicorn.Server(_config(router, MetricsApp(router), host=host, port=metrics_port))
        metrics_task = asyncio.create_task(metrics.serve())
        try:
            await api.serve()
        finally:
            metrics.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await metrics_task
