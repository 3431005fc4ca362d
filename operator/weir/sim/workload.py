"""How a benchmark workload is derived from a trace, and how much capacity it needs.

`--target-peak-replicas N` means "scale the trace so that its busiest minute
needs N replicas of the on-demand pool at the SLO": the need of each minute
comes from the same capacity model the planner uses, on that minute's
request mix (prompt-cache hits included), so the number is comparable across
traces of very different shapes. The static baseline sizes itself from the
same per-minute need.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from weir.api.profile import EngineProfile
from weir.planner.capacity import CapacityModel, Workload, model_for
from weir.planner.evaluate import split_mix
from weir.planner.optimise import max_local_prefill
from weir.planner.types import MIX_BOUNDS, MIX_TOP_BOUND, MixBucket
from weir.sim.hosted import BLOCK_TOKENS
from weir.sim.scenario import Scenario
from weir.sim.traces import Request, duration_s, scale_rate


def prefill_tokens(trace: Sequence[Request], cache_tokens: int) -> list[int]:
    """Uncached prompt tokens per request with one shared LRU prefix cache (as the simulator)."""
    capacity = cache_tokens // BLOCK_TOKENS
    cache: OrderedDict[int, None] = OrderedDict()
    out = []
    for r in trace:
        hits = 0
        for block in r.hash_ids:
            if block not in cache:
                break
            hits += 1
        for block in r.hash_ids:
            cache[block] = None
            cache.move_to_end(block)
        while len(cache) > capacity:
            cache.popitem(last=False)
        out.append(max(1, r.input_tokens - min(hits * BLOCK_TOKENS, r.input_tokens - 1)))
    return out


def mix_of(requests: Sequence[Request], prefill: Sequence[int]) -> tuple[MixBucket, ...]:
    """The request-mix histogram the router would export for these requests."""
    import bisect

    sums: dict[int, list[float]] = {}
    for r, pre in zip(requests, prefill, strict=True):
        row = sums.setdefault(bisect.bisect_left(MIX_BOUNDS, pre), [0.0, 0.0, 0.0, 0.0])
        row[0] += 1
        row[1] += r.input_tokens
        row[2] += pre
        row[3] += r.output_tokens
    return tuple(
        MixBucket(min(MIX_BOUNDS[b], MIX_TOP_BOUND), *row) for b, row in sorted(sums.items())
    )


@dataclass(frozen=True)
class MinuteNeed:
    """Per minute of the trace: arrival rate and replicas needed at the SLO."""

    rate_rps: np.ndarray
    replicas: np.ndarray
    replicas_all: np.ndarray
    local_share: float
    replica_rate_rps: float
    concurrency_limit: int
    concurrency_limit_all: int


def minute_need(
    trace: Sequence[Request], scenario: Scenario, profiles: Mapping[str, EngineProfile]
) -> MinuteNeed:
    """Replicas of the on-demand pool each minute needs to serve its local share at the SLO."""
    pool = scenario.on_demand_pool
    profile = profiles[pool]
    model = model_for(profile)
    spec = scenario.planning_spec()
    slo = scenario.deployment.slo
    threshold = max_local_prefill(
        spec, {b.pool: profiles[b.pool] for b in scenario.deployment.pools}
    )
    prefill = prefill_tokens(trace, scenario.prefix_cache_tokens)
    minutes = int(duration_s(trace) // 60) + 1
    groups: list[list[int]] = [[] for _ in range(minutes)]
    for i, r in enumerate(trace):
        groups[int((r.arrival_s - trace[0].arrival_s) // 60)].append(i)
    rates, needs, needs_all = np.zeros(minutes), np.zeros(minutes), np.zeros(minutes)
    for m, idx in enumerate(groups):
        if not idx:
            continue
        mix = mix_of([trace[i] for i in idx], [prefill[i] for i in idx])
        split = split_mix(mix, threshold, slo.percentile, scenario.hosted, 0.0)
        cap = model.max_rate(split.local, slo)
        rates[m] = len(idx) / 60.0
        needs[m] = rates[m] * split.local_share / cap.rate_rps if cap.rate_rps > 0 else math.inf
        every = _throughput_rate(model, _throughput_view(mix, slo.percentile))
        needs_all[m] = rates[m] / every if every > 0 else math.inf
    whole_mix = mix_of(trace, prefill)
    whole = split_mix(whole_mix, threshold, slo.percentile, scenario.hosted, 0.0)
    cap = model.max_rate(whole.local, slo)
    return MinuteNeed(
        rates,
        needs,
        needs_all,
        whole.local_share,
        cap.rate_rps,
        cap.concurrency_limit,
        max(1, cap.concurrency_limit),
    )


def _throughput_rate(model: CapacityModel, workload: Workload) -> float:
    """What a replica sustains at 70% of its full-batch throughput (how SREs size for
    throughput when some requests cannot meet the latency target anyway)."""
    p = model.params
    top = max(1, int(min(p.max_batch, p.kv_cache_tokens // workload.mean_context)))
    return 0.7 * model.saturated(workload, top).rate_rps


def _throughput_view(mix: tuple[MixBucket, ...], percentile: float) -> Workload:
    """The whole mix as a replica without a hosted tier must take it.

    Prompts too long for the TTFT target still have to be served; sizing
    for them is sizing for throughput, so the TTFT percentile is taken at
    the mean prompt.
    """
    whole = split_mix(mix, math.inf, percentile, None, 0.0).local
    return Workload(
        whole.mean_input_tokens,
        whole.mean_output_tokens,
        max(1.0, whole.prefill_tokens),
        whole.mean_prefill_tokens,
    )


@dataclass(frozen=True)
class DerivedWorkload:
    """A trace scaled for a benchmark, with how it was derived."""

    trace: list[Request]
    description: dict[str, object]


def derive(
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    seed: int,
    target_peak_replicas: float | None,
    rate_scale: float | None,
    source: str,
) -> DerivedWorkload:
    """Scale the trace by `rate_scale`, or so its busiest minute needs the target replicas."""
    need = minute_need(trace, scenario, profiles)
    peak = float(np.max(need.replicas))
    if rate_scale is not None:
        factor = rate_scale
        how = (
            "the trace as recorded"
            if rate_scale == 1
            else f"arrival rate x{rate_scale:g} (superposed jittered copies, +-5 s)"
        )
    else:
        target = 8.0 if target_peak_replicas is None else target_peak_replicas
        if not math.isfinite(peak) or peak <= 0:
            raise ValueError("the trace's busiest minute cannot be served by a replica at the SLO")
        factor = target / peak
        how = (
            f"arrival rate x{factor:.3f} (superposed jittered copies, +-5 s) so the busiest "
            f"minute needs {target:g} replicas of pool {scenario.on_demand_pool!r} at the SLO"
        )
    scaled = scale_rate(trace, factor, seed)
    return DerivedWorkload(
        scaled,
        {
            "source": source,
            "source_requests": len(trace),
            "source_duration_s": round(duration_s(trace), 1),
            "derivation": how,
            "rate_factor": round(factor, 4),
            "requests": len(scaled),
            "duration_s": round(duration_s(scaled), 1),
            "mean_rate_rps": round(len(scaled) / max(duration_s(scaled), 1.0), 3),
            "source_peak_minute_replicas": round(peak, 3),
            "local_request_share": round(need.local_share, 4),
            "replica_rate_at_slo_rps": round(need.replica_rate_rps, 3),
            "seed": seed,
        },
    )
