"""The emulated engine over real HTTP on 127.0.0.1: API, usage, metrics, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from engines.engine_helpers import metric_value, read_sse, wait_for
from weir.api.profile import EngineProfile
from weir.refengine import tokenizer
from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
from weir.refengine.serve import started_server
from weir.refengine.server import ServerSettings
from weir.refengine.timing import fixed_profile

SETTINGS = ServerSettings(model_name="test/tiny-model")


async def test_streaming_chat_with_usage(small_profile: EngineProfile) -> None:
    async with (
        started_server(EmulatedEngine(small_profile), SETTINGS) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        body = {
            "model": "test/tiny-model",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": 7,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        async with client.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            assert resp.headers["content-type"].startswith("text/event-stream")
            events = await read_sse(resp)
    assert events[-1] == "[DONE]"
    chunks = [e for e in events if isinstance(e, dict)]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(content) == 7
    assert content[-1]["choices"][0]["finish_reason"] == "length"
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    prompt_len = len("<|user|>\nhello\n<|assistant|>\n")
    assert usage_chunk["usage"] == {
        "prompt_tokens": prompt_len,
        "completion_tokens": 7,
        "total_tokens": prompt_len + 7,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert all(c["usage"] is None for c in chunks[:-1])


async def test_stream_without_include_usage_has_no_usage_chunk(
    small_profile: EngineProfile,
) -> None:
    async with (
        started_server(EmulatedEngine(small_profile), SETTINGS) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        body = {"prompt": "abc", "max_tokens": 3, "stream": True}
        async with client.stream("POST", "/v1/completions", json=body) as resp:
            events = await read_sse(resp)
    chunks = [e for e in events if isinstance(e, dict)]
    assert len(chunks) == 3
    assert all(c["object"] == "text_completion" and c["usage"] is None for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks) == "The"


async def test_non_streaming_completion_models_health(small_profile: EngineProfile) -> None:
    async with (
        started_server(EmulatedEngine(small_profile), SETTINGS) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        resp = await client.post("/v1/completions", json={"prompt": "x" * 100, "max_tokens": 5})
        models = await client.get("/v1/models")
        health = await client.get("/health")
        version = await client.get("/version")
    assert resp.status_code == 200
    answer = resp.json()
    assert answer["object"] == "text_completion"
    assert answer["choices"][0]["text"] == "The q"
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"]["prompt_tokens"] == 100
    assert answer["usage"]["completion_tokens"] == 5
    assert models.json()["data"][0]["id"] == "test/tiny-model"
    assert health.status_code == 200
    assert version.json() == {"version": "weir-emulated"}


async def test_metrics_move_with_load(small_profile: EngineProfile) -> None:
    async with (
        started_server(EmulatedEngine(small_profile), SETTINGS) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        labels = {"model_name": "test/tiny-model", "engine_type": "emulated"}
        body = {"prompt": "hi", "max_tokens": 40, "stream": True}

        async def one() -> None:
            async with client.stream("POST", "/v1/completions", json=body) as resp:
                await read_sse(resp)

        tasks = [asyncio.create_task(one()) for _ in range(3)]
        await wait_for(lambda: srv.engine.stats().running == 3)
        during = (await client.get("/prometheus/metrics")).text
        await asyncio.gather(*tasks)
        after = (await client.get("/prometheus/metrics")).text
    assert metric_value(during, "trtllm_num_requests_running", **labels) == 3
    assert metric_value(during, "trtllm_kv_cache_utilization", **labels) > 0
    assert metric_value(after, "trtllm_num_requests_running", **labels) == 0
    assert metric_value(after, "trtllm_generation_tokens_total", **labels) == 120
    assert metric_value(after, "trtllm_prompt_tokens_total", **labels) == 6
    assert metric_value(after, "trtllm_time_to_first_token_seconds_count", **labels) == 3
    assert metric_value(after, "trtllm_time_per_output_token_seconds_count", **labels) == 3
    assert metric_value(after, "trtllm_e2e_request_latency_seconds_count", **labels) == 3
    success = metric_value(after, "trtllm_request_success_total", finished_reason="length")
    assert success == 3


async def test_full_queue_answers_503_quickly(small_profile: EngineProfile) -> None:
    engine = EmulatedEngine(small_profile, EmulatedSettings(max_batch=1, max_waiting=1))
    async with started_server(engine, SETTINGS) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        body = {"prompt": "hi", "max_tokens": 200, "stream": True}

        async def one() -> None:
            async with c.stream("POST", "/v1/completions", json=body) as resp:
                await read_sse(resp)

        tasks = [asyncio.create_task(one()) for _ in range(2)]
        await wait_for(lambda: engine.stats().running == 1 and engine.stats().waiting == 1)
        refused = await c.post("/v1/completions", json=body, timeout=2.0)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await wait_for(lambda: engine.stats().running == 0 and engine.stats().waiting == 0)
        metrics = (await c.get("/prometheus/metrics")).text
    assert refused.status_code == 503
    error = refused.json()["error"]
    assert "queue is full" in error["message"]
    assert error["type"] == "engine_overloaded"
    assert metric_value(metrics, "weir_engine_requests_rejected_total", reason="queue_full") == 1


async def test_client_disconnect_frees_the_slot(small_profile: EngineProfile) -> None:
    engine = EmulatedEngine(small_profile, EmulatedSettings(max_batch=1, max_waiting=4))
    async with started_server(engine, SETTINGS) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        body = {"prompt": "hi", "max_tokens": 10_000}
        slow = asyncio.create_task(c.post("/v1/completions", json=body))
        await wait_for(lambda: engine.stats().running == 1)
        slow.cancel()
        await asyncio.gather(slow, return_exceptions=True)
        await wait_for(lambda: engine.stats().running == 0, timeout_s=2.0)
        quick = await c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 2})
    assert quick.status_code == 200


async def test_hosted_standin_key_rate_limit_and_cache() -> None:
    profile = fixed_profile("hosted/model", 0.01, 0.02, 0.002, 0.003)
    engine = EmulatedEngine(profile, EmulatedSettings(prefix_caching=True))
    settings = ServerSettings(
        model_name="hosted/model", api_key="sk-test", rate_limit_rps=0.5, rate_limit_burst=2
    )
    prompt = "p" * 1500
    async with started_server(engine, settings) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        body = {"prompt": prompt, "max_tokens": 2}
        unauthorized = await c.post("/v1/completions", json=body)
        auth = {"Authorization": "Bearer sk-test"}
        first = await c.post("/v1/completions", json=body, headers=auth)
        second = await c.post("/v1/completions", json=body, headers=auth)
        limited = await c.post("/v1/completions", json=body, headers=auth)
    assert unauthorized.status_code == 401
    assert first.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 0
    assert second.json()["usage"]["prompt_tokens_details"]["cached_tokens"] == 1408
    assert limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"


async def test_bad_requests_are_400(small_profile: EngineProfile) -> None:
    async with (
        started_server(EmulatedEngine(small_profile), SETTINGS) as srv,
        httpx.AsyncClient(base_url=srv.url) as client,
    ):
        no_messages = await client.post("/v1/chat/completions", json={"messages": []})
        not_json = await client.post("/v1/completions", content=b"{")
        too_long = await client.post(
            "/v1/completions", json={"prompt": "x", "max_tokens": 1_000_000}
        )
    assert [r.status_code for r in (no_messages, not_json, too_long)] == [400, 400, 400]
    assert "max_model_len" in too_long.json()["error"]["message"]


async def test_closing_a_stream_frees_the_slot(small_profile: EngineProfile) -> None:
    engine = EmulatedEngine(small_profile, EmulatedSettings(max_batch=1, max_waiting=0))
    async with started_server(engine, SETTINGS) as srv, httpx.AsyncClient(base_url=srv.url) as c:
        body = {"prompt": "hi", "max_tokens": 10_000, "stream": True}
        async with c.stream("POST", "/v1/completions", json=body) as resp:
            async for line in resp.aiter_lines():
                if line.startswith("data: "):
                    break  # one token, then hang up
        await wait_for(lambda: engine.stats().running == 0, timeout_s=2.0)
        again = await c.post("/v1/completions", json={"prompt": "hi", "max_tokens": 1})
        metrics = (await c.get("/prometheus/metrics")).text
    assert again.status_code == 200
    assert metric_value(metrics, "trtllm_request_success_total", finished_reason="length") == 1


async def _declared_only(url: str, length: int) -> bytes:
    """Declare a body of `length` bytes, send one, and read the answer (httpx would not)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n{" % length
    )
    async with asyncio.timeout(10):
        answer = await reader.read()  # the engine answers and closes
    writer.close()
    return answer


def _is_error(resp: httpx.Response, status: int) -> bool:
    error = resp.json().get("error")
    return resp.status_code == status and isinstance(error, dict) and "message" in error


async def test_hostile_bodies_are_refused_cheaply(
    small_profile: EngineProfile, monkeypatch: pytest.MonkeyPatch
) -> None:
    # on 0e4ffea: a 100 MB body was read whole, a 10 MB prompt tokenized before its 400,
    # deep nesting was a plain-text 500 with a traceback, unknown routes plain-text 404s
    encoded: list[int] = []
    real_encode = tokenizer.encode

    def encode(text: str) -> list[int]:
        encoded.append(len(text))
        return real_encode(text)

    monkeypatch.setattr(tokenizer, "encode", encode)
    settings = ServerSettings(model_name="test/tiny-model", max_body_bytes=16 << 20)
    async with (
        started_server(EmulatedEngine(small_profile), settings) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=30) as client,
    ):
        declared = await _declared_only(srv.url, 100_000_000)
        long_prompt = await client.post(
            "/v1/completions", json={"prompt": "a" * (10 << 20), "max_tokens": 1}
        )
        deep = await client.post(
            "/v1/chat/completions", content=b'{"messages":' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        )
        not_found = await client.get("/nope")
        wrong_method = await client.get("/v1/chat/completions")
        served = await client.post("/v1/completions", json={"prompt": "abc", "max_tokens": 2})
    assert declared.startswith(b"HTTP/1.1 413 ") and b'"error"' in declared
    assert _is_error(long_prompt, 400) and "max_model_len" in long_prompt.json()["error"]["message"]
    assert encoded == [3]  # only the served prompt was tokenized
    assert _is_error(deep, 400)
    assert _is_error(not_found, 404) and _is_error(wrong_method, 405)
    assert served.status_code == 200


async def test_body_over_the_limit_is_refused_as_it_arrives(small_profile: EngineProfile) -> None:
    settings = ServerSettings(model_name="test/tiny-model", max_body_bytes=1 << 20)

    async def body() -> AsyncIterator[bytes]:
        for _ in range(100):  # 100 MB, chunked: no Content-Length to refuse it by
            yield b"a" * (1 << 20)

    async with (
        started_server(EmulatedEngine(small_profile), settings) as srv,
        httpx.AsyncClient(base_url=srv.url, timeout=30) as client,
    ):
        try:
            resp = await client.post("/v1/completions", content=body())
            status = resp.status_code
        except httpx.HTTPError:
            status = 0  # closed while httpx was still sending: refused all the same
        healthy = await client.get("/health")
    assert status in (413, 0)
    assert healthy.status_code == 200
