"""A hosted OpenAI-compatible API stand-in, with a switch that makes it fail.

Hosted APIs cannot be reached from here, so the demo and the scenarios run
the emulated engine with a load-independent latency (what a hosted API looks
like from outside), a bearer key, and per-token prices set on the
HostedEndpoint. It listens on the host end of the pods' veth, the one
address both the router pods (in the pods' namespace) and the host reach.
The switch turns every new request into a 500 (`error`) or into a request
that never answers (`timeout`), for the hosted-outage scenario. It bills as a
provider does (weir_lab.closedloop.billing): every one of `n` completions and
the tools' text.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Literal

from starlette.types import ASGIApp, Receive, Scope, Send

from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
from weir.refengine.serve import started_server
from weir.refengine.server import ServerSettings
from weir.refengine.timing import fixed_profile
from weir_lab.closedloop.billing import provider_billing

Mode = Literal["ok", "error", "timeout"]
_ERROR = b'{"error":{"message":"stand-in outage","type":"server_error","code":"outage"}}'


@dataclass(frozen=True)
class HostedLatency:
    """Seconds; the defaults are a mid-size hosted model's TTFT and ITL (serving-facts.md)."""

    ttft_p50_s: float = 0.4
    ttft_p95_s: float = 0.9
    itl_p50_s: float = 0.02
    itl_p95_s: float = 0.03


class HostedStandIn:
    """Runs in a thread of its own (its own event loop) until `stop`."""

    def __init__(
        self,
        host: str,
        *,
        model: str,
        api_key: str,
        latency: HostedLatency = HostedLatency(),
        port: int = 0,
    ) -> None:
        self.host, self.port, self.model, self.api_key = host, port, model, api_key
        self.latency = latency
        self.mode: Mode = "ok"
        self.seen: Counter[str] = Counter()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._stopped: asyncio.Event | None = None
        self.url = ""

    def _wrap(self, app: ASGIApp) -> ASGIApp:
        billed = provider_billing(app)

        async def switched(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not scope["path"].startswith("/v1/c"):
                await app(scope, receive, send)
                return
            mode = self.mode
            self.seen[mode] += 1
            if mode == "ok":
                await billed(scope, receive, send)
            elif mode == "error":
                headers = [(b"content-type", b"application/json")]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": _ERROR})
            else:  # a request that is never answered, until the client gives up
                while (await receive())["type"] != "http.disconnect":
                    pass

        return switched

    async def _serve(self, ready: Future[str]) -> None:
        lat = self.latency
        profile = fixed_profile(
            self.model, lat.ttft_p50_s, lat.ttft_p95_s, lat.itl_p50_s, lat.itl_p95_s
        )
        engine = EmulatedEngine(profile, EmulatedSettings(seed=7))
        settings = ServerSettings(model_name=self.model, api_key=self.api_key)
        self._stopped = asyncio.Event()
        async with started_server(
            engine, settings, host=self.host, port=self.port, wrap=self._wrap
        ) as running:
            ready.set_result(running.url)
            await self._stopped.wait()

    def start(self) -> HostedStandIn:
        self._thread.start()
        ready: Future[str] = Future()
        asyncio.run_coroutine_threadsafe(self._serve(ready), self._loop)
        self.url = ready.result(timeout=30)
        return self

    def stop(self) -> None:
        if self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._loop.call_soon_threadsafe(self._loop.call_later, 1.0, self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> HostedStandIn:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
