"""Run weir and every baseline on one workload and compare them honestly.

Used by `weir bench planner` and `weir whatif`: one derived workload, one
scenario, every policy in the same simulator with the same seed, and the
comparison the targets are stated in (weir against the cheapest baseline
that reaches the useful-token target, and against the oracle).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from weir.api.profile import EngineProfile
from weir.sim.baselines import AllHosted, HpaUtilisation, KedaQueue, StaticP95, WeirPolicy
from weir.sim.oracle import Oracle
from weir.sim.policy import Decision, Observation, Policy
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig, simulate
from weir.sim.scenario import Scenario
from weir.sim.traces import Request
from weir.sim.workload import minute_need

POLICY_NAMES = ("weir", "static_p95", "hpa_utilisation", "keda_queue", "all_hosted", "oracle")
BASELINES = ("static_p95", "hpa_utilisation", "keda_queue", "all_hosted")


class TimedWeir(WeirPolicy):
    """weir, with the wall time of each planner decision recorded (outside the planner)."""

    def __init__(self, scenario: Scenario, profiles: Mapping[str, EngineProfile]) -> None:
        super().__init__(scenario, profiles)
        self.seconds: list[float] = []

    def decide(self, obs: Observation, now: float) -> Decision:
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
) -> list[Policy]:
    """The named policies, built for this workload."""
    need = minute_need(trace, scenario, profiles)
    factories: dict[str, Callable[[], Policy]] = {
        "weir": lambda: TimedWeir(scenario, profiles),
        "static_p95": lambda: StaticP95(scenario, need),
        "hpa_utilisation": lambda: HpaUtilisation(scenario, need),
        "keda_queue": lambda: KedaQueue(scenario, need),
        "all_hosted": lambda: AllHosted(scenario),
        "oracle": lambda: Oracle(trace, scenario, profiles, config.preroll_s),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        raise ValueError(f"unknown policies {unknown}; known: {sorted(factories)}")
    if scenario.hosted is None:
        names = [n for n in names if n != "all_hosted"]
    return [factories[n]() for n in names]


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
        result = simulate(trace, scenario, profiles, policy, config)
        elapsed = time.perf_counter() - start
        run.results[policy.name] = result
        run.sim_seconds[policy.name] = elapsed
        if isinstance(policy, TimedWeir):
            run.planner_ms = [s * 1000 for s in policy.seconds]
        if on_done is not None:
            on_done(policy.name, result, elapsed)
    return run


def comparison(run: BenchRun, target: float) -> dict[str, object]:
    """weir against the cheapest baseline reaching the target, and against the oracle."""
    summaries = {name: r.summary() for name, r in run.results.items()}
    reaching = {
        n: s["dollars_per_million_useful_tokens"]
        for n, s in summaries.items()
        if n in BASELINES and s["useful_token_fraction"] >= target
    }
    out: dict[str, object] = {"useful_token_target": target}
    weir = summaries.get("weir")
    if weir is None:
        return out
    out["weir_useful_token_fraction"] = weir["useful_token_fraction"]
    out["weir_meets_target"] = weir["useful_token_fraction"] >= target
    if reaching:
        cheapest = min(reaching, key=lambda n: reaching[n])
        ratio = weir["dollars_per_million_useful_tokens"] / reaching[cheapest]
        out["cheapest_baseline_reaching_target"] = cheapest
        out["weir_vs_cheapest_baseline"] = _round(ratio)
    if "oracle" in summaries:
        oracle = summaries["oracle"]["dollars_per_million_useful_tokens"]
        out["weir_vs_oracle"] = _round(weir["dollars_per_million_useful_tokens"] / oracle)
        out["oracle_useful_token_fraction"] = summaries["oracle"]["useful_token_fraction"]
    if run.planner_ms:
        ordered = sorted(run.planner_ms)
        out["planner_ms_per_decision_mean"] = _round(sum(ordered) / len(ordered))
        out["planner_ms_per_decision_p99"] = _round(ordered[int(0.99 * (len(ordered) - 1))])
        out["planner_decisions"] = len(ordered)
    return out


def _round(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value
