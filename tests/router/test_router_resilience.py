"""Resilience and security over real sockets: breaker, disconnects, limits, auth, secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from router.helpers import (
    MODEL,
    chat,
    engine,
    hosted_spec,
    local_endpoints,
    metric,
    router,
    router_settings,
    scrape,
    standin,
    wait_until,
)
from weir.router.config import RouterPolicy, read_secret, read_tokens
from weir.router.errors import ConfigError

KEY = "sk-test-SECRET-7f3a9c"


def _spill_all(url: str) -> RouterPolicy:
    return RouterPolicy.model_validate(
        {
            "default_concurrency_limit": 0,
            "hosted_enabled": True,
            "max_hosted_share": 1.0,
            "max_hosted_dollars_per_hour": 1000.0,
            "hosted": hosted_spec(url),
            "max_waiting": 0,
        }
    )


async def test_breaker_opens_and_recovers() -> None:
    settings = router_settings(breaker_failures=2, breaker_open_s=0.3)
    async with (
        standin(fail_status=503) as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router([], _spill_all(hosted.url), settings=settings) as (rt, _),
    ):
        failed = [await client.post(rt.url + "/v1/chat/completions", json=chat()) for _ in "ab"]
        opened = await client.post(rt.url + "/v1/chat/completions", json=chat())
        assert hosted.stats.requests == 2  # the open breaker kept the third away
        text = await scrape(client, rt)
        hosted.settings.fail_status = None  # the endpoint recovers
        breaker = rt.router.spill.breaker
        await wait_until(lambda: breaker.state(rt.router.clock()) == "half_open", "half-open")
        probe = await client.post(rt.url + "/v1/chat/completions", json=chat())
        closed = await client.post(rt.url + "/v1/chat/completions", json=chat())
    # nowhere to retry: the upstream's own answer is passed on
    assert [r.status_code for r in failed] == [503, 503]
    assert opened.status_code == 429
    assert "breaker" in opened.json()["error"]["message"]
    assert metric(text, "weir_router_hosted_breaker_open") == 1
    assert probe.status_code == 200 and closed.status_code == 200


async def test_client_disconnect_cancels_upstream() -> None:
    async with (
        standin(delay_s=0.02, tokens=200) as local,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(local.url)) as (rt, _),
    ):
        request = client.build_request(
            "POST", rt.url + "/v1/chat/completions", json=chat(max_tokens=200, stream=True)
        )
        resp = await client.send(request, stream=True)
        async for _ in resp.aiter_raw():
            break
        await resp.aclose()  # the client goes away mid-stream
        await wait_until(lambda: local.stats.disconnected == 1, "upstream cancelled")
        await wait_until(lambda: rt.router.backends.by_id[local.url].in_flight == 0, "slot freed")
        text = await scrape(client, rt)
    assert local.stats.completed == 0
    assert metric(text, "weir_router_requests_total", outcome="cancelled") == 1
    assert metric(text, "weir_router_tokens_total", usefulness="useful") == 0
    assert metric(text, "weir_router_in_flight_requests", backend="local") == 0


async def test_malformed_oversized_and_unauthenticated_requests(tmp_path: Path) -> None:
    tokens = tmp_path / "tokens"
    tokens.write_text("# clients\ngood-token\n")
    settings = router_settings(max_body_bytes=2048, client_tokens=read_tokens(tokens))
    auth = {"Authorization": "Bearer good-token"}
    async with (
        standin() as local,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(local.url), settings=settings) as (rt, _),
    ):
        url = rt.url + "/v1/chat/completions"
        anonymous = await client.post(url, json=chat())
        wrong = await client.post(url, json=chat(), headers={"Authorization": "Bearer nope"})
        bad_json = await client.post(url, content=b"{not json", headers=auth)
        no_messages = await client.post(url, json={"model": MODEL}, headers=auth)
        bad_max = await client.post(url, json=chat(max_tokens=-3), headers=auth)
        huge = await client.post(url, json=chat("x" * 5000), headers=auth)
        ok = await client.post(url, json=chat(), headers=auth)
        models = await client.get(rt.url + "/v1/models")
        text = await scrape(client, rt)
    assert anonymous.status_code == wrong.status_code == models.status_code == 401
    assert bad_json.status_code == 400 and "not valid JSON" in bad_json.json()["error"]["message"]
    assert no_messages.status_code == 400 and "messages" in no_messages.json()["error"]["message"]
    assert bad_max.status_code == 400
    assert huge.status_code == 413
    assert ok.status_code == 200
    assert local.stats.requests == 1
    assert metric(text, "weir_router_requests_total", backend="none", outcome="unauthorized") == 3
    assert metric(text, "weir_router_requests_total", backend="none", outcome="bad_request") == 3
    assert metric(text, "weir_router_requests_total", backend="none", outcome="too_large") == 1


async def test_first_token_timeout_answers_504() -> None:
    settings = router_settings(first_token_timeout_s=0.2)
    async with (
        standin(ttft_s=5.0) as slow,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(slow.url), settings=settings) as (rt, _),
    ):
        resp = await client.post(rt.url + "/v1/chat/completions", json=chat(stream=True))
        text = await scrape(client, rt)
    assert resp.status_code == 504
    assert metric(text, "weir_router_requests_total", outcome="timeout") == 1


async def test_idle_timeout_mid_stream_ends_with_an_error_event() -> None:
    settings = router_settings(idle_timeout_s=0.2)
    async with (
        standin(stall_after=3) as stalled,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(stalled.url), settings=settings) as (rt, _),
    ):
        resp = await client.post(rt.url + "/v1/chat/completions", json=chat(stream=True))
        text = await scrape(client, rt)
        await wait_until(lambda: stalled.stats.disconnected == 1, "the stalled upstream dropped")
    assert resp.status_code == 200  # the head was out before the stall
    last = resp.content.rstrip().rsplit(b"\n\n", 1)[-1]
    assert b"idle timeout" in last
    assert metric(text, "weir_router_requests_total", outcome="timeout") == 1
    assert metric(text, "weir_router_wasted_tokens_total", reason="timeout") == 3


async def test_duplicates_count_as_waste() -> None:
    async with (
        engine() as eng,
        httpx.AsyncClient(timeout=10) as client,
        router(local_endpoints(eng.url)) as (rt, _),
    ):
        url = rt.url + "/v1/chat/completions"
        for key in ("a", "a", "b"):
            resp = await client.post(url, json=chat(max_tokens=4), headers={"Idempotency-Key": key})
            assert resp.status_code == 200
        await client.post(url, json=chat(max_tokens=4), headers={"X-Request-Id": "b"})
        text = await scrape(client, rt)
    assert metric(text, "weir_router_duplicate_requests_total") == 2
    assert metric(text, "weir_router_wasted_tokens_total", reason="duplicate") == 8
    assert metric(text, "weir_router_tokens_total", kind="output", usefulness="useful") == 8


async def test_hosted_key_never_leaks(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n")
    settings = router_settings(
        hosted_key=read_secret(key_file, "hosted API key"), breaker_failures=1
    )
    caplog.set_level(logging.DEBUG)
    async with (
        engine(api_key=KEY, model="hosted/big-model") as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router([], _spill_all(hosted.url), settings=settings) as (rt, _),
    ):
        served = await client.post(rt.url + "/v1/chat/completions", json=chat(stream=True))
        hosted.server.settings = hosted.server.settings.model_copy(update={"api_key": "rotated"})
        failed = await client.post(rt.url + "/v1/chat/completions", json=chat())
        refused = await client.post(rt.url + "/v1/chat/completions", json=chat())
        text = await scrape(client, rt)
    assert served.status_code == 200 and served.headers["x-weir-backend"] == "hosted"
    assert failed.status_code == 401 and refused.status_code in (401, 429)
    seen = [
        text,
        caplog.text,
        repr(settings),
        str(settings),
        settings.model_dump_json(),
        failed.text,
        refused.text,
        *capsys.readouterr(),
    ]
    assert all(KEY not in s for s in seen)
    with pytest.raises(ConfigError, match="cannot read hosted API key"):
        read_secret(tmp_path / "missing", "hosted API key")
    (tmp_path / "blank").write_text("\n")
    with pytest.raises(ConfigError, match="empty"):
        read_secret(tmp_path / "blank", "hosted API key")


async def test_rotated_hosted_key_applies_without_restart(tmp_path: Path) -> None:
    key_file = tmp_path / "api-key"
    key_file.write_text("key-one\n")
    settings = router_settings(hosted_key=read_secret(key_file, "key"))
    async with (
        engine(api_key="key-one", model="hosted/big-model") as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router([], _spill_all(hosted.url), settings=settings, key_file=key_file) as (rt, _),
    ):
        first = await client.post(rt.url + "/v1/chat/completions", json=chat())
        hosted.server.settings = hosted.server.settings.model_copy(update={"api_key": "key-two"})
        key_file.write_text("key-two\n")  # the Secret is rotated in place
        await wait_until(lambda: rt.router.hosted_key_bytes() == b"key-two", "the new key")
        second = await client.post(rt.url + "/v1/chat/completions", json=chat())
    assert first.status_code == 200 and second.status_code == 200


async def test_hosted_429_throttles_spill_for_its_retry_after() -> None:
    async with (
        engine(model="hosted/big-model", rate_limit_rps=0.2) as hosted,
        httpx.AsyncClient(timeout=10) as client,
        router([], _spill_all(hosted.url)) as (rt, _),
    ):
        url = rt.url + "/v1/chat/completions"
        served = await client.post(url, json=chat())
        limited = await client.post(url, json=chat())  # the endpoint's own 429, passed on
        throttled = await client.post(url, json=chat())  # the router does not even try
        text = await scrape(client, rt)
    assert served.status_code == 200
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    assert throttled.status_code == 429
    assert "hosted throttled" in throttled.json()["error"]["message"]
    assert metric(text, "weir_router_requests_total", backend="hosted") == 2
    assert metric(text, "weir_router_spill_decisions_total", reason="hosted_throttled") == 1
    assert metric(text, "weir_router_hosted_breaker_open") == 0  # a 429 is not a failure
