"""`weir whatif`: where does this workload belong, and what would it cost?

An SRE with a trace and a price list wants one answer in plain words: all
hosted, dedicated on-demand GPUs, an on-demand plus spot fleet, or weir's
hybrid, each priced per useful token with its SLO attainment, and which
traffic pattern the workload resembles (the pattern explains the answer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

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


def verdict(summaries: Mapping[str, Mapping[str, float]], target: float) -> str:
    """One paragraph: the cheapest option that meets the target, and by how much."""
    meeting = {
        n: s["dollars_per_million_useful_tokens"]
        for n, s in summaries.items()
        if s["useful_token_fraction"] >= target
    }
    if not meeting:
        return f"No option reaches {target:.0%} useful tokens at these prices and limits."
    best = min(meeting, key=lambda n: meeting[n])
    text = (
        f"Cheapest option meeting {target:.0%} useful tokens: {OPTIONS.get(best, best)} "
        f"at ${meeting[best]:.2f} per million useful tokens."
    )
    others = [n for n in meeting if n != best]
    if others:
        runner = min(others, key=lambda n: meeting[n])
        saving = 1 - meeting[best] / meeting[runner]
        text += f" That is {saving:.0%} below the next best, {OPTIONS.get(runner, runner)}."
    missing = [OPTIONS.get(n, n) for n in summaries if n not in meeting]
    if missing:
        text += f" Misses the SLO target: {', '.join(missing)}."
    return text
