"""Shared planner fixtures: the default scenario's spec and profiles, and snapshot builders."""

from __future__ import annotations

from pathlib import Path

import pytest

from weir.api import EngineProfile
from weir.planner.types import MixBucket, PlanningSpec, PoolObservation, Snapshot
from weir.sim.scenario import Scenario, load_scenario, load_scenario_profiles

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scenario() -> Scenario:
    return load_scenario(ROOT / "bench" / "scenarios" / "default.yaml")


@pytest.fixture(scope="session")
def profiles(scenario: Scenario) -> dict[str, EngineProfile]:
    return load_scenario_profiles(scenario, ROOT / "engines" / "profiles")


@pytest.fixture(scope="session")
def spec(scenario: Scenario) -> PlanningSpec:
    return scenario.planning_spec()


def conversation_mix(rate_rps: float, window_s: float = 60.0) -> tuple[MixBucket, ...]:
    """A chat-like mix: most prompts ~1k tokens, a few long, ~150 output tokens."""
    n = max(rate_rps * window_s, 1e-6)
    shares = ((512.0, 0.3, 400), (1448.0, 0.5, 1000), (4096.0, 0.18, 2800), (8192.0, 0.02, 6000))
    return tuple(
        MixBucket(bound, n * share, n * share * tokens, n * share * tokens, n * share * 150)
        for bound, share, tokens in shares
    )


def snapshot(
    at_s: float, rate_rps: float, pools: dict[str, int] | None = None, healthy: bool = True
) -> Snapshot:
    """A snapshot observed at `at_s` of a conversation workload at `rate_rps`."""
    observed = {name: PoolObservation(ready=count) for name, count in (pools or {}).items()}
    return Snapshot(
        observed_at_s=at_s,
        window_s=60.0,
        arrival_rate_rps=rate_rps,
        output_tokens_per_s=rate_rps * 150,
        mix=conversation_mix(rate_rps) if rate_rps > 0 else (),
        pools=observed,
        healthy=healthy,
    )
