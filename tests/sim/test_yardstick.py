"""The yardstick: the bound holds, peers act as their counterparts, figures have intervals."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from weir.api import EngineProfile
from weir.planner.types import MixBucket, PoolObservation, Snapshot
from weir.sim.bench import POLICY_NAMES, make_policies, run_policies
from weir.sim.bound import _drop_dearest, lower_bound, slo_rate_relaxation
from weir.sim.generate import generate
from weir.sim.peers import LlmdSloPeer, PeerSetting, build_peer, gateway, place
from weir.sim.policy import NO_LIMIT, FleetMetrics, Observation
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario
from weir.sim.trials import Setup, interval, run_seed, screen, summarise
from weir.sim.tuning import (
    Trial,
    load_tuned,
    load_tuned_variant,
    pick,
    sweep_grid,
    tune,
    write_tuned,
)
from weir.sim.workload import derive, minute_need

SMALL = RunConfig(seed=3, preroll_s=300.0)


def _trace(
    scenario: Scenario,
    profiles: dict[str, EngineProfile],
    pattern: str,
    seed: int,
    duration_s: float = 600.0,
) -> list:  # type: ignore[type-arg]
    source = generate(pattern, duration_s, 2.0, seed)  # type: ignore[arg-type]
    return derive(source, scenario, profiles, seed, 2, None, pattern).trace


def _peers() -> dict[str, PeerSetting]:
    """One setting per family: the last grid point (fallback on where the grid has it)."""
    return {family: settings[-1] for family, settings in sweep_grid().items()}


@pytest.mark.parametrize(
    ("pattern", "seed", "speed"), [("bursty", 11, 1.0), ("long_context", 12, 0.8)]
)
def test_bound_is_below_every_policy(
    scenario: Scenario, profiles: dict[str, EngineProfile], pattern: str, seed: int, speed: float
) -> None:
    trace = _trace(scenario, profiles, pattern, seed)
    config = RunConfig(seed=SMALL.seed, preroll_s=SMALL.preroll_s, engine_speed=speed)
    peers = _peers()
    names = [*POLICY_NAMES, *peers]
    policies = make_policies(names, trace, scenario, profiles, config, peers)
    run = run_policies(policies, trace, scenario, profiles, config)
    bound = lower_bound(trace, scenario, profiles, config.preroll_s, speed)
    assert bound.dollars_per_million_useful_tokens > 0
    assert set(run.results) == set(names)
    for name, result in run.results.items():
        cost = result.cost.dollars_per_million_useful_tokens
        assert bound.dollars_per_million_useful_tokens <= cost, (name, cost, bound)


def test_bound_drops_the_dearest_tokens_first() -> None:
    # three requests of 10 tokens at $1, $2 and $4; a 90% target may leave 3 tokens unserved
    bound = _drop_dearest([1.0, 2.0, 4.0], [10.0, 10.0, 10.0], [True, True, False], 0.9, "spot")
    assert bound.useful_tokens == pytest.approx(27.0)
    assert bound.dollars == pytest.approx(1.0 + 2.0 + 4.0 * 0.7)
    assert bound.dropped_token_share == pytest.approx(0.1)
    assert bound.local_token_share == pytest.approx(20.0 / 27.0)
    # an unservable request is dropped whatever the allowance
    hard = _drop_dearest([1.0, math.inf], [10.0, 10.0], [True, False], 0.99, "spot")
    assert hard.useful_tokens == pytest.approx(10.0)
    assert hard.dollars_per_million_useful_tokens == pytest.approx(1e5)


def test_bound_is_cheaper_than_the_slo_rate_relaxation(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = _trace(scenario, profiles, "steady", 13)
    bound = lower_bound(trace, scenario, profiles, 300.0)
    relaxed = slo_rate_relaxation(trace, scenario, profiles)
    assert 0 < bound.dollars_per_million_useful_tokens < relaxed
    assert bound.pool == "spot"


def test_gateway_is_a_plain_service_or_litellm(scenario: Scenario) -> None:
    plain = gateway(scenario, PeerSetting("hpa", fallback=False), 40)
    assert not plain.hosted_enabled
    assert set(plain.concurrency_limit_by_pool.values()) == {NO_LIMIT}
    litellm = gateway(scenario, PeerSetting("hpa", fallback=True, parallel=0.5), 40)
    assert litellm.hosted_enabled and set(litellm.concurrency_limit_by_pool.values()) == {20}
    assert litellm.max_hosted_dollars_per_hour == scenario.deployment.hosted.max_dollars_per_hour  # type: ignore[union-attr]
    rule = gateway(scenario, PeerSetting("hybrid", fallback=False, long_prompt_tokens=4096), 40)
    assert rule.hosted_enabled and rule.max_local_prefill_tokens == 4096
    assert set(rule.concurrency_limit_by_pool.values()) == {NO_LIMIT}


def test_placement(scenario: Scenario) -> None:
    assert place(scenario, "on-demand", 5, 2) == {"on-demand": 5, "spot": 0}
    assert place(scenario, "spot", 5, 2) == {"on-demand": 0, "spot": 5}
    assert place(scenario, "mixed", 5, 2) == {"on-demand": 2, "spot": 3}
    assert place(scenario, "mixed", 1, 2) == {"on-demand": 1, "spot": 0}


def _obs(in_flight: int, waiting: int, ready: int, rate: float, now: float) -> Observation:
    snap = Snapshot(
        observed_at_s=now,
        window_s=60.0,
        arrival_rate_rps=rate,
        output_tokens_per_s=rate * 200,
        mix=(MixBucket(1024.0, rate * 60, rate * 60_000, rate * 60_000, rate * 12_000),),
        pools={"on-demand": PoolObservation(0), "spot": PoolObservation(ready)},
    )
    return Observation(snap, FleetMetrics(in_flight, waiting, ready))


def test_scalers_follow_their_signals(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = _trace(scenario, profiles, "steady", 14)
    need = minute_need(trace, scenario, profiles)
    limit = max(1, need.concurrency_limit_all)
    hpa = build_peer(PeerSetting("hpa", target=0.5), scenario, need)
    hpa.replicas = 4  # type: ignore[union-attr]
    decision = hpa.decide(_obs(4 * limit, 0, 4, 1.0, 0.0), 0.0)
    assert decision.replicas["spot"] == 8  # utilisation 1.0 against 0.5: double
    rate = build_peer(PeerSetting("keda_rate", target=1.0), scenario, need)
    wanted = rate.desired(_obs(0, 0, 1, 10 * need.replica_rate_rps, 0.0), 0.0)  # type: ignore[union-attr]
    assert wanted == 10
    queue = build_peer(PeerSetting("keda_queue", target=4.0), scenario, need)
    assert queue.desired(_obs(0, 40, 1, 1.0, 0.0), 0.0) == 10  # type: ignore[union-attr]


def test_llmd_recipe_scales_on_latency_with_hysteresis(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    need = minute_need(_trace(scenario, profiles, "steady", 15), scenario, profiles)
    peer = build_peer(PeerSetting("llmd_slo", target=0.55), scenario, need)
    assert isinstance(peer, LlmdSloPeer)
    peer.replicas = 3
    slo = scenario.deployment.slo
    for t in range(0, 60, 5):  # P90 TTFT at the SLO: s = 1.0 > 0.55
        peer.tap.record(float(t), slo.ttft_seconds, slo.itl_seconds * 0.2)
    assert peer.desired(_obs(0, 0, 3, 1.0, 80.0), 80.0) == 3 + math.ceil(3 * (1.0 / 0.55 - 1))
    quiet = build_peer(PeerSetting("llmd_slo", target=0.55), scenario, need)
    assert isinstance(quiet, LlmdSloPeer)
    quiet.replicas = 3
    for t in range(0, 60, 5):  # s = 0.5: inside the 0.40-0.55 band
        quiet.tap.record(float(t), slo.ttft_seconds * 0.5, slo.itl_seconds * 0.1)
    assert quiet.desired(_obs(0, 0, 3, 1.0, 80.0), 80.0) == 3


def test_engine_speed_changes_only_the_truth(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    trace = _trace(scenario, profiles, "steady", 17)
    peer = {"p": PeerSetting("static", placement="spot", target=1.0)}
    slow, quick = (
        simulate(
            trace,
            scenario,
            profiles,
            make_policies(["p"], trace, scenario, profiles, SMALL, peer)[0],
            RunConfig(seed=SMALL.seed, preroll_s=SMALL.preroll_s, engine_speed=speed),
        )
        for speed in (0.5, 2.0)
    )
    assert slow.ttft_p95_s > quick.ttft_p95_s
    assert slow.cost.useful_token_fraction < quick.cost.useful_token_fraction
    fast_bound, slow_bound = (
        lower_bound(trace, scenario, profiles, SMALL.preroll_s, speed) for speed in (2.0, 0.5)
    )
    assert (
        fast_bound.dollars_per_million_useful_tokens < slow_bound.dollars_per_million_useful_tokens
    )


def test_tuning_picks_the_cheapest_setting_that_meets_the_target(tmp_path: Path) -> None:
    a = PeerSetting("hpa", fallback=False, target=0.6)
    b = PeerSetting("hpa", fallback=True, target=0.8)
    c = PeerSetting("hpa", fallback=True, target=1.0)
    figures = {
        a: ((2.0, 2.0), (0.999, 0.995)),
        b: ((1.5, 1.6), (0.992, 0.991)),
        c: ((1.0, 1.0), (0.99, 0.97)),
    }
    assert pick([Trial(s, *f) for s, f in figures.items()], 0.99).setting == b
    assert pick([Trial(c, *figures[c])], 0.99).setting == c  # none meets: the most useful
    families = tune({"hpa_spot": [a, b, c]}, lambda s: figures[s], 0.99)
    assert families["hpa_spot"]["setting"] == b.knobs()
    assert families["hpa_spot"]["without_fallback"]["setting"] == a.knobs()
    path = tmp_path / "tuned.yaml"
    write_tuned(path, families, {"rule": "test"})
    assert load_tuned(path) == {"hpa_spot": b}
    assert load_tuned_variant(path, "hpa_spot", "without_fallback") == a


def test_interval() -> None:
    ci = interval([1.0, 2.0, 3.0, 4.0, 5.0])
    assert ci["mean"] == pytest.approx(3.0)
    assert ci["hi"] - ci["mean"] == pytest.approx(2.776 * math.sqrt(2.5) / math.sqrt(5))
    assert interval([2.0])["lo"] == 2.0
    assert math.isinf(interval([1.0, math.inf])["mean"])


def test_screening_keeps_weir_the_oracle_and_the_cheapest_peers(
    scenario: Scenario, profiles: dict[str, EngineProfile]
) -> None:
    source = generate("steady", 600.0, 2.0, 18)
    peers = {f: s[-1] for f, s in sweep_grid().items() if f in ("hpa_spot", "static_on_demand")}
    names = ["weir", "oracle_weir_rules", "all_hosted", *peers]
    setup = Setup(source, "steady", scenario, profiles, 1.0, names, peers, 2.0, None, 300.0)
    first = run_seed(setup, 0)
    kept = screen(first, names, 0.5, 1)
    assert kept[:2] == ["weir", "oracle_weir_rules"] and len(kept) == 3
    cheapest = min(
        (n for n in names[2:]),
        key=lambda n: first.run.results[n].cost.dollars_per_million_useful_tokens,
    )
    assert kept[2] == cheapest
    second = run_seed(setup, 1, names=kept)
    summary = summarise([first, second], 0.5)
    assert summary["lower_bound_dollars_per_million_useful_tokens"] > 0
    assert summary["comparison"].get("best_peer") in (None, cheapest)
    dropped = next(n for n in names[2:] if n != cheapest)
    assert summary["policies"][dropped]["ci95"]["useful_token_fraction"]["n"] == 1
    assert summary["lower_bound"]["holds_for_every_policy_and_seed"]
