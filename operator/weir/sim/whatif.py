"""`weir whatif`: where does this workload belong, and what would it cost?

An SRE with a trace and a price list wants one answer in plain words: all
hosted, dedicated on-demand GPUs, an on-demand plus spot fleet, or weir's
hybrid, each priced per useful token with its SLO attainment, and which
traffic pattern the workload resembles (the pattern explains the answer).
An answer is only as good as what it assumed, so the model, the prices, the
SLO and what counts as a useful token are stated beside it; and options
whose costs are within `TIE_FRACTION` of each other are called a tie, since
one simulated seed cannot rank them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from weir.api import EngineProfile
from weir.sim.policy import Observation, PolicyDecision, local_only
from weir.sim.scenario import Scenario
from weir.sim.traces import Request, duration_s
from weir.sim.workload import MinuteNeed, prefill_tokens

OPTIONS = {
    "all_hosted": "all hosted (token pricing)",
    "static_p95": "dedicated on-demand GPUs",
    "static_mix": "on-demand + spot GPUs",
    "weir": "weir hybrid",
}


class StaticMix:
    """On-demand for the median minute, spot for the rest up to P95 plus 30%."""

    name = "static_mix"

    def __init__(self, scenario: Scenario, need: MinuteNeed) -> None:
        finite = sorted(x for x in need.replicas_all if math.isfinite(x))
        p50 = finite[len(finite) // 2] if finite else 1.0
        p95 = finite[int(0.95 * (len(finite) - 1))] if finite else 1.0
        self.base_pool = scenario.on_demand_pool
        spot = [n for n, p in scenario.pools.items() if p.capacity_type == "spot"]
        self.spot_pool = spot[0] if spot else scenario.on_demand_pool
        self.base = max(1, math.ceil(p50))
        total = max(self.base, math.ceil(p95 * 1.3))
        self.fleet = {self.base_pool: self.base}
        self.fleet[self.spot_pool] = self.fleet.get(self.spot_pool, 0) + total - self.base

    def initial(self) -> Mapping[str, int]:
        return dict(self.fleet)

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(dict(self.fleet), local_only(self.fleet))


@dataclass(frozen=True)
class Pattern:
    """Which kind of traffic a trace resembles, and the numbers behind it."""

    name: str
    why: str
    features: dict[str, float]

    def sentence(self) -> str:
        """The pattern and its numbers in words."""
        f = self.features
        return (
            f"It looks like {self.name} ({self.why}): {f['mean_rate_rps']:.1f} req/s on average, "
            f"minute-to-minute variation {f['minute_rate_cv']:.0%}, peak "
            f"{f['peak_to_mean']:.1f}x the mean, prompts of {f['mean_input_tokens']:.0f} tokens "
            f"({f['prefix_reuse']:.0%} reusable) for answers of {f['mean_output_tokens']:.0f}; "
            f"its busiest minute needs {f['peak_minute_replicas']:.1f} replicas."
        )


def classify(trace: Sequence[Request], need: MinuteNeed, cache_tokens: int) -> Pattern:
    """Exploration, agentic, steady production or variable production."""
    rates = need.rate_rps
    mean = float(np.mean(rates)) if rates.size else 0.0
    cv = float(np.std(rates) / mean) if mean > 0 else 0.0
    peak_ratio = float(np.max(rates) / mean) if mean > 0 else 0.0
    idle = float(np.mean(rates == 0)) if rates.size else 1.0
    inputs = np.array([r.input_tokens for r in trace], dtype=float)
    outputs = np.array([r.output_tokens for r in trace], dtype=float)
    prefill = np.array(prefill_tokens(trace, cache_tokens), dtype=float)
    reuse = 1.0 - float(prefill.sum() / inputs.sum()) if inputs.sum() > 0 else 0.0
    peak_need = float(np.max(need.replicas_all)) if need.replicas_all.size else 0.0
    features = {
        "duration_min": duration_s(trace) / 60,
        "mean_rate_rps": mean,
        "minute_rate_cv": cv,
        "peak_to_mean": peak_ratio,
        "idle_minutes_share": idle,
        "mean_input_tokens": float(inputs.mean()),
        "mean_output_tokens": float(outputs.mean()),
        "prefix_reuse": reuse,
        "peak_minute_replicas": peak_need,
    }
    if peak_need < 1.0 or idle > 0.3:
        return Pattern(
            "exploration", "too little or too intermittent traffic to keep a GPU busy", features
        )
    if features["mean_input_tokens"] > 4 * features["mean_output_tokens"] * 4 and reuse > 0.3:
        return Pattern(
            "agentic", "long prompts that mostly reuse earlier context, short answers", features
        )
    if cv < 0.25 and peak_ratio < 1.6:
        return Pattern(
            "steady production", "traffic stays close to its mean all the time", features
        )
    return Pattern("variable production", "busy but swinging well away from its mean", features)


TIE_FRACTION = 0.01
OPTION_RULES = {
    "all_hosted": "every request to the hosted endpoint at its token prices, no GPUs",
    "static_p95": "a fixed on-demand fleet sized for the P95 minute plus 30% headroom",
    "static_mix": "on-demand replicas for the median minute, spot for the rest up to P95 plus 30%",
    "weir": "weir's planner every control period: replicas per pool and the hosted spill",
}


@dataclass(frozen=True)
class Verdict:
    """Which option is cheapest among those meeting the target, ties named as ties."""

    target: float
    costs: dict[str, float]
    useful: dict[str, float]
    cheapest: str | None = None
    tied: tuple[str, ...] = ()
    runners_up: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()
    tie_fraction: float = TIE_FRACTION

    @property
    def saving(self) -> float | None:
        """How much cheaper the cheapest is than the runner-up beyond the tie, 0..1."""
        if self.cheapest is None or not self.runners_up:
            return None
        runner = self.costs[self.runners_up[0]]
        return 1 - self.costs[self.cheapest] / runner if runner > 0 else None

    def text(self) -> str:
        """One paragraph in plain words."""
        if self.cheapest is None:
            return f"No option reaches {self.target:.0%} useful tokens at these prices and limits."
        best = self.cheapest
        if self.tied:
            priced = ", ".join(
                f"{OPTIONS.get(n, n)} at ${self.costs[n]:.2f}" for n in (best, *self.tied)
            )
            text = (
                f"Cheapest options meeting {self.target:.0%} useful tokens cost about the same "
                f"(within {self.tie_fraction:.0%} of each other): {priced} per million useful "
                "tokens; choose between them on other grounds."
            )
        else:
            text = (
                f"Cheapest option meeting {self.target:.0%} useful tokens: "
                f"{OPTIONS.get(best, best)} at ${self.costs[best]:.2f} per million useful tokens."
            )
        saving = self.saving
        if saving is not None:
            runners = " and ".join(OPTIONS.get(n, n) for n in self.runners_up)
            text += (
                f" {'They are' if self.tied else 'That is'} {_percent(saving)} below the next "
                f"best, {runners} (${self.costs[self.runners_up[0]]:.2f})."
            )
        if self.missing:
            missed = ", ".join(
                f"{OPTIONS.get(n, n)} ({self.useful[n]:.1%} useful)" for n in self.missing
            )
            text += f" Misses the {self.target:.0%} useful-token target: {missed}."
        return text

    def as_dict(self) -> dict[str, object]:
        """For summary.json."""
        return {
            "text": self.text(),
            "useful_token_target": self.target,
            "cheapest": self.cheapest,
            "about_the_same_as_cheapest": list(self.tied),
            "next_best": list(self.runners_up),
            "saving_vs_next_best": self.saving,
            "missing_target": list(self.missing),
            "tie_fraction": self.tie_fraction,
        }


def _percent(share: float) -> str:
    return f"{share:.0%}" if share >= 0.095 else f"{share:.1%}"


def _same(a: float, b: float, tie: float) -> bool:
    return abs(a - b) <= tie * max(abs(a), abs(b))


def decide(
    summaries: Mapping[str, Mapping[str, float]], target: float, tie: float = TIE_FRACTION
) -> Verdict:
    """The cheapest option meeting the target; those within `tie` of it are a tie."""
    useful = {n: s["useful_token_fraction"] for n, s in summaries.items()}
    costs = {n: s["dollars_per_million_useful_tokens"] for n, s in summaries.items()}
    meeting = [n for n in summaries if useful[n] >= target and math.isfinite(costs[n])]
    missing = tuple(n for n in summaries if n not in meeting)
    if not meeting:
        return Verdict(target, costs, useful, missing=missing, tie_fraction=tie)
    ranked = sorted(meeting, key=lambda n: (costs[n], n))
    best = ranked[0]
    tied = tuple(n for n in ranked[1:] if _same(costs[best], costs[n], tie))
    rest = [n for n in ranked[1:] if n not in tied]
    runners = tuple(n for n in rest if _same(costs[rest[0]], costs[n], tie))
    return Verdict(target, costs, useful, best, tied, runners, missing, tie)


def assumptions(
    scenario: Scenario, profiles: Mapping[str, EngineProfile], source: str
) -> dict[str, object]:
    """What the answer assumed, in words: model, engine profiles, prices, limits, SLO."""
    dep = scenario.deployment
    slo = dep.slo
    itl = (
        "its mean inter-token latency"
        if scenario.stresses.itl_rule == "mean"
        else "its gap to the token before"
    )
    stems = scenario.profile_names()
    used = [b.pool for b in dep.pools]
    hosted = scenario.hosted
    return {
        "scenario": f"{scenario.name}: {source}",
        "model": (
            f"{dep.model.name} ({dep.model.precision}, TP{dep.model.tensor_parallel}); the trace's "
            "token counts are replayed on it as recorded, whichever model served them"
        ),
        "engine_profiles": {pool: f"{stems[pool]}: {_measured(profiles[pool])}" for pool in used},
        "prices": {
            **{pool: _pool_price(scenario, pool) for pool in used},
            "hosted": (
                "none"
                if hosted is None
                else f"{hosted.model}: ${hosted.dollars_per_million_input_tokens:.2f}/M input, "
                f"${hosted.dollars_per_million_cached_input_tokens:.2f}/M cached input, "
                f"${hosted.dollars_per_million_output_tokens:.2f}/M output tokens"
            ),
        },
        "limits": _limits(scenario),
        "slo": (
            f"TTFT <= {slo.ttft_seconds:g} s and ITL <= {slo.itl_seconds * 1000:g} ms; target "
            f"{slo.useful_token_target:.1%} of generated tokens useful (the planner checks the "
            f"targets at P{slo.percentile:g})"
        ),
        "useful_token": (
            "a generated token that arrived inside the SLO (its request's time to first token "
            f"at most {slo.ttft_seconds:g} s, and {itl} at most {slo.itl_seconds * 1000:g} ms), "
            "of a request that was not abandoned, timed out or failed, paid for once (a "
            "duplicate attempt's tokens are paid and wasted)"
        ),
        "options": {n: OPTION_RULES[n] for n in OPTIONS},
        "tie": (
            f"options within {TIE_FRACTION:.0%} of each other's $ per useful token are called "
            "about the same: one simulated seed cannot rank them"
        ),
    }


def _measured(profile: EngineProfile) -> str:
    measured = sum(1 for p in profile.points if not p.derived)
    return (
        f"{profile.model} {profile.precision} TP{profile.tensor_parallel} on {profile.gpu}, "
        f"{measured} of {len(profile.points)} points measured, the rest modelled"
    )


def _pool_price(scenario: Scenario, name: str) -> str:
    pool = scenario.pools[name]
    text = (
        f"{pool.capacity_type} {pool.gpu_type} x{pool.gpus_per_replica}: "
        f"${pool.dollars_per_gpu_hour:.2f}/GPU-hour "
        f"(${pool.dollars_per_replica_hour:.2f}/replica-hour), "
        f"cold start {pool.cold_start_seconds:g} s"
    )
    if pool.capacity_type == "spot":
        text += (
            f", {pool.interruptions_per_instance_month:g} interruptions per instance-month "
            f"with {pool.interruption_notice_seconds:g} s notice"
        )
    return text


def _limits(scenario: Scenario) -> str:
    dep = scenario.deployment
    pools = "; ".join(f"{b.pool} {b.min_replicas}-{b.max_replicas} replicas" for b in dep.pools)
    text = f"{pools}; budget ${dep.cost.budget_dollars_per_hour:g}/hour"
    if dep.hosted is not None:
        text += (
            f"; hosted at most {dep.hosted.max_share:.0%} of requests and "
            f"${dep.hosted.max_dollars_per_hour:g}/hour"
        )
    return text


def assumption_lines(facts: Mapping[str, object]) -> list[str]:
    """The assumptions as indented lines for the terminal."""
    lines: list[str] = []
    for key, value in facts.items():
        label = key.replace("_", " ")
        if isinstance(value, Mapping):
            lines.append(f"{label}:")
            lines.extend(f"  {k}: {v}" for k, v in value.items())
        else:
            lines.append(f"{label}: {value}")
    return lines
