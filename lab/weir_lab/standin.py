"""A fast, deterministic OpenAI-compatible upstream for the router's tests and benchmark.

The emulated engine models a GPU's latency; this one models nothing: it
answers every completion with a fixed number of tokens (the request's
max_tokens, else `tokens`), `delay_s` apart or back to back, with the same
bytes every time, so pass-through can be checked byte for byte and a proxy
benchmark measures the proxy rather than the upstream. It answers under the
model name it was asked for, as an engine serving that name does (a router
renames any other name to its own, which is not the path to measure). It is a raw asyncio
protocol (no framework), cheap enough to share a core with the load
generator. Failure modes for the resilience tests: answer an error status,
cut the stream after some tokens, or stall before the first token.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import cast

_HEAD_SSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
    b"transfer-encoding: chunked\r\n\r\n"
)
_CHUNK_HEAD = b'data: {"id":"chatcmpl-standin","object":"chat.completion.chunk","created":0,'
_CHAT_TOKEN = (
    b'"choices":[{"index":0,"delta":{"content":"tok "},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
)
_CHAT_OPEN = (
    b'"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
    b'"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
)
_DONE = b"data: [DONE]\n\n"
MODEL = "standin"  # the name answered when the request names none
_BATCH_TOKENS = 256  # most tokens per write to a backed-up reader (about 40 KB)


@functools.lru_cache(maxsize=64)
def _chunks(model: str) -> tuple[bytes, bytes]:
    """The opening and token events of a stream for `model` (built once per name)."""
    head = _CHUNK_HEAD + b'"model":' + json.dumps(model).encode() + b","
    return head + _CHAT_OPEN, head + _CHAT_TOKEN


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def usage_event(prompt: int, completion: int, model: str = MODEL) -> bytes:
    usage = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    body = {
        "id": "chatcmpl-standin",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": model,
        "choices": [],
        "usage": usage,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


def whole_body(prompt: int, completion: int, model: str = MODEL) -> bytes:
    body = {
        "id": "chatcmpl-standin",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "tok " * completion},
                "finish_reason": "length",
            }
        ],
        "usage": {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        },
    }
    return json.dumps(body, separators=(",", ":")).encode()


@dataclass
class StandinSettings:
    """Behaviour of the stand-in (mutable: tests switch failure modes on and off)."""

    tokens: int = 64
    delay_s: float = 0.0
    ttft_s: float = 0.0
    fail_status: int | None = None
    cut_after: int | None = None
    stall_after: int | None = None
    pause_after: int | None = None  # one pause of pause_s before this token (a visible stall)
    pause_s: float = 0.0
    prompt_tokens: int = 10


@dataclass
class StandinStats:
    requests: int = 0
    completed: int = 0
    disconnected: int = 0
    bodies: list[bytes] = field(default_factory=list)


class _Conn(asyncio.Protocol):
    def __init__(self, settings: StandinSettings, stats: StandinStats) -> None:
        self.settings, self.stats = settings, stats
        self.buf = b""
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task[None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.task is not None and not self.task.done():
            self.stats.disconnected += 1
            self.task.cancel()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head_end = self.buf.find(b"\r\n\r\n")
        if head_end < 0:
            return
        head = self.buf[:head_end].lower()
        length = 0
        at = head.find(b"content-length:")
        if at >= 0:
            length = int(head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        if len(self.buf) < head_end + 4 + length:
            return
        body = self.buf[head_end + 4 : head_end + 4 + length]
        self.buf = self.buf[head_end + 4 + length :]
        self.stats.requests += 1
        self.task = asyncio.get_running_loop().create_task(self._answer(head, body))

    async def _answer(self, head: bytes, body: bytes) -> None:
        s, t = self.settings, self.transport
        assert t is not None
        if not head.startswith(b"post"):
            payload = b'{"object":"list","data":[{"id":"standin","object":"model"}]}'
            t.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(payload), payload)
            )
            return
        self.stats.bodies.append(body)
        request = json.loads(body)
        n = int(request.get("max_tokens") or s.tokens)
        model = request.get("model")
        model = model if isinstance(model, str) else MODEL
        if s.fail_status is not None:
            err = b'{"error":{"message":"stand-in failure","type":"server_error"}}'
            t.write(
                b"HTTP/1.1 %d Error\r\ncontent-type: application/json\r\nretry-after: 2\r\n"
                b"content-length: %d\r\n\r\n%s" % (s.fail_status, len(err), err)
            )
            return
        if s.ttft_s:
            await asyncio.sleep(s.ttft_s)
        if not request.get("stream"):
            data = whole_body(s.prompt_tokens, n, model)
            t.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(data), data)
            )
            self.stats.completed += 1
            return
        usage = bool((request.get("stream_options") or {}).get("include_usage"))
        await self._stream(t, n, usage, model)

    async def _stream(self, t: asyncio.Transport, n: int, usage: bool, model: str) -> None:
        s = self.settings
        opening, token = _chunks(model)
        t.write(_HEAD_SSE + _chunked(opening))
        token = _chunked(token)
        # One write per token while the reader keeps up (as an engine streams). Once the
        # transport's buffer backs up, tokens due back to back are batched, the same bytes
        # in fewer writes: on Python 3.12+ each write to a backed-up transport costs time
        # in the buffer's length (CPython gh-146507), so 100,000 one-token writes to a
        # slow reader took half a minute instead of a second.
        batch = 0
        for i in range(n):
            cut = s.cut_after is not None and i == s.cut_after
            stall = s.stall_after is not None and i == s.stall_after
            pause = s.pause_after is not None and i == s.pause_after
            delay = bool(i and s.delay_s)
            if batch and (cut or stall or pause or delay):
                t.write(token * batch)  # what is due goes out before any wait
                batch = 0
            if cut:
                t.close()
                return
            if stall:
                await asyncio.sleep(3600)
            if pause:
                await asyncio.sleep(s.pause_s)
            if delay:
                await asyncio.sleep(s.delay_s)
            if self.closed:
                return
            batch += 1
            if batch == _BATCH_TOKENS or not t.get_write_buffer_size():
                t.write(token * batch)
                batch = 0
        tail = (usage_event(s.prompt_tokens, n, model) if usage else b"") + _DONE
        t.write(token * batch + _chunked(tail) + b"0\r\n\r\n")
        self.stats.completed += 1


@dataclass
class RunningStandin:
    url: str
    settings: StandinSettings
    stats: StandinStats


@contextlib.asynccontextmanager
async def started_standin(
    settings: StandinSettings | None = None, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningStandin]:
    """Serve the stand-in in the running loop until the block ends."""
    cfg, stats = settings or StandinSettings(), StandinStats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(cfg, stats), host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    try:
        yield RunningStandin(f"http://{host}:{bound}", cfg, stats)
    finally:
        server.close()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(server.wait_closed(), 1.0)


async def _serve_forever(settings: StandinSettings, port: int) -> None:  # pragma: no cover
    async with started_standin(settings, port=port) as srv:
        print(f"PORT {srv.url.rsplit(':', 1)[1]}", flush=True)
        await asyncio.Event().wait()


def main() -> None:  # pragma: no cover - a subprocess of the benchmark
    """`python -m weir_lab.standin [PORT [DELAY_MS [TOKENS]]]`: serve until killed."""
    import sys

    import uvloop

    args = [*sys.argv[1:], "0", "0", "64"][:3]
    settings = StandinSettings(tokens=int(args[2]), delay_s=float(args[1]) / 1000)
    uvloop.run(_serve_forever(settings, int(args[0])))


if __name__ == "__main__":  # pragma: no cover
    main()
