"""One upstream attempt: open, stream bytes through the scanner, report what happened.

The response head goes to the client only with the first complete event,
so an upstream that fails before its first token can still be retried
elsewhere (another replica or the hosted endpoint) without the client
seeing two answers; after that, a failure ends the client's stream. The
first-token timeout spans connect, head and first event; the idle timeout
(the upstream client's read timeout) spans each later gap.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Send

from weir.router.errors import UpstreamError, UpstreamStatusError, UpstreamTimeoutError
from weir.router.sse import StreamScanner, Usage, parse_usage
from weir.router.upstream import Headers, Upstream, UpstreamResponse

_HOP = frozenset(
    (b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"date", b"server")
)
_MAX_ERROR_BODY = 64 << 10
_MAX_JSON_BODY = 64 << 20


@dataclass(slots=True)
class Exchange:
    """The client's side of one request, shared by its attempts."""

    response_started: bool = False
    response_done: bool = False


@dataclass(slots=True)
class Attempt:
    """What one attempt did, filled in as it goes (read after success or failure)."""

    started_at: float
    exchange: Exchange
    first_token_at: float | None = None
    last_token_at: float | None = None
    usage: Usage | None = None
    counted_tokens: int = 0
    completed: bool = False
    response_started: bool = False
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _pass_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() not in _HOP]


async def _start(send: Send, attempt: Attempt, status: int, headers: Headers) -> None:
    attempt.response_started = attempt.exchange.response_started = True
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": _pass_headers(headers) + attempt.extra_headers,
        }
    )


async def forward(
    upstream: Upstream,
    url: str,
    body: bytes,
    headers: Headers,
    send: Send,
    *,
    stream: bool,
    strip_usage: bool,
    first_token_timeout_s: float,
    clock: Callable[[], float],
    attempt: Attempt,
) -> None:
    """Run one attempt to its end; raises UpstreamError subclasses on failure."""
    try:
        async with asyncio.timeout(first_token_timeout_s) as deadline:
            resp = await upstream.open(url, body, headers)
            try:
                if resp.status != 200:
                    error = await resp.read(_MAX_ERROR_BODY)
                    raise UpstreamStatusError(resp.status, error, dict(_decode(resp.headers)))
                if stream:
                    await _stream(
                        resp,
                        send,
                        strip_usage,
                        clock,
                        attempt,
                        lambda: deadline.reschedule(None),
                    )
                else:
                    data = await resp.read(_MAX_JSON_BODY)
                    deadline.reschedule(None)
                    await _whole(data, resp.headers, send, clock, attempt)
            finally:
                await resp.aclose()
    except TimeoutError as exc:
        raise UpstreamTimeoutError(
            f"no first token within {first_token_timeout_s} s",
            before_first_token=not attempt.response_started,
        ) from exc
    except UpstreamError as exc:
        exc.before_first_token = not attempt.response_started
        raise


async def _stream(
    resp: UpstreamResponse,
    send: Send,
    strip_usage: bool,
    clock: Callable[[], float],
    attempt: Attempt,
    first_token: Callable[[], None],
) -> None:
    scanner = StreamScanner(strip_usage=strip_usage)
    try:
        chunks = resp.chunks()
        async for chunk in chunks:
            out = scanner.feed(chunk, clock())
            if not out:
                continue
            if not attempt.response_started:
                await _start(send, attempt, 200, resp.headers)
                first_token()
            await send({"type": "http.response.body", "body": out, "more_body": True})
            client = _splice_target(send, resp)
            if client is not None:
                await chunks.aclose()  # type: ignore[attr-defined]
                await _splice(resp, client, scanner, clock)
                break
    finally:
        attempt.first_token_at = scanner.first_token_at
        attempt.last_token_at = scanner.last_token_at
        attempt.usage = scanner.usage
        attempt.counted_tokens = scanner.token_events
    rest = scanner.flush()
    if not scanner.done:
        raise UpstreamError("upstream stream ended without [DONE]")
    if not attempt.response_started:
        await _start(send, attempt, 200, resp.headers)
    attempt.exchange.response_done = True
    await send({"type": "http.response.body", "body": rest, "more_body": False})
    attempt.completed = True


def _splice_target(send: Send, resp: UpstreamResponse) -> Any:
    """uvicorn's response cycle behind `send`, when the stream can bypass ASGI, else None.

    Splicing writes each scanned read to the client's socket from the
    upstream protocol's callback: no task switch and no ASGI message per
    chunk. It needs the lean upstream client (`pump`) and uvicorn's cycle
    with chunked encoding already chosen (the head is out); anything else
    (another server, httpx) keeps the portable ASGI path.
    """
    cycle = getattr(send, "__self__", None)
    if not hasattr(resp, "pump") or getattr(cycle, "chunked_encoding", None) is not True:
        return None
    if not all(hasattr(cycle, name) for name in ("transport", "flow", "disconnected")):
        return None
    return cycle


async def _splice(
    resp: UpstreamResponse, cycle: Any, scanner: StreamScanner, clock: Callable[[], float]
) -> None:
    transport, flow = cycle.transport, cycle.flow

    def sink(data: bytes) -> bool:
        out = scanner.feed(data, clock())
        if out and not cycle.disconnected:
            transport.write(b"%x\r\n%s\r\n" % (len(out), out))
        return not flow.write_paused

    pump = resp.pump  # type: ignore[attr-defined]
    while not await pump(sink):
        await flow.drain()  # the client is slower than the upstream: wait, then go on


async def _whole(
    data: bytes, headers: Headers, send: Send, clock: Callable[[], float], attempt: Attempt
) -> None:
    now = clock()
    attempt.first_token_at = attempt.last_token_at = now
    try:
        attempt.usage = parse_usage(json.loads(data))
    except ValueError:
        attempt.usage = None
    attempt.response_started = attempt.exchange.response_started = True
    out = _pass_headers(headers) + attempt.extra_headers
    out.append((b"content-length", b"%d" % len(data)))
    await send({"type": "http.response.start", "status": 200, "headers": out})
    attempt.exchange.response_done = True
    await send({"type": "http.response.body", "body": data, "more_body": False})
    attempt.completed = True


def _decode(headers: Headers) -> list[tuple[str, str]]:
    """The upstream headers an error answer passes on (Retry-After only)."""
    return [("Retry-After", v.decode("latin-1")) for k, v in headers if k.lower() == b"retry-after"]
