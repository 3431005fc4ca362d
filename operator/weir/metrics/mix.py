"""The planner's prompt mix, from the router's prefill histogram and its token counters.

Why a mix and not a mean: a replica's TTFT at the SLO percentile is set by the
long prompts, and the planner sends prompts too long for any replica's TTFT
budget to the hosted endpoint. A mean hides both, so a long-context tail would
either blow the SLO or be sized for as if every prompt were long.

A Prometheus histogram gives requests per bucket, not tokens per bucket. The
bucket's tokens are estimated at its midpoint, then every finite bucket is
scaled by one factor (each kept inside its bounds) so that the total matches
the prompt-token counter, the exact figure; the open top bucket takes what is
left, under the fixed bound MIX_TOP_BOUND (a bound that moved with each window
would make the planner's smoothing keep one bucket per cycle). Shares come
from the histogram, absolute rates from the counters, so requests that ended
without usage (failures) count in the rate but not in the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from weir.planner.types import MIX_TOP_BOUND, MixBucket


def one_bucket(
    requests: float, input_tokens: float, prefill_tokens: float, output_tokens: float
) -> tuple[MixBucket, ...]:
    """No histogram (an older router, or a template without one): one bucket at twice the mean."""
    if requests <= 0:
        return ()
    bound = max(1.0, 2.0 * prefill_tokens / requests)
    return (MixBucket(bound, requests, input_tokens, prefill_tokens, output_tokens),)


def mix_from_histogram(
    histogram: Sequence[tuple[float, float]],
    requests: float,
    input_tokens: float,
    prefill_tokens: float,
    output_tokens: float,
) -> tuple[MixBucket, ...]:
    """Buckets of the window's requests by prefill length; totals equal the counters'.

    `histogram` is cumulative (le, rate) ascending, as `rate(..._bucket)` gives it;
    the other arguments are the window's totals (requests and tokens, not rates).
    """
    rows: list[tuple[float, float, float]] = []  # (lower, upper, count) of non-empty buckets
    lower, seen = 0.0, 0.0
    for le, cumulative in histogram:
        count = max(0.0, cumulative - seen)  # rate() extrapolation can dent monotonicity
        seen = max(seen, cumulative)
        if count > 0:
            rows.append((lower, le, count))
        lower = le
    total = sum(count for _, _, count in rows)
    if requests <= 0 or total <= 0:
        return one_bucket(requests, input_tokens, prefill_tokens, output_tokens)
    shares = [count / total for _, _, count in rows]
    reqs = [requests * share for share in shares]
    open_top = not math.isfinite(rows[-1][1])  # buckets are merged by le: at most one is open
    finite = rows[:-1] if open_top else rows
    mids = [(lo + up) / 2.0 for lo, up, _ in finite]
    estimate = sum(r * m for r, m in zip(reqs, mids, strict=False))
    scale = prefill_tokens / estimate if estimate > 0 and not open_top else 1.0
    per_request = [min(max(m * scale, lo), up) for m, (lo, up, _) in zip(mids, finite, strict=True)]
    bounds = [up for _, up, _ in finite]
    if open_top:
        left = prefill_tokens - sum(r * t for r, t in zip(reqs, per_request, strict=False))
        per_request.append(min(max(left / reqs[-1], rows[-1][0]), MIX_TOP_BOUND))
        bounds.append(MIX_TOP_BOUND)  # fixed, so smoothing merges it across cycles
    cached = max(0.0, input_tokens - prefill_tokens)  # prefix-cache hits, spread by requests
    return tuple(
        MixBucket(
            prefill_tokens_le=bound,
            requests=r,
            input_tokens=r * t + cached * share,
            prefill_tokens=r * t,
            output_tokens=output_tokens * share,
        )
        for bound, r, t, share in zip(bounds, reqs, per_request, shares, strict=True)
    )
