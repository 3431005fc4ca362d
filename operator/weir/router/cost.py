"""What a hosted request may cost at most: the whole body, every choice, every token.

The hard cap holds only if each hosted request reserves an upper bound of
its bill before it is sent. A provider bills every prompt token it renders
(messages with all their fields, tools, functions, response_format
schemas, the template around them) once, and every generated token of
every choice (`n`, `best_of`). The router therefore sends the hosted
endpoint only the fields it knows the price of (the lists below; anything
else, engine extensions or priced features such as audio, predictions,
web search or a service tier, stays behind), and bounds the prompt by the
byte length of exactly the body it sends: byte-level BPE tokens are at
least one byte long, so bytes bound tokens, plus a generous template
overhead per message and per tool. Content it cannot price (images,
audio, files: billed per tile or second, not per byte), or a completion
that echoes its prompt, makes a request ineligible for hosted: it is
served locally or refused like any request the hosted tier cannot take.
Property-tested in tests/router against a biller that charges the most a
provider could.
"""

from __future__ import annotations

import json
from typing import Any

MAX_CHOICES = 128  # n / best_of above this are refused (OpenAI's own limit)
_BASE_TOKENS = 64  # BOS, assistant turn, tool preamble
_PER_MESSAGE_TOKENS = 32  # role and template markers of one message
_PER_TOOL_TOKENS = 64  # a function's wrapper text in the provider's rendering
_MODEL_FIELD_BYTES = 64  # "model" and "max_tokens" added after the bound is taken

_COMMON = (
    "stream",
    "stream_options",
    "max_tokens",
    "temperature",
    "top_p",
    "n",
    "stop",
    "presence_penalty",
    "frequency_penalty",
    "logit_bias",
    "logprobs",
    "seed",
    "user",
)
CHAT_FIELDS = frozenset(
    (
        *_COMMON,
        "messages",
        "max_completion_tokens",
        "top_logprobs",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "functions",
        "function_call",
        "response_format",
        "reasoning_effort",
    )
)
COMPLETION_FIELDS = frozenset((*_COMMON, "prompt", "echo", "suffix", "best_of"))
_TEXT_PARTS = frozenset(("text", "refusal"))


def hosted_fields(parsed: dict[str, Any], *, chat: bool) -> dict[str, Any]:
    """The fields of a client body that may go to the hosted endpoint (priced ones)."""
    allowed = CHAT_FIELDS if chat else COMPLETION_FIELDS
    return {k: v for k, v in parsed.items() if k in allowed}


def choices(parsed: dict[str, Any]) -> int:
    """Completions generated per request (n, best_of); validated by the caller."""
    found = 1
    for name in ("n", "best_of"):
        value = parsed.get(name)
        if isinstance(value, int) and not isinstance(value, bool):
            found = max(found, value)
    return found


def _priceable(messages: object) -> bool:
    if not isinstance(messages, list):
        return True
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):
            for part in content:
                if not isinstance(part, dict) or part.get("type") not in _TEXT_PARTS:
                    return False
    return True


def hosted_input_bound(parsed: dict[str, Any], *, chat: bool) -> int | None:
    """Upper bound on the prompt tokens a provider bills for this request; None: unpriceable.

    The model name and max_tokens are added to the body later (the policy
    names them); `_MODEL_FIELD_BYTES` plus the caller's model length cover them.
    """
    fields = hosted_fields(parsed, chat=chat)
    if chat and not _priceable(fields.get("messages")):
        return None
    if fields.get("echo") is True:
        return None  # the prompt may come back billed as output: not bounded here
    size = len(json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode())
    messages = fields.get("messages")
    tools = [fields.get("tools"), fields.get("functions")]
    count = len(messages) if isinstance(messages, list) else 1
    tool_count = sum(len(t) for t in tools if isinstance(t, list))
    bound = _BASE_TOKENS + _MODEL_FIELD_BYTES + size
    return bound + _PER_MESSAGE_TOKENS * count + _PER_TOOL_TOKENS * tool_count


def safe_hosted_input_bound(parsed: dict[str, Any], *, chat: bool) -> int | None:
    """`hosted_input_bound`, or None when the body cannot be re-encoded (it stays local)."""
    try:
        return hosted_input_bound(parsed, chat=chat)
    except (ValueError, TypeError, RecursionError):
        return None
