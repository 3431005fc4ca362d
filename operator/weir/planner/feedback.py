"""Attainment feedback: correct the capacity model with what the SLO shows.

The capacity model is fitted to a profile and is good to a few percent on
the shapes it was fitted on, but some mixes hurt a replica in ways the fit
cannot see (long prompts whose prefill chunks come in runs starve short
answers of decode steps). The router measures the useful fraction of the
tokens the replicas served; when it falls below the target, the planner
trusts each replica a little less (multiplicative decrease), and when it has
margin again, a little more (slow additive recovery, never above the model).
AIMD, as congestion control does, so it converges without oscillating.
"""

from __future__ import annotations

import math

MIN_SCALE = 0.25
DECREASE = 0.85
RECOVERY = 0.02
MARGIN = 0.004
MIN_TOKENS = 5000.0
TOLERANCE = 0.003  # a window's attainment is noisy (late tokens come a request at a time)
COOLDOWN_S = 300.0  # at least the router's attainment window: judge a cut by fresh data


def update_scale(
    scale: float,
    observed: float | None,
    tokens: float,
    target: float,
    since_cut_s: float = math.inf,
) -> tuple[float, str | None]:
    """The new capacity scale and, when it changed, why.

    `since_cut_s` is the time since the last decrease: the attainment window
    still holds the tokens that caused it, so no second cut until it is fresh.
    """
    if observed is None or not math.isfinite(observed) or tokens < MIN_TOKENS:
        return scale, None
    if observed < target - TOLERANCE:
        if since_cut_s < COOLDOWN_S:
            return scale, None
        new = max(MIN_SCALE, scale * DECREASE)
        return new, (
            f"replicas delivered {observed:.4f} useful (target {target}): trusting each replica "
            f"at {new:.0%} of the model"
        )
    if observed >= target + MARGIN and scale < 1.0:
        new = min(1.0, scale + RECOVERY)
        return new, f"replicas back at {observed:.4f} useful: capacity trust {new:.0%}"
    return scale, None
