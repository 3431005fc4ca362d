"""The OpenAI surface of the router and the reference engine, read by the official client.

Over real HTTP on 127.0.0.1, three ways a client meets weir: the engine
alone, a router in front of it, and a router that spills everything to a
hosted endpoint (an engine serving another model's name, wrapped to send
the headers a hosted provider sends). Each must look like OpenAI to the
`openai` package: answers name the deployment's model, unknown models are
`NotFoundError` with code `model_not_found`, bad requests are
`BadRequestError` with a string code and the field at fault, models can be
listed and retrieved, and every answer has an `x-request-id`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from router.helpers import (
    MODEL,
    engine,
    fast_profile,
    hosted_spec,
    local_endpoints,
    router,
    router_settings,
)
from weir.refengine.emulated import EmulatedEngine, EmulatedSettings
from weir.refengine.serve import started_server
from weir.refengine.server import ServerSettings
from weir.router.config import RouterPolicy
from weir.router.sse import StreamScanner, served_model

ALIAS = "tiny"
UNKNOWN = "no/such-model"
PROVIDER_HEADERS = [
    (b"openai-organization", b"acme-corp"),
    (b"openai-processing-ms", b"12"),
    (b"openai-version", b"2020-10-01"),
    (b"x-ratelimit-remaining-requests", b"99"),
    (b"x-ratelimit-reset-tokens", b"6ms"),
    (b"cf-ray", b"8f00-AMS"),
    (b"cf-cache-status", b"DYNAMIC"),
    (b"set-cookie", b"__cf_bm=secret; path=/"),
    (b"strict-transport-security", b"max-age=31536000"),
    (b"x-request-id", b"req_provider"),
]
TARGETS = ("engine", "router", "hosted")


def _as_provider(app: ASGIApp) -> ASGIApp:
    """The engine's app answering with a hosted provider's headers as well."""

    async def provider(scope: Scope, receive: Receive, send: Send) -> None:
        async def send_more(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message["headers"], *PROVIDER_HEADERS]}
            await send(message)

        await app(scope, receive, send_more)

    return provider


@contextlib.asynccontextmanager
async def _served(target: str) -> AsyncIterator[str]:
    """The base URL of one way of serving MODEL (see the module)."""
    if target == "engine":
        async with engine() as eng:
            yield eng.url
        return
    if target == "router":
        settings = router_settings(model_aliases=frozenset({ALIAS}))
        async with engine() as eng, router(local_endpoints(eng.url), settings=settings) as (rt, _):
            yield rt.url
        return
    hosted = EmulatedEngine(fast_profile(), EmulatedSettings(seed=1))
    provider = ServerSettings(model_name="hosted/big-model")
    async with started_server(hosted, provider, wrap=_as_provider) as srv:
        spill_all = RouterPolicy.model_validate(
            {
                "hosted_enabled": True,
                "max_hosted_share": 1.0,
                "max_hosted_dollars_per_hour": 1000.0,
                "hosted": hosted_spec(srv.url),
            }
        )
        async with router([], spill_all) as (rt, _):
            yield rt.url


@pytest.fixture(params=TARGETS)
async def target(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, str]]:
    """(which way, base URL)."""
    async with _served(request.param) as url:
        yield request.param, url


@contextlib.asynccontextmanager
async def _client(url: str) -> AsyncIterator[openai.AsyncOpenAI]:
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="unused", max_retries=0)
    try:
        yield client
    finally:
        await client.close()


def _hi() -> list[Any]:
    return [{"role": "user", "content": "hello"}]


async def test_completions_streams_and_models_as_the_openai_client_reads_them(
    target: tuple[str, str],
) -> None:
    async with _client(target[1]) as client:
        answer = await client.chat.completions.create(model=MODEL, messages=_hi(), max_tokens=4)
        stream = await client.chat.completions.create(
            model=MODEL,
            messages=_hi(),
            max_tokens=5,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = [chunk async for chunk in stream]
        text = await client.completions.create(model=MODEL, prompt="hello", max_tokens=3)
        listed = [model.id async for model in client.models.list()]
        retrieved = await client.models.retrieve(MODEL)
    assert answer.model == MODEL and answer.choices[0].finish_reason == "length"
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    assert {chunk.model for chunk in chunks} == {MODEL}  # the hosted provider's name is hidden
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "length"
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.model == MODEL and text.object == "text_completion"
    assert listed[0] == MODEL
    assert retrieved.id == MODEL and retrieved.object == "model"


async def test_errors_are_openai_error_objects(target: tuple[str, str]) -> None:
    async with _client(target[1]) as client:
        with pytest.raises(openai.NotFoundError) as unknown:
            await client.chat.completions.create(model=UNKNOWN, messages=_hi(), max_tokens=2)
        with pytest.raises(openai.NotFoundError) as not_listed:
            await client.models.retrieve(UNKNOWN)
        with pytest.raises(openai.BadRequestError) as no_messages:
            await client.chat.completions.create(model=MODEL, messages=[], max_tokens=2)
        with pytest.raises(openai.BadRequestError) as zero_tokens:
            await client.chat.completions.create(model=MODEL, messages=_hi(), max_tokens=0)
    assert unknown.value.code == "model_not_found" and unknown.value.param == "model"
    assert not_listed.value.code == "model_not_found"
    for refused, param in ((no_messages, "messages"), (zero_tokens, "max_tokens")):
        assert isinstance(refused.value.code, str) and refused.value.param == param
    for refused in (unknown, not_listed, no_messages, zero_tokens):
        error = refused.value.response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}
        assert error["type"] == "invalid_request_error" and error["message"]
        assert "pydantic" not in error["message"] and "\n" not in error["message"]


async def test_request_ids_allow_headers_and_no_provider_headers(
    target: tuple[str, str],
) -> None:
    kind, base_url = target
    chat_url = base_url + "/v1/chat/completions"
    body = {"model": MODEL, "messages": _hi(), "max_tokens": 2}
    async with httpx.AsyncClient(timeout=10) as client:
        echoed = await client.post(chat_url, json=body, headers={"x-request-id": "client-id.1"})
        fresh = await client.post(chat_url, json=body)
        odd = await client.post(chat_url, json=body, headers={"x-request-id": "has spaces"})
        streamed = await client.post(chat_url, json={**body, "stream": True})
        wrong_method = await client.get(chat_url)
        models_post = await client.post(base_url + "/v1/models")
        no_route = await client.get(base_url + "/v1/nope")
    assert echoed.status_code == 200 and echoed.headers["x-request-id"] == "client-id.1"
    if kind == "hosted":  # the provider's headers were sent, and the router dropped them
        assert {echoed.headers["x-weir-backend"], streamed.headers["x-weir-backend"]} == {kind}
    generated = {fresh.headers["x-request-id"], odd.headers["x-request-id"]}
    assert len(generated) == 2 and all(len(rid) == 32 for rid in generated)
    for answer in (echoed, fresh, streamed):
        names = set(answer.headers.keys())
        leaked = {name.decode() for name, _ in PROVIDER_HEADERS} & names - {"x-request-id"}
        assert not leaked and "req_provider" not in answer.headers.get_list("x-request-id")
    assert wrong_method.status_code == 405 and "POST" in wrong_method.headers["allow"]
    assert models_post.status_code == 405 and "GET" in models_post.headers["allow"]
    assert no_route.status_code == 404 and no_route.json()["error"]["code"] == "unknown_url"
    for refused in (wrong_method, models_post, no_route):
        error = refused.json()["error"]
        assert isinstance(error["code"], str) and "param" in error
        assert refused.headers["x-request-id"]


async def test_an_alias_is_served_under_the_deployments_name() -> None:
    async with _served("router") as url, _client(url) as client:
        answer = await client.chat.completions.create(model=ALIAS, messages=_hi(), max_tokens=2)
        listed = [model.id async for model in client.models.list()]
        retrieved = await client.models.retrieve(ALIAS)
    # the engine serves MODEL only (it would answer 404): the router sent it the served name
    assert answer.model == MODEL
    assert listed == [MODEL, ALIAS] and retrieved.id == ALIAS


def _event(model: str, content: str) -> bytes:
    chunk = {"id": "c", "model": model, "choices": [{"index": 0, "delta": {"content": content}}]}
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


def test_the_scanner_renames_a_hosted_model_and_leaves_the_served_one_alone() -> None:
    quoted = 'say "model":"x"'  # escaped inside a JSON string: text, not a member
    stream = _event("gpt-4o-mini-2024-07-18", "a") + _event("gpt-4o-mini-2024-07-18", quoted)
    stream += b"data: [DONE]\n\n"
    renamed = StreamScanner(strip_usage=False, model=served_model(MODEL))
    out = b"".join(renamed.feed(stream[i : i + 7], float(i)) for i in range(0, len(stream), 7))
    events = [json.loads(e[6:]) for e in out.split(b"\n\n") if e.startswith(b"data: {")]
    assert [e["model"] for e in events] == [MODEL, MODEL]
    assert events[1]["choices"][0]["delta"]["content"] == quoted and out.endswith(b"[DONE]\n\n")

    same = _event(MODEL, "a") + _event(MODEL, quoted)
    kept = StreamScanner(strip_usage=False, model=served_model(MODEL))
    assert kept.feed(same, 0.0) == same and kept.model is None  # checked once, then off
