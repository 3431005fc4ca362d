"""The OpenAI-compatible HTTP face shared by every weir engine backend.

It does what `trtllm-serve` does around its executor: parse chat and
completion requests, count tokens, stream SSE chunks, answer `/v1/models` and
`/health`, export the trtllm_ metrics at `/prometheus/metrics`. It also carries
what the hosted-API stand-in needs (bearer key, request rate limit with 429 and
Retry-After). A client that goes away cancels its request: the generation runs
against a disconnect watcher, so the batch slot is freed at once rather than at
the next write.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import uuid
from collections.abc import Awaitable, Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
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
            routes=[
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/v1/completions", self._completions, methods=["POST"]),
                Route("/v1/models", self._models, methods=["GET"]),
                Route("/health", self._health, methods=["GET"]),
                Route("/version", self._version, methods=["GET"]),
                Route("/prometheus/metrics", self._metrics, methods=["GET"]),
            ]
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

    def _admit(self, request: Request) -> None:
        key = self.settings.api_key
        if key is not None and request.headers.get("authorization") != f"Bearer {key}":
            raise AuthError("missing or incorrect API key (expected 'Authorization: Bearer ...')")
        if self._bucket is not None:
            self._bucket.take()

    async def _start(self, request: Request, *, chat: bool) -> Response:
        try:
            raw = await request.json()
            parsed: ChatCompletionRequest | CompletionRequest = (
                ChatCompletionRequest.model_validate(raw)
                if chat
                else CompletionRequest.model_validate(raw)
            )
        except (ValueError, ValidationError) as exc:
            raise BadRequestError(f"invalid request body: {exc}") from exc
        if isinstance(parsed, ChatCompletionRequest):
            prompt = tokenizer.render_chat([(m.role, m.text()) for m in parsed.messages])
            max_tokens = parsed.max_completion_tokens or parsed.max_tokens
        else:
            prompt = parsed.prompt_text()
            max_tokens = parsed.max_tokens
        ids = tokenizer.encode(prompt)
        max_tokens = max_tokens or self.settings.default_max_tokens
        if not ids:
            raise BadRequestError("the prompt is empty")
        if len(ids) + max_tokens > self.settings.max_model_len:
            raise BadRequestError(
                f"prompt ({len(ids)} tokens) plus max_tokens ({max_tokens}) exceeds "
                f"max_model_len {self.settings.max_model_len}"
            )
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


def _error(
    status: int, message: str, err_type: str, code: str | int, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(message, err_type, code), status_code=status, headers=headers)
