"""Running a router: uvicorn on uvloop and httptools, plus its two background loops.

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

from weir.router.backends import Discovery
from weir.router.config import PolicyFile, RouterPolicy, RouterSettings, read_secret
from weir.router.errors import ConfigError
from weir.router.proxy import Router
from weir.router.rawhttp import RawUpstream
from weir.router.upstream import HttpxUpstream, SchemeUpstream, Upstream

log = logging.getLogger("weir.router")
_STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningRouter:
    """A started router: where it listens and the live object behind it."""

    url: str
    router: Router


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
                router.set_policy(policy)
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


def _config(router: Router, **extra: object) -> uvicorn.Config:
    return uvicorn.Config(
        router,
        log_level="warning",
        access_log=False,
        lifespan="off",
        http="httptools",
        proxy_headers=False,
        server_header=False,
        date_header=False,
        timeout_graceful_shutdown=1,
        backlog=4096,
        **extra,  # type: ignore[arg-type]
    )


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
) -> AsyncIterator[RunningRouter]:
    """Serve `router` in the running loop on a real socket; stop it on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(4096)
    sock.setblocking(False)
    server = uvicorn.Server(_config(router))
    async with background(router, discovery, policy_file, poll_s, key_file):
        task = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            deadline = time.monotonic() + _STARTUP_TIMEOUT_S
            while not server.started:
                if task.done():
                    task.result()
                    raise ConfigError("the router stopped during startup")
                if time.monotonic() > deadline:
                    raise ConfigError("the router did not start in time")
                await asyncio.sleep(0.005)
            yield RunningRouter(f"http://{host}:{sock.getsockname()[1]}", router)
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
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
) -> None:  # pragma: no cover - the CLI's foreground loop
    """Serve until SIGINT/SIGTERM."""
    server = uvicorn.Server(_config(router, host=host, port=port))
    async with background(router, discovery, policy_file, poll_s, key_file):
        await server.serve()
