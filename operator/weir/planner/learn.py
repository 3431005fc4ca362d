"""Capacity learned online: the planner's beliefs about its pools' speed, from the engines.

See `weir.planner.speed` for the belief and its update. This module turns a
snapshot's engine evidence into one observed speed per pool: the profile's
own median ITL at the window's mean running batch and prompt length, over
the mean time per output token the engines reported. The profile's curve,
not the mechanics the planner fits to it (`weir.planner.capacity`): the fit
is off by up to ~10% at some batches, which would read as a slow engine;
the curve is what a profile says an engine does (measured against the
emulated engine: 0.97 and 0.90 at batches 4 and 16 with the fit, for an
engine exactly as profiled). Read against the fitted model instead, the
speed would absorb the fit's error at the operating point and stop meaning
"x profile": the lab's emulated engine at 0.85x read 1.0 that way.

Pools that run the same engine profile (the same model, GPU, precision and
tensor parallelism; on-demand and spot capacity of one machine type) share
one belief: the speed is a property of the engine and the traffic, not of
how the machine is billed. With a belief per pool, evidence from the pool
that serves made it look slower than an untried pool still planned at its
profile, and the planner moved the fleet to the dearer pool, paid a cold
start, learned the same there, and moved back.
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


def merged(windows: list[EngineWindow]) -> EngineWindow | None:
    """One window for engines of one profile in several pools (per replica, as each is).

    Means per replica weigh by replicas, the time per token by the tokens behind it,
    the request duration by the requests; the evidence must be usable as a whole.
    """
    if len(windows) <= 1:
        return windows[0] if windows else None
    live = [w for w in windows if w.replicas > 0 and math.isfinite(w.replicas)]
    if len(live) <= 1:
        return live[0] if live else windows[0]  # no replicas: `usable` refuses it
    replicas = sum(w.replicas for w in live)
    tokens = sum(w.output_tokens for w in live)
    rate = sum(w.requests_per_s * w.replicas for w in live)
    timed = [w for w in live if w.e2e_s > 0 and w.requests_per_s > 0]
    timed_rate = sum(w.requests_per_s * w.replicas for w in timed)
    return EngineWindow(
        replicas=replicas,
        running=sum(w.running * w.replicas for w in live) / replicas,
        tpot_s=(
            sum(w.tpot_s * w.output_tokens for w in live) / tokens
            if tokens > 0
            else sum(w.tpot_s * w.replicas for w in live) / replicas
        ),
        requests_per_s=rate / replicas,
        output_tokens=tokens,
        e2e_s=(
            sum(w.e2e_s * w.requests_per_s * w.replicas for w in timed) / timed_rate
            if timed_rate > 0
            else 0.0
        ),
    )


def engine_key(profile: EngineProfile) -> tuple[str, str, str, int]:
    """What makes two pools' engines the same engine."""
    return (profile.model, profile.gpu, profile.precision, profile.tensor_parallel)


def learn_speeds(
    beliefs: tuple[tuple[str, SpeedBelief], ...],
    engines: Mapping[str, EngineWindow],
    profiles: Mapping[str, EngineProfile],
    mix: tuple[MixBucket, ...],
    now_s: float,
    window_s: float,
) -> tuple[tuple[str, SpeedBelief], ...]:
    """Every pool's belief after this snapshot (pools without evidence keep theirs).

    Pools of one engine profile start from the best-informed of their beliefs, take
    their windows together, and all leave with the result.
    """
    known = dict(beliefs)
    groups: dict[tuple[str, str, str, int], list[str]] = {}
    for pool in sorted(profiles):
        groups.setdefault(engine_key(profiles[pool]), []).append(pool)
    for pools in groups.values():
        held = [known.get(p, SpeedBelief()) for p in pools]
        belief = max(held, key=lambda b: (b.evidence_s, b.at_s or -math.inf))
        window = merged([engines[p] for p in pools if p in engines])
        if window is not None:
            seen = observed_speed(window, profiles[pools[0]], mix)
            belief = update(belief, seen, window.output_tokens, now_s, window_s)
        for pool in pools:
            known[pool] = belief
    return tuple(sorted(known.items()))


def planning_speeds(beliefs: tuple[tuple[str, SpeedBelief], ...]) -> dict[str, float]:
    return {pool: belief.planning_speed for pool, belief in beliefs}


def describe(beliefs: tuple[tuple[str, SpeedBelief], ...]) -> list[str]:
    return [belief.describe(pool) for pool, belief in beliefs]
