"""Capacity learned online: the planner's beliefs about its pools' speed, from the engines.

See `weir.planner.speed` for the belief and its update. This module turns a
snapshot's engine evidence into one observed speed per pool with the
profile's fitted mechanics (`weir.planner.capacity`): a decode step with
batch b takes A = step_s(b) at profile speed, prefill chunks take a share
U = rate x prefill tokens x prefill seconds per token of the engine's time;
an engine at speed s shows a time per output token of (A/s) / (1 - U/s) =
A / (s - U), so a window says s = U + A / tpot.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from weir.api.profile import EngineProfile
from weir.planner.capacity import model_for
from weir.planner.speed import MIN_BATCH, MIN_TOKENS, SpeedBelief, update
from weir.planner.types import EngineWindow, MixBucket


def usable(window: EngineWindow) -> bool:
    """Enough of a busy engine to say how fast it runs (an idle one says nothing)."""
    values = (window.replicas, window.running, window.tpot_s, window.requests_per_s)
    return (
        all(math.isfinite(v) and v >= 0 for v in values)
        and window.replicas > 0
        and window.tpot_s > 0
        and window.running >= MIN_BATCH
        and window.output_tokens >= MIN_TOKENS
    )


def observed_speed(
    window: EngineWindow, profile: EngineProfile, mix: tuple[MixBucket, ...]
) -> float | None:
    """The speed factor one window implies (None when it implies nothing)."""
    requests = sum(b.requests for b in mix)
    if not usable(window) or requests <= 0:
        return None
    params = model_for(profile).params
    mean_input = sum(b.input_tokens for b in mix) / requests
    mean_prefill = sum(b.prefill_tokens for b in mix) / requests
    mean_output = sum(b.output_tokens for b in mix) / requests
    step = params.step_s(window.running, mean_input + mean_output / 2)
    prefill_share = window.requests_per_s * mean_prefill * params.prefill_s_per_token
    return prefill_share + step / window.tpot_s


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
