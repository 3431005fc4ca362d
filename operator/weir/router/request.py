"""Reading and rewriting one client request: size limit, JSON check, upstream bodies.

The client's body is parsed once (admission needs the prompt size, stream
flag and max_tokens) but forwarded to a local replica as the same bytes
whenever possible: asking for `stream_options.include_usage` is a byte
splice before the final brace, not a re-serialisation. Bodies for the
hosted endpoint are rebuilt, because the model name changes there, and
carry only the fields the router knows the price of (`cost`): whatever is
sent to the paid endpoint is counted in its reservation.

Hostile bodies are refused here with a 4xx, never a 500: JSON nested past
the parser's recursion limit, NaN and Infinity (not JSON, and a hosted
endpoint would refuse them after the reservation), a body that stops
short of its Content-Length (408 once the body deadline passes).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from starlette.types import Receive

from weir.router.accounting import prompt_bound
from weir.router.cost import hosted_fields
from weir.router.errors import ClientRequestError, PayloadTooLargeError, RequestTimeoutError

_USAGE_SPLICE = b',"stream_options":{"include_usage":true}}'


@dataclass(frozen=True, slots=True)
class ClientRequest:
    """A validated client request and what the router derived from it."""

    body: bytes
    parsed: dict[str, Any]
    chat: bool
    stream: bool
    wants_usage: bool
    max_tokens: int | None
    prompt_bound: int
    model: str | None = None

    @property
    def prefill_estimate(self) -> int:
        """Typical tokens of the prompt (about four bytes per token)."""
        return self.prompt_bound // 4

    def local_body(self, model: str) -> bytes:
        """The body for an engine pod: the client's bytes, asking for usage when streaming,
        rebuilt with the served name `model` when the client named an alias."""
        if self.model is not None and self.model != model:
            return self._rebuild({"model": model})
        if not self.stream or self.wants_usage:
            return self.body
        if "stream_options" not in self.parsed:
            end = self.body.rstrip().rfind(b"}")
            head = self.body[:end].rstrip()
            if not head.endswith(b"{"):
                return head + _USAGE_SPLICE
        return self._rebuild({})

    def hosted_body(self, model: str, max_tokens: int) -> bytes:
        """The body for the hosted endpoint: priced fields only, its model, a bounded max_tokens."""
        extra: dict[str, Any] = {"model": model}
        if self.max_tokens is None:
            extra["max_tokens"] = max_tokens
        return self._rebuild(extra, hosted_fields(self.parsed, chat=self.chat))

    def _rebuild(self, extra: dict[str, Any], base: dict[str, Any] | None = None) -> bytes:
        body = {**(self.parsed if base is None else base), **extra}
        if self.stream:
            options = body.get("stream_options")
            options = dict(options) if isinstance(options, dict) else {}
            options["include_usage"] = True
            body["stream_options"] = options
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


async def read_body(
    receive: Receive, content_length: bytes | None, limit: int, timeout_s: float
) -> bytes:
    """The whole request body, refusing more than `limit` bytes (413) early, or 408 late."""
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(receive, content_length, limit)
    except TimeoutError as exc:
        raise RequestTimeoutError(f"request body not received within {timeout_s} s") from exc


async def _read_body(receive: Receive, content_length: bytes | None, limit: int) -> bytes:
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError as exc:
            raise ClientRequestError(
                "Content-Length is not a number", code="invalid_header"
            ) from exc
        if declared > limit:
            raise PayloadTooLargeError(f"request body of {declared} bytes exceeds {limit} bytes")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ClientRequestError("client went away while sending the request")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body exceeds {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return parts[0] if len(parts) == 1 else b"".join(parts)


def _positive_int(parsed: dict[str, Any], *names: str) -> int | None:
    """The largest of the named limits (an upstream may honour either), each validated."""
    found: int | None = None
    for name in names:
        value = parsed.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ClientRequestError(f"'{name}' must be a positive integer", param=name)
        found = value if found is None else max(found, value)
    return found


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def parse_request(body: bytes, *, chat: bool) -> ClientRequest:
    """Validate the JSON a client sent; ClientRequestError (400) says what is wrong."""
    try:
        parsed = json.loads(body, parse_constant=_no_constants)
    except RecursionError as exc:
        raise ClientRequestError(
            "request body is not valid JSON: nested too deeply", code="invalid_json"
        ) from exc
    except ValueError as exc:
        raise ClientRequestError(
            f"request body is not valid JSON: {exc}", code="invalid_json"
        ) from exc
    if not isinstance(parsed, dict):
        raise ClientRequestError("request body must be a JSON object", code="invalid_type")
    model = parsed.get("model")
    if model is not None and not isinstance(model, str):
        raise ClientRequestError("'model' must be a string", param="model", code="invalid_type")
    _check_prompt(parsed, chat)
    stream = parsed.get("stream", False)
    if not isinstance(stream, bool):
        raise ClientRequestError("'stream' must be a boolean", param="stream", code="invalid_type")
    options = parsed.get("stream_options")
    if options is not None and not isinstance(options, dict):
        raise ClientRequestError(
            "'stream_options' must be an object", param="stream_options", code="invalid_type"
        )
    wants_usage = bool(options and options.get("include_usage") is True)
    for name in ("n", "best_of"):
        if name in parsed and _positive_int(parsed, name) is None:
            raise ClientRequestError(f"'{name}' must be a positive integer", param=name)
    try:
        bound = prompt_bound(parsed)
    except RecursionError as exc:
        raise ClientRequestError("request body is nested too deeply", code="invalid_json") from exc
    return ClientRequest(
        body=body,
        parsed=parsed,
        chat=chat,
        stream=stream,
        wants_usage=wants_usage,
        max_tokens=_positive_int(parsed, "max_completion_tokens", "max_tokens"),
        prompt_bound=bound,
        model=model,
    )


def _check_prompt(parsed: dict[str, Any], chat: bool) -> None:
    """A chat needs a non-empty `messages` list, a completion a `prompt` (400 naming it)."""
    name = "messages" if chat else "prompt"
    if name not in parsed:
        raise ClientRequestError(
            f"Missing required parameter: '{name}'", param=name, code="missing_required_parameter"
        )
    messages = parsed["messages"] if chat else None
    if chat and (not isinstance(messages, list) or not messages):
        code = "empty_array" if isinstance(messages, list) else "invalid_type"
        raise ClientRequestError("'messages' must be a non-empty list", param=name, code=code)
