"""A lower bound on $ per useful token that no policy can beat in the simulator.

The weir-rules oracle (weir.sim.oracle) is a policy: it plans with weir's
router rules and can be beaten. A yardstick needs a floor instead, so this
module prices a relaxation of the simulator, request by request:

- every request may go to the cheapest pool per replica-second (spot, with
  no interruption) or to the hosted endpoint, whichever costs less, with any
  routing rule (per request, so any threshold and any window's mix);
- a local request is charged only the engine time it occupies on the
  simulator's own roofline (weir.sim.engine): a step lasts `overhead +
  per_seq * n + max(memory, compute)`, and since a sum of maxima is at least
  the maximum of the sums, a replica's busy time is at least `overheads +
  lam * memory + (1 - lam) * compute` for every lam in [0, 1]; each request
  carries its own flops (prompt and generated tokens, attention over its
  context), its KV reads, and a 1/max_batch share of each step's weight read
  and overhead. No idle, no queueing, no cold start, no preemption, and the
  fastest replica speed the simulator draws (four standard deviations);
- a request whose prompt cannot be prefilled within the TTFT target even
  alone on that fastest replica can only be useful hosted;
- a hosted request is priced with every prompt-cache hit it could get (as if
  every earlier request had gone hosted: sending more only fills the cache),
  and is always on time;
- the useful-token target lets a policy leave (1 - target) of the demanded
  tokens unserved, so the most expensive tokens per dollar are dropped first.

The bound is the largest over a grid of lam. A policy meeting the target
pays at least this much for at least this many useful tokens; one missing
the target also pays for its late tokens, which is why the tests check the
bound against every policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from weir.api.profile import EngineProfile
from weir.planner.capacity import model_for
from weir.planner.evaluate import split_mix
from weir.planner.optimise import max_local_prefill
from weir.sim.calibrate import engine_for
from weir.sim.engine import REPLICA_SPEED_SIGMA, EngineSpec
from weir.sim.hosted import HostedSim
from weir.sim.scenario import Scenario
from weir.sim.traces import Request
from weir.sim.workload import mix_of, prefill_tokens


@dataclass(frozen=True)
class LowerBound:
    """The relaxation's figures for one workload."""

    dollars_per_million_useful_tokens: float
    dollars: float
    useful_tokens: float
    local_token_share: float
    dropped_token_share: float
    pool: str

    def summary(self) -> dict[str, float | str]:
        """The bound's entry in summary.json."""
        return {
            "dollars_per_million_useful_tokens": self.dollars_per_million_useful_tokens,
            "dollars": self.dollars,
            "useful_tokens": self.useful_tokens,
            "local_token_share": self.local_token_share,
            "dropped_token_share": self.dropped_token_share,
            "pool": self.pool,
        }


def _stream(trace: Sequence[Request], preroll_s: float) -> list[tuple[float, Request, bool]]:
    """The arrivals exactly as the simulator replays them (preroll copy first)."""
    out = [(r.arrival_s, r, False) for r in trace if r.arrival_s < preroll_s]
    out += [(r.arrival_s + preroll_s, r, True) for r in trace]
    out.sort(key=lambda item: item[0])
    return out


def _cheapest_pool(scenario: Scenario) -> str:
    used = [b.pool for b in scenario.deployment.pools]
    return min(used, key=lambda p: (scenario.pools[p].dollars_per_replica_hour, p))


_LAMBDAS = tuple(k / 10 for k in range(11))


@dataclass(frozen=True)
class _Local:
    """Engine-seconds of one local request: fixed overheads, memory and compute parts."""

    overhead: float
    memory: float
    compute: float
    prefill_compute: float


def _local_parts(engine: EngineSpec, request: Request, prefill: int) -> _Local:
    """A request's share of the roofline (see the module docstring)."""
    c = engine.calibration
    decode = max(0, request.output_tokens - 1)
    cached = request.input_tokens - prefill
    context = request.input_tokens + request.output_tokens / 2
    flops_s = engine.peak_flops * c.compute_efficiency
    prompt = (
        engine.flops_per_token * prefill
        + engine.attention_flops_per_token_ctx * prefill * (cached + prefill / 2)
    ) / flops_s
    generate = (
        engine.flops_per_token * decode + engine.attention_flops_per_token_ctx * decode * context
    ) / flops_s
    memory = (
        decode
        * (engine.weight_bytes / engine.max_batch + engine.kv_bytes_per_token * context)
        / (engine.bandwidth * c.memory_efficiency)
    )
    overhead = decode * (c.step_overhead_s / engine.max_batch + c.per_seq_s)
    return _Local(overhead, memory, prompt + generate, prompt)


def lower_bound(
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    preroll_s: float,
    engine_speed: float = 1.0,
) -> LowerBound:
    """The relaxation's $ per useful token on this workload (module docstring)."""
    slo = scenario.deployment.slo
    pool = _cheapest_pool(scenario)
    engine = engine_for(profiles[pool])
    fastest = math.exp(-4 * REPLICA_SPEED_SIGMA) / engine_speed
    per_s = scenario.pools[pool].dollars_per_replica_hour / 3600.0 * fastest
    stream = _stream(trace, preroll_s)
    prefill = prefill_tokens([r for _, r, _ in stream], scenario.prefix_cache_tokens)
    hosted = HostedSim(scenario.hosted, random.Random(0)) if scenario.hosted else None
    parts: list[_Local | None] = []
    hosted_costs: list[float] = []
    tokens: list[float] = []
    for (at, request, accounted), pre in zip(stream, prefill, strict=True):
        cost = math.inf
        if hosted is not None:
            cost = hosted.serve(at, request.input_tokens, request.output_tokens, request.hash_ids)[
                2
            ]
        if not accounted:
            continue
        local = _local_parts(engine, request, pre)
        first = local.prefill_compute * fastest + engine.calibration.first_token_overhead_s
        parts.append(local if first <= slo.ttft_seconds else None)
        hosted_costs.append(cost)
        tokens.append(float(request.output_tokens))
    bounds = []
    for lam in _LAMBDAS:
        local_costs = [
            math.inf if p is None else (p.overhead + lam * p.memory + (1 - lam) * p.compute) * per_s
            for p in parts
        ]
        costs = [min(a, b) for a, b in zip(local_costs, hosted_costs, strict=True)]
        is_local = [a <= b for a, b in zip(local_costs, hosted_costs, strict=True)]
        bounds.append(_drop_dearest(costs, tokens, is_local, slo.useful_token_target, pool))
    return max(bounds, key=lambda b: b.dollars_per_million_useful_tokens)


def _drop_dearest(
    costs: Sequence[float], tokens: Sequence[float], local: Sequence[bool], target: float, pool: str
) -> LowerBound:
    """Leave the (1 - target) most expensive tokens unserved, the rest at their price."""
    cost = np.asarray(costs, dtype=float)
    tok = np.asarray(tokens, dtype=float)
    demanded = float(tok.sum())
    per_token = np.where(tok > 0, cost / np.maximum(tok, 1.0), np.inf)
    order = np.argsort(-per_token, kind="stable")
    allowance = (1.0 - target) * demanded
    keep = np.ones(len(cost), dtype=float)
    for i in order:
        if allowance <= 0 and math.isfinite(cost[i]):
            break
        share = 1.0 if not math.isfinite(cost[i]) else min(1.0, allowance / max(tok[i], 1.0))
        keep[i] = 1.0 - share
        allowance -= share * tok[i]
    finite = np.isfinite(cost)
    dollars = float(np.sum(np.where(finite, cost, 0.0) * keep))
    useful = float(np.sum(tok * keep * finite))
    per_million = dollars / useful * 1e6 if useful > 0 else math.inf
    local_tokens = float(np.sum(tok * keep * np.asarray(local, dtype=float)))
    return LowerBound(
        per_million,
        dollars,
        useful,
        local_tokens / useful if useful > 0 else 0.0,
        1.0 - useful / demanded if demanded > 0 else 0.0,
        pool,
    )


def slo_rate_relaxation(
    trace: Sequence[Request],
    scenario: Scenario,
    physics: Mapping[str, EngineProfile],
) -> float:
    """The issue's hand figure: local tokens on the cheapest pool at its SLO rate, no idle.

    Not a bound: the SLO rate is the planner's capacity model's estimate (a
    queueing model of the p99 TTFT), not the simulator's physics, and a
    policy may run a replica above it and still keep 99% of its tokens
    useful. Reported beside the bound so the gap between the two is visible.
    """
    slo = scenario.deployment.slo
    pool = _cheapest_pool(scenario)
    used = {b.pool: physics[b.pool] for b in scenario.deployment.pools}
    threshold = max_local_prefill(scenario.planning_spec(), used)
    prefill = prefill_tokens(trace, scenario.prefix_cache_tokens)
    split = split_mix(mix_of(trace, prefill), threshold, slo.percentile, scenario.hosted, 0.0)
    rate = model_for(physics[pool]).max_rate(split.local, slo).rate_rps
    n = len(trace)
    n_local = n * split.local_share
    gpu = n_local / rate * scenario.pools[pool].dollars_per_replica_hour / 3600.0 if rate else 0.0
    hosted = (n - n_local) * split.long_dollars_per_request
    demanded = float(sum(r.output_tokens for r in trace))
    return (gpu + hosted) / demanded * 1e6 if demanded else math.inf
