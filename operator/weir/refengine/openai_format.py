"""OpenAI wire format: the SSE chunks and JSON bodies of chat and completions.

Chunks are the hot path of every engine (one per generated token, dozens of
emulated replicas per core), so the constant part of a token chunk is encoded
once per request and only the token text is JSON-escaped per token. Lines are
`data: {json}\\n\\n` and the stream ends with `data: [DONE]\\n\\n`, as OpenAI and
`trtllm-serve` write them; `usage` comes in a last chunk with empty `choices`
when the client asked for `stream_options.include_usage`.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from weir.refengine.protocol import Usage

DONE = b"data: [DONE]\n\n"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class ResponseFormat:
    """Builds the chunks and the final body of one request (chat or completion)."""

    def __init__(self, *, chat: bool, model: str) -> None:
        self.chat = chat
        kind = "chatcmpl" if chat else "cmpl"
        self.id = f"{kind}-{uuid.uuid4().hex}"
        self.model = model
        self.created = int(time.time())
        self._object = "chat.completion.chunk" if chat else "text_completion"
        head = (
            f'data: {{"id":"{self.id}","object":"{self._object}",'
            f'"created":{self.created},"model":{_dumps(model)},"choices":[{{"index":0,'
        )
        if chat:
            self._token_prefix = head + '"delta":{"content":'
            self._token_suffix = '},"logprobs":null,"finish_reason":null}],"usage":null}\n\n'
        else:
            self._token_prefix = head + '"text":'
            self._token_suffix = ',"logprobs":null,"finish_reason":null}],"usage":null}\n\n'

    def _chunk(self, choices: list[dict[str, Any]], usage: Usage | None) -> bytes:
        body = {
            "id": self.id,
            "object": self._object,
            "created": self.created,
            "model": self.model,
            "choices": choices,
            "usage": usage.as_dict() if usage is not None else None,
        }
        return f"data: {_dumps(body)}\n\n".encode()

    def opening(self) -> bytes:
        """Chat streams announce the role first; completions have no opening chunk."""
        if not self.chat:
            return b""
        choice = {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None}
        return self._chunk([{**choice, "finish_reason": None}], None)

    def token(self, text: str) -> bytes:
        return (self._token_prefix + _dumps(text) + self._token_suffix).encode()

    def finish(self, text: str, finish_reason: str) -> bytes:
        """The last content chunk, carrying the finish reason."""
        key, value = ("delta", {"content": text}) if self.chat else ("text", text)
        choice = {"index": 0, key: value, "logprobs": None, "finish_reason": finish_reason}
        return self._chunk([choice], None)

    def usage(self, usage: Usage) -> bytes:
        return self._chunk([], usage)

    def body(self, text: str, finish_reason: str, usage: Usage) -> dict[str, Any]:
        """The non-streaming answer."""
        if self.chat:
            choice: dict[str, Any] = {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
            obj = "chat.completion"
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}
            obj = "text_completion"
        return {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
            "usage": usage.as_dict(),
        }
