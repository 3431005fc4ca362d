"""Synthetic workloads, so the planner is tested on more than two traces.

Constants must not be tuned to the two shared traces; these generators make
the shapes the planner must handle (steady, bursts, daily cycles, long
contexts with shared prefixes, agentic sessions) from a seed, and tests write
them in either public format.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Literal

from weir.sim.traces import Request

Pattern = Literal["steady", "bursty", "daily", "long_context", "agentic"]
PATTERNS: tuple[Pattern, ...] = ("steady", "bursty", "daily", "long_context", "agentic")
_BLOCK = 512


def _rate_shape(pattern: Pattern, duration_s: float) -> Callable[[float], float]:
    """Relative arrival rate over time, peaking at 1.0."""
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
    shape = _rate_shape(pattern, duration_s)
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
