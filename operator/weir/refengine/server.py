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
error, 404, 405 (with `Allow`) and 500 included, is OpenAI's error object with
a string `code` and the `param` at fault (a validation error names its field,
never pydantic's text). A request for a model this server does not serve is
a 404 `model_not_found`; `/v1/models/{id}` answers for the served one; the
OpenAI answers carry an `x-request-id` (the client's when sane). Connections
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
from weir.refengine.openai_format import DONE, ResponseFormat
from weir.refengine.protocol import (
    ChatCompletionRequest,
    CompletionRequest,
    Engine,
    Generation,
    GenerationRequest,
    Usage,
)
from weir.serving import ServerLimits, error_object, model_object, request_id

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
        include_usage: bool, rid: bytes,
    ) -> None:  # fmt: skip
        super().__init__()
        self.rid = (b"x-request-id", rid)
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
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            self.rid,
        ]
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
        length = b"%d" % len(body)
        headers = [(b"content-type", b"application/json"), (b"content-length", length), self.rid]
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
                Route("/v1/models/{model_id:path}", self._model, methods=["GET"]),
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
        body = {"object": "list", "data": [model_object(self.settings.model_name)]}
        return JSONResponse(body, headers={"x-request-id": _request_id(request)})

    async def _model(self, request: Request) -> Response:
        name = request.path_params["model_id"]
        if name != self.settings.model_name:
            return _refused(request, _model_not_found(name))
        return JSONResponse(
            model_object(self.settings.model_name), headers={"x-request-id": _request_id(request)}
        )

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
            refused = _RequestError(401, str(exc), code="invalid_api_key")
        except RateLimitedError as exc:
            self.metrics.rejected("rate_limit")
            retry = str(max(1, math.ceil(exc.retry_after_s)))
            refused = _RequestError(
                429, str(exc), "rate_limit_exceeded", "rate_limit_exceeded", {"Retry-After": retry}
            )
        except QueueFullError as exc:
            self.metrics.rejected("queue_full")
            refused = _RequestError(
                503, str(exc), "engine_overloaded", "engine_overloaded", {"Retry-After": "1"}
            )
        except BadRequestError as exc:
            refused = _RequestError(400, str(exc), code="invalid_value")
        except _RequestError as exc:
            refused = exc
        return _refused(request, refused)

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
        except ValidationError as exc:
            raise _invalid(exc) from exc
        except (ValueError, RecursionError) as exc:
            raise _RequestError(
                400, f"invalid request body: {_short(exc)}", code="invalid_json"
            ) from exc
        if parsed.model is not None and parsed.model != self.settings.model_name:
            raise _model_not_found(parsed.model)
        prompt_param = "messages" if chat else "prompt"
        if isinstance(parsed, ChatCompletionRequest):
            prompt = tokenizer.render_chat([(m.role, m.text()) for m in parsed.messages])
            max_tokens = parsed.max_completion_tokens or parsed.max_tokens
        else:
            prompt = parsed.prompt_text()
            max_tokens = parsed.max_tokens
        max_tokens = max_tokens or self.settings.default_max_tokens
        length = len(prompt.encode("utf-8"))  # one byte is one token: no list built yet
        if not length:
            raise _RequestError(
                400, "the prompt is empty", param=prompt_param, code="invalid_value"
            )
        if length + max_tokens > self.settings.max_model_len:
            raise _RequestError(
                400,
                f"prompt ({length} tokens) plus max_tokens ({max_tokens}) exceeds "
                f"max_model_len {self.settings.max_model_len}",
                param=prompt_param,
                code="context_length_exceeded",
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
            generation,
            fmt,
            tracker,
            stream=parsed.stream,
            include_usage=parsed.include_usage,
            rid=request_id(request.headers.get("x-request-id", "").encode("latin-1") or None),
        )

    async def _body(self, request: Request) -> bytes:
        """The request body within the size limit and the body deadline."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise _body_error(413, f"request body over {limit} bytes (or a bad Content-Length)")
        parts: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.settings.limits.body_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        raise _body_error(413, f"request body over {limit} bytes")
                    parts.append(chunk)
        except TimeoutError as exc:
            raise _body_error(408, "request body not received in time") from exc
        return b"".join(parts)


class _RequestError(Exception):
    """A request answered with an OpenAI error object: status, type, code, param, headers."""

    def __init__(
        self,
        status: int,
        message: str,
        err_type: str = "invalid_request_error",
        code: str | None = None,
        headers: dict[str, str] | None = None,
        *,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.err_type, self.code, self.param = status, err_type, code, param
        self.headers = headers or {}


def _body_error(status: int, message: str) -> _RequestError:
    """The body could not be read within the limits (413 or 408): the connection closes,
    the rest of the body is not read."""
    code = "request_too_large" if status == 413 else "request_timeout"
    return _RequestError(status, message, code=code, headers={"Connection": "close"})


def _model_not_found(name: str) -> _RequestError:
    shown = name if len(name) <= 200 else name[:200] + "..."
    message = f"The model '{shown}' does not exist"
    return _RequestError(404, message, code="model_not_found", param="model")


def _invalid(exc: ValidationError) -> _RequestError:
    """A validation error as OpenAI words it: its first field and what is wrong with it
    (pydantic's own text quotes the input and links its docs)."""
    first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
    param = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    if first["type"] == "missing":
        code, message = "missing_required_parameter", f"Missing required parameter: '{param}'"
    else:
        kind = first["type"]
        code = "invalid_type" if kind.endswith(("_type", "_parsing")) else "invalid_value"
        message = f"Invalid '{param}': {first['msg']}"
    return _RequestError(400, message, code=code, param=param or None)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body, parse_constant=_no_constant)
    except RecursionError as exc:
        raise _RequestError(
            400, "invalid request body: JSON nested too deeply", code="invalid_json"
        ) from exc
    except ValueError as exc:
        raise _RequestError(
            400, f"invalid request body: {_short(exc)}", code="invalid_json"
        ) from exc


def _short(exc: BaseException) -> str:
    """An error's message, bounded (pydantic quotes the offending input)."""
    text = str(exc)
    return text if len(text) <= 500 else text[:500] + "..."


_HTTP_CODES = {404: "unknown_url", 405: "method_not_allowed"}


async def _http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own 404 and 405 (with its `Allow`), as OpenAI error objects."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    headers = dict(exc.headers or {}) if isinstance(exc, HTTPException) else {}
    message = f"{request.method} {request.url.path[:200]} is not served"
    code = _HTTP_CODES.get(status, "invalid_request")
    return _refused(request, _RequestError(status, message, code=code, headers=headers))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error serving %s: %s", request.url.path[:200], type(exc).__name__)
    refused = _RequestError(500, "internal error", "internal_error", "internal_error")
    return _refused(request, refused)


def _request_id(request: Request) -> str:
    given = request.headers.get("x-request-id")
    return request_id(given.encode("latin-1") if given is not None else None).decode()


def _refused(request: Request, exc: _RequestError) -> JSONResponse:
    body = error_object(str(exc), exc.err_type, exc.code, exc.param)
    headers = {**exc.headers, "x-request-id": _request_id(request)}
    return JSONResponse(body, status_code=exc.status, headers=headers)
