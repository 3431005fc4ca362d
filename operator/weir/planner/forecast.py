"""Short-horizon demand forecast with an upper quantile.

The planner must order capacity one cold start ahead, so it needs demand at
that horizon and how far above it demand may plausibly be. Metrics are
noisy, can have gaps, and bad scrapes must not buy GPUs: the level is the
median of the latest samples (a lone spike moves nothing), and the demand it
is taken from may rise at most as fast as an HPA's default scale-up policy
lets a fleet grow, doubling every LEVEL_DOUBLING_S seconds, from at least
what the replicas already planned serve, or one replica's worth at an empty
fleet (the planner's `planned_rps`: believing that much buys at most one GPU,
so a deployment waking at its minimum or from zero is not slowed). Two spiked
samples then move the level twofold, not a hundredfold, while a real flash
crowd is believed within a few periods (the router spills its surge to the
hosted API meanwhile, and a cold start is longer than that). The trend is a
damped Theil-Sen slope (only once there are two minutes of samples: a cold
start is not a trend), and the spread comes from how much demand actually
moved over one horizon in the recent past, with a Poisson floor. No clock: time is in the samples.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist, median

LOOKBACK_S = 1800.0
_LEVEL_SAMPLES = 3
_TREND_SAMPLES = 40
_MIN_TREND_SAMPLES = 8
_TREND_DAMPING = 0.5
_MAX_TREND_HORIZON_S = 300.0
LEVEL_DOUBLING_S = 15.0  # the demand believed may double this often, no faster
_FLOOR_REQUESTS = 5.0  # below this many requests per window, growth starts from here


@dataclass(frozen=True)
class DemandSample:
    """Demand observed over one window ending at `at_s` (seconds, any epoch)."""

    at_s: float
    rate_rps: float
    output_tokens_per_s: float

    def __post_init__(self) -> None:
        for name in ("at_s", "rate_rps", "output_tokens_per_s"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"DemandSample.{name} must be finite, got {value}")
        if self.rate_rps < 0 or self.output_tokens_per_s < 0:
            raise ValueError("DemandSample rates must be >= 0")


@dataclass(frozen=True)
class Forecast:
    """Demand expected at `horizon_s` from now: point, spread and an upper quantile."""

    rate_rps: float
    sigma_rps: float
    upper_rps: float
    quantile: float
    horizon_s: float
    samples_used: int


def add_sample(
    samples: Sequence[DemandSample], sample: DemandSample, lookback_s: float = LOOKBACK_S
) -> tuple[DemandSample, ...]:
    """History with the new sample, in time order, older than the lookback dropped."""
    kept = [s for s in samples if s.at_s < sample.at_s and s.at_s >= sample.at_s - lookback_s]
    return (*kept, sample)


def forecast(
    samples: Sequence[DemandSample],
    horizon_s: float,
    window_s: float,
    quantile: float = 0.9,
    planned_rps: float = 0.0,
) -> Forecast:
    """Forecast `horizon_s` ahead of the last sample; refuses empty or bad input.

    `planned_rps` is what the replicas already planned serve: believed demand rises
    from at least there (see `believed`)."""
    if not samples:
        raise ValueError("forecast needs at least one demand sample")
    if not (math.isfinite(horizon_s) and horizon_s >= 0):
        raise ValueError(f"horizon_s must be finite and >= 0, got {horizon_s}")
    if not (math.isfinite(window_s) and window_s > 0):
        raise ValueError(f"window_s must be finite and > 0, got {window_s}")
    if not 0.5 <= quantile < 1:
        raise ValueError(f"quantile must be in [0.5, 1), got {quantile}")
    if not (math.isfinite(planned_rps) and planned_rps >= 0):
        raise ValueError(f"planned_rps must be finite and >= 0, got {planned_rps}")
    samples = believed(samples, window_s, planned_rps)
    rates = [s.rate_rps for s in samples]
    level = median(rates[-_LEVEL_SAMPLES:])
    recent = samples[-_TREND_SAMPLES:]
    enough = len(recent) >= _MIN_TREND_SAMPLES and recent[-1].at_s - recent[0].at_s >= 120.0
    slope = _theil_sen([(s.at_s, s.rate_rps) for s in recent]) if enough else 0.0
    point = max(0.0, level + _TREND_DAMPING * slope * min(horizon_s, _MAX_TREND_HORIZON_S))
    sigma = _horizon_spread(samples, horizon_s)
    poisson = math.sqrt(max(point, 0.0) / window_s)
    sigma = math.sqrt(sigma**2 + poisson**2)
    z = NormalDist().inv_cdf(quantile)
    return Forecast(point, sigma, point + z * sigma, quantile, horizon_s, len(samples))


def believed(
    samples: Sequence[DemandSample], window_s: float, planned_rps: float = 0.0
) -> tuple[DemandSample, ...]:
    """The samples with each rise bounded: at most a doubling per LEVEL_DOUBLING_S over the
    demand believed before it, or over what the planned replicas serve (`planned_rps`)
    if more, and never under a few requests per window (so an idle deployment can wake).
    Falls pass unchanged; a fall that is a lost scrape is the metrics source's to catch,
    as an unhealthy snapshot."""
    floor = max(_FLOOR_REQUESTS / window_s, planned_rps)
    out: list[DemandSample] = []
    for s in samples:
        if out:
            prev = out[-1]
            gap = max(s.at_s - prev.at_s, 0.0)
            bound = max(prev.rate_rps, floor) * 2.0 ** (gap / LEVEL_DOUBLING_S)
            if s.rate_rps > bound:
                tokens = s.output_tokens_per_s * bound / s.rate_rps
                s = DemandSample(s.at_s, bound, tokens)
        out.append(s)
    return tuple(out)


def _theil_sen(points: Sequence[tuple[float, float]]) -> float:
    slopes = [
        (y2 - y1) / (x2 - x1)
        for i, (x1, y1) in enumerate(points)
        for x2, y2 in points[i + 1 :]
        if x2 > x1
    ]
    return median(slopes) if slopes else 0.0


def _horizon_spread(samples: Sequence[DemandSample], horizon_s: float) -> float:
    """Robust spread (1.4826 MAD) of demand changes over one horizon in the history."""
    if len(samples) < 4:
        return 0.25 * median(s.rate_rps for s in samples)
    changes: list[float] = []
    j = 0
    for i, early in enumerate(samples):
        j = max(j, i + 1)
        while j < len(samples) and samples[j].at_s - early.at_s < horizon_s:
            j += 1
        if j >= len(samples):
            break
        changes.append(samples[j].rate_rps - early.rate_rps)
    if len(changes) < 3:
        steps = [b.rate_rps - a.rate_rps for a, b in itertools.pairwise(samples)]
        return 1.4826 * median(abs(x) for x in steps) * math.sqrt(max(1.0, len(steps) / 2))
    center = median(changes)
    mad = median(abs(c - center) for c in changes)
    return 1.4826 * mad + abs(center) * 0.5
