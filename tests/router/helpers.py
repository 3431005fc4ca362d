"""Helpers of the router tests: start engines and routers on loopback, read SSE, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx

from support.promtext import metric  # noqa: F401
from weir.api.hosted import HostedEndpointSpec, HostedLatency
from weir.api.profile import EngineProfile, load_profile
from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
from weir.refengine.serve import RunningEngine, started_server
from weir.refengine.server import ServerSettings
from weir.refengine.timing import fixed_profile
from weir.router.backends import Endpoint, StaticDiscovery
from weir.router.config import PolicyFile, RouterPolicy, RouterSettings
from weir.router.server import RunningRouter, build_router, started_router
from weir.router.upstream import Upstream
from weir_lab.standin import RunningStandin, StandinSettings, started_standin

MODEL = "test/tiny-model"
LOOPBACK = frozenset({"127.0.0.1"})
PROFILE = Path(__file__).parents[1] / "engines" / "data" / "small-profile.yaml"


def small_profile() -> EngineProfile:
    return load_profile(PROFILE)


def fast_profile(itl_s: float = 0.002, ttft_s: float = 0.005) -> EngineProfile:
    return fixed_profile(MODEL, ttft_s, ttft_s * 1.2, itl_s, itl_s * 1.2)


@contextlib.asynccontextmanager
async def engine(
    profile: EngineProfile | None = None,
    *,
    api_key: str | None = None,
    max_batch: int = 64,
    rate_limit_rps: float | None = None,
    model: str = MODEL,
) -> AsyncIterator[RunningEngine]:
    settings = ServerSettings(model_name=model, api_key=api_key, rate_limit_rps=rate_limit_rps)
    emulated = EmulatedEngine(
        profile or fast_profile(), EmulatedSettings(max_batch=max_batch, seed=1)
    )
    async with started_server(emulated, settings) as srv:
        yield srv


def hosted_spec(url: str, **prices: float) -> HostedEndpointSpec:
    return HostedEndpointSpec(
        base_url=url + "/v1",
        model="hosted/big-model",
        dollars_per_million_input_tokens=prices.get("input", 1.0),
        dollars_per_million_cached_input_tokens=prices.get("cached", 0.5),
        dollars_per_million_output_tokens=prices.get("output", 2.0),
        latency=HostedLatency(ttft_p50_seconds=0.1, ttft_p95_seconds=0.2, itl_seconds=0.01),
        requests_per_minute=100_000,
    )


def local_endpoints(*urls: str, pool: str = "on-demand") -> list[Endpoint]:
    return [Endpoint(id=u, url=u, pool=pool) for u in urls]


def router_settings(**fields: Any) -> RouterSettings:
    """Settings of a test router: open to any client, plain-http hosted on loopback allowed."""
    fields.setdefault("allow_insecure_hosted", LOOPBACK)
    if "client_tokens" not in fields:
        fields.setdefault("allow_anonymous", True)
    return RouterSettings(model_name=MODEL, **fields)


@contextlib.asynccontextmanager
async def router(
    endpoints: list[Endpoint],
    policy: RouterPolicy | None = None,
    *,
    settings: RouterSettings | None = None,
    policy_file: Path | None = None,
    upstream: Upstream | None = None,
    key_file: Path | None = None,
) -> AsyncIterator[tuple[RunningRouter, StaticDiscovery]]:
    discovery = StaticDiscovery(endpoints)
    live = build_router(settings or router_settings(), policy or RouterPolicy(), upstream)
    pf = PolicyFile(policy_file) if policy_file is not None else None
    async with started_router(live, discovery, policy_file=pf, key_file=key_file) as running:
        yield running, discovery


def chat(content: str = "hello", max_tokens: int = 8, **extra: Any) -> dict[str, Any]:
    return {
        "model": MODEL,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        **extra,
    }


def sse_events(raw: bytes) -> list[Any]:
    """Parsed events of an SSE body (JSON objects and the string "[DONE]")."""
    out: list[Any] = []
    for event in raw.split(b"\n\n"):
        event = event.strip()
        if not event.startswith(b"data:"):
            continue
        payload = event[5:].strip()
        out.append("[DONE]" if payload == b"[DONE]" else json.loads(payload))
    return out


async def scrape(client: httpx.AsyncClient, rt: RunningRouter) -> str:
    """The router's metrics, from its metrics port."""
    assert rt.metrics_url is not None
    resp = await client.get(rt.metrics_url + "/metrics")
    assert resp.status_code == 200
    return resp.text


async def wait_until(predicate: Callable[[], bool], what: str, timeout_s: float = 5.0) -> None:
    """Bounded poll (no bare sleeps): fail with `what` when the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.005)


@contextlib.asynccontextmanager
async def standin(**settings: Any) -> AsyncIterator[RunningStandin]:
    async with started_standin(StandinSettings(**settings)) as srv:
        yield srv
