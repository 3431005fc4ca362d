"""Synthetic workloads, so the planner is tested on more than two traces.

Constants must not be tuned to the two shared traces; these generators make
the shapes the planner must handle (steady, bursts, daily cycles, long
contexts with shared prefixes, agentic sessions, and multi-hour traffic with
launch spikes and quiet periods) from a seed, and tests write them in either
public format.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Literal

from weir.sim.traces import Request

Pattern = Literal["steady", "bursty", "daily", "long_context", "agentic", "launch"]
PATTERNS: tuple[Pattern, ...] = ("steady", "bursty", "daily", "long_context", "agentic", "launch")
_BLOCK = 512
_LAUNCH_BASE = 0.25
_LAUNCH_DECAY_S = 600.0
_QUIET_LEVEL = 0.02


def _launch_shape(duration_s: float, rng: random.Random) -> Callable[[float], float]:
    """Hours of traffic: a base load, launch spikes, quiet stretches.

    A launch (a release, an announcement, a batch job) lifts the rate to the
    peak within seconds and decays over ten minutes, about one every ninety
    minutes (at least one); a quiet stretch (a night, a weekend, an outage
    upstream) of 20 to 45 minutes at a few percent of the peak comes about
    every three hours (at least one). Positions are drawn from the seed.
    """
    spikes = [rng.uniform(0.0, duration_s * 0.9) for _ in range(max(1, round(duration_s / 5400)))]
    quiet: list[tuple[float, float]] = []
    for _ in range(max(1, round(duration_s / 10800))):
        length = rng.uniform(1200.0, 2700.0)
        start = rng.uniform(0.0, max(duration_s - length, 0.0))
        quiet.append((start, start + length))

    def shape(t: float) -> float:
        if any(lo <= t < hi for lo, hi in quiet):
            return _QUIET_LEVEL
        lift = sum(math.exp(-(t - at) / _LAUNCH_DECAY_S) for at in spikes if t >= at)
        return min(1.0, _LAUNCH_BASE + (1.0 - _LAUNCH_BASE) * lift)

    return shape


def _rate_shape(
    pattern: Pattern, duration_s: float, rng: random.Random
) -> Callable[[float], float]:
    """Relative arrival rate over time, peaking at 1.0."""
    if pattern == "launch":
        return _launch_shape(duration_s, rng)
    if pattern == "bursty":
        return lambda t: 1.0 if (t % 900.0) < 120.0 else 0.35
    if pattern == "daily":
        return lambda t: 0.55 + 0.45 * math.sin(2 * math.pi * t / duration_s - math.pi / 2)
    if pattern == "agentic":
        return lambda t: 0.6 + 0.4 * math.sin(2 * math.pi * t / 600.0) ** 2
    return lambda t: 1.0


def generate(pattern: Pattern, duration_s: float, peak_rate_rps: float, seed: int) -> list[Request]:
    """A trace of the pattern, by thinning a Poisson process at the peak rate."""
    if duration_s <= 0 or peak_rate_rps <= 0:
        raise ValueError("duration_s and peak_rate_rps must be > 0")
    rng = random.Random(seed)
    shape = _rate_shape(pattern, duration_s, random.Random(seed * 7_919 + 11))
    out: list[Request] = []
    t = 0.0
    while True:
        t += rng.expovariate(peak_rate_rps)
        if t >= duration_s:
            break
        if rng.random() <= shape(t):
            out.append(_request(pattern, t, rng))
    return out


def _request(pattern: Pattern, t: float, rng: random.Random) -> Request:
    if pattern == "long_context":
        inp = int(min(60000, rng.lognormvariate(math.log(9000), 0.9)))
        out = int(min(2000, rng.lognormvariate(math.log(120), 0.8)))
        return Request(t, max(inp, 1), max(out, 1), _prefix_hashes(inp, rng, 200))
    if pattern == "agentic":
        inp = int(min(30000, rng.lognormvariate(math.log(4000), 0.7)))
        out = int(min(1000, rng.lognormvariate(math.log(60), 0.7)))
        return Request(t, max(inp, 1), max(out, 1), _prefix_hashes(inp, rng, 40))
    inp = int(min(16000, rng.lognormvariate(math.log(1000), 0.8)))
    out = int(min(2000, rng.lognormvariate(math.log(150), 0.7)))
    return Request(t, max(inp, 1), max(out, 1))


def _prefix_hashes(inp: int, rng: random.Random, sessions: int) -> tuple[int, ...]:
    """Block ids whose leading part is shared by requests of the same session."""
    blocks = max(1, math.ceil(inp / _BLOCK))
    session = rng.randrange(sessions)
    shared = int(blocks * rng.uniform(0.3, 0.9))
    head = [session * 100_000 + i for i in range(shared)]
    tail = [rng.randrange(10**8, 10**9) for _ in range(blocks - shared)]
    return tuple(head + tail)
