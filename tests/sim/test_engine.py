"""The simulated engine's own physics: calibration, interference, KV limits, speed."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from weir.api import EngineProfile, load_profile
from weir.planner.types import SpillPolicy
from weir.sim.calibrate import calibration_errors, engine_for, measured_points, replay_point
from weir.sim.engine import hardware, late_step_share
from weir.sim.generate import generate
from weir.sim.policy import Observation, PolicyDecision, local_only
from weir.sim.replica import Job, Replica
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario

ROOT = Path(__file__).resolve().parents[2]
PROFILES = ROOT / "engines" / "profiles"


def _profile(stem: str) -> EngineProfile:
    return load_profile(PROFILES / f"{stem}.yaml")


class Fixed:
    """A policy that holds a fixed fleet (so two runs differ only by what is tested)."""

    name = "fixed"

    def __init__(self, replicas: Mapping[str, int], spill: SpillPolicy | None = None) -> None:
        self.replicas = dict(replicas)
        self.spill = spill or local_only(self.replicas)

    def initial(self) -> Mapping[str, int]:
        return self.replicas

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(self.replicas, self.spill)


def test_calibrated_engine_replays_the_measured_points_within_a_stated_error() -> None:
    for stem in ("llama-3.1-8b-fp8-h100-tp1", "llama-3.3-70b-fp8-h100-tp2"):
        profile = _profile(stem)
        errors = calibration_errors(profile)
        assert len(errors) == len(measured_points(profile)) >= 2
        for point in errors:
            ttft, itl, tput = point.errors
            assert abs(ttft) < 0.5 and abs(itl) < 0.4 and abs(tput) < 0.25, (stem, point.errors)
        # the fit beats the uncalibrated priors on its own points
        prior = [replay_point(hardware(profile), p.point).errors for p in errors]
        fitted = sum(sum(e * e for e in p.errors) for p in errors)
        assert fitted < sum(sum(e * e for e in row) for row in prior)


def test_profiles_without_measured_points_run_on_the_priors() -> None:
    profile = _profile("llama-3.3-70b-fp8-h200-tp1")
    assert not measured_points(profile)
    assert engine_for(profile) == hardware(profile)


def test_a_prompt_chunk_slows_the_decode_step_and_context_costs_bandwidth() -> None:
    spec = engine_for(_profile("llama-3.3-70b-fp8-h100-tp2"))
    decode = spec.step_s(32, 32 * 3000, 0, 0)
    assert spec.step_s(32, 32 * 3000, 2048, 1024) > 2 * decode  # compute-bound with a chunk
    assert spec.step_s(32, 32 * 30000, 0, 0) > decode * 1.05
    assert late_step_share(decode, decode * 0.5) > 0.99
    assert late_step_share(decode, decode * 2.0) < 1e-6
    assert late_step_share(decode, decode) == pytest.approx(0.5, abs=0.05)


def _drain(replica: Replica) -> list[Job]:
    done: list[Job] = []
    while (at := replica.next_event_s()) is not None:
        done += replica.process(at)
    return done


def test_a_full_kv_cache_preempts_and_every_request_still_finishes() -> None:
    spec = engine_for(_profile("llama-3.1-8b-fp8-h100-tp1"))
    small = type(spec)(**{**spec.__dict__, "kv_cache_tokens": 40_000})
    replica = Replica(0, "p", small, 0.0, 0.0, itl_bound_s=0.05)
    replica.state = "ready"
    jobs = [Job(i, 0.0, 2000, 3000, 2000, 0, True) for i in range(12)]
    for job in jobs:
        replica.add(job, 0.0)
    done = _drain(replica)
    assert {j.index for j in done} == set(range(12))
    assert replica.preemptions > 0 and replica.in_flight == 0
    assert all(j.produced == j.output_tokens for j in done)
    assert any(j.late_tokens >= 1 for j in done)  # the resumed token paid for the stall


def test_cancel_frees_the_replica_wherever_the_request_is() -> None:
    spec = engine_for(_profile("llama-3.1-8b-fp8-h100-tp1"))
    replica = Replica(0, "p", spec, 0.0, 0.0)
    replica.state = "ready"
    jobs = [Job(i, 0.0, 500, 400, 500, 0, True) for i in range(3)]
    for job in jobs:
        replica.add(job, 0.0)
    replica.process(replica.next_event_s() or 0.0)
    decoding = next(j for j in jobs if j.produced > 0)
    at = replica.last_s + 0.05
    assert replica.cancel(decoding, at) >= 1
    done = _drain(replica)
    assert decoding not in done and len(done) == 2 and replica.in_flight == 0


def test_engine_speed_scales_the_truth_only() -> None:
    spec = engine_for(_profile("llama-3.1-8b-fp8-h100-tp1"))
    point = measured_points(_profile("llama-3.1-8b-fp8-h100-tp1"))[0]
    replica_fast = Replica(0, "p", spec, 0.0, 0.0, slowdown=1 / 1.2)
    replica_slow = Replica(1, "p", spec, 0.0, 0.0, slowdown=1 / 0.8)
    for replica in (replica_fast, replica_slow):
        replica.state = "ready"
        replica.add(Job(0, 0.0, point.input_tokens, point.output_tokens, 200, 0, True), 0.0)
    fast, slow = _drain(replica_fast)[0], _drain(replica_slow)[0]
    assert fast.prefill_done_s > 0 and slow.prefill_done_s > 0
    overhead = slow.first_token_s - slow.prefill_done_s  # host time does not scale
    assert overhead == pytest.approx(fast.first_token_s - fast.prefill_done_s)
    assert slow.prefill_done_s / fast.prefill_done_s == pytest.approx(1.5, rel=1e-6)
    with pytest.raises(ValueError):
        RunConfig(engine_speed=0.0)


@pytest.mark.parametrize("speed", [0.8, 1.0, 1.2])
def test_runs_complete_at_plus_minus_twenty_percent_engine_speed(
    scenario: Scenario, profiles: dict[str, EngineProfile], speed: float
) -> None:
    trace = generate("steady", 300.0, 1.0, seed=4)
    config = RunConfig(seed=4, preroll_s=60.0, engine_speed=speed)
    result = simulate(trace, scenario, profiles, Fixed({"on-demand": 2, "spot": 0}), config)
    ended = result.useful_requests + result.late_requests + result.failed_requests
    assert ended == result.requests == len(trace)
    assert result.cost.useful_tokens > 0


def test_a_slower_engine_is_slower_on_the_same_fleet(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = generate("steady", 300.0, 1.0, seed=5)
    itl = {}
    for speed in (0.8, 1.2):
        config = RunConfig(seed=5, preroll_s=60.0, engine_speed=speed)
        result = simulate(trace, scenario, profiles, Fixed({"on-demand": 2, "spot": 0}), config)
        itl[speed] = result.itl_p95_s
    assert itl[0.8] > itl[1.2] * 1.2
