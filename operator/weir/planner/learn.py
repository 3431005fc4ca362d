"""Capacity learned online: the planner's beliefs about its pools' speed, from the engines.

See `weir.planner.speed` for the belief and its update. This module turns a
snapshot's engine evidence into one observed speed per pool: the profile's
own median ITL at the window's mean running batch and prompt length, over
the mean time per output token the engines reported. The profile's curve,
not the mechanics the planner fits to it (`weir.planner.capacity`): the fit
is off by up to ~10% at some batches, which would read as a slow engine;
the curve is what a profile says an engine does (measured against the
emulated engine: 0.97 and 0.90 at batches 4 and 16 with the fit, for an
engine exactly as profiled).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from weir.api.profile import EngineProfile
from weir.planner.curve import profile_curve
from weir.planner.speed import MIN_BATCH, MIN_TOKENS, SpeedBelief, update
from weir.planner.types import EngineWindow, MixBucket

STEADY = (0.75, 1.33)  # running / (rate x duration) of a window whose load held still


def usable(window: EngineWindow) -> bool:
    """Enough of a busy, steady engine to say how fast it runs.

    An idle engine says nothing; nor does a window in which the load changed (traffic
    starting or stopping): its mean batch and its requests' time per token then come
    from different moments. Little's law tells them apart: in a steady window the
    running requests equal the rate times the mean duration.
    """
    values = (window.replicas, window.running, window.tpot_s, window.requests_per_s)
    if not (
        all(math.isfinite(v) and v >= 0 for v in values)
        and window.replicas > 0
        and window.tpot_s > 0
        and window.running >= MIN_BATCH
        and window.output_tokens >= MIN_TOKENS
    ):
        return False
    if window.e2e_s > 0 and window.requests_per_s > 0:
        little = window.requests_per_s * window.e2e_s
        return STEADY[0] <= window.running / little <= STEADY[1]
    return True


_ITL = ("itl_p50_s",)


def profile_itl(profile: EngineProfile, batch: float, input_tokens: float) -> float:
    """The profile's median ITL at a running batch and prompt length: linear in
    concurrency, then in input length, clamped at the ends (the profile's own curve,
    so a speed of 1 means "as profiled", whatever model the planner fits to it)."""
    return profile_curve(profile, _ITL).at(batch, input_tokens)[0]


def observed_speed(
    window: EngineWindow, profile: EngineProfile, mix: tuple[MixBucket, ...]
) -> float | None:
    """The speed factor one window implies (None when it implies nothing): the profile's
    ITL at the window's batch and prompts over the ITL the engines showed."""
    requests = sum(b.requests for b in mix)
    if not usable(window) or requests <= 0 or not profile.points:
        return None
    mean_prefill = sum(b.prefill_tokens for b in mix) / requests
    return profile_itl(profile, window.running, mean_prefill) / window.tpot_s


def learn_speeds(
    beliefs: tuple[tuple[str, SpeedBelief], ...],
    engines: Mapping[str, EngineWindow],
    profiles: Mapping[str, EngineProfile],
    mix: tuple[MixBucket, ...],
    now_s: float,
    window_s: float,
) -> tuple[tuple[str, SpeedBelief], ...]:
    """Every pool's belief after this snapshot (pools without evidence keep theirs)."""
    known = dict(beliefs)
    for pool, profile in profiles.items():
        belief = known.get(pool, SpeedBelief())
        window = engines.get(pool)
        if window is not None:
            seen = observed_speed(window, profile, mix)
            belief = update(belief, seen, window.output_tokens, now_s, window_s)
        known[pool] = belief
    return tuple(sorted(known.items()))


def planning_speeds(beliefs: tuple[tuple[str, SpeedBelief], ...]) -> dict[str, float]:
    return {pool: belief.planning_speed for pool, belief in beliefs}


def describe(beliefs: tuple[tuple[str, SpeedBelief], ...]) -> list[str]:
    return [belief.describe(pool) for pool, belief in beliefs]
