"""Pass-through over real sockets: byte-exact streams and bodies, usage strip, accounting."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from router.helpers import (
    MODEL,
    chat,
    engine,
    local_endpoints,
    metric,
    router,
    router_settings,
    scrape,
    sse_events,
    standin,
)
from weir.api.slo import SLO
from weir.planner.types import MIX_BOUNDS
from weir.router.config import RouterPolicy
from weir.router.rawhttp import RawUpstream
from weir.router.upstream import HttpxUpstream, Upstream
from weir_lab.standin import usage_event


def _client(kind: str) -> Upstream:
    """The lean client (engine pods) or httpx (https hosted endpoints): same bytes out."""
    timeouts = {"connect_timeout_s": 2.0, "idle_timeout_s": 5.0}
    return RawUpstream(**timeouts) if kind == "raw" else HttpxUpstream(**timeouts)


@pytest.mark.parametrize("client_kind", ["raw", "httpx"])
async def test_stream_byte_exact_when_usage_asked(client_kind: str) -> None:
    body = chat(max_tokens=16, stream=True, stream_options={"include_usage": True})
    async with standin() as up, httpx.AsyncClient(timeout=10) as client:
        direct = await client.post(up.url + "/v1/chat/completions", json=body)
        async with router(local_endpoints(up.url), upstream=_client(client_kind)) as (rt, _):
            via = await client.post(rt.url + "/v1/chat/completions", json=body)
            text = await scrape(client, rt)
    assert via.status_code == 200
    assert via.headers["x-weir-backend"] == "local"
    assert via.content == direct.content
    assert usage_event(10, 16, MODEL) in via.content
    assert metric(text, "weir_router_tokens_total", kind="output", usefulness="useful") == 16
    assert metric(text, "weir_router_tokens_total", kind="input", usefulness="useful") == 10
    # the planner's prompt mix: one request of 10 uncached prompt tokens
    assert metric(text, "weir_router_prefill_tokens_count") == 1
    assert metric(text, "weir_router_prefill_tokens_sum") == 10
    assert metric(text, "weir_router_prefill_tokens_bucket", le=str(MIX_BOUNDS[0])) == 1


async def test_stream_usage_chunk_stripped_when_not_asked() -> None:
    asked = chat(max_tokens=16, stream=True, stream_options={"include_usage": True})
    plain = chat(max_tokens=16, stream=True)
    async with standin() as up, httpx.AsyncClient(timeout=10) as client:
        with_usage = (await client.post(up.url + "/v1/chat/completions", json=asked)).content
        async with router(local_endpoints(up.url)) as (rt, _):
            via = await client.post(rt.url + "/v1/chat/completions", json=plain)
            text = await scrape(client, rt)
    # the router asked upstream for usage, then cut exactly that event out
    assert json.loads(up.stats.bodies[-1])["stream_options"] == {"include_usage": True}
    assert via.content == with_usage.replace(usage_event(10, 16, MODEL), b"")
    assert b'"usage":{' not in via.content
    assert metric(text, "weir_router_tokens_total", kind="output") == 16


@pytest.mark.parametrize("client_kind", ["raw", "httpx"])
async def test_non_streaming_byte_exact(client_kind: str) -> None:
    body = chat(max_tokens=5)
    async with standin() as up, httpx.AsyncClient(timeout=10) as client:
        direct = await client.post(up.url + "/v1/chat/completions", json=body)
        async with router(local_endpoints(up.url), upstream=_client(client_kind)) as (rt, _):
            via = await client.post(rt.url + "/v1/chat/completions", json=body)
            text = await scrape(client, rt)
    assert via.status_code == 200
    assert via.content == direct.content
    assert via.headers["content-type"] == "application/json"
    assert metric(text, "weir_router_tokens_total", kind="output") == 5
    assert metric(text, "weir_router_ttft_seconds_count", backend="local") == 1


async def test_emulated_engine_chat_and_completions() -> None:
    async with (
        engine() as eng,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(eng.url)) as (rt, _),
    ):
        chat_resp = await client.post(
            rt.url + "/v1/chat/completions", json=chat(max_tokens=7, stream=True)
        )
        done = await client.post(
            rt.url + "/v1/completions", json={"prompt": "abc", "max_tokens": 3, "stream": True}
        )
        models = (await client.get(rt.url + "/v1/models")).json()
        text = await scrape(client, rt)
    events = sse_events(chat_resp.content)
    assert events[-1] == "[DONE]"
    assert all(e == "[DONE]" or e["usage"] is None for e in events)
    assert "".join(e["choices"][0]["text"] for e in sse_events(done.content)[:-1]) == "The"
    assert models["data"][0]["id"] == "test/tiny-model"
    assert metric(text, "weir_router_tokens_total", kind="output") == 10
    assert metric(text, "weir_router_requests_total", outcome="completed") == 2


async def test_lost_usage_falls_back_to_counting_events() -> None:
    async with (
        standin(cut_after=5) as up,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(up.url)) as (rt, _),
    ):
        via = await client.post(
            rt.url + "/v1/chat/completions", json=chat(max_tokens=16, stream=True)
        )
        text = await scrape(client, rt)
    events = sse_events(via.content)
    assert "error" in events[-1]  # the stream ends with an error event, not [DONE]
    assert len([e for e in events if isinstance(e, dict) and e.get("choices")]) == 6
    assert metric(text, "weir_router_wasted_tokens_total", reason="failed") == 5
    assert metric(text, "weir_router_requests_total", outcome="failed") == 1


async def test_health_ready_and_unknown_routes() -> None:
    async with (
        httpx.AsyncClient(timeout=10) as client,
        router([], RouterPolicy(max_waiting=0)) as (rt, _),
    ):
        assert (await client.get(rt.url + "/healthz")).status_code == 200
        assert (await client.get(rt.url + "/readyz")).status_code == 503
        assert (await client.get(rt.url + "/nope")).status_code == 404
        assert (await client.get(rt.url + "/v1/chat/completions")).status_code == 405
        empty = await client.post(rt.url + "/v1/chat/completions", json=chat())
    assert empty.status_code == 429
    assert "Retry-After" in empty.headers


async def test_slow_client_gets_every_byte() -> None:
    """A long stream to a client that stalls: the router pauses the upstream, loses nothing."""
    body = chat(max_tokens=100_000, stream=True, stream_options={"include_usage": True})
    async with standin() as up, httpx.AsyncClient(timeout=30) as client:
        direct = await client.post(up.url + "/v1/chat/completions", json=body)
        async with router(local_endpoints(up.url)) as (rt, _):
            request = client.build_request("POST", rt.url + "/v1/chat/completions", json=body)
            resp = await client.send(request, stream=True)
            parts = []
            async for part in resp.aiter_raw():
                if not parts:
                    await asyncio.sleep(0.3)  # a slow reader: the socket buffers fill up
                parts.append(part)
            await resp.aclose()
            text = await scrape(client, rt)
    assert b"".join(parts) == direct.content
    assert metric(text, "weir_router_tokens_total", kind="output") == 100_000


@pytest.mark.parametrize("rule", ["mean", "per_token"])
async def test_a_stall_mid_stream_costs_its_tokens_under_the_per_token_rule(rule: str) -> None:
    """Ten tokens 20 ms apart with one 0.3 s pause before the sixth: by the mean pace
    (about 53 ms) every token is on time; judged per token (ITL target 0.1 s) the token
    after the pause is late (and any read that came with it: a burst after a stall is
    judged by its tokens' share of the gap)."""
    policy = RouterPolicy(slo=SLO(ttft_seconds=1.0, itl_seconds=0.1))
    async with (
        standin(tokens=10, delay_s=0.02, pause_after=5, pause_s=0.3) as up,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(up.url), policy, settings=router_settings(itl_rule=rule)) as (rt, _),
    ):
        body = chat(max_tokens=10, stream=True, stream_options={"include_usage": True})
        via = await client.post(rt.url + "/v1/chat/completions", json=body)
        assert via.status_code == 200
        text = await scrape(client, rt)
    useful = metric(text, "weir_router_tokens_total", kind="output", usefulness="useful")
    late = metric(text, "weir_router_wasted_tokens_total", reason="late")
    assert useful + late == 10
    if rule == "mean":
        assert late == 0
    else:
        assert 1 <= late <= 5  # the token after the pause, and at most its read's burst
