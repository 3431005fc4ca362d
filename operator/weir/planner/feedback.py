"""Attainment feedback: correct the capacity model with what the SLO shows.

The capacity model is fitted to a profile and is good to a few percent on
the shapes it was fitted on, but some mixes hurt a replica in ways the fit
cannot see (long prompts whose prefill chunks come in runs starve short
answers of decode steps). The router measures the useful fraction of the
tokens the replicas served; when it falls below the target, the planner
trusts each replica a little less (multiplicative decrease), and when it has
margin again, a little more (slow additive recovery). Recovery stops at the
model unless the replicas ran near the in-flight limit the plan gave them:
then their attainment is evidence about the model's own margin, and trust
rises above it (to MAX_SCALE), as congestion control probes for bandwidth.
A model that errs on the safe side for this traffic otherwise buys that
margin in replicas and hosted spill for good (in the simulator, fixed
fleets smaller than weir's met the target on generated workloads). AIMD,
so it converges without oscillating: the first window below target cuts it
back.
"""

from __future__ import annotations

import math

MIN_SCALE = 0.25
MAX_SCALE = 1.5
DECREASE = 0.85
RECOVERY = 0.02
MARGIN = 0.004
MIN_TOKENS = 5000.0
TOLERANCE = 0.003  # a window's attainment is noisy (late tokens come a request at a time)
COOLDOWN_S = 300.0  # at least the router's attainment window: judge a cut by fresh data


def bounded(scale: float) -> float:
    """A stored scale inside [MIN_SCALE, MAX_SCALE] (1 when it is not a number): state
    read back from status is not trusted to be sane."""
    return min(MAX_SCALE, max(MIN_SCALE, scale)) if math.isfinite(scale) else 1.0


def update_scale(
    scale: float,
    observed: float | None,
    tokens: float,
    target: float,
    since_cut_s: float = math.inf,
    loaded: bool = False,
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
    ceiling = MAX_SCALE if loaded else 1.0
    if observed >= target + MARGIN and scale < ceiling:
        new = min(ceiling, scale + RECOVERY)
        if new > 1.0:
            return new, (
                f"replicas at {observed:.4f} useful near their in-flight limit: trusting each "
                f"replica at {new:.0%} of the model"
            )
        return new, f"replicas back at {observed:.4f} useful: capacity trust {new:.0%}"
    return scale, None
