"""Useful-token accounting: which generated tokens count, decided once per request.

A request's output tokens are *useful* when it completed (not cancelled by
the client, not timed out, not failed), its TTFT and mean inter-token latency
met the SLO targets as the client saw them, and it was not a repeat of a
request already served (same `Idempotency-Key` or `X-Request-Id` within the
window). Everything else is *wasted*, with the first reason that applies.
Input tokens are a cost, never a product, but carry their request's verdict
too so the operator can see what the waste cost. Counts come from the
upstream's `usage`; when it is lost (stream cut) output is the number of
token events seen and input the prompt bound the router estimated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from weir.router.sse import Usage

Outcome = Literal["completed", "cancelled", "timeout", "failed"]
Waste = Literal["useful", "late", "cancelled", "timeout", "failed", "duplicate"]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Timing and token counts of one finished request, and whether they were useful."""

    outcome: Outcome
    waste: Waste
    ttft_s: float | None
    itl_s: float | None
    input_tokens: int
    cached_tokens: int
    output_tokens: int

    @property
    def useful(self) -> bool:
        return self.waste == "useful"


def judge(
    *,
    outcome: Outcome,
    duplicate: bool,
    started_at: float,
    first_token_at: float | None,
    last_token_at: float | None,
    usage: Usage | None,
    counted_tokens: int,
    prompt_bound: int,
    ttft_target_s: float,
    itl_target_s: float,
    streamed: bool = True,
) -> Verdict:
    """Classify one request (pure; times are from one monotonic clock).

    A non-streaming answer arrives whole, so it has no pace of its own: it is
    on time when it arrived by the time its last token was due under the SLO,
    TTFT target + ITL target x (tokens - 1).
    """
    if usage is not None and usage.reported:
        output, prompt, cached = usage.completion_tokens, usage.prompt_tokens, usage.cached_tokens
    else:
        output, prompt, cached = counted_tokens, prompt_bound, 0
    ttft = None if first_token_at is None else max(first_token_at - started_at, 0.0)
    itl = None
    if streamed and first_token_at is not None and last_token_at is not None and output > 1:
        itl = max(last_token_at - first_token_at, 0.0) / (output - 1)
    waste: Waste
    if outcome != "completed":
        waste = outcome
    elif duplicate:
        waste = "duplicate"
    elif _late(ttft, itl, output, ttft_target_s, itl_target_s, streamed):
        waste = "late"
    else:
        waste = "useful"
    return Verdict(outcome, waste, ttft, itl, prompt, cached, output)


def _late(
    ttft: float | None,
    itl: float | None,
    output: int,
    ttft_target: float,
    itl_target: float,
    streamed: bool,
) -> bool:
    if not streamed:
        due = ttft_target + itl_target * max(output - 1, 0)
        return ttft is not None and ttft > due
    return (ttft is not None and ttft > ttft_target) or (itl is not None and itl > itl_target)


class DuplicateTracker:
    """Idempotency keys seen within a window; a second sighting is a duplicate."""

    def __init__(self, window_s: float, max_keys: int = 200_000) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self._seen: OrderedDict[str, float] = OrderedDict()

    def seen_before(self, key: str | None, now_s: float) -> bool:
        """Record `key` (first sighting) or report it as a repeat."""
        if key is None or self.window_s <= 0:
            return False
        seen = self._seen
        horizon = now_s - self.window_s
        while seen:
            oldest, at = next(iter(seen.items()))
            if at > horizon and len(seen) < self.max_keys:
                break
            del seen[oldest]
        if key in seen:
            return True
        seen[key] = now_s
        return False


def prompt_bound(body: dict[str, object]) -> int:
    """An upper bound on prompt tokens: one per byte of text, plus template overhead.

    Byte-level BPE tokens are at least one byte long, so the text's length in
    bytes bounds its token count; each chat message adds its role and the
    template's markers (32 tokens is generous for the common templates).
    """
    total = 16
    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            total += 32 + len(
                str(message.get("content", "")).encode() if isinstance(message, dict) else b""
            )
        return total
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        return total + sum(len(str(p).encode()) for p in prompt)
    return total + len(str(prompt or "").encode())
