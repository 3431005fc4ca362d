"""The simulator shows the planner its engines as a cluster would, so weir learns their speed.

The evidence is what the operator's `engines` query reads from the `trtllm_*`
series; the speed it implies comes from the simulated engine, which the
planner's model did not write.
"""

from __future__ import annotations

import pytest

from weir.api import EngineProfile
from weir.planner.types import PoolObservation
from weir.sim.baselines import WeirPolicy
from weir.sim.generate import generate
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario
from weir.sim.telemetry import SIMULATED, Telemetry


def test_engine_evidence_is_the_window_of_the_engines_series() -> None:
    tel = Telemetry(0.0, window_s=60.0, delay_s=0.0)
    # two replicas of one pool over the last minute: one up all of it with 8 running
    # on average, one up for its last 30 s with 4
    tel.engine_span(60.0, "spot", 1, 60.0, 480.0)
    tel.engine_span(60.0, "spot", 2, 30.0, 120.0)
    for second in range(10, 50):  # 40 completions of 100 tokens at 20 ms, 5 s each
        tel.engine_done(float(second), "spot", 100, 0.020, 5.0)
    tel.engine_done(70.0, "spot", 100, 9.9, 9.9)  # after the window: not in it
    snapshot = tel.snapshot(60.0, {"spot": PoolObservation(ready=2)})
    window = snapshot.engines["spot"]
    assert window.replicas == 2
    assert window.running == pytest.approx((8 + 4) / 2)
    assert window.tpot_s == pytest.approx(0.020)
    assert window.requests_per_s == pytest.approx(40 / 60 / 2)
    assert window.output_tokens == pytest.approx(4000)
    assert window.e2e_s == pytest.approx(5.0)
    metrics = tel.metrics(60.0).for_deployment(*SIMULATED)
    assert metrics is not None and dict(metrics.engines) == snapshot.engines


def test_a_pool_without_completions_shows_no_evidence() -> None:
    tel = Telemetry(0.0, window_s=60.0, delay_s=0.0)
    tel.engine_span(60.0, "spot", 1, 60.0, 0.0)
    assert tel.snapshot(60.0, {"spot": PoolObservation(ready=1)}).engines == {}


def _learned(
    scenario: Scenario, profiles: dict[str, EngineProfile], speed: float
) -> tuple[float, float]:
    trace = generate("steady", 900.0, 3.0, seed=7)
    policy = WeirPolicy(scenario, profiles)
    simulate(
        trace, scenario, profiles, policy, RunConfig(seed=1, preroll_s=300, engine_speed=speed)
    )
    assert policy.state is not None
    beliefs = dict(policy.state.speeds)
    learned = max(beliefs.values(), key=lambda b: b.evidence_s)
    return learned.speed, learned.evidence_s


def test_weir_learns_an_engine_slower_than_its_profile_in_the_simulator(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    """The simulated engine differs from the profile at 1.0 too (its calibration error),
    so the test compares a run at 0.8x with one at 1.0x: the ratio is what was slowed."""
    as_profiled, seen = _learned(scenario, profiles, 1.0)
    slowed, seen_slowed = _learned(scenario, profiles, 0.8)
    assert seen >= 300 and seen_slowed >= 180  # minutes of evidence, not a prior
    assert 0.5 < as_profiled < 1.5
    assert slowed / as_profiled == pytest.approx(0.8, abs=0.08)
