"""Which engine profile describes a pool: same model, GPU family, precision and TP.

Pure (no I/O): the operator, the simulator and the lab's pod stand-ins all
ask the same question of the same profiles, so it lives beside the planner
that consumes the answer. A deployment with no matching profile is refused
with a PlanningError that says what to measure, never planned on a guess.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from weir.api import CapacityPoolSpec, EngineProfile, InferenceDeploymentSpec
from weir.planner.types import PlanningError


def _gpu_family(text: str) -> str:
    found = re.search(r"([A-Z]+\d{2,4}[A-Z]?)", text.upper().replace("NVIDIA", ""))
    return found.group(1) if found else text.upper()


def _model_key(text: str) -> str:
    return text.lower().rsplit("/", 1)[-1]


def match_profiles(
    spec: InferenceDeploymentSpec,
    pools: Mapping[str, CapacityPoolSpec],
    profiles: Mapping[str, EngineProfile],
) -> dict[str, EngineProfile]:
    """The engine profile of each pool: same model, GPU family, precision and TP."""
    matched = {}
    for binding in spec.pools:
        pool = pools[binding.pool]
        candidates = [
            p
            for p in profiles.values()
            if _model_key(p.model) == _model_key(spec.model.name)
            and _gpu_family(p.gpu) == _gpu_family(pool.gpu_type)
            and p.precision.lower() == spec.model.precision.lower()
            and p.tensor_parallel == spec.model.tensor_parallel
        ]
        if not candidates:
            raise PlanningError(
                f"no engine profile for {spec.model.name} {spec.model.precision} "
                f"TP{spec.model.tensor_parallel} on {pool.gpu_type} (pool {binding.pool}); "
                "add one under engines/profiles (weir profile measures it)"
            )
        matched[binding.pool] = candidates[0]
    return matched
