"""A streaming OpenAI client that times each chunk, for the profiler and tests.

Measuring TTFT and ITL means timing SSE chunks as they arrive over a real
socket, which the OpenAI SDKs do not expose; this reads `data:` lines with
httpx and stamps each content chunk with a monotonic clock.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from weir.engines.errors import ProfilerError


@dataclass
class StreamResult:
    """Timings of one streamed request (seconds from send, monotonic clock)."""

    sent: float
    chunk_times: list[float] = field(default_factory=list)
    usage: dict[str, Any] | None = None
    finish_reason: str | None = None

    @property
    def ttft(self) -> float | None:
        return self.chunk_times[0] - self.sent if self.chunk_times else None

    def gaps(self) -> list[float]:
        t = self.chunk_times
        return [b - a for a, b in itertools.pairwise(t)]


async def iter_sse(response: httpx.Response) -> AsyncIterator[dict[str, Any] | str]:
    """Events of an SSE body: parsed JSON objects, and the string "[DONE]"."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        payload = line[len("data:") :].strip()
        if payload == "[DONE]":
            yield payload
            continue
        try:
            yield json.loads(payload)
        except json.JSONDecodeError as exc:
            raise ProfilerError(f"the endpoint sent a chunk that is not JSON: {payload!r}") from exc


def _content(event: dict[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    choice = choices[0]
    if "delta" in choice:
        return str((choice["delta"] or {}).get("content") or "")
    return str(choice.get("text") or "")


async def stream_request(
    client: httpx.AsyncClient,
    path: str,
    body: dict[str, Any],
    on_chunk: Callable[[], None] | None = None,
) -> StreamResult:
    """Send one streaming request and time its content chunks."""
    body = {**body, "stream": True, "stream_options": {"include_usage": True}}
    result = StreamResult(sent=time.perf_counter())
    try:
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                text = (await response.aread()).decode(errors="replace")[:300]
                raise EndpointStatusError(response.status_code, text)
            await _read_events(response, result, on_chunk)
    except httpx.HTTPError as exc:
        raise ProfilerError(f"request to {client.base_url}{path} failed: {exc!r}") from exc
    return result


async def _read_events(
    response: httpx.Response, result: StreamResult, on_chunk: Callable[[], None] | None
) -> None:
    async for event in iter_sse(response):
        if isinstance(event, str):
            break
        if _content(event):
            result.chunk_times.append(time.perf_counter())
            if on_chunk is not None:
                on_chunk()
        choices = event.get("choices") or []
        if choices and choices[0].get("finish_reason"):
            result.finish_reason = choices[0]["finish_reason"]
        if event.get("usage"):
            result.usage = event["usage"]


class EndpointStatusError(ProfilerError):
    """The endpoint answered with a non-200 status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"endpoint answered HTTP {status}: {body}")
        self.status = status
