"""Open-loop replay of a request schedule through the router, as clients would send it.

Requests leave at their arrival times whatever the answers do (a spike is a
spike), each a streaming completion with the trace's prompt length (the
engines' tokenizer is one byte a token) and output length (`ignore_eos`).
What each client saw is kept: TTFT, end, chunks received, HTTP status, the
backend the router names in `x-weir-backend`, and any error, so a scenario
can assert on failures and timing without trusting the router's own
metrics. Concurrency is bounded only by `max_in_flight` (a safety valve for
this 2-core machine; requests over it are counted as dropped by the client,
never silently skipped).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from weir.sim.traces import Request


@dataclass
class Sent:
    """One request as its client saw it (times in seconds since the replay began)."""

    at_s: float
    input_tokens: int
    output_tokens: int
    status: int = 0
    backend: str = ""
    ttft_s: float | None = None
    end_s: float | None = None
    chunks: int = 0
    error: str = ""
    shape: int = 0  # index into the replay's `shapes` (0 when it has none)

    @property
    def failed(self) -> bool:
        return bool(self.error) or self.status != 200


@dataclass
class Replay:
    """Everything a replay sent, in order of sending."""

    sent: list[Sent] = field(default_factory=list)
    dropped: int = 0
    started_unix_s: float = 0.0

    def failed(self) -> list[Sent]:
        return [s for s in self.sent if s.failed]

    def in_window(self, start_s: float, end_s: float) -> list[Sent]:
        return [s for s in self.sent if start_s <= s.at_s < end_s]


def _body(request: Request, model: str, shape: Mapping[str, Any]) -> tuple[str, bytes]:
    """The path and body of one request: a completion, or a chat completion when its shape
    carries chat-only fields (tools); the shape's fields are added as they are."""
    prompt = ("weir " * (request.input_tokens // 5 + 1))[: max(1, request.input_tokens)]
    body: dict[str, Any] = {
        "model": model,
        "max_tokens": max(1, request.output_tokens),
        "stream": True,
        "ignore_eos": True,
        **shape,
    }
    if "tools" in shape or "functions" in shape:
        body["messages"] = [{"role": "user", "content": prompt}]
        return "/v1/chat/completions", json.dumps(body).encode()
    body["prompt"] = prompt
    return "/v1/completions", json.dumps(body).encode()


async def _one(
    http: httpx.AsyncClient,
    url: str,
    request: Request,
    model: str,
    t0: float,
    record: Sent,
    shape: Mapping[str, Any],
) -> None:
    path, body = _body(request, model, shape)
    try:
        async with http.stream(
            "POST",
            f"{url}{path}",
            content=body,
            headers={"content-type": "application/json"},  # and the client's token
        ) as answer:
            record.status = answer.status_code
            record.backend = answer.headers.get("x-weir-backend", "")
            if answer.status_code != 200:
                said = (await answer.aread()).decode(errors="replace")
                record.error = f"{answer.status_code} {said}"[:300]
                record.end_s = time.monotonic() - t0
                return
            async for line in answer.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                if '"error"' in line:
                    record.error = line[6:200]
                    continue
                if '"text"' in line or '"content"' in line:
                    if record.ttft_s is None:
                        record.ttft_s = time.monotonic() - t0 - record.at_s
                    record.chunks += 1
    except httpx.HTTPError as exc:
        record.error = f"{type(exc).__name__}: {exc}"[:200]
    record.end_s = time.monotonic() - t0


async def replay(
    url: str,
    schedule: Sequence[Request],
    *,
    model: str,
    max_in_flight: int = 400,
    timeout_s: float = 120.0,
    on_tick: Callable[[float, Replay], None] | None = None,
    api_key: str | None = None,
    shapes: Sequence[Mapping[str, Any]] = (),
) -> Replay:
    """Send every request of `schedule` at its `arrival_s`; return when all have ended.

    `api_key`: the bearer token the router asks its clients for. `shapes`: extra body
    fields (`n`, `tools`, ...), the i-th request sent gets shapes[i % len(shapes)]."""
    result = Replay()
    limits = httpx.Limits(max_connections=max_in_flight, max_keepalive_connections=64)
    timeout = httpx.Timeout(timeout_s, connect=5.0)
    tasks: set[asyncio.Task[None]] = set()
    auth = {"authorization": f"Bearer {api_key}"} if api_key else {}
    async with httpx.AsyncClient(limits=limits, timeout=timeout, headers=auth) as http:
        t0 = time.monotonic()
        result.started_unix_s = time.time()
        next_tick = 1.0
        for request in sorted(schedule, key=lambda r: r.arrival_s):
            while (now := time.monotonic() - t0) < request.arrival_s:
                if on_tick is not None and now >= next_tick:
                    on_tick(now, result)
                    next_tick = now + 1.0
                await asyncio.sleep(min(0.05, request.arrival_s - now))
            if len(tasks) >= max_in_flight:
                result.dropped += 1
                continue
            index = len(result.sent) % len(shapes) if shapes else 0
            shape = shapes[index] if shapes else {}
            record = Sent(request.arrival_s, request.input_tokens, request.output_tokens)
            record.shape = index
            result.sent.append(record)
            task = asyncio.create_task(_one(http, url, request, model, t0, record, shape))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        while tasks:
            if on_tick is not None:
                on_tick(time.monotonic() - t0, result)
            await asyncio.wait(set(tasks), timeout=1.0)
    return result


class Background:
    """`replay` in a thread of its own, so a scenario can act while traffic runs."""

    def __init__(
        self, url: str, schedule: Sequence[Request], *, model: str, **options: Any
    ) -> None:
        self.result: Replay | None = None
        self.error: Exception | None = None

        def run() -> None:
            try:
                self.result = asyncio.run(replay(url, schedule, model=model, **options))
            except Exception as exc:  # noqa: BLE001  re-raised in join(), in the caller's thread
                self.error = exc

        self._thread = threading.Thread(target=run, daemon=True)
        self.started_unix_s = 0.0  # set by start()

    def start(self) -> Background:
        self.started_unix_s = time.time()
        self._thread.start()
        return self

    def elapsed_s(self) -> float:
        return time.time() - self.started_unix_s

    def join(self, timeout_s: float) -> Replay:
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"the replay did not end within {timeout_s:.0f} s")
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result
