"""The weir-rules oracle: weir's router rules with the trace known in advance.

Not a bound (weir.sim.bound is the bound): it plans with weir's own rules
(the SLO concurrency limit, the long-prompt threshold, the planner's capacity
model and fleet ladder), so a policy with other rules can beat it, and it is
reported as an oracle only when it meets the useful-token target. It sees the whole
trace (arrivals and prompt-cache hits exactly as the simulator will), prices
every control window for every fleet size (fleets grow along the same
cheapest-capacity-first ladder as the planner's), charges each started
replica its cold start, and finds the cheapest schedule by dynamic
programming over windows. It then runs in the simulator like any policy:
starting replicas exactly one cold start before they are needed, with the
same router and spill policy as weir. It never sees the future any other way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from weir.api.profile import EngineProfile
from weir.planner.capacity import model_for
from weir.planner.evaluate import split_mix
from weir.planner.optimise import evaluate_price, max_local_prefill, spill_policy
from weir.sim.policy import Observation, PolicyDecision
from weir.sim.scenario import Scenario
from weir.sim.traces import Request
from weir.sim.workload import mix_of, prefill_tokens


class OracleWeirRules:
    """weir's rules with a perfect forecast: dynamic programming over control windows."""

    name = "oracle_weir_rules"

    def __init__(
        self,
        trace: Sequence[Request],
        scenario: Scenario,
        profiles: Mapping[str, EngineProfile],
        preroll_s: float,
    ) -> None:
        self.scenario = scenario
        spec = scenario.planning_spec()
        self.pools = [b.pool for b in scenario.deployment.pools]
        used = {p: profiles[p] for p in self.pools}
        self.window_s = scenario.deployment.control.period_seconds
        self.cold_s = max(scenario.pools[p].cold_start_seconds for p in self.pools)
        stream = sorted(
            [(r.arrival_s, r) for r in trace if r.arrival_s < preroll_s]
            + [(r.arrival_s + preroll_s, r) for r in trace],
            key=lambda item: item[0],
        )
        prefill = prefill_tokens([r for _, r in stream], scenario.prefix_cache_tokens)
        slo = scenario.deployment.slo
        threshold = max_local_prefill(spec, used)
        split = split_mix(
            mix_of([r for _, r in stream], prefill), threshold, slo.percentile, scenario.hosted, 0.0
        )
        caps = {p: model_for(used[p]).max_rate(split.local, slo) for p in self.pools}
        self.ladder = _ladder(
            scenario, {p: c.rate_rps for p, c in caps.items()}, split.local_dollars_per_request
        )
        windows = int(stream[-1][0] // self.window_s) + 2
        local = np.zeros(windows)
        for (at, _), pre in zip(stream, prefill, strict=True):
            if pre <= threshold:
                local[int(at // self.window_s)] += 1
        local /= self.window_s
        self.schedule = self._solve(local, caps, split.local_dollars_per_request)
        gpu = sum(scenario.pools[p].dollars_per_replica_hour for p in self.pools)
        self.spill = spill_policy(spec, caps, gpu * 0, threshold)

    def _solve(
        self, local: np.ndarray, caps: Mapping[str, object], per_request: float
    ) -> list[int]:
        fleets = self.ladder
        rates = np.array([sum(n * _rate(caps, p) for p, n in f.items()) for f in fleets])
        price = np.array(
            [
                sum(n * self.scenario.pools[p].dollars_per_replica_hour for p, n in f.items())
                for f in fleets
            ]
        )
        hosted_ok = self.scenario.hosted is not None
        excess = np.maximum(local[:, None] - rates[None, :], 0.0)
        hosted_cost = (
            excess * self.window_s * per_request if hosted_ok else np.where(excess > 0, 1e6, 0.0)
        )
        cost = price[None, :] * self.window_s / 3600.0 + hosted_cost
        warm = np.maximum(price[:, None] - price[None, :], 0.0) * self.cold_s / 3600.0
        value = cost[0].copy()
        choice = np.zeros((len(local), len(fleets)), dtype=np.int32)
        for k in range(1, len(local)):
            total = value[None, :] + warm
            choice[k] = np.argmin(total, axis=1)
            value = cost[k] + total[np.arange(len(fleets)), choice[k]]
        path = [int(np.argmin(value))]
        for k in range(len(local) - 1, 0, -1):
            path.append(int(choice[k][path[-1]]))
        return path[::-1]

    def _fleet_at(self, now: float) -> dict[str, int]:
        first = int(now // self.window_s)
        last = int((now + self.cold_s) // self.window_s)
        span = self.schedule[min(first, len(self.schedule) - 1) : last + 1] or [0]
        return dict(self.ladder[max(span)])

    def initial(self) -> Mapping[str, int]:
        return self._fleet_at(0.0)

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(self._fleet_at(now), self.spill)


def _rate(caps: Mapping[str, object], pool: str) -> float:
    cap = caps[pool]
    return float(getattr(cap, "rate_rps", 0.0))


def _ladder(
    scenario: Scenario, rates: Mapping[str, float], per_request: float
) -> list[dict[str, int]]:
    """Fleets from the minimum up, cheapest capacity first (as the planner's ladder)."""
    spec = scenario.planning_spec()
    fleet = {b.pool: b.min_replicas for b in scenario.deployment.pools}
    limits = {b.pool: b.max_replicas for b in scenario.deployment.pools}
    unit = {p: evaluate_price(spec, p, r, per_request) / r for p, r in rates.items() if r > 0}
    out = [dict(fleet)]
    while True:
        options = [p for p in sorted(unit, key=lambda p: (unit[p], p)) if fleet[p] < limits[p]]
        if not options:
            return out
        fleet[options[0]] += 1
        out.append(dict(fleet))
        if len(out) > 2000 or not math.isfinite(unit[options[0]]):
            return out
