"""A hostile hosted API: everything an OpenAI-compatible endpoint may do wrong, on purpose.

The router's tests use it as the hosted endpoint (and as an engine pod) to
check that nothing it says reaches a client unfiltered and that nothing it
does breaks the router or its spend cap. It is a raw asyncio protocol, so
it can write what no framework would: an error body that echoes every
request header (the API key with them), provider headers (organisation,
request id, rate-limit state, a cookie), a Retry-After that is huge,
negative, fractional, garbage or an HTTP-date, a body that trickles or
stops short of its Content-Length, SSE with CRLF or CR line ends,
keep-alive comments, invalid JSON chunks, an error event in a stream, a
200 with an error body, and bills (usage) as large as an honest provider
could send or larger.

One `HostileSettings` object drives it and may be changed between requests;
`HostileStats` records what it received (bodies and headers) and billed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, cast

Mode = Literal[
    "ok",  # a well-formed answer (with provider headers)
    "echo_error",  # `status` with a body that echoes the request's headers
    "ok_error_body",  # 200 whose body (or first event) is an error echoing the headers
    "truncated",  # a body shorter than its Content-Length, then close
    "slow",  # the body a few bytes at a time, `delay_s` apart
    "invalid_json",  # stream events that are not JSON
]
Bill = Literal["max", "overrun", "none"]

PROVIDER_HEADERS = (
    b"openai-organization: org-hostile-SECRET\r\n"
    b"x-request-id: req-hostile-SECRET\r\n"
    b"x-ratelimit-remaining-requests: 7\r\n"
    b"set-cookie: session=hostile-SECRET; Path=/\r\n"
)


@dataclass
class HostileSettings:
    """How the endpoint misbehaves (mutable: tests switch it between requests)."""

    mode: Mode = "ok"
    status: int = 401
    retry_after: str | None = None
    line_end: bytes = b"\n"
    comments: bool = False
    tokens: int = 4
    delay_s: float = 0.05
    bill: Bill = "max"
    overrun_factor: int = 10


@dataclass
class HostileStats:
    requests: int = 0
    bodies: list[bytes] = field(default_factory=list)
    headers: list[bytes] = field(default_factory=list)
    billed_prompt: int = 0
    billed_completion: int = 0


def max_bill(body: bytes) -> tuple[int, int]:
    """The most an honest provider could bill: a token per body byte, every token of
    every choice (the largest of max_tokens and max_completion_tokens, n and best_of)."""
    request = json.loads(body)
    limits = [request.get(k) for k in ("max_tokens", "max_completion_tokens")]
    max_tokens = max((v for v in limits if isinstance(v, int)), default=0)
    choices = max((request.get(k) or 1) for k in ("n", "best_of"))
    return len(body), int(choices) * max_tokens


def _usage(prompt: int, completion: int) -> dict[str, Any]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


class _Conn(asyncio.Protocol):
    def __init__(self, settings: HostileSettings, stats: HostileStats) -> None:
        self.settings, self.stats = settings, stats
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self.buf[:end]
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        if len(self.buf) < end + 4 + length:
            return
        body = self.buf[end + 4 : end + 4 + length]
        self.buf = self.buf[end + 4 + length :]
        self.stats.requests += 1
        self.stats.bodies.append(body)
        self.stats.headers.append(head)
        self.task = asyncio.get_running_loop().create_task(self._answer(head, body))

    def _write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def _whole(self, status: int, body: bytes, extra: bytes = b"") -> None:
        self._write(
            b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%s%scontent-length: %d\r\n\r\n%s"
            % (status, PROVIDER_HEADERS, extra, len(body), body)
        )

    def _bill(self, body: bytes) -> tuple[int, int]:
        s = self.settings
        prompt, completion = max_bill(body)
        if s.bill == "overrun":
            prompt, completion = prompt * s.overrun_factor, completion * s.overrun_factor
        if s.bill != "none":
            self.stats.billed_prompt += prompt
            self.stats.billed_completion += completion
        return prompt, completion

    async def _answer(self, head: bytes, body: bytes) -> None:
        s = self.settings
        echo = head.decode("latin-1")
        error = {"error": {"message": f"rejected; you sent: {echo}", "type": "invalid_api_key"}}
        if s.mode == "echo_error":
            extra = b"retry-after: %s\r\n" % s.retry_after.encode() if s.retry_after else b""
            self._whole(s.status, json.dumps(error).encode(), extra)
            return
        request = json.loads(body)
        stream = bool(request.get("stream"))
        if s.mode == "ok_error_body" and not stream:
            self._whole(200, json.dumps(error).encode())
            return
        if s.mode == "truncated" and not stream:
            self._write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5000\r\n"
                b'\r\n{"id":"x","choices":['
            )
            await asyncio.sleep(0)
            if self.transport is not None:
                self.transport.close()
            return
        prompt, completion = self._bill(body)
        if not stream:
            await self._whole_answer(prompt, completion)
            return
        await self._stream(echo, prompt, completion)

    async def _whole_answer(self, prompt: int, completion: int) -> None:
        s = self.settings
        answer: dict[str, Any] = {
            "id": "cmpl-hostile",
            "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "x"}}],
        }
        if s.bill != "none":
            answer["usage"] = _usage(prompt, completion)
        data = json.dumps(answer).encode()
        if s.mode != "slow":
            self._whole(200, data)
            return
        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n"
            % len(data)
        )
        for i in range(0, len(data), 8):
            await asyncio.sleep(s.delay_s)
            self._write(data[i : i + 8])

    async def _stream(self, echo: str, prompt: int, completion: int) -> None:
        s = self.settings
        nl = s.line_end
        self._write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n%s"
            b"transfer-encoding: chunked\r\n\r\n" % PROVIDER_HEADERS
        )

        def event(payload: bytes) -> None:
            data = b"data: " + payload + nl + nl
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

        def comment() -> None:
            data = b": ping" + nl + nl
            self._write(b"%x\r\n%s\r\n" % (len(data), data))

        if s.comments:
            comment()
            await asyncio.sleep(s.delay_s)
        if s.mode == "ok_error_body":
            event(json.dumps({"error": {"message": f"you sent: {echo}", "type": "x"}}).encode())
        for i in range(s.tokens):
            if s.mode == "slow" or s.comments:
                await asyncio.sleep(s.delay_s)
            if s.comments:
                comment()
            if s.mode == "invalid_json" and i % 2:
                event(b"{not json")
                continue
            chunk = {"id": "h", "choices": [{"index": 0, "delta": {"content": "tok "}}]}
            event(json.dumps(chunk).encode())
        if s.bill != "none":
            event(
                json.dumps({"id": "h", "choices": [], "usage": _usage(prompt, completion)}).encode()
            )
        event(b"[DONE]")
        self._write(b"0\r\n\r\n")


@dataclass
class RunningHostile:
    url: str
    settings: HostileSettings
    stats: HostileStats


@contextlib.asynccontextmanager
async def started_hostile(
    settings: HostileSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningHostile]:
    """Serve the hostile endpoint in the running loop until the block ends."""
    cfg, stats = settings or HostileSettings(), HostileStats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(cfg, stats), host, port)
    bound = server.sockets[0].getsockname()[1]
    try:
        yield RunningHostile(f"http://{host}:{bound}", cfg, stats)
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)
