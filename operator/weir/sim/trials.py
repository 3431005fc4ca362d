"""Several seeds of one benchmark, with 95% intervals: figures people can trust.

One seed is one draw of the workload's jitter, the spot interruptions and
the hosted latencies; a ratio read off one draw can be luck. Every figure
here is the mean over seeds with a Student-t 95% interval, and ratios (weir
against the best peer, against the bound) are taken seed by seed, so a
seed that is hard for everyone does not count against weir alone.

Screening keeps the sweep affordable on two shared cores: every policy runs
the first seed; the later seeds run weir, the oracle and the `keep` peers
that were cheapest on the first seed among those reaching the target (the
most useful ones fill up when fewer reach it). A peer screened out keeps its
one-seed figures, marked with n = 1, and cannot be the best peer.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from weir.api.profile import EngineProfile
from weir.sim.bench import NOT_PEERS, ORACLE, WEIR, BenchRun, make_policies, run_policies
from weir.sim.bound import LowerBound, lower_bound, slo_rate_relaxation
from weir.sim.peers import PeerSetting
from weir.sim.recorder import RunResult
from weir.sim.runner import RunConfig
from weir.sim.scenario import Scenario
from weir.sim.traces import Request
from weir.sim.workload import DerivedWorkload, derive

# two-sided 95% Student-t quantiles by degrees of freedom
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}


@dataclass
class SeedRun:
    """One seed: its workload, every policy's result and the bound."""

    seed: int
    work: DerivedWorkload
    run: BenchRun
    bound: LowerBound
    slo_rate_relaxation: float


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95% interval (Student t); a single value has a zero-width interval."""
    finite = [v for v in values if math.isfinite(v)]
    if len(finite) < len(values) or not finite:
        return {"mean": math.inf, "lo": math.inf, "hi": math.inf, "n": len(values)}
    mean = statistics.fmean(finite)
    if len(finite) < 2:
        return {"mean": mean, "lo": mean, "hi": mean, "n": 1}
    half = _T95.get(len(finite) - 1, 1.96) * statistics.stdev(finite) / math.sqrt(len(finite))
    return {"mean": mean, "lo": mean - half, "hi": mean + half, "n": len(finite)}


@dataclass(frozen=True)
class Setup:
    """Everything but the seed."""

    source: Sequence[Request]
    label: str
    scenario: Scenario
    profiles: Mapping[str, EngineProfile]
    engine_speed: float
    names: Sequence[str]
    peers: Mapping[str, PeerSetting]
    target_peak_replicas: float | None
    rate_scale: float | None
    preroll_s: float = 900.0


def run_seed(
    setup: Setup,
    seed: int,
    on_done: Callable[[str, RunResult, float], None] | None = None,
    names: Sequence[str] | None = None,
) -> SeedRun:
    """Derive the seed's workload, run the policies (default: all) on it, and price the bound."""
    sc = setup.scenario
    work = derive(
        setup.source,
        sc,
        setup.profiles,
        seed,
        setup.target_peak_replicas,
        setup.rate_scale,
        setup.label,
    )
    config = RunConfig(seed=seed, preroll_s=setup.preroll_s, engine_speed=setup.engine_speed)
    chosen = setup.names if names is None else names
    policies = make_policies(chosen, work.trace, sc, setup.profiles, config, setup.peers)
    run = run_policies(policies, work.trace, sc, setup.profiles, config, on_done)
    bound = lower_bound(work.trace, sc, setup.profiles, setup.preroll_s, setup.engine_speed)
    relaxed = slo_rate_relaxation(work.trace, sc, setup.profiles)
    return SeedRun(seed, work, run, bound, relaxed)


def screen(first: SeedRun, names: Sequence[str], target: float, keep: int) -> list[str]:
    """weir, the oracle and the `keep` most promising peers on the first seed."""
    summaries = {n: r.summary() for n, r in first.run.results.items()}
    peers = [n for n in names if n in summaries and n not in NOT_PEERS]
    ranked = sorted(
        peers,
        key=lambda n: (
            summaries[n]["useful_token_fraction"] < target,
            summaries[n]["dollars_per_million_useful_tokens"]
            if summaries[n]["useful_token_fraction"] >= target
            else -summaries[n]["useful_token_fraction"],
        ),
    )
    kept = set(ranked[:keep])
    return [n for n in names if n in NOT_PEERS or n in kept]


def _policy_entry(results: Sequence[RunResult]) -> dict[str, Any]:
    summaries = [r.summary() for r in results]
    keys = summaries[0].keys()
    entry: dict[str, Any] = {k: statistics.fmean(s[k] for s in summaries) for k in keys}
    cost = [s["dollars_per_million_useful_tokens"] for s in summaries]
    useful = [s["useful_token_fraction"] for s in summaries]
    entry["dollars_per_million_useful_tokens"] = interval(cost)["mean"]
    entry["ci95"] = {
        "dollars_per_million_useful_tokens": interval(cost),
        "useful_token_fraction": interval(useful),
    }
    entry["per_seed"] = {"dollars_per_million_useful_tokens": cost, "useful_token_fraction": useful}
    return entry


def summarise(seeds: Sequence[SeedRun], target: float) -> dict[str, Any]:
    """policies, lower bound and comparison over the seeds (summary.json's core)."""
    names = list(seeds[0].run.results)
    policies = {
        n: _policy_entry([s.run.results[n] for s in seeds if n in s.run.results]) for n in names
    }
    bounds = [s.bound.dollars_per_million_useful_tokens for s in seeds]
    out: dict[str, Any] = {
        "seeds": [s.seed for s in seeds],
        "policies": policies,
        "lower_bound_dollars_per_million_useful_tokens": interval(bounds)["mean"],
        "lower_bound": {
            "ci95": interval(bounds),
            "per_seed": [s.bound.summary() for s in seeds],
            "slo_rate_relaxation_dollars_per_million_useful_tokens": interval(
                [s.slo_rate_relaxation for s in seeds]
            )["mean"],
            "holds_for_every_policy_and_seed": all(
                s.bound.dollars_per_million_useful_tokens
                <= r.cost.dollars_per_million_useful_tokens + 1e-9
                for s in seeds
                for r in s.run.results.values()
            ),
        },
    }
    out["comparison"] = _comparison(seeds, policies, bounds, target)
    return out


def _ratios(seeds: Sequence[SeedRun], name: str) -> list[float]:
    return [
        s.run.results[WEIR].cost.dollars_per_million_useful_tokens
        / s.run.results[name].cost.dollars_per_million_useful_tokens
        for s in seeds
    ]


def _comparison(
    seeds: Sequence[SeedRun],
    policies: Mapping[str, Mapping[str, Any]],
    bounds: Sequence[float],
    target: float,
) -> dict[str, Any]:
    out: dict[str, Any] = {"useful_token_target": target, "seeds": len(seeds)}
    if WEIR not in policies:
        return out
    weir = policies[WEIR]
    out["weir_useful_token_fraction"] = weir["useful_token_fraction"]
    out["weir_meets_target"] = weir["useful_token_fraction"] >= target
    reaching = {
        n: p["dollars_per_million_useful_tokens"]
        for n, p in policies.items()
        if n not in NOT_PEERS
        and p["useful_token_fraction"] >= target
        and p["ci95"]["useful_token_fraction"]["n"] == len(seeds)
    }
    if reaching:
        peer = min(reaching, key=lambda n: (reaching[n], n))
        ratio = interval(_ratios(seeds, peer))
        out["best_peer"] = peer
        out["weir_vs_best_peer"] = _round(ratio["mean"])
        out["weir_vs_best_peer_ci95"] = [_round(ratio["lo"]), _round(ratio["hi"])]
    weir_cost = [s.run.results[WEIR].cost.dollars_per_million_useful_tokens for s in seeds]
    vs_bound = interval([w / b for w, b in zip(weir_cost, bounds, strict=True)])
    out["weir_vs_lower_bound"] = _round(vs_bound["mean"])
    out["weir_vs_lower_bound_ci95"] = [_round(vs_bound["lo"]), _round(vs_bound["hi"])]
    if ORACLE in policies:
        oracle = policies[ORACLE]
        out["oracle_weir_rules_useful_token_fraction"] = oracle["useful_token_fraction"]
        out["oracle_weir_rules_meets_target"] = oracle["useful_token_fraction"] >= target
        if oracle["useful_token_fraction"] >= target:
            out["weir_vs_oracle_weir_rules"] = _round(interval(_ratios(seeds, ORACLE))["mean"])
    planner = [ms for s in seeds for ms in s.run.planner_ms]
    if planner:
        ordered = sorted(planner)
        out["planner_ms_per_decision_mean"] = _round(statistics.fmean(ordered))
        out["planner_ms_per_decision_p99"] = _round(ordered[int(0.99 * (len(ordered) - 1))])
    return out


def _round(value: float) -> float:
    return round(value, 4) if math.isfinite(value) else value
