"""Each stress a useful token's definition relies on, exercised in the simulator."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest

from weir.api import EngineProfile
from weir.planner.types import SpillPolicy
from weir.sim.generate import generate
from weir.sim.hosted import HostedSim
from weir.sim.policy import Observation, PolicyDecision, local_only
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig, Simulation, simulate
from weir.sim.scenario import Scenario, load_scenario
from weir.sim.spot import available_from, load_spot_trace, reclaims_between
from weir.sim.stresses import Abandonment, Duplicates, SpotTraceRef, Stresses

ROOT = Path(__file__).resolve().parents[2]
SPOT = ROOT.parent / "shared" / "data" / "spot"
FOUR_NODE = SPOT / "preemption" / "4-node" / "aws-08-03-2023" / "us-east-1f_v100_1.json"
CONFIG = RunConfig(seed=3, preroll_s=60.0)


class Fixed:
    """A policy that holds a fixed fleet, so runs differ only by the stress under test."""

    name = "fixed"

    def __init__(self, replicas: Mapping[str, int], spill: SpillPolicy | None = None) -> None:
        self.replicas = dict(replicas)
        self.spill = spill or local_only(self.replicas)

    def initial(self) -> Mapping[str, int]:
        return self.replicas

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(self.replicas, self.spill)


def _with(scenario: Scenario, **stresses: object) -> Scenario:
    return scenario.model_copy(update={"stresses": Stresses.model_validate(stresses)})


def _ended(r: RunResult) -> int:
    return r.useful_requests + r.late_requests + r.failed_requests + r.abandoned_requests


def _run(scenario: Scenario, profiles: dict[str, EngineProfile], policy: Fixed) -> RunResult:
    trace = generate("steady", 300.0, 3.0, seed=3)
    result = simulate(trace, scenario, profiles, policy, CONFIG)
    assert _ended(result) == result.requests == len(trace)
    assert result.cost.useful_tokens + result.cost.wasted_tokens >= result.cost.useful_tokens
    return result


OVERLOADED = {"on-demand": 1, "spot": 0}


def test_abandoning_clients_waste_tokens_and_keep_their_cost(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    calm = _run(scenario, profiles, Fixed(OVERLOADED))
    leaving = _with(scenario, abandonment=Abandonment(ttft_patience_p50_seconds=2.0))
    result = _run(leaving, profiles, Fixed(OVERLOADED))
    assert calm.abandoned_requests == 0 and result.abandoned_requests > 0
    assert result.retried_attempts == 0
    # the fleet (the cost) is the same, fewer tokens are useful
    assert result.cost.gpu_dollars_by_pool == calm.cost.gpu_dollars_by_pool
    assert result.cost.useful_tokens < calm.cost.useful_tokens


def test_retrying_clients_send_new_attempts_of_the_same_request(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    stress = Abandonment(ttft_patience_p50_seconds=2.0, retry_probability=1.0, max_attempts=2)
    result = _run(_with(scenario, abandonment=stress), profiles, Fixed(OVERLOADED))
    assert result.retried_attempts > 0
    assert result.abandoned_requests > 0  # the second attempt may give up for good


def test_total_timeout_cuts_a_stream_short(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    stress = Abandonment(
        ttft_patience_p50_seconds=3600.0, ttft_patience_sigma=0.0, total_timeout_seconds=3.0
    )
    result = _run(_with(scenario, abandonment=stress), profiles, Fixed(OVERLOADED))
    assert result.abandoned_requests > 0 and result.cost.wasted_tokens > 0


def test_duplicates_are_paid_twice_and_counted_once(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    spill = SpillPolicy({"on-demand": 4, "spot": 0}, True, 1.0, 1e6)
    policy = Fixed(OVERLOADED, spill)
    once = _run(scenario, profiles, policy)
    twice = _run(
        _with(scenario, duplicates=Duplicates(probability=1.0, after_seconds=0.05)),
        profiles,
        policy,
    )
    assert once.duplicate_attempts == 0 and twice.duplicate_attempts > 0
    assert twice.cost.hosted_dollars > once.cost.hosted_dollars
    assert twice.cost.useful_tokens <= twice.cost.demanded_tokens
    assert twice.cost.wasted_tokens > once.cost.wasted_tokens


def test_per_token_itl_charges_the_prompt_chunk_steps_the_mean_forgives(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    policy = Fixed({"on-demand": 3, "spot": 0})
    mean = _run(scenario, profiles, policy)
    per_token = _run(_with(scenario, itl_rule="per_token"), profiles, policy)
    assert mean.cost.gpu_dollars_by_pool == per_token.cost.gpu_dollars_by_pool
    assert per_token.cost.useful_tokens < mean.cost.useful_tokens
    # partly useful requests: tokens, not whole requests, are lost
    assert per_token.cost.useful_tokens > 0.5 * mean.cost.useful_tokens


def test_hosted_ttft_grows_with_the_uncached_prompt(scenario: Scenario) -> None:
    assert scenario.hosted is not None
    flat = HostedSim(scenario.hosted, random.Random(1))
    grows = HostedSim(scenario.hosted, random.Random(1), prefill_tokens_per_s=20_000)
    short_flat = flat.serve(0.0, 100, 10, ())[0]
    short = grows.serve(0.0, 100, 10, ())[0]
    long_flat = flat.serve(1.0, 30_100, 10, ())[0]
    long = grows.serve(1.0, 30_100, 10, ())[0]
    assert short - short_flat == pytest.approx(100 / 20_000)
    assert long - long_flat == pytest.approx(30_100 / 20_000)


def test_the_four_node_trace_gives_correlated_reclaims_at_the_declared_rate() -> None:
    trace = load_spot_trace(str(FOUR_NODE))
    assert trace.width == 4
    fractions = Counter(round(f, 2) for _, f in trace.reclaims())
    assert any(f >= 0.5 for f in fractions)  # two or more of four at once
    declared = 5.0 / 730.0
    speed = declared / trace.native_rate_per_hour()
    horizon = trace.span_s / speed  # one whole cycle of the trace
    events = reclaims_between(trace, declared, 123.0, 0.0, horizon)
    assert len(events) == len(trace.reclaims())
    assert all(0 <= at < horizon for at, _ in events)
    assert np.all(np.diff([at for at, _ in events]) >= 0)


def test_availability_holds_launches_until_capacity_returns(tmp_path: Path) -> None:
    path = tmp_path / "avail.json"
    path.write_text(json.dumps({"metadata": {"gap_seconds": 100}, "data": [0, 0, 1, 1, 0]}))
    trace = load_spot_trace(str(path))
    assert available_from(trace, 0.0, 10.0) == 200.0
    assert available_from(trace, 0.0, 250.0) == 250.0
    assert available_from(trace, 0.0, 450.0) == 700.0  # cyclic: the next 1 is at tick 7
    empty = tmp_path / "never.json"
    empty.write_text(json.dumps({"metadata": {"gap_seconds": 100}, "data": [0, 0]}))
    assert available_from(load_spot_trace(str(empty)), 0.0, 5.0) == float("inf")


def test_real_spot_traces_reclaim_replicas_together_in_a_run(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    risky = scenario.pools["spot"].model_copy(update={"interruptions_per_instance_month": 3000.0})
    stormy = scenario.model_copy(
        update={
            "pools": {**scenario.pools, "spot": risky},
            "stresses": Stresses(spot_trace=SpotTraceRef(preemption=str(FOUR_NODE))),
        }
    )
    trace = generate("steady", 1800.0, 2.0, seed=2)
    sim = Simulation(trace, stormy, profiles, Fixed({"on-demand": 0, "spot": 6}), CONFIG)
    result = sim.run()
    assert _ended(result) == result.requests
    kills = Counter(r.ended_s for r in sim.all_replicas if r.interrupt_s is not None)
    assert kills and max(kills.values()) >= 2  # a correlated reclaim
    assert result.cost.wasted_tokens > 0


def test_the_stressed_scenario_turns_every_stress_on_and_runs(
    profiles: dict[str, EngineProfile],
) -> None:
    stressed = load_scenario(ROOT / "bench" / "scenarios" / "stressed.yaml")
    s = stressed.stresses
    assert s.itl_rule == "per_token" and s.abandonment and s.duplicates
    assert s.hosted_prefill_tokens_per_second and s.spot_trace and s.spot_trace.preemption
    assert Path(s.spot_trace.preemption).is_file()
    assert s.spot_trace.availability and Path(s.spot_trace.availability).is_file()
    spill = SpillPolicy({"on-demand": 2, "spot": 2}, True, 1.0, 1e6)
    result = simulate(
        generate("bursty", 600.0, 3.0, seed=1),
        stressed,
        profiles,
        Fixed({"on-demand": 1, "spot": 1}, spill),
        CONFIG,
    )
    assert _ended(result) == result.requests
    assert result.cost.useful_token_fraction < 1.0


def test_launch_pattern_has_spikes_and_quiet_hours() -> None:
    hours = 6
    trace = generate("launch", hours * 3600.0, 4.0, seed=7)
    per_minute = np.bincount([int(r.arrival_s // 60) for r in trace], minlength=hours * 60)
    assert per_minute.max() > 3 * np.median(per_minute)  # a launch spike
    windows = np.convolve(per_minute, np.ones(20), "valid")
    assert windows.min() < 0.1 * windows.max()  # a quiet stretch of 20 minutes
    assert generate("launch", 3600.0, 4.0, seed=7) == generate("launch", 3600.0, 4.0, seed=7)
