"""The router in front of a hostile hosted endpoint (`weir_lab.hostile`), with the openai client.

Each test is one defect of issue 14 (a secret leaked, the cap not hard, an
SSE dialect or a Retry-After that broke spill); each failed on 0e4ffea.
"""

from __future__ import annotations

import contextlib
import email.utils
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import pytest

from router.helpers import MODEL, hosted_spec, router, router_settings, scrape
from support.promtext import metric
from weir.router.config import RouterPolicy
from weir.router.server import RunningRouter
from weir_lab.hostile import HostileSettings, RunningHostile, max_bill, started_hostile

KEY = "sk-hosted-SECRET-91c2"
TOKEN = "client-token-1"
PROVIDER = ("openai-organization", "set-cookie", "x-ratelimit-remaining-requests")


def _no_provider_headers(headers: httpx.Headers) -> bool:
    """None of the provider's headers; the x-request-id is the router's own, not its."""
    return all(h not in headers for h in PROVIDER) and "SECRET" not in headers["x-request-id"]


def _spill_all(url: str, cap: float = 1000.0, **extra: Any) -> RouterPolicy:
    return RouterPolicy.model_validate(
        {
            "default_concurrency_limit": 0,
            "hosted_enabled": True,
            "max_hosted_share": 1.0,
            "max_hosted_dollars_per_hour": cap,
            "hosted": hosted_spec(url),
            "max_waiting": 0,
            **extra,
        }
    )


@contextlib.asynccontextmanager
async def hostile_router(
    settings: HostileSettings, cap: float = 1000.0, **router_fields: Any
) -> AsyncIterator[tuple[RunningRouter, RunningHostile, openai.AsyncOpenAI]]:
    fields = {"hosted_key": KEY, "client_tokens": frozenset({TOKEN}), **router_fields}
    async with (
        started_hostile(settings) as hosted,
        router([], _spill_all(hosted.url, cap), settings=router_settings(**fields)) as (rt, _),
    ):
        client = openai.AsyncOpenAI(base_url=rt.url + "/v1", api_key=TOKEN, max_retries=0)
        try:
            yield rt, hosted, client
        finally:
            await client.close()


def _messages(text: str = "hello") -> list[Any]:
    return [{"role": "user", "content": text}]


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422, 500, 503])
async def test_upstream_error_body_never_reaches_the_client(status: int) -> None:
    settings = HostileSettings(mode="echo_error", status=status)
    async with hostile_router(settings) as (_, hosted, client):
        with pytest.raises(openai.APIStatusError) as raised:
            await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=4)
    error = raised.value
    assert error.status_code == status
    assert KEY in hosted.stats.headers[0].decode()  # the endpoint did see the key ...
    assert KEY not in error.response.text and "SECRET" not in error.response.text  # ... not us
    assert _no_provider_headers(error.response.headers)
    body = error.response.json()["error"]
    assert body["type"] == "invalid_api_key"  # the upstream's type is kept
    assert body["message"] == f"upstream answered HTTP {status}"


@pytest.mark.parametrize("stream", [False, True])
async def test_provider_headers_never_reach_the_client(stream: bool) -> None:
    async with hostile_router(HostileSettings()) as (_, _, client):
        raw = await client.chat.completions.with_raw_response.create(
            model=MODEL, messages=_messages(), max_tokens=4, stream=stream
        )
        text = (await raw.http_response.aread()).decode()
    assert raw.status_code == 200
    assert _no_provider_headers(raw.headers)
    assert "SECRET" not in text


@pytest.mark.parametrize("stream", [False, True])
async def test_a_200_with_an_error_body_is_an_upstream_error(stream: bool) -> None:
    async with hostile_router(HostileSettings(mode="ok_error_body")) as (rt, _, client):
        with pytest.raises(openai.APIStatusError) as raised:
            made = await client.chat.completions.create(
                model=MODEL, messages=_messages(), max_tokens=4, stream=stream
            )
            if stream:
                async for _ in made:  # type: ignore[union-attr]
                    pass
        assert await _healthy(rt)
    assert raised.value.status_code == 502
    assert KEY not in raised.value.response.text


def _http_date(delta_s: float) -> str:
    return email.utils.formatdate(time.time() + delta_s, usegmt=True)


@pytest.mark.parametrize(
    ("value", "low", "high"),
    [
        ("999999999", 60, 60),
        ("-5", 1, 1),
        ("soon", 1, 1),
        ("1.5", 1.5, 1.5),
        ("nan", 1, 1),
        ("date+30", 25, 31),
        ("date+100000000", 60, 60),
        ("date-3600", 1, 1),
        ("9" * 5000, 60, 60),
    ],
)
async def test_retry_after_is_clamped(value: str, low: float, high: float) -> None:
    if value.startswith("date"):  # an HTTP-date that many seconds from now
        value = _http_date(float(value[4:]))
    settings = HostileSettings(mode="echo_error", status=429, retry_after=value)
    async with hostile_router(settings) as (rt, _, client):
        with pytest.raises(openai.RateLimitError) as raised:
            await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=4)
        throttled_for = rt.router.spill.throttled_until - rt.router.clock()
    assert low - 1 <= throttled_for <= high
    # what the client is told is clamped as the throttle is: 1 s up to --max-retry-after (60)
    assert 1 <= int(raised.value.response.headers["retry-after"]) <= 60


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n", b"\r"])
async def test_sse_dialects_and_keep_alive_comments(line_end: bytes) -> None:
    settings = HostileSettings(line_end=line_end, comments=True, tokens=5, delay_s=0.05)
    async with hostile_router(settings) as (rt, _, client):
        stream = await client.chat.completions.create(
            model=MODEL, messages=_messages(), max_tokens=5, stream=True
        )
        texts = [c.choices[0].delta.content async for c in stream if c.choices]
        async with httpx.AsyncClient() as http:
            text = await scrape(http, rt)
    assert texts == ["tok "] * 5
    # the first keep-alive comment came at once, the first token 0.1 s later: TTFT is the token's
    assert metric(text, "weir_router_ttft_seconds_bucket", backend="hosted", le="0.05") == 0
    assert metric(text, "weir_router_requests_total", backend="hosted", outcome="completed") == 1


async def test_invalid_json_chunks_do_not_break_the_router() -> None:
    async with hostile_router(HostileSettings(mode="invalid_json", tokens=6)) as (rt, _, _c):
        async with httpx.AsyncClient(timeout=10) as http:
            resp = await http.post(
                rt.url + "/v1/chat/completions",
                json={"model": MODEL, "messages": _messages(), "stream": True, "max_tokens": 6},
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
        assert await _healthy(rt)
    assert resp.status_code == 200 and resp.content.endswith(b"data: [DONE]\n\n")


async def test_truncated_and_slow_bodies_fail_cleanly() -> None:
    async with hostile_router(HostileSettings(mode="truncated"), idle_timeout_s=0.2) as (
        rt,
        hosted,
        client,
    ):
        with pytest.raises(openai.APIStatusError) as truncated:
            await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=4)
        hosted.settings.mode, hosted.settings.delay_s = "slow", 0.5
        with pytest.raises(openai.APIStatusError) as slow:
            await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=4)
        assert await _healthy(rt)
    assert truncated.value.status_code == 502
    assert slow.value.status_code == 504
    assert "error" in slow.value.response.json()


def _dollars(prompt: int, completion: int) -> float:
    spec = hosted_spec("http://x")
    return spec.request_dollars(prompt, 0, completion)


async def test_n_and_tools_stay_within_the_cap() -> None:
    # twelve requests with n=8 and an 80 KB tools array spent 4.4x the window cap on 0e4ffea
    tools = [
        {
            "type": "function",
            "function": {"name": f"f{i}", "description": "d" * 800, "parameters": {}},
        }
        for i in range(100)
    ]
    cap = 60.0  # $/h: $1 in the 60 s window
    async with hostile_router(HostileSettings(bill="max"), cap=cap) as (rt, hosted, client):
        for _ in range(12):
            with contextlib.suppress(openai.RateLimitError):
                await client.chat.completions.create(
                    model=MODEL,
                    messages=_messages(),
                    max_tokens=1000,
                    n=8,
                    tools=tools,  # type: ignore[arg-type]
                )
        spent = sum(_dollars(*max_bill(b)) for b in hosted.stats.bodies)
        counted = rt.router.spill.budget.spent_total
    window = cap * 60 / 3600
    assert hosted.stats.requests >= 1
    assert spent <= window
    assert counted == pytest.approx(spent)


async def test_an_overrun_is_charged_to_the_window() -> None:
    settings = HostileSettings(bill="overrun", overrun_factor=50)
    async with hostile_router(settings, cap=0.06) as (rt, hosted, client):  # $0.001 a window
        await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=8)
        budget = rt.router.spill.budget
        over = budget.in_window(rt.router.clock())
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(model=MODEL, messages=_messages(), max_tokens=8)
    assert over > budget.window_limit  # the whole bill counts, not the reservation
    assert hosted.stats.requests == 1


async def test_unpriceable_content_never_goes_hosted() -> None:
    image = [
        {"type": "text", "text": "what is this"},
        {"type": "image_url", "image_url": {"url": "https://x.invalid/a.png"}},
    ]
    async with hostile_router(HostileSettings()) as (_, hosted, client):
        with pytest.raises(openai.RateLimitError):
            await client.chat.completions.create(
                model=MODEL,
                messages=[{"role": "user", "content": image}],  # type: ignore[list-item,misc]
                max_tokens=4,
            )
    assert hosted.stats.requests == 0


async def test_unknown_fields_stay_behind() -> None:
    async with hostile_router(HostileSettings()) as (_, hosted, client):
        await client.chat.completions.create(
            model=MODEL,
            messages=_messages(),
            max_tokens=4,
            extra_body={"service_tier": "priority", "web_search_options": {}, "ignore_eos": True},
        )
    sent = json.loads(hosted.stats.bodies[0])
    assert not {"service_tier", "web_search_options", "ignore_eos"} & set(sent)
    assert sent["model"] == "hosted/big-model" and sent["max_tokens"] == 4


async def _healthy(rt: RunningRouter) -> bool:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(rt.url + "/healthz")).status_code == 200
