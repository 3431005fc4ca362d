"""Which generated tokens are useful: the one rule the simulator and the router share.

A token is useful when its request completed (not abandoned, timed out or
failed), was not a duplicate of a request already paid for, its request's
time to first token met the TTFT target, and the token itself arrived within
the ITL target of the token before it.

Why per token, and not a per-request mean or a stall allowance:
- a per-request mean lets a fast stretch hide a stall: a 3 s preemption in a
  500-token answer at 20 ms a token still averages under a 60 ms target, yet
  the reader sat waiting for 3 s; and it lets a slow start ride on a fast end;
- engines and SLO-aware autoscalers measure ITL per token (vLLM's
  `inter_token_latency_seconds`, llm-d's P90 ITL signal), so an SLO's ITL
  target is a per-token bound, and the attainment target (say 99% of tokens
  useful) is what plays the percentile's role;
- a reader-buffer rule (credit for tokens that came early) needs the client's
  reading pace, which machine clients do not have, and unbounded credit makes
  a front-loaded stream immune to any stall.

A chunk of `k` tokens that arrives `gap` seconds after the previous token is
judged as `k` tokens evenly spread over the gap: all late when `gap / k`
exceeds the target, none otherwise. So how an upstream or the network groups
tokens into SSE events does not change the verdict of a stream at a steady
pace, and a stall costs every token it delays in one chunk. The check is one
division per chunk and one float of state per stream (`Pace`), cheap enough
for the router's hot path; the simulator feeds it one token per engine step
(or the expected late count of a run of identical steps).

The mean rule stays available (`rule="mean"`), since the planner's capacity
model and the existing benchmark scenarios were built on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ItlRule = Literal["mean", "per_token"]
Reason = Literal["useful", "late", "cancelled", "timeout", "failed", "duplicate", "abandoned"]


def late_in_chunk(gap_s: float, tokens: int, itl_target_s: float) -> int:
    """Late tokens in a chunk of `tokens` arriving `gap_s` after the previous token."""
    if tokens <= 0:
        return 0
    return tokens if gap_s > itl_target_s * tokens else 0


class Pace:
    """Online per-stream state for the per-token rule: the last token's time, late count."""

    __slots__ = ("last_s", "late_tokens", "tokens")

    def __init__(self) -> None:
        self.last_s: float | None = None
        self.late_tokens = 0
        self.tokens = 0

    def chunk(self, now_s: float, tokens: int, itl_target_s: float) -> None:
        """Note a chunk of `tokens` generated tokens arriving at `now_s`.

        The first chunk carries the first token, which TTFT judges; tokens
        that arrive with it have no gap, so only later chunks can be late.
        """
        if tokens <= 0:
            return
        if self.last_s is not None:
            self.late_tokens += late_in_chunk(now_s - self.last_s, tokens, itl_target_s)
        self.tokens += tokens
        self.last_s = now_s


@dataclass(frozen=True, slots=True)
class Usefulness:
    """How many of a request's generated tokens are useful, and why the rest are not."""

    useful_tokens: float
    wasted_tokens: float
    reason: Reason


def judge_tokens(
    *,
    completed: Literal["completed", "cancelled", "timeout", "failed", "abandoned"],
    duplicate: bool,
    output_tokens: float,
    ttft_s: float | None,
    mean_itl_s: float | None,
    late_tokens: float,
    ttft_target_s: float,
    itl_target_s: float,
    rule: ItlRule,
    streamed: bool = True,
) -> Usefulness:
    """Split one request's output into useful and wasted tokens (pure).

    `late_tokens` (per-token rule) is the count of tokens after the first that
    came later than the ITL target after their predecessor, from `Pace` or
    the simulated engine; with the mean rule it is ignored and `mean_itl_s`
    decides for the whole request. The reason is the first that applies.
    A non-streamed answer arrives whole, so it has no pace of its own: it is
    on time when it arrived by the time its last token was due under the
    SLO, TTFT target + ITL target x (tokens - 1).
    """
    output = max(float(output_tokens), 0.0)
    if completed != "completed":
        return Usefulness(0.0, output, completed)
    if duplicate:
        return Usefulness(0.0, output, "duplicate")
    if not streamed:
        due = ttft_target_s + itl_target_s * max(output - 1.0, 0.0)
        late_whole = ttft_s is not None and ttft_s > due
        return Usefulness(0.0, output, "late") if late_whole else Usefulness(output, 0.0, "useful")
    if ttft_s is not None and ttft_s > ttft_target_s:
        return Usefulness(0.0, output, "late")
    if rule == "mean":
        if mean_itl_s is not None and mean_itl_s > itl_target_s:
            return Usefulness(0.0, output, "late")
        return Usefulness(output, 0.0, "useful")
    late = min(max(float(late_tokens), 0.0), max(output - 1.0, 0.0))
    return Usefulness(output - late, late, "late" if late > 0 else "useful")
