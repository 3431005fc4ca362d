"""Run an engine server with uvicorn: in-process for tests, or as the CLI's foreground.

Tests need real sockets (streaming over the in-process ASGI transport is
buffered), several servers in one event loop, and ports chosen by the kernel;
so the listening socket is bound here (port 0 works) and handed to uvicorn, and
`started_server` waits for readiness with a bounded poll instead of a sleep.
uvicorn runs weir's guarded protocol (`weir.serving`), as the router does.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from weir.engines.errors import EngineError
from weir.refengine.protocol import Engine
from weir.refengine.server import EngineServer, ServerSettings
from weir.serving import uvicorn_config

_STARTUP_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class RunningEngine:
    """A started engine server: where it listens and what it runs."""

    url: str
    server: EngineServer

    @property
    def engine(self) -> Engine:
        return self.server.engine


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EngineError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def started_server(
    engine: Engine,
    settings: ServerSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    wrap: Callable[[ASGIApp], ASGIApp] | None = None,
) -> AsyncIterator[RunningEngine]:
    """Start engine and server in the running loop; stop both on exit. `wrap` puts an
    ASGI layer in front (the hosted stand-in's failure switch)."""
    server = EngineServer(engine, settings)
    sock = _bind(host, port)
    config = uvicorn_config(wrap(server.app) if wrap else server.app, settings.limits)
    uv = uvicorn.Server(config)
    await engine.start()
    task = asyncio.create_task(uv.serve(sockets=[sock]))
    try:
        await _wait_started(uv, task)
        bound_port = sock.getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        yield RunningEngine(url=f"http://{shown}:{bound_port}", server=server)
    finally:
        uv.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await engine.stop()
        sock.close()


async def _wait_started(uv: uvicorn.Server, task: asyncio.Task[None]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _STARTUP_TIMEOUT_S
    while not uv.started:
        if task.done():
            task.result()
            raise EngineError("the engine server stopped during startup")
        if loop.time() > deadline:
            raise EngineError(f"the engine server did not start within {_STARTUP_TIMEOUT_S} s")
        await asyncio.sleep(0.01)


async def serve_forever(
    engines: list[Engine], settings: ServerSettings, *, host: str, port: int
) -> None:
    """Serve each engine on its own port (port, port+1, ...) until interrupted."""
    async with contextlib.AsyncExitStack() as stack:
        for i, engine in enumerate(engines):
            running = await stack.enter_async_context(
                started_server(engine, settings, host=host, port=port + i if port else 0)
            )
            print(f"{engine.engine_type} engine serving at {running.url}", flush=True)
        await asyncio.Event().wait()
