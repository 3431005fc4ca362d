"""A lower bound on $ per useful token that no policy can beat in the simulator.

The weir-rules oracle (weir.sim.oracle) is a policy: it plans with weir's
router rules and can be beaten. A yardstick needs a floor instead, so this
module prices a relaxation of the simulator, request by request:

- every request may go to the cheapest pool per replica-second (spot, with
  no interruption) or to the hosted endpoint, whichever costs less, with any
  routing rule (per request, so any threshold and any window's mix);
- a local request is charged only the replica time it occupies: its uncached
  prompt at the engine's prefill rate and each generated token at its own
  share of a decode step, `step_base / n + step_per_seq + step_per_seq_ktok *
  context`, with `n` the largest batch whose step still meets the ITL target
  (so no idle, no queueing, no cold start, no warm-up, no interruption);
- a request whose prompt cannot meet the TTFT target even on an empty
  replica can only be useful hosted;
- a hosted request is priced with every prompt-cache hit it could get (as if
  every earlier request had gone hosted: sending more only fills the cache);
- the useful-token target lets a policy leave (1 - target) of the demanded
  tokens unserved, so the most expensive tokens per dollar are dropped first.

The engine mechanics come from the profile the simulator's engine runs
(scaled by --engine-speed), not the planner's view of it. A policy meeting
the target pays at least this much for at least this many useful tokens;
one missing the target also pays for its late tokens, which is why the
tests check the bound against every policy.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from weir.api.profile import EngineProfile
from weir.planner.capacity import EngineParams, model_for
from weir.planner.evaluate import split_mix
from weir.planner.optimise import max_local_prefill
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


def _decode_floor_s(params: EngineParams, itl_target_s: float) -> float:
    """The per-token share of a step's fixed cost at the largest batch meeting ITL."""
    per_seq = params.step_per_seq_s
    fits = (itl_target_s - params.step_base_s) / per_seq if per_seq > 0 else math.inf
    batch = max(1.0, min(float(params.max_batch), fits))
    return params.step_base_s / batch


def _local_seconds(params: EngineParams, request: Request, prefill: int, floor_s: float) -> float:
    """Replica-seconds one request occupies at best (see the module docstring)."""
    context_ktok = (request.input_tokens + request.output_tokens / 2) / 1000.0
    per_token = floor_s + params.step_per_seq_s + params.step_per_seq_ktok_s * context_ktok
    return prefill * params.prefill_s_per_token + max(0, request.output_tokens - 1) * per_token


def lower_bound(
    trace: Sequence[Request],
    scenario: Scenario,
    physics: Mapping[str, EngineProfile],
    preroll_s: float,
) -> LowerBound:
    """The relaxation's $ per useful token on this workload (module docstring)."""
    slo = scenario.deployment.slo
    pool = _cheapest_pool(scenario)
    params = model_for(physics[pool]).params
    per_s = scenario.pools[pool].dollars_per_replica_hour / 3600.0
    floor_s = _decode_floor_s(params, slo.itl_seconds)
    stream = _stream(trace, preroll_s)
    prefill = prefill_tokens([r for _, r, _ in stream], scenario.prefix_cache_tokens)
    hosted = HostedSim(scenario.hosted, random.Random(0)) if scenario.hosted else None
    costs: list[float] = []
    tokens: list[float] = []
    local: list[bool] = []
    for (at, request, accounted), pre in zip(stream, prefill, strict=True):
        hosted_cost = math.inf
        if hosted is not None:
            hosted_cost = hosted.serve(
                at, request.input_tokens, request.output_tokens, request.hash_ids
            )[2]
        if not accounted:
            continue
        local_cost = math.inf
        if params.ttft_base_s + pre * params.prefill_s_per_token <= slo.ttft_seconds:
            local_cost = _local_seconds(params, request, pre, floor_s) * per_s
        costs.append(min(local_cost, hosted_cost))
        tokens.append(float(request.output_tokens))
        local.append(local_cost <= hosted_cost)
    return _drop_dearest(costs, tokens, local, slo.useful_token_target, pool)


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

    Not a bound (a policy may run a replica above the model's SLO rate and
    still keep 99% of its tokens useful); reported beside the bound so the
    gap between the two is visible.
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
