"""Latency model of the emulated engine, read from an engine profile.

A profile point says what one replica did at a concurrency c for an input
length: TTFT and ITL medians and 95th percentiles. The emulator looks up the
point for the current running batch and prompt length (linear interpolation in
concurrency, then in input length; clamped at the ends: the profile's curve as
the planner reads it, `weir.planner.curve`) and draws each latency
from a log-normal with that median and 95th percentile. Log-normal because
latencies are positive and right-skewed, and two quantiles fix it exactly. ITL
is drawn per token, which is how the profiler measures it (pooled gaps between
chunks), so profiling an emulated engine gives its profile back.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from weir.api.profile import EngineProfile, ProfilePoint
from weir.planner.curve import ProfileCurve

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


_METRICS = ("ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s")


class ProfileTiming:
    """TTFT and ITL distributions as functions of running batch and input length."""

    def __init__(self, profile: EngineProfile) -> None:
        self._curve = ProfileCurve.of(profile.points, _METRICS)
        self.max_concurrency = profile.max_concurrency or max(p.concurrency for p in profile.points)

    def quantiles(self, batch: float, input_tokens: int) -> tuple[Quantiles, Quantiles]:
        """(TTFT, ITL) quantiles at this running batch and prompt length."""
        ttft_p50, ttft_p95, itl_p50, itl_p95 = self._curve.at(batch, input_tokens)
        return Quantiles(ttft_p50, ttft_p95), Quantiles(itl_p50, itl_p95)


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
