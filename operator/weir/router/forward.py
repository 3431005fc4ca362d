"""One upstream attempt: open, stream bytes through the scanner, report what happened.

The response head goes to the client only with the first complete event,
so an upstream that fails before its first token can still be retried
elsewhere (another replica or the hosted endpoint) without the client
seeing two answers; after that, a failure ends the client's stream. The
first-token timeout spans connect, head and first event; the idle timeout
(the upstream client's read timeout) spans each later gap.

Nothing an upstream says reaches the client unless it is the answer itself:
of its headers only the content type and cache control pass (a hosted
provider's organisation, request ids, rate-limit state and cookies stay
here); an error status becomes the router's own error object (an endpoint
may echo the request, API key included, into its error body); a 200 whose
body is not a completion, or a stream that carries an error event, is an
upstream failure like any other.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import Send

from weir.router.errors import UpstreamError, UpstreamStatusError, UpstreamTimeoutError
from weir.router.retry import retry_after_s
from weir.router.sse import ServedModel, StreamScanner, Usage, parse_usage
from weir.router.upstream import Headers, Upstream, UpstreamResponse

_PASSED = frozenset((b"content-type", b"cache-control"))
_ERROR_TYPE = re.compile(r"[a-z][a-z0-9_]{0,63}")
_PARAM = re.compile(r"[A-Za-z_][A-Za-z0-9_.\[\]]{0,63}")  # messages[0].content
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
    itl_target_s: float | None = None  # set: count late tokens per read (the per-token rule)
    late_tokens: int | None = None
    completed: bool = False
    response_started: bool = False
    refused: bool = False
    extra_headers: list[tuple[bytes, bytes]] = field(default_factory=list)


def _pass_headers(headers: Headers) -> list[tuple[bytes, bytes]]:
    return [(k, v) for k, v in headers if k.lower() in _PASSED]


def _status_error(status: int, body: bytes, headers: Headers, max_retry_s: float) -> UpstreamError:
    """The router's own error for an upstream's error answer (status, type, Retry-After)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    error = parsed.get("error") if isinstance(parsed, dict) else None
    error = error if isinstance(error, dict) else {}
    retry: float | None = None
    if status in (429, 503):
        raw = next((v for k, v in headers if k.lower() == b"retry-after"), None)
        retry = retry_after_s(
            raw.decode("latin-1") if raw is not None else None,
            now_epoch_s=time.time(),
            max_s=max_retry_s,
        )
    return UpstreamStatusError(
        status,
        _identifier(error, "type", _ERROR_TYPE),
        retry,
        code=_identifier(error, "code", _ERROR_TYPE),
        param=_identifier(error, "param", _PARAM),
    )


def _identifier(error: dict[str, Any], name: str, pattern: re.Pattern[str]) -> str | None:
    """An upstream error's member when it is a short identifier (never free text)."""
    value = error.get(name)
    return value if isinstance(value, str) and pattern.fullmatch(value) else None


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
    max_retry_after_s: float = 60.0,
    model: ServedModel | None = None,
) -> None:
    """Run one attempt to its end; raises UpstreamError subclasses on failure.

    With `model`, the answer names that model whatever the upstream called it.
    """
    try:
        async with asyncio.timeout(first_token_timeout_s) as deadline:
            resp = await upstream.open(url, body, headers)
            try:
                if resp.status != 200:
                    error = await resp.read(_MAX_ERROR_BODY)
                    attempt.refused = True  # an error answer: nothing generated, nothing billed
                    raise _status_error(resp.status, error, resp.headers, max_retry_after_s)
                if stream:
                    scanner = StreamScanner(
                        strip_usage=strip_usage, itl_target_s=attempt.itl_target_s, model=model
                    )
                    await _stream(
                        resp, send, scanner, clock, attempt, lambda: deadline.reschedule(None)
                    )
                else:
                    data = await resp.read(_MAX_JSON_BODY)
                    deadline.reschedule(None)
                    await _whole(data, resp.headers, send, clock, attempt, model)
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
    scanner: StreamScanner,
    clock: Callable[[], float],
    attempt: Attempt,
    first_token: Callable[[], None],
) -> None:
    try:
        chunks = resp.chunks()
        async for chunk in chunks:
            out = scanner.feed(chunk, clock())
            if scanner.failed:
                raise UpstreamError("upstream stream carried an error event")
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
        if scanner.failed:
            raise UpstreamError("upstream stream carried an error event")
    finally:
        attempt.first_token_at = scanner.first_token_at
        attempt.last_token_at = scanner.last_token_at
        attempt.usage = scanner.usage
        attempt.counted_tokens = scanner.token_events
        attempt.late_tokens = scanner.late_tokens
    rest = scanner.flush(clock())
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
        if scanner.failed:
            return False
        out = scanner.feed(data, clock())
        if out and not cycle.disconnected:
            transport.write(b"%x\r\n%s\r\n" % (len(out), out))
        return not flow.write_paused and not scanner.failed

    pump = resp.pump  # type: ignore[attr-defined]
    while not await pump(sink):
        if scanner.failed:
            return
        await flow.drain()  # the client is slower than the upstream: wait, then go on


async def _whole(
    data: bytes,
    headers: Headers,
    send: Send,
    clock: Callable[[], float],
    attempt: Attempt,
    model: ServedModel | None,
) -> None:
    now = clock()
    try:
        parsed = json.loads(data)
    except (ValueError, RecursionError):
        parsed = None
    if not isinstance(parsed, dict) or "error" in parsed or "choices" not in parsed:
        raise UpstreamError("upstream answered 200 without a completion")
    if model is not None and parsed.get("model") != model.name:
        data = model.rename(data)  # the hosted endpoint's name is not the deployment's
    attempt.first_token_at = attempt.last_token_at = now
    attempt.usage = parse_usage(parsed)
    attempt.response_started = attempt.exchange.response_started = True
    out = _pass_headers(headers) + attempt.extra_headers
    out.append((b"content-length", b"%d" % len(data)))
    await send({"type": "http.response.start", "status": 200, "headers": out})
    attempt.exchange.response_done = True
    await send({"type": "http.response.body", "body": data, "more_body": False})
    attempt.completed = True
