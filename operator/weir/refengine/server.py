"""The OpenAI-compatible HTTP face shared by every weir engine backend.

It does what `trtllm-serve` does around its executor: parse chat and
completion requests, count tokens, stream SSE chunks, answer `/v1/models` and
`/health`, export the trtllm_ metrics at `/prometheus/metrics`. It also carries
what the hosted-API stand-in needs (bearer key, request rate limit with 429 and
Retry-After). A client that goes away cancels its request: the generation runs
against a disconnect watcher, so the batch slot is freed at once rather than at
the next write.

Hostile requests cost it little: a body over `max_body_bytes` is refused
from its Content-Length or as soon as it grows past the limit (413), a body
that stops short is refused after the body deadline (408), JSON nested past
the parser's limit is a 400, a prompt longer than the model is refused from
its byte length (one byte is one token) before it is tokenized, and every
error, 404 and 500 included, is an OpenAI-style JSON object. Connections
are bounded by `weir.serving` (head size and deadline, keep-alive, count).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from weir.engines.errors import AuthError, BadRequestError, QueueFullError, RateLimitedError
from weir.refengine import tokenizer
from weir.refengine.metrics import EngineMetrics
from weir.refengine.openai_format import DONE, ResponseFormat, error_body
from weir.refengine.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    Engine,
    Generation,
    GenerationRequest,
    Usage,
)
from weir.serving import ServerLimits

log = logging.getLogger("weir.refengine")


class ServerSettings(BaseModel):
    """How the HTTP layer behaves; the engine's own limits live with the engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model_name: str = Field(min_length=1, description="Name served in /v1/models and answers.")
    api_key: str | None = Field(default=None, description="Bearer key required when set.")
    rate_limit_rps: float | None = Field(
        default=None, gt=0, description="Requests per second admitted (token bucket), or none."
    )
    rate_limit_burst: int = Field(default=1, ge=1, description="Token bucket size, requests.")
    default_max_tokens: int = Field(default=256, ge=1, description="When max_tokens is absent.")
    max_model_len: int = Field(
        default=32768, ge=2, description="Prompt plus max_tokens limit, tokens (400 above)."
    )
    max_body_bytes: int = Field(
        default=4 << 20,
        ge=1024,
        le=1 << 30,
        description="Request body limit, bytes (413 above): a max_model_len prompt in JSON "
        "with room to spare.",
    )
    limits: ServerLimits = Field(
        default_factory=ServerLimits, description="Header, timeout and connection bounds."
    )


class TokenBucket:
    """Request rate limit; `clock` is injected so tests need no sleeps."""

    def __init__(self, rate: float, burst: int, clock: Callable[[], float]) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._clock = clock
        self._last = clock()

    def take(self) -> None:
        """Take one request's token or raise `RateLimitedError` with the wait."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return
        raise RateLimitedError((1.0 - self._tokens) / self._rate)


class _Tracker:
    """Times one request and records it in the trtllm_ metrics."""

    def __init__(self, metrics: EngineMetrics, prompt_tokens: int, cached_tokens: int) -> None:
        self.metrics = metrics
        self.usage = Usage(prompt_tokens=prompt_tokens, cached_tokens=cached_tokens)
        self.start = time.perf_counter()
        self.first: float | None = None

    def token(self) -> None:
        if self.first is None:
            self.first = time.perf_counter()
            self.metrics.ttft.observe(self.first - self.start)
            self.metrics.prompt_tokens.inc(self.usage.prompt_tokens)
            if self.usage.cached_tokens:
                self.metrics.cached_tokens.inc(self.usage.cached_tokens)
        self.usage.completion_tokens += 1
        self.metrics.generation_tokens.inc()

    def finished(self, finish_reason: str) -> None:
        end = time.perf_counter()
        self.metrics.e2e.observe(end - self.start)
        n = self.usage.completion_tokens
        if self.first is not None and n > 1:
            self.metrics.tpot.observe((end - self.first) / (n - 1))
        self.metrics.success(finish_reason)


async def run_until_disconnect(receive: Receive, work: Callable[[], Awaitable[None]]) -> bool:
    """Run `work`, cancelling it if the client disconnects; True when it completed."""
    work_task = asyncio.ensure_future(work())

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    watch_task = asyncio.ensure_future(watch())
    try:
        await asyncio.wait({work_task, watch_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (watch_task, work_task):
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    if work_task.cancelled():
        return False
    work_task.result()
    return True


class _GenerationResponse(Response):
    """Streams (SSE) or collects one generation, tied to the client's connection."""

    def __init__(
        self, generation: Generation, fmt: ResponseFormat, tracker: _Tracker, *, stream: bool,
        include_usage: bool,
    ) -> None:  # fmt: skip
        super().__init__()
        self.generation = generation
        self.fmt = fmt
        self.tracker = tracker
        self.stream = stream
        self.include_usage = include_usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        work = self._stream if self.stream else self._collect
        try:
            await run_until_disconnect(receive, lambda: work(send))
        finally:
            self.generation.cancel()

    async def _stream(self, send: Send) -> None:
        headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        opening = self.fmt.opening()
        if opening:
            await send({"type": "http.response.body", "body": opening, "more_body": True})
        decoder = tokenizer.StreamDecoder()
        async for tok in self.generation:
            counted = tok.token_id < tokenizer.EOS_ID
            if counted:
                self.tracker.token()
            text = decoder.decode(tok.token_id)
            if tok.finish_reason is not None:
                chunk = self.fmt.finish(text, tok.finish_reason)
                self.tracker.finished(tok.finish_reason)
            elif text:
                chunk = self.fmt.token(text)
            else:
                continue
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        tail = self.fmt.usage(self.tracker.usage) if self.include_usage else b""
        await send({"type": "http.response.body", "body": tail + DONE, "more_body": False})

    async def _collect(self, send: Send) -> None:
        decoder = tokenizer.StreamDecoder()
        parts: list[str] = []
        finish = "length"
        async for tok in self.generation:
            if tok.token_id < tokenizer.EOS_ID:
                self.tracker.token()
            parts.append(decoder.decode(tok.token_id))
            if tok.finish_reason is not None:
                finish = tok.finish_reason
        self.tracker.finished(finish)
        body = JSONResponse(self.fmt.body("".join(parts), finish, self.tracker.usage)).body
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body, "more_body": False})


class EngineServer:
    """The Starlette app of one engine replica, with its own metrics registry."""

    def __init__(
        self, engine: Engine, settings: ServerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.metrics = EngineMetrics(settings.model_name, engine.engine_type, engine.stats)
        self._bucket = (
            TokenBucket(settings.rate_limit_rps, settings.rate_limit_burst, clock)
            if settings.rate_limit_rps is not None
            else None
        )
        self.app = Starlette(
            exception_handlers={HTTPException: _http_error, Exception: _internal_error},
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/version", self._version, methods=["GET"]),
                Route("/prometheus/metrics", self._metrics, methods=["GET"]),
            ],
        )

    async def _health(self, request: Request) -> Response:
        return Response(status_code=200)

    async def _version(self, request: Request) -> Response:
        return JSONResponse({"version": f"weir-{self.engine.engine_type}"})

    async def _metrics(self, request: Request) -> Response:
        return Response(self.metrics.render(), media_type="text/plain; version=0.0.4")

    async def _models(self, request: Request) -> Response:
        name = self.settings.model_name
        model = {"id": name, "object": "model", "created": 0, "owned_by": "weir"}
        return JSONResponse({"object": "list", "data": [model]})

    async def _chat(self, request: Request) -> Response:
        return await self._handle(request, chat=True)

    async def _completions(self, request: Request) -> Response:
        return await self._handle(request, chat=False)

    async def _handle(self, request: Request, *, chat: bool) -> Response:
        try:
            self._admit(request)
            return await self._start(request, chat=chat)
        except AuthError as exc:
            self.metrics.rejected("auth")
            return _error(401, str(exc), "invalid_request_error", "invalid_api_key")
        except RateLimitedError as exc:
            self.metrics.rejected("rate_limit")
            retry = str(max(1, math.ceil(exc.retry_after_s)))
            return _error(429, str(exc), "rate_limit_exceeded", 429, {"Retry-After": retry})
        except QueueFullError as exc:
            self.metrics.rejected("queue_full")
            return _error(503, str(exc), "engine_overloaded", 503, {"Retry-After": "1"})
        except BadRequestError as exc:
            return _error(400, str(exc), "invalid_request_error", 400)
        except _BodyError as exc:
            headers = {"Connection": "close"}  # the rest of the body is not read
            return _error(exc.status, str(exc), "invalid_request_error", exc.status, headers)

    def _admit(self, request: Request) -> None:
        key = self.settings.api_key
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            raise AuthError("missing or incorrect API key (expected 'Authorization: Bearer ...')")
        if self._bucket is not None:
            self._bucket.take()

    async def _start(self, request: Request, *, chat: bool) -> Response:
        raw = _parse_json(await self._body(request))
        try:
            parsed: ChatCompletionRequest | CompletionRequest = (
                ChatCompletionRequest.model_validate(raw)
                if chat
                else CompletionRequest.model_validate(raw)
            )
        except (ValueError, ValidationError, RecursionError) as exc:
            raise BadRequestError(f"invalid request body: {_short(exc)}") from exc
        if isinstance(parsed, ChatCompletionRequest):
            prompt = tokenizer.render_chat([(m.role, m.text()) for m in parsed.messages])
            max_tokens = parsed.max_completion_tokens or parsed.max_tokens
        else:
            prompt = parsed.prompt_text()
            max_tokens = parsed.max_tokens
        max_tokens = max_tokens or self.settings.default_max_tokens
        length = len(prompt.encode("utf-8"))  # one byte is one token: no list built yet
        if not length:
            raise BadRequestError("the prompt is empty")
        if length + max_tokens > self.settings.max_model_len:
            raise BadRequestError(
                f"prompt ({length} tokens) plus max_tokens ({max_tokens}) exceeds "
                f"max_model_len {self.settings.max_model_len}"
            )
        ids = tokenizer.encode(prompt)
        gen_request = GenerationRequest(
            request_id=uuid.uuid4().hex,
            prompt_ids=tuple(ids),
            max_tokens=max_tokens,
            ignore_eos=parsed.ignore_eos,
            temperature=parsed.temperature,
            seed=parsed.seed,
        )
        generation = self.engine.submit(gen_request)
        tracker = _Tracker(self.metrics, len(ids), generation.cached_tokens)
        fmt = ResponseFormat(chat=chat, model=self.settings.model_name)
        return _GenerationResponse(
            generation, fmt, tracker, stream=parsed.stream, include_usage=parsed.include_usage
        )

    async def _body(self, request: Request) -> bytes:
        """The request body within the size limit and the body deadline."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _BodyError(413, f"request body over {limit} bytes (or a bad Content-Length)")
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.limits.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _BodyError(413, f"request body over {limit} bytes")
                    parts.append(chunk)
        except TimeoutError as exc:
            raise _BodyError(408, "request body not received in time") from exc
        return b"".join(parts)


class _BodyError(Exception):
    """The body could not be read within the limits (413 or 408)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError as exc:
        raise BadRequestError("invalid request body: JSON nested too deeply") from exc
    except ValueError as exc:
        raise BadRequestError(f"invalid request body: {_short(exc)}") from exc


def _short(exc: BaseException) -> str:
    """An error's message, bounded (pydantic quotes the offending input)."""
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    kind = "not_found_error" if status == 404 else "invalid_request_error"
    message = f"{request.method} {request.url.path[:200]} is not served"
    return _error(status, message, kind, status)


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error serving %s: %s", request.url.path[:200], type(exc).__name__)
    return _error(500, "internal error", "internal_error", 500)


def _error(
    status: int, message: str, err_type: str, code: str | int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, err_type, code), status_code=status, headers=headers)
