"""Admission and spill over real sockets: saturation, caps, draining, failures, policy reload."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from router.helpers import (
    chat,
    hosted_spec,
    local_endpoints,
    metric,
    router,
    scrape,
    standin,
    wait_until,
)
from weir.router.backends import Endpoint
from weir.router.config import RouterPolicy, dump_policy
from weir.router.cost import hosted_input_bound


def _policy(url: str, **extra: object) -> RouterPolicy:
    base: dict[str, object] = {
        "concurrency_limit_by_pool": {"on-demand": 2},
        "hosted_enabled": True,
        "max_hosted_share": 1.0,
        "max_hosted_dollars_per_hour": 1000.0,
        "hosted": hosted_spec(url),
    }
    base.update(extra)
    return RouterPolicy.model_validate(base)


async def _open_stream(client: httpx.AsyncClient, url: str) -> httpx.Response:
    """Start a streaming request and wait for its head (the slot is taken)."""
    request = client.build_request("POST", url + "/v1/chat/completions", json=chat(stream=True))
    return await client.send(request, stream=True)


async def test_spill_at_saturation_and_not_before() -> None:
    async with (
        standin(delay_s=0.05, tokens=20) as local,
        standin() as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(local.url), _policy(hosted.url)) as (rt, _),
    ):
        first = await _open_stream(client, rt.url)
        second = await _open_stream(client, rt.url)
        assert hosted.stats.requests == 0  # below the limit: nothing spilled
        third = await client.post(rt.url + "/v1/chat/completions", json=chat())
        for resp in (first, second):
            assert resp.headers["x-weir-backend"] == "local"
            await resp.aread()
            await resp.aclose()
        after = await client.post(rt.url + "/v1/chat/completions", json=chat())
        text = await scrape(client, rt)
    assert third.headers["x-weir-backend"] == "hosted"
    assert json.loads(hosted.stats.bodies[0])["model"] == "hosted/big-model"
    assert after.headers["x-weir-backend"] == "local"
    assert (
        metric(text, "weir_router_spill_decisions_total", route="hosted", reason="saturated") == 1
    )
    assert metric(text, "weir_router_spill_decisions_total", route="local") == 3
    assert metric(text, "weir_router_hosted_spend_dollars_total") > 0


async def test_dollar_cap_refuses_with_retry_after() -> None:
    # a hosted request reserves its body's byte bound plus template overhead and 8 output
    # tokens at $1000/M; it costs $0.018 (usage: 10 + 8). The window holds one reservation
    # and a bit: after the first settles, the second does not fit.
    bound = hosted_input_bound(chat(), chat=True)
    assert bound is not None
    reserved = (bound + len("hosted/big-model") + 8) * 1000 / 1e6
    window = reserved + 0.009
    async with (
        standin(delay_s=0.05, tokens=20) as local,
        standin() as hosted,
        httpx.AsyncClient(timeout=10) as client,
    ):
        spec = hosted_spec(hosted.url, input=1000.0, cached=500.0, output=1000.0)
        policy = _policy(
            hosted.url,
            hosted=spec,
            concurrency_limit_by_pool={"on-demand": 1},
            max_hosted_dollars_per_hour=window * 60,  # per 60 s window
            max_waiting=0,
        )
        async with router(local_endpoints(local.url), policy) as (rt, _):
            busy = await _open_stream(client, rt.url)
            spilled = await client.post(rt.url + "/v1/chat/completions", json=chat())
            refused = await client.post(rt.url + "/v1/chat/completions", json=chat())
            await busy.aread()
            await busy.aclose()
            text = await scrape(client, rt)
    assert spilled.headers["x-weir-backend"] == "hosted"
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
    assert "dollar cap" in refused.json()["error"]["message"]
    assert metric(text, "weir_router_hosted_spend_dollars_total") == pytest.approx(0.018)
    assert metric(text, "weir_router_spill_decisions_total", reason="hosted_dollar_cap") == 1


async def test_waiting_request_gets_the_freed_local_slot() -> None:
    async with (
        standin(delay_s=0.02, tokens=10) as local,
        httpx.AsyncClient(timeout=10) as client,
        router(
            local_endpoints(local.url),
            RouterPolicy(concurrency_limit_by_pool={"on-demand": 1}, max_waiting=4),
        ) as (rt, _),
    ):
        busy = await _open_stream(client, rt.url)
        waiter = asyncio.create_task(client.post(rt.url + "/v1/chat/completions", json=chat()))
        await wait_until(lambda: rt.router.spill.waiting == 1, "the request to queue")
        await busy.aread()
        await busy.aclose()
        served = await waiter
        text = await scrape(client, rt)
    assert served.status_code == 200
    assert served.headers["x-weir-backend"] == "local"
    assert metric(text, "weir_router_spill_decisions_total", route="wait") == 1


async def test_hosted_share_cap() -> None:
    async with (
        standin(delay_s=0.05, tokens=10) as local,
        standin() as hosted,
        httpx.AsyncClient(timeout=10) as client,
    ):
        policy = _policy(
            hosted.url,
            concurrency_limit_by_pool={"on-demand": 1},
            max_hosted_share=0.5,
            max_waiting=0,
        )
        async with router(local_endpoints(local.url), policy) as (rt, _):
            busy = await _open_stream(client, rt.url)
            one = await client.post(rt.url + "/v1/chat/completions", json=chat())
            two = await client.post(rt.url + "/v1/chat/completions", json=chat())
            await busy.aread()
            await busy.aclose()
            text = await scrape(client, rt)
    assert one.headers["x-weir-backend"] == "hosted"  # share 0/1 before it
    assert two.status_code == 429  # share 1/2 = the cap
    assert metric(text, "weir_router_spill_decisions_total", reason="hosted_share_cap") == 1


async def test_draining_pod_gets_no_new_request_and_its_stream_finishes() -> None:
    async with (
        standin(delay_s=0.02, tokens=30) as spot,
        standin() as ondemand,
        httpx.AsyncClient(timeout=10) as client,
    ):
        endpoints = [
            Endpoint(spot.url, spot.url, "spot"),
            Endpoint(ondemand.url, ondemand.url, "od"),
        ]
        policy = RouterPolicy(concurrency_limit_by_pool={"spot": 4, "od": 4})
        async with router(endpoints, policy) as (rt, discovery):
            rt.router.backends.by_id[ondemand.url].in_flight = 1  # make spot the least loaded
            open_stream = await _open_stream(client, rt.url)
            rt.router.backends.by_id[ondemand.url].in_flight = 0
            assert spot.stats.requests == 1
            discovery.set(
                [
                    Endpoint(spot.url, spot.url, "spot", ready=False, draining=True),
                    Endpoint(ondemand.url, ondemand.url, "od"),
                ]
            )
            for _ in range(5):
                resp = await client.post(rt.url + "/v1/chat/completions", json=chat())
                assert resp.status_code == 200
            body = await open_stream.aread()
            await open_stream.aclose()
            discovery.set([Endpoint(ondemand.url, ondemand.url, "od")])
            await wait_until(lambda: spot.url not in rt.router.backends.by_id, "spot forgotten")
    assert spot.stats.requests == 1 and spot.stats.completed == 1
    assert ondemand.stats.requests == 5
    assert body.endswith(b"data: [DONE]\n\n")


async def test_policy_draining_pods_get_no_new_request(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("defaultConcurrencyLimit: 4\n")
    async with (
        standin(delay_s=0.02, tokens=20) as spot,
        standin() as ondemand,
        httpx.AsyncClient(timeout=10) as client,
    ):
        endpoints = [
            Endpoint(spot.url, spot.url, "spot", pod="engine-spot-0"),
            Endpoint(ondemand.url, ondemand.url, "od", pod="engine-od-0"),
        ]
        async with router(endpoints, policy_file=path) as (rt, _):
            await wait_until(lambda: rt.router.policy.default_concurrency_limit == 4, "policy")
            rt.router.backends.by_id[ondemand.url].in_flight = 1  # make spot the least loaded
            open_stream = await _open_stream(client, rt.url)
            rt.router.backends.by_id[ondemand.url].in_flight = 0
            # the spot notice: the operator names the pod in the policy
            path.write_text("defaultConcurrencyLimit: 4\ndrainingPods: [engine-spot-0]\n")
            await wait_until(lambda: "engine-spot-0" in rt.router.backends.draining_pods, "drain")
            served = [
                await client.post(rt.url + "/v1/chat/completions", json=chat()) for _ in range(4)
            ]
            body = await open_stream.aread()
            await open_stream.aclose()
            text = await scrape(client, rt)
    assert all(r.status_code == 200 for r in served)
    assert spot.stats.requests == 1 and ondemand.stats.requests == 4
    assert body.endswith(b"data: [DONE]\n\n")
    assert metric(text, "weir_router_replicas", state="draining") == 1


async def test_local_failure_before_first_token_spills_to_hosted() -> None:
    async with (
        standin(fail_status=500) as broken,
        standin() as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(broken.url), _policy(hosted.url)) as (rt, _),
    ):
        resp = await client.post(rt.url + "/v1/chat/completions", json=chat(stream=True))
        text = await scrape(client, rt)
    assert resp.status_code == 200
    assert resp.headers["x-weir-backend"] == "hosted"
    assert resp.content.count(b"data: [DONE]") == 1  # one answer, not two
    assert metric(text, "weir_router_spill_decisions_total", reason="local_failed") == 1
    assert metric(text, "weir_router_requests_total", backend="local", outcome="failed") == 1


async def test_policy_file_reload_applies_without_restart(tmp_path: Path) -> None:
    path = tmp_path / "policy.json"
    path.write_text(
        dump_policy(RouterPolicy(concurrency_limit_by_pool={"on-demand": 0}, max_waiting=0))
    )
    async with (
        standin() as local,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(local.url), policy_file=path) as (rt, _),
    ):
        await wait_until(lambda: rt.router.policy.max_waiting == 0, "the first policy")
        refused = await client.post(rt.url + "/v1/chat/completions", json=chat())
        path.write_text("concurrencyLimitByPool: {on-demand: 3}\nmaxWaiting: 0\n")
        await wait_until(
            lambda: rt.router.policy.concurrency_limit_by_pool == {"on-demand": 3}, "reload"
        )
        served = await client.post(rt.url + "/v1/chat/completions", json=chat())
        path.write_text("maxHostedShare: 7\n")  # invalid: ignored, last good policy stays
        await wait_until(
            lambda: "invalid" in _reloads(rt.router.metrics.render()), "invalid reload counted"
        )
        still = await client.post(rt.url + "/v1/chat/completions", json=chat())
    assert refused.status_code == 429
    assert served.status_code == 200 and still.status_code == 200


def _reloads(text: bytes) -> str:
    return "invalid" if b'weir_router_policy_reloads_total{result="invalid"} 1.0' in text else ""
