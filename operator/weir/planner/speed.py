"""The belief about a pool's engine speed, and its update from one window of evidence.

A profile is always somewhat wrong for a real deployment (other prompts,
drivers, batch settings), so weir estimates, per pool, how fast the engines
really run relative to their profile: a speed factor s (0.9 = 10% slower).

Each window of engine evidence gives one observed speed (`weir.planner.learn`
derives it from the engines' time per output token and batch with the
profile's fitted mechanics).

The estimate is a one-dimensional Kalman filter on log s, which keeps an
uncertainty beside the mean: the prior is the profile (log s = 0, sd 0.15);
each window's observation counts by the tokens behind it; a window far from
the belief (a wild scrape) is clipped to 3 standard deviations of the
innovation before it is used, so one sample cannot move the belief far; and
the variance grows slowly with time, so a changed engine is followed within
tens of minutes. Windows overlap (a 120 s window read every 15 s), so a
window counts only for the time since the last one. No evidence, no change.
The planner plans with the lower end (mean minus one sd) of the belief once
there is evidence, so a pool measured a little is planned a little below
what it seems to do and a well-measured one at what it really does; a pool
without any evidence is planned at its profile (attainment feedback, when
on, is the net under that) and the status says so.
Pure: no I/O, no clock (time is an argument).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

PRIOR_LOG_SD = 0.15  # a profile from another machine is within ~15% of the truth
DRIFT_LOG_VAR_PER_S = (0.05**2) / 3600.0  # a speed may drift ~5% an hour
WINDOW_LOG_SD = 0.05  # one window of ~1,000 tokens: +-5% (scrape and batch noise)
TOKENS_PER_UNIT = 1000.0
MIN_TOKENS = 200.0  # fewer tokens in a window than this is no evidence
MIN_BATCH = 0.5  # an engine that idles does not say how fast it runs full
CLIP_SD = 3.0
SPEED_BOUNDS = (0.2, 3.0)


@dataclass(frozen=True)
class SpeedBelief:
    """Belief about log(speed / profile speed) for one pool."""

    log_mean: float = 0.0
    log_var: float = PRIOR_LOG_SD**2
    at_s: float | None = None  # when the last evidence came
    evidence_s: float = 0.0  # how much time of evidence went in

    @property
    def speed(self) -> float:
        return math.exp(self.log_mean)

    @property
    def sd(self) -> float:
        """Standard deviation of the speed factor (delta method)."""
        return self.speed * math.sqrt(self.log_var)

    @property
    def planning_speed(self) -> float:
        """The speed the planner sizes replicas with: the belief's lower end (1: no data)."""
        if self.at_s is None:
            return 1.0
        return math.exp(self.log_mean - math.sqrt(self.log_var))

    def describe(self, pool: str) -> str:
        if self.at_s is None:
            return f"capacity {pool}: no engine data yet, planning from the profile"
        return (
            f"capacity {pool}: {self.speed:.2f}x profile +- {self.sd:.2f}, "
            f"from {self.evidence_s / 60:.0f} min of data"
        )


def update(
    belief: SpeedBelief, observed: float | None, tokens: float, now_s: float, window_s: float
) -> SpeedBelief:
    """The belief after one window's observed speed (None: no evidence, no change)."""
    if observed is None or not math.isfinite(observed) or observed <= 0 or tokens < MIN_TOKENS:
        return belief
    lo, hi = SPEED_BOUNDS
    y = math.log(min(max(observed, lo), hi))
    elapsed = window_s if belief.at_s is None else max(0.0, now_s - belief.at_s)
    new_share = min(1.0, elapsed / window_s) if window_s > 0 else 1.0
    if new_share <= 0:
        return belief  # the same window again
    prior_var = belief.log_var + DRIFT_LOG_VAR_PER_S * elapsed
    effective = max(tokens * new_share, TOKENS_PER_UNIT / 100)
    noise_var = WINDOW_LOG_SD**2 * TOKENS_PER_UNIT / effective
    innovation_sd = math.sqrt(prior_var + noise_var)
    residual = max(-CLIP_SD * innovation_sd, min(CLIP_SD * innovation_sd, y - belief.log_mean))
    gain = prior_var / (prior_var + noise_var)
    return replace(
        belief,
        log_mean=belief.log_mean + gain * residual,
        log_var=max((1.0 - gain) * prior_var, 1e-8),
        at_s=now_s,
        evidence_s=belief.evidence_s + min(window_s, elapsed),
    )
