"""Bill like a hosted provider: `n` completions and the tools' text are paid for.

The hosted stand-in is the emulated engine, which answers one choice and
counts only the prompt's own tokens. A provider bills every one of `n` (or
`best_of`) completions and the tool definitions it renders into the prompt,
so a stand-in that did not would let a budget-cap scenario pass with traffic
that costs a real provider several times more. This ASGI wrapper reads the
request, hands the engine one choice of it (the emulated engine serves one),
and rewrites the `usage` it reports (the streamed usage event or the whole
body's): completion tokens times the choices asked for, prompt tokens plus the
tools' JSON (the emulated tokenizer's one byte a token).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _asked(body: bytes) -> tuple[int, int, bytes]:
    """(choices, extra prompt tokens) a provider would bill for this request body, and the
    body the engine is handed: the same, asking for one choice."""
    try:
        request = json.loads(body)
    except ValueError:
        return 1, 0, body
    if not isinstance(request, dict):
        return 1, 0, body
    choices = 1
    for name in ("n", "best_of"):
        value = request.pop(name, None)
        if isinstance(value, int) and not isinstance(value, bool):
            choices = max(choices, value)
    tools = [request.get(k) for k in ("tools", "functions") if request.get(k)]
    extra = sum(len(json.dumps(t, separators=(",", ":")).encode()) for t in tools)
    return choices, extra, json.dumps(request).encode() if choices > 1 else body


def _billed(usage: dict[str, Any], choices: int, extra: int) -> dict[str, Any]:
    prompt = int(usage.get("prompt_tokens", 0)) + extra
    completion = int(usage.get("completion_tokens", 0)) * choices
    return {**usage, "prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}  # fmt: skip


def _rewrite_events(data: bytes, choices: int, extra: int) -> bytes:
    """SSE events with each usage object billed; anything else passes as it is."""
    out = []
    for event in data.split(b"\n\n"):
        if event.startswith(b"data: {") and b'"usage"' in event:
            try:
                chunk = json.loads(event[6:])
            except ValueError:
                out.append(event)
                continue
            if isinstance(chunk, dict) and isinstance(chunk.get("usage"), dict):
                chunk["usage"] = _billed(chunk["usage"], choices, extra)
                event = b"data: " + json.dumps(chunk, separators=(",", ":")).encode()
        out.append(event)
    return b"\n\n".join(out)


def _with_length(headers: list[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


def provider_billing(app: ASGIApp) -> ASGIApp:
    """`app` with its usage billed as a provider bills (see the module docstring)."""

    async def billed(scope: Scope, receive: Receive, send: Send) -> None:
        parts: list[Message] = []
        while True:
            message = await receive()
            parts.append(message)
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in parts if m["type"] == "http.request")
        choices, extra, handed = _asked(body)
        if handed is not body:
            parts = [{"type": "http.request", "body": handed, "more_body": False}]
            scope = {**scope, "headers": _with_length(scope.get("headers", []), len(handed))}
        replay = iter(parts)

        async def replayed() -> Message:
            return next(replay, None) or await receive()

        start: Message | None = None
        whole: list[bytes] = []

        async def rewriting(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                kinds = dict(message.get("headers", []))
                if b"text/event-stream" in kinds.get(b"content-type", b""):
                    await send(message)  # streamed: events are rewritten as they pass
                else:
                    start = message  # a whole body: its length changes, so wait for it
                return
            if message["type"] != "http.response.body":
                await send(message)
                return
            if start is None:
                data = _rewrite_events(message.get("body", b""), choices, extra)
                await send({**message, "body": data})
                return
            whole.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            data = b"".join(whole)
            try:
                answer = json.loads(data)
                if isinstance(answer, dict) and isinstance(answer.get("usage"), dict):
                    answer["usage"] = _billed(answer["usage"], choices, extra)
                    data = json.dumps(answer).encode()
            except ValueError:
                pass
            headers = _with_length(list(start.get("headers", [])), len(data))
            await send({**start, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await app(scope, replayed, rewriting)

    return billed
