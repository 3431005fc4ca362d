"""The planner's prompt mix, from the router's prefill histogram and its token counters.

Why a mix and not a mean: a replica's TTFT at the SLO percentile is set by the
long prompts, and the planner sends prompts too long for any replica's TTFT
budget to the hosted endpoint. A mean hides both, so a long-context tail would
either blow the SLO or be sized for as if every prompt were long.

A Prometheus histogram gives requests per bucket, not tokens per bucket. The
bucket's tokens are estimated at its midpoint, then every finite bucket is
scaled by one factor (each kept inside its bounds) so that the total matches
the prompt-token counter, the exact figure; the open top bucket takes what is
left. Shares come from the histogram, absolute rates from the counters, so
requests that ended without usage (failures) count in the rate but not in
the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from weir.planner.types import MixBucket


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
    counts, lowers, uppers = [], [], []
    lower, seen = 0.0, 0.0
    for le, cumulative in histogram:
        count = max(0.0, cumulative - seen)  # rate() extrapolation can dent monotonicity
        seen = max(seen, cumulative)
        if count > 0:
            counts.append(count)
            lowers.append(lower)
            uppers.append(le)
        lower = le
    total = sum(counts)
    if requests <= 0 or total <= 0:
        return one_bucket(requests, input_tokens, prefill_tokens, output_tokens)
    shares = [c / total for c in counts]
    reqs = [requests * s for s in shares]
    finite = [i for i, up in enumerate(uppers) if math.isfinite(up)]
    mids = {i: (lowers[i] + uppers[i]) / 2.0 for i in finite}
    estimate = sum(reqs[i] * mids[i] for i in finite)
    open_top = [i for i in range(len(uppers)) if i not in mids]
    per_request = dict.fromkeys(range(len(uppers)), 0.0)
    scale = prefill_tokens / estimate if estimate > 0 and not open_top else 1.0
    for i in finite:
        per_request[i] = min(max(mids[i] * scale, lowers[i]), uppers[i])
    bounds = list(uppers)
    for i in open_top:
        left = prefill_tokens - sum(reqs[j] * per_request[j] for j in finite)
        per_request[i] = max(left / reqs[i], lowers[i])
        bounds[i] = max(2.0 * per_request[i], 2.0 * lowers[i], 1.0)
    prefill = [reqs[i] * per_request[i] for i in range(len(reqs))]
    cached = max(0.0, input_tokens - prefill_tokens)  # prefix-cache hits, spread by requests
    return tuple(
        MixBucket(
            prefill_tokens_le=max(1.0, bounds[i]),
            requests=reqs[i],
            input_tokens=prefill[i] + cached * s,
            prefill_tokens=prefill[i],
            output_tokens=output_tokens * s,
        )
        for i, s in enumerate(shares)
    )
