"""Run weir and its peers on one workload and compare them honestly.

Used by `weir bench planner`, `weir whatif` and the peer sweep: one derived
workload, one scenario, every policy in the same simulator with the same
seed (and the same `RunConfig.engine_speed`: the simulated engines may run
faster or slower than the profile the policies read). The comparison the
targets are stated in: weir against the best peer that reaches the
useful-token target, against the lower bound (weir.sim.bound), and against
the weir-rules oracle when that oracle met the target.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from weir.api.profile import EngineProfile
from weir.sim.baselines import AllHosted, HpaUtilisation, KedaQueue, StaticP95, WeirPolicy
from weir.sim.oracle import OracleWeirRules
from weir.sim.peers import LlmdSloPeer, PeerSetting, build_peer
from weir.sim.policy import Observation, Policy, PolicyDecision
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario
from weir.sim.tap import simulate_tapped
from weir.sim.traces import Request
from weir.sim.workload import minute_need

WEIR = "weir"
ORACLE = "oracle_weir_rules"
# the fixed-knob baselines of issue 3, kept by name for comparison with old reports
LEGACY = ("static_p95", "hpa_utilisation", "keda_queue")
POLICY_NAMES = (WEIR, ORACLE, "all_hosted", *LEGACY)
NOT_PEERS = (WEIR, ORACLE)


class TimedWeir(WeirPolicy):
    """weir, with the wall time of each planner decision recorded (outside the planner)."""

    def __init__(self, scenario: Scenario, profiles: Mapping[str, EngineProfile]) -> None:
        super().__init__(scenario, profiles)
        self.seconds: list[float] = []

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        start = time.perf_counter()
        decision = super().decide(obs, now)
        self.seconds.append(time.perf_counter() - start)
        return decision


@dataclass
class BenchRun:
    """Results of every policy on one workload."""

    results: dict[str, RunResult] = field(default_factory=dict)
    sim_seconds: dict[str, float] = field(default_factory=dict)
    planner_ms: list[float] = field(default_factory=list)


def make_policies(
    names: Sequence[str],
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    config: RunConfig,
    peers: Mapping[str, PeerSetting] | None = None,
) -> list[Policy]:
    """The named policies, built for this workload (peers by family name from `peers`)."""
    need = minute_need(trace, scenario, profiles)
    settings = dict(peers or {})
    factories: dict[str, Callable[[], Policy]] = {
        WEIR: lambda: TimedWeir(scenario, profiles),
        "static_p95": lambda: StaticP95(scenario, need),
        "hpa_utilisation": lambda: HpaUtilisation(scenario, need),
        "keda_queue": lambda: KedaQueue(scenario, need),
        "all_hosted": lambda: AllHosted(scenario),
        ORACLE: lambda: OracleWeirRules(trace, scenario, profiles, config.preroll_s),
    }
    known = set(factories) | set(settings)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {sorted(known)}")
    if scenario.hosted is None:
        names = [n for n in names if n != "all_hosted"]
    out: list[Policy] = []
    for name in names:
        if name in factories:
            out.append(factories[name]())
        else:
            peer = build_peer(settings[name], scenario, need)
            peer.name = name
            out.append(peer)
    return out


def run_policies(
    policies: Sequence[Policy],
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    config: RunConfig,
    on_done: Callable[[str, RunResult, float], None] | None = None,
) -> BenchRun:
    """Simulate each policy in turn on the same workload and seed."""
    run = BenchRun()
    for policy in policies:
        start = time.perf_counter()
        if isinstance(policy, LlmdSloPeer):
            result = simulate_tapped(trace, scenario, profiles, policy, config, policy.tap)
        else:
            result = simulate(trace, scenario, profiles, policy, config)
        elapsed = time.perf_counter() - start
        run.results[policy.name] = result
        run.sim_seconds[policy.name] = elapsed
        if isinstance(policy, TimedWeir):
            run.planner_ms = [s * 1000 for s in policy.seconds]
        if on_done is not None:
            on_done(policy.name, result, elapsed)
    return run


def best_peer(summaries: Mapping[str, Mapping[str, float]], target: float) -> str | None:
    """The cheapest policy other than weir and the oracle that reaches the target."""
    reaching = {
        n: s["dollars_per_million_useful_tokens"]
        for n, s in summaries.items()
        if n not in NOT_PEERS and s["useful_token_fraction"] >= target
    }
    return min(reaching, key=lambda n: (reaching[n], n)) if reaching else None


def comparison(run: BenchRun, target: float, lower_bound: float | None = None) -> dict[str, object]:
    """weir against the best peer reaching the target, the bound and the weir-rules oracle."""
    summaries = {name: r.summary() for name, r in run.results.items()}
    out: dict[str, object] = {"useful_token_target": target}
    weir = summaries.get(WEIR)
    if weir is None:
        return out
    cost = weir["dollars_per_million_useful_tokens"]
    out["weir_useful_token_fraction"] = weir["useful_token_fraction"]
    out["weir_meets_target"] = weir["useful_token_fraction"] >= target
    peer = best_peer(summaries, target)
    if peer is not None:
        out["best_peer"] = peer
        out["weir_vs_best_peer"] = _round(
            cost / summaries[peer]["dollars_per_million_useful_tokens"]
        )
    if lower_bound is not None and lower_bound > 0:
        out["weir_vs_lower_bound"] = _round(cost / lower_bound)
    if ORACLE in summaries:
        oracle = summaries[ORACLE]
        out["oracle_weir_rules_useful_token_fraction"] = oracle["useful_token_fraction"]
        out["oracle_weir_rules_meets_target"] = oracle["useful_token_fraction"] >= target
        if oracle["useful_token_fraction"] >= target:
            out["weir_vs_oracle_weir_rules"] = _round(
                cost / oracle["dollars_per_million_useful_tokens"]
            )
    if run.planner_ms:
        ordered = sorted(run.planner_ms)
        out["planner_ms_per_decision_mean"] = _round(sum(ordered) / len(ordered))
        out["planner_ms_per_decision_p99"] = _round(ordered[int(0.99 * (len(ordered) - 1))])
        out["planner_decisions"] = len(ordered)
    return out


def _round(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value
