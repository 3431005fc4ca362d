"""Useful-token accounting: which generated tokens count, decided once per request.

A request's output tokens are *useful* when it completed (not cancelled by
the client, not timed out, not failed), its TTFT and inter-token latency
met the SLO targets as the client saw them, and it was not a repeat of a
request already served (same `Idempotency-Key` or `X-Request-Id` within the
window). Everything else is *wasted*, with the first reason that applies.
The rule is `weir.planner.usefulness.judge_tokens`, the one the simulator
uses too. ITL is judged by the request's mean pace unless the caller counted
late tokens per chunk with `weir.planner.usefulness.Pace` (one float of
state and one comparison per chunk) and passes `late_tokens`: then each
token is judged on its own gap, and a request may be partly useful.
Input tokens are a cost, never a product, but carry their request's verdict
too so the operator can see what the waste cost. Counts come from the
upstream's `usage`; when it is lost (stream cut) output is the number of
token events seen and input the prompt bound the router estimated.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from weir.planner.usefulness import Reason, judge_tokens
from weir.router.sse import Usage

Outcome = Literal["completed", "cancelled", "timeout", "failed"]
Waste = Reason


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
    useful_tokens: int = 0

    @property
    def useful(self) -> bool:
        """Every output token useful (a per-token verdict may keep only some)."""
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
    late_tokens: int | None = None,
) -> Verdict:
    """Classify one request (pure; times are from one monotonic clock).

    With `late_tokens` (from a per-chunk `Pace`) ITL is judged per token;
    without it, by the request's mean pace. Non-streamed answers are judged
    by when their last token was due (see `judge_tokens`).
    """
    if usage is not None and usage.reported:
        output, prompt, cached = usage.completion_tokens, usage.prompt_tokens, usage.cached_tokens
    else:
        output, prompt, cached = counted_tokens, prompt_bound, 0
    ttft = None if first_token_at is None else max(first_token_at - started_at, 0.0)
    itl = None
    if streamed and first_token_at is not None and last_token_at is not None and output > 1:
        itl = max(last_token_at - first_token_at, 0.0) / (output - 1)
    split = judge_tokens(
        completed=outcome,
        duplicate=duplicate,
        output_tokens=output,
        ttft_s=ttft,
        mean_itl_s=itl,
        late_tokens=float(late_tokens or 0),
        ttft_target_s=ttft_target_s,
        itl_target_s=itl_target_s,
        rule="mean" if late_tokens is None else "per_token",
        streamed=streamed,
    )
    return Verdict(
        outcome, split.reason, ttft, itl, prompt, cached, output, int(split.useful_tokens)
    )


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
