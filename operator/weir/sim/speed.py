"""`--engine-speed`: the simulated engine runs at X times its profile's speed.

Robustness to a wrong profile is measured by changing only the truth: the
simulator's engines get a profile whose latencies are divided by X and whose
throughput is multiplied by X, while weir, the peers and the oracle still
read the profile as published. This goes through the profiles handed to the
simulator, the one hook every engine model calibrated on a profile reads
(the current replica model and a step-level engine model alike).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from weir.api.profile import EngineProfile, ProfilePoint


def _point(point: ProfilePoint, speed: float) -> ProfilePoint:
    return point.model_copy(
        update={
            "ttft_p50_s": point.ttft_p50_s / speed,
            "ttft_p95_s": point.ttft_p95_s / speed,
            "itl_p50_s": point.itl_p50_s / speed,
            "itl_p95_s": point.itl_p95_s / speed,
            "output_tokens_per_s": point.output_tokens_per_s * speed,
        }
    )


def at_speed(profile: EngineProfile, speed: float) -> EngineProfile:
    """The profile of an engine `speed` times as fast (1.0: the profile itself)."""
    if not math.isfinite(speed) or speed <= 0:
        raise ValueError(f"engine speed must be finite and > 0, got {speed}")
    if speed == 1.0:
        return profile
    return profile.model_copy(
        update={
            "points": tuple(_point(p, speed) for p in profile.points),
            "source": f"{profile.source} (simulated engine at {speed:g}x this profile's speed)",
        }
    )


def physics_at_speed(
    profiles: Mapping[str, EngineProfile], speed: float
) -> dict[str, EngineProfile]:
    """Every pool's profile at `speed`."""
    return {pool: at_speed(p, speed) for pool, p in profiles.items()}
