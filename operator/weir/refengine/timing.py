"""Latency model of the emulated engine, read from an engine profile.

A profile point says what one replica did at a concurrency c for an input
length: TTFT and ITL medians and 95th percentiles. The emulator looks up the
point for the current running batch and prompt length (linear interpolation in
concurrency, then in input length; clamped at the ends) and draws each latency
from a log-normal with that median and 95th percentile. Log-normal because
latencies are positive and right-skewed, and two quantiles fix it exactly. ITL
is drawn per token, which is how the profiler measures it (pooled gaps between
chunks), so profiling an emulated engine gives its profile back.
"""

from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass

from weir.api.profile import EngineProfile, ProfilePoint

_Z95 = 1.6448536269514722  # standard normal 95th percentile


@dataclass(frozen=True)
class Quantiles:
    """Median and 95th percentile of one latency, seconds."""

    p50: float
    p95: float

    def sample(self, rng: random.Random) -> float:
        if self.p95 <= self.p50:
            return self.p50
        sigma = math.log(self.p95 / self.p50) / _Z95
        return self.p50 * math.exp(sigma * rng.gauss(0.0, 1.0))


@dataclass(frozen=True)
class _Curve:
    """Points of one input length, sorted by concurrency."""

    input_tokens: int
    concurrency: tuple[int, ...]
    ttft: tuple[Quantiles, ...]
    itl: tuple[Quantiles, ...]

    def at(self, batch: float) -> tuple[Quantiles, Quantiles]:
        cs = self.concurrency
        return _interp(cs, self.ttft, batch), _interp(cs, self.itl, batch)


def _lerp(a: Quantiles, b: Quantiles, w: float) -> Quantiles:
    return Quantiles(a.p50 + (b.p50 - a.p50) * w, a.p95 + (b.p95 - a.p95) * w)


def _interp(xs: tuple[int, ...], ys: tuple[Quantiles, ...], x: float) -> Quantiles:
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    i = bisect.bisect_right(xs, x)
    w = (x - xs[i - 1]) / (xs[i] - xs[i - 1])
    return _lerp(ys[i - 1], ys[i], w)


def _curve(input_tokens: int, points: list[ProfilePoint]) -> _Curve:
    by_c: dict[int, list[ProfilePoint]] = {}
    for p in points:
        by_c.setdefault(p.concurrency, []).append(p)
    cs = tuple(sorted(by_c))

    def mean(ps: list[ProfilePoint], attr: str) -> float:
        return sum(float(getattr(p, attr)) for p in ps) / len(ps)

    ttft = tuple(Quantiles(mean(by_c[c], "ttft_p50_s"), mean(by_c[c], "ttft_p95_s")) for c in cs)
    itl = tuple(Quantiles(mean(by_c[c], "itl_p50_s"), mean(by_c[c], "itl_p95_s")) for c in cs)
    return _Curve(input_tokens, cs, ttft, itl)


class ProfileTiming:
    """TTFT and ITL distributions as functions of running batch and input length."""

    def __init__(self, profile: EngineProfile) -> None:
        by_input: dict[int, list[ProfilePoint]] = {}
        for p in profile.points:
            by_input.setdefault(p.input_tokens, []).append(p)
        self._inputs = tuple(sorted(by_input))
        self._curves = tuple(_curve(i, by_input[i]) for i in self._inputs)
        self.max_concurrency = profile.max_concurrency or max(p.concurrency for p in profile.points)

    def quantiles(self, batch: float, input_tokens: int) -> tuple[Quantiles, Quantiles]:
        """(TTFT, ITL) quantiles at this running batch and prompt length."""
        xs = self._inputs
        if input_tokens <= xs[0]:
            return self._curves[0].at(batch)
        if input_tokens >= xs[-1]:
            return self._curves[-1].at(batch)
        i = bisect.bisect_right(xs, input_tokens)
        w = (input_tokens - xs[i - 1]) / (xs[i] - xs[i - 1])
        (t0, l0), (t1, l1) = self._curves[i - 1].at(batch), self._curves[i].at(batch)
        return _lerp(t0, t1, w), _lerp(l0, l1, w)


def fixed_profile(
    model: str,
    ttft_p50_s: float,
    ttft_p95_s: float,
    itl_p50_s: float,
    itl_p95_s: float,
    max_concurrency: int = 100_000,
) -> EngineProfile:
    """A one-point profile: latency independent of load, as a hosted API appears."""
    point = ProfilePoint(
        concurrency=1,
        input_tokens=1,
        output_tokens=1,
        ttft_p50_s=ttft_p50_s,
        ttft_p95_s=ttft_p95_s,
        itl_p50_s=itl_p50_s,
        itl_p95_s=itl_p95_s,
        output_tokens_per_s=1.0 / itl_p50_s,
    )
    return EngineProfile(
        model=model,
        gpu="hosted",
        precision="unknown",
        tensor_parallel=1,
        source="fixed latency stand-in for a hosted API",
        max_concurrency=max_concurrency,
        points=(point,),
    )
