"""The planner: `plan(snapshot, spec, profiles, state, now) -> Plan`.

A pure function. It forecasts demand one cold start ahead, prices a ladder
of fleets (each step adds the replica with the lowest risk-adjusted price per
unit of SLO capacity, so spot comes first while it is cheaper after its
interruption risk), picks the lowest predicted $ per useful token whose
useful fraction meets the target within budget, then stabilises: a dead
band against small savings, scale-down only to the largest recommendation
of the stabilisation window, per-step change caps, min/max and GPU limits,
and a final trim to the budget. On stale or missing data it holds the last
plan and says so; it never scales to zero for lack of data.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace

from weir.api.profile import EngineProfile
from weir.planner.capacity import ReplicaCapacity, model_at_speed, model_for
from weir.planner.evaluate import Demand, Limits, MixSplit, Outcome, evaluate, split_mix
from weir.planner.feedback import MARGIN as FEEDBACK_MARGIN
from weir.planner.feedback import bounded, update_scale
from weir.planner.forecast import DemandSample, Forecast, add_sample, forecast
from weir.planner.learn import describe, learn_speeds, planning_speeds
from weir.planner.speed import SpeedBelief
from weir.planner.stabilise import stabilise
from weir.planner.types import (
    MIX_BOUNDS,
    Alternative,
    MixBucket,
    Plan,
    PlannerState,
    PlanningError,
    PlanningSpec,
    Snapshot,
    SpillPolicy,
)

FORECAST_QUANTILE = 0.9
LOADED = 0.8
_DEFAULT_MIX = (MixBucket(1024.0, 1.0, 1000.0, 1000.0, 200.0),)
_TTFT_PREFILL_SHARE = 0.7
MIX_SMOOTHING_S = 600.0
MIX_JUMP = 4.0  # one window's tokens per request count up to this times the mix's own
MIN_THRESHOLD_TOKENS = 2048.0  # the lowest long-prompt threshold weir steps down to
# the router histogram's power-of-two bounds a threshold may take
_THRESHOLD_BOUNDS = tuple(
    b
    for b in MIX_BOUNDS
    if b >= MIN_THRESHOLD_TOKENS and math.isfinite(b) and math.log2(b).is_integer()
)
PREFILL_STEP_COST = 0.05  # a lower threshold is tried on evidence if priced within this
PREFILL_CAP_RECOVERY_S = 1800.0  # attainment above target this long raises the cap a step


def plan(
    snapshot: Snapshot | None,
    spec: PlanningSpec,
    profiles: Mapping[str, EngineProfile],
    state: PlannerState | None,
    now: float,
) -> Plan:
    """Decide replicas per pool and the router's spill policy (see module docstring)."""
    state = state or PlannerState()
    # a scale read back from status is bounded once, here, before anything uses it
    state = replace(state, capacity_scale=bounded(state.capacity_scale))
    _validate(spec, profiles, now)
    control = spec.deployment.control
    if snapshot is None:
        return _hold(spec, profiles, state, now, None, "no metrics snapshot")
    if snapshot.observed_at_s > now + 1e-6:
        raise PlanningError("snapshot.observed_at_s is later than now")
    age = now - snapshot.observed_at_s
    if not snapshot.healthy or age > control.stale_after_seconds:
        if snapshot.healthy:
            why = f"metrics {age:.0f} s old"
        else:
            why = (
                f"metrics unhealthy ({snapshot.problem})"
                if snapshot.problem
                else "metrics unhealthy"
            )
        return _hold(spec, profiles, state, now, snapshot, why)
    if snapshot.arrival_rate_rps > 0 and not snapshot.mix:
        raise PlanningError("snapshot.mix is empty while requests arrived")
    mix = smooth_mix(state.last_mix, snapshot.mix, snapshot.observed_at_s - _last_at(state))
    sample = DemandSample(
        snapshot.observed_at_s, snapshot.arrival_rate_rps, snapshot.output_tokens_per_s
    )
    samples = add_sample(state.samples, sample)
    # Believed demand rises from at least what the planned replicas serve, or one
    # replica's worth at an empty fleet: at most one GPU for the first samples (an
    # HPA's scale-up policy likewise adds pods, not only a percentage, from few).
    last = state.last_plan
    planned = max(last.local_capacity_rps, last.replica_rps) if last else 0.0
    fc = forecast(samples, horizon_s(spec), snapshot.window_s, FORECAST_QUANTILE, planned)
    target = spec.deployment.slo.useful_token_target
    scale, trust_note = state.capacity_scale, None
    if control.attainment_feedback:
        scale, trust_note = update_scale(
            scale,
            snapshot.local_useful_fraction,
            snapshot.local_output_tokens,
            target,
            now - state.capacity_cut_at_s,
            _loaded(state, snapshot),
        )
    cut_at = now if scale < state.capacity_scale else state.capacity_cut_at_s
    in_force = state.last_plan.spill.max_local_prefill_tokens if state.last_plan else math.inf
    served = tuple(b for b in mix if b.prefill_tokens_le <= in_force) or mix  # what engines saw
    speeds = learn_speeds(
        state.speeds, snapshot.engines, profiles, served, snapshot.observed_at_s, snapshot.window_s
    )
    ctx, scored, (best_r, best_o, why), cap, cap_at, threshold_note = _long_prompts(
        spec,
        profiles,
        mix,
        snapshot.hosted_cached_fraction,
        fc,
        scale,
        speeds,
        state,
        snapshot,
        now,
    )
    current = _current(spec, snapshot, state)
    held_o = evaluate(current, ctx.rates, spec.pools, ctx.split, ctx.demand, ctx.limits)
    ready = {name: pool.ready for name, pool in snapshot.pools.items()}
    desired, notes, recs = stabilise(
        spec, current, best_r, best_o, held_o, state.recommendations, now, ready
    )
    final = evaluate(desired, ctx.rates, spec.pools, ctx.split, ctx.demand, ctx.limits)
    trust = [trust_note] if trust_note else []
    chosen = [threshold_note] if threshold_note else []
    reasons = (*_demand_reasons(fc, ctx), *describe(speeds), *trust, *chosen, why, *notes)
    alternatives = _alternatives(scored, best_r, current, held_o, desired, final, spec)
    next_state = PlannerState(
        samples=samples,
        recommendations=recs,
        last_mix=mix,
        capacity_scale=scale,
        capacity_cut_at_s=cut_at,
        prefill_cap=cap,
        prefill_cap_at_s=cap_at,
        speeds=speeds,
    )
    result = _make_plan(now, desired, final, ctx, spec, reasons, alternatives, fc, next_state)
    return result


def _last_at(state: PlannerState) -> float:
    return state.samples[-1].at_s if state.samples else -math.inf


def smooth_mix(
    old: tuple[MixBucket, ...], new: tuple[MixBucket, ...], elapsed_s: float
) -> tuple[MixBucket, ...]:
    """Exponentially weighted request mix (time constant MIX_SMOOTHING_S).

    One window's mix is noisy (a few long prompts move its percentile), and
    a noisy mix makes per-replica capacity, and so the fleet, flap. One window
    also counts for at most MIX_JUMP times the mix's own tokens per request
    (output, and prompt beyond its bucket's bound): a scrape with counts a
    thousand times too high would otherwise pin the fleet at its maximum for
    as long as the smoothing remembers it, while a real shift still arrives,
    a factor MIX_JUMP per window at most.
    """
    if not old:
        return new or _DEFAULT_MIX
    if not new:
        return old
    keep = math.exp(-max(elapsed_s, 0.0) / MIX_SMOOTHING_S)
    old_total = sum(b.requests for b in old) or 1.0
    new = _capped(new, old, old_total)
    new_total = sum(b.requests for b in new) or 1.0
    rows: dict[float, list[float]] = {}
    for weight, buckets, total in ((keep, old, old_total), (1 - keep, new, new_total)):
        for b in buckets:
            row = rows.setdefault(b.prefill_tokens_le, [0.0, 0.0, 0.0, 0.0])
            scale = weight / total
            row[0] += b.requests * scale
            row[1] += b.input_tokens * scale
            row[2] += b.prefill_tokens * scale
            row[3] += b.output_tokens * scale
    return tuple(MixBucket(bound, *row) for bound, row in sorted(rows.items()) if row[0] > 1e-9)


def _capped(
    new: tuple[MixBucket, ...], old: tuple[MixBucket, ...], old_total: float
) -> tuple[MixBucket, ...]:
    """`new` with each bucket's tokens per request capped at MIX_JUMP x the old mix's."""
    out_cap = MIX_JUMP * max(sum(b.output_tokens for b in old) / old_total, 1.0)
    in_cap = MIX_JUMP * max(sum(b.input_tokens for b in old) / old_total, 1.0)
    capped = []
    for b in new:
        prompt = max(in_cap, b.prefill_tokens_le if math.isfinite(b.prefill_tokens_le) else 0.0)
        input_tokens = min(b.input_tokens, b.requests * prompt)
        capped.append(
            MixBucket(
                b.prefill_tokens_le,
                b.requests,
                input_tokens,
                min(b.prefill_tokens, input_tokens),
                min(b.output_tokens, b.requests * out_cap),
            )
        )
    return tuple(capped)


def horizon_s(spec: PlanningSpec) -> float:
    """Look-ahead: the longest cold start among the deployment's pools, plus one period."""
    cold = max(spec.pools[b.pool].cold_start_seconds for b in spec.deployment.pools)
    return cold + spec.deployment.control.period_seconds


class _Context:
    """Per-decision derived numbers shared by the search and the report."""

    def __init__(
        self,
        split: MixSplit,
        capacities: dict[str, ReplicaCapacity],
        demand: Demand,
        limits: Limits,
        max_prefill: float,
    ) -> None:
        self.split = split
        self.capacities = capacities
        self.rates = {name: cap.rate_rps for name, cap in capacities.items()}
        self.demand = demand
        self.limits = limits
        self.max_prefill = max_prefill


def _validate(spec: PlanningSpec, profiles: Mapping[str, EngineProfile], now: float) -> None:
    if not math.isfinite(now) or now < 0:
        raise PlanningError(f"now must be a finite time >= 0, got {now}")
    for binding in spec.deployment.pools:
        if binding.pool not in profiles:
            raise PlanningError(f"profiles: no engine profile for pool {binding.pool!r}")


def max_local_prefill(spec: PlanningSpec, profiles: Mapping[str, EngineProfile]) -> float:
    """Longest uncached prompt a replica can still answer within the TTFT target."""
    if spec.hosted is None:
        return math.inf
    budget = spec.deployment.slo.ttft_seconds * _TTFT_PREFILL_SHARE
    limits = []
    for binding in spec.deployment.pools:
        p = model_for(profiles[binding.pool]).params
        per_token = p.prefill_s_per_token + p.step_base_s / p.chunk_tokens
        limits.append((budget - p.ttft_base_s) / per_token)
    return max(1.0, min(limits))


Scored = list[tuple[dict[str, int], Outcome]]


def thresholds(
    spec: PlanningSpec, profiles: Mapping[str, EngineProfile], mix: tuple[MixBucket, ...]
) -> list[float]:
    """Long-prompt thresholds weir may use: the longest prompt a replica answers within
    the TTFT target, and the router histogram's power-of-two bounds from
    MIN_THRESHOLD_TOKENS up to it that move requests (with none between a bound and the
    TTFT limit, the split is the same)."""
    top = max_local_prefill(spec, profiles)
    if spec.hosted is None or spec.deployment.hosted is None:
        return [top]
    out = {top}
    for bound in _THRESHOLD_BOUNDS:
        if bound < top and any(b.requests > 0 for b in mix if bound < b.prefill_tokens_le <= top):
            out.add(bound)
    return sorted(out)


def _long_prompts(
    spec: PlanningSpec,
    profiles: Mapping[str, EngineProfile],
    mix: tuple[MixBucket, ...],
    cached_fraction: float,
    fc: Forecast,
    scale: float,
    speeds: tuple[tuple[str, SpeedBelief], ...],
    state: PlannerState,
    snapshot: Snapshot,
    now: float,
) -> tuple[_Context, Scored, tuple[dict[str, int], Outcome, str], float, float, str | None]:
    """The long-prompt threshold in force, priced: its context, ladder and best fleet, the
    cap the SLO evidence puts on it (and when the cap last moved), and a note.

    The TTFT target sets the longest prompt a replica can answer. The capacity model
    prices a long prompt's prefill by the GPU time it takes; what its chunk steps (each
    can be longer than the ITL bound) do to the requests decoding beside it, the
    replicas' attainment shows better. So an attainment cut (the capacity trust stepping
    down) also tries the next lower threshold, and takes it when the model prices it
    within PREFILL_STEP_COST of the one in force: a cheap lever, pulled on evidence. The
    cap steps back up one candidate per PREFILL_CAP_RECOVERY_S of attainment above
    target with the capacity trust whole again.
    """
    cap, cap_at = state.prefill_cap, state.prefill_cap_at_s
    candidates = thresholds(spec, profiles, mix)
    target = spec.deployment.slo.useful_token_target
    observed = snapshot.local_useful_fraction
    calm = observed is not None and observed >= target + FEEDBACK_MARGIN and scale >= 1.0
    if calm and math.isfinite(cap) and now - cap_at >= PREFILL_CAP_RECOVERY_S:
        higher = [t for t in candidates if t > cap]
        cap, cap_at = (higher[0] if len(higher) > 1 else math.inf), now
    allowed = [t for t in candidates if t <= cap] or candidates[:1]
    speed = planning_speeds(speeds)

    def priced(threshold: float) -> tuple[_Context, Scored, tuple[dict[str, int], Outcome, str]]:
        ctx = _context(spec, profiles, mix, cached_fraction, fc, scale, speed, threshold)
        scored = [
            (r, evaluate(r, ctx.rates, spec.pools, ctx.split, ctx.demand, ctx.limits))
            for r in _ladder(spec, ctx)
        ]
        return ctx, scored, _choose(scored, spec)

    ctx, scored, best = priced(allowed[-1])
    note = (
        None
        if not math.isfinite(cap)
        else (
            f"long prompts over {allowed[-1]:.0f} uncached tokens go hosted: attainment fell "
            "with longer prompts on the replicas"
        )
    )
    lower = allowed[:-1]
    if scale < state.capacity_scale and lower:
        alt = priced(lower[-1])
        now_cost, alt_cost = _objective(best[1]), _objective(alt[2][1])
        meets = alt[2][1].useful_fraction >= target or best[1].useful_fraction < target
        if meets and alt_cost <= now_cost * (1 + PREFILL_STEP_COST):
            ctx, scored, best = alt
            cap, cap_at = lower[-1], now
            note = (
                f"replicas below target with prompts up to {allowed[-1]:.0f} tokens: those "
                f"over {lower[-1]:.0f} go hosted now (priced ${alt_cost:.3f}/M against "
                f"${now_cost:.3f}/M)"
            )
    return ctx, scored, best, cap, cap_at, note


def _context(
    spec: PlanningSpec,
    profiles: Mapping[str, EngineProfile],
    mix: tuple[MixBucket, ...],
    cached_fraction: float,
    fc: Forecast,
    scale: float = 1.0,
    speeds: Mapping[str, float] | None = None,
    max_prefill: float | None = None,
) -> _Context:
    slo = spec.deployment.slo
    if max_prefill is None:
        max_prefill = max_local_prefill(spec, profiles)
    split = split_mix(mix, max_prefill, slo.percentile, spec.hosted, cached_fraction)
    speed = speeds or {}
    capacities = {
        b.pool: _trusted(
            model_at_speed(profiles[b.pool], speed.get(b.pool, 1.0)).max_rate(split.local, slo),
            scale,
        )
        for b in spec.deployment.pools
    }
    burst = spec.deployment.hosted
    limits = Limits(
        hosted_enabled=burst is not None and spec.hosted is not None,
        max_hosted_share=burst.max_share if burst else 0.0,
        max_hosted_dollars_per_hour=burst.max_dollars_per_hour if burst else 0.0,
        hosted_requests_per_s=spec.hosted.requests_per_minute / 60.0 if spec.hosted else 0.0,
        budget_dollars_per_hour=spec.deployment.cost.budget_dollars_per_hour,
    )
    return _Context(split, capacities, Demand(fc.rate_rps, fc.sigma_rps), limits, max_prefill)


def _trusted(capacity: ReplicaCapacity, scale: float) -> ReplicaCapacity:
    """A replica's capacity as far as the attainment feedback trusts the model."""
    if scale == 1.0:
        return capacity
    limit = max(1, math.floor(capacity.concurrency_limit * scale)) if capacity.rate_rps > 0 else 0
    return ReplicaCapacity(capacity.rate_rps * scale, limit, capacity.output_tokens_per_s * scale)


def _loaded(state: PlannerState, snapshot: Snapshot) -> bool:
    """Whether the replicas ran near the in-flight limit the last plan gave them: only
    then does their attainment say how much more they could take."""
    last = state.last_plan
    if last is None:
        return False
    limits = last.spill.concurrency_limit_by_pool
    return any(
        w.replicas > 0 and limits.get(pool, 0) > 0 and w.running >= LOADED * limits[pool]
        for pool, w in snapshot.engines.items()
    )


def _current(spec: PlanningSpec, snapshot: Snapshot, state: PlannerState) -> dict[str, int]:
    if state.last_plan is not None:
        return {b.pool: state.last_plan.replicas.get(b.pool, 0) for b in spec.deployment.pools}
    return {
        b.pool: snapshot.pools[b.pool].total if b.pool in snapshot.pools else 0
        for b in spec.deployment.pools
    }


def _ladder(spec: PlanningSpec, ctx: _Context) -> list[dict[str, int]]:
    """Fleets from the minimum up, one replica at a time on the cheapest capacity."""
    fleet = {b.pool: b.min_replicas for b in spec.deployment.pools}
    caps = {b.pool: _pool_max(spec, b.pool, b.max_replicas) for b in spec.deployment.pools}
    spill_price = ctx.split.local_dollars_per_request
    unit_price = {}
    for name, rate in ctx.rates.items():
        if rate > 0:
            gpu = evaluate_price(spec, name, rate, spill_price)
            unit_price[name] = gpu / rate
    mu = ctx.demand.mean_rps * ctx.split.local_share
    enough = mu + 4.0 * ctx.demand.sigma_rps + 1e-9
    ladder = [dict(fleet)]
    budget = spec.deployment.cost.budget_dollars_per_hour
    spent = sum(fleet[n] * spec.pools[n].dollars_per_replica_hour for n in fleet)
    while True:
        capacity = sum(fleet[n] * ctx.rates[n] for n in fleet)
        options = [
            n for n in sorted(unit_price, key=lambda n: (unit_price[n], n)) if fleet[n] < caps[n]
        ]
        if not options or capacity >= enough:
            break
        pick = options[0]
        if spent + spec.pools[pick].dollars_per_replica_hour > budget:
            break
        fleet[pick] += 1
        spent += spec.pools[pick].dollars_per_replica_hour
        ladder.append(dict(fleet))
    return ladder


def evaluate_price(spec: PlanningSpec, pool_name: str, rate: float, spill_price: float) -> float:
    """Risk-adjusted $/hour of one replica of a pool."""
    pool = spec.pools[pool_name]
    risk = pool.interruptions_per_hour * pool.cold_start_seconds * rate * spill_price
    return pool.dollars_per_replica_hour + risk


def _pool_max(spec: PlanningSpec, name: str, max_replicas: int) -> int:
    by_gpus = spec.pools[name].max_replicas_by_gpus
    return max_replicas if by_gpus is None else min(max_replicas, by_gpus)


def _objective(outcome: Outcome) -> float:
    if math.isfinite(outcome.dollars_per_million_useful):
        return outcome.dollars_per_million_useful
    return 1e12 + outcome.dollars_per_hour


def _choose(
    scored: list[tuple[dict[str, int], Outcome]], spec: PlanningSpec
) -> tuple[dict[str, int], Outcome, str]:
    target = spec.deployment.slo.useful_token_target
    budget = spec.deployment.cost.budget_dollars_per_hour
    feasible = [
        (r, o)
        for r, o in scored
        if o.useful_fraction >= target and o.dollars_per_hour <= budget + 1e-9
    ]
    if feasible:
        r, o = min(feasible, key=lambda ro: (_objective(ro[1]), sum(ro[0].values())))
        return r, o, f"chose {_label(r)}: lowest predicted $/M useful meeting {target:.3f} useful"
    r, o = max(scored, key=lambda ro: (ro[1].useful_fraction, -ro[1].dollars_per_hour))
    return (
        r,
        o,
        (
            f"no fleet meets {target:.3f} useful within ${budget:.0f}/h: chose {_label(r)}, "
            f"the most useful ({o.useful_fraction:.3f})"
        ),
    )


def _label(replicas: Mapping[str, int]) -> str:
    parts = ", ".join(f"{name} {count}" for name, count in sorted(replicas.items()))
    return f"[{parts}]"


def _demand_reasons(fc: Forecast, ctx: _Context) -> tuple[str, ...]:
    caps = "; ".join(
        f"{name}: {cap.rate_rps:.2f} req/s, limit {cap.concurrency_limit} in flight"
        for name, cap in sorted(ctx.capacities.items())
    )
    long_share = 1.0 - ctx.split.local_share
    lines = [
        f"demand forecast {fc.rate_rps:.2f} req/s (p{fc.quantile * 100:.0f} {fc.upper_rps:.2f}) "
        f"at +{fc.horizon_s:.0f} s from {fc.samples_used} samples",
        f"per replica at SLO: {caps}",
    ]
    if long_share >= 0.0005:
        lines.append(
            f"{long_share:.1%} of requests have prompts over {ctx.max_prefill:.0f} uncached tokens "
            "and go hosted"
        )
    return tuple(lines)


def _alternatives(
    scored: list[tuple[dict[str, int], Outcome]],
    best: dict[str, int],
    current: dict[str, int],
    held: Outcome,
    desired: dict[str, int],
    final: Outcome,
    spec: PlanningSpec,
) -> tuple[Alternative, ...]:
    target = spec.deployment.slo.useful_token_target
    budget = spec.deployment.cost.budget_dollars_per_hour
    index = next((i for i, (r, _) in enumerate(scored) if r == best), 0)
    picks: list[tuple[str, dict[str, int], Outcome]] = [("hold " + _label(current), current, held)]
    for offset, name in ((-1, "one fewer"), (1, "one more")):
        j = index + offset
        if 0 <= j < len(scored):
            picks.append((f"{name} {_label(scored[j][0])}", scored[j][0], scored[j][1]))
    picks.append(
        ("minimum fleet, spill the rest " + _label(scored[0][0]), scored[0][0], scored[0][1])
    )
    picks.append(("chosen " + _label(desired), desired, final))
    seen: set[str] = set()
    out = []
    for label, fleet, outcome in picks:
        key = _label(fleet) + label.split(" ")[0]
        if key in seen:
            continue
        seen.add(key)
        feasible = outcome.useful_fraction >= target and outcome.dollars_per_hour <= budget + 1e-9
        out.append(
            Alternative(
                label,
                dict(fleet),
                outcome.dollars_per_hour,
                outcome.dollars_per_million_useful,
                outcome.useful_fraction,
                outcome.hosted_share,
                feasible,
            )
        )
    return tuple(out)


def spill_policy(
    spec: PlanningSpec,
    capacities: Mapping[str, ReplicaCapacity],
    gpu_dollars_per_hour: float,
    max_prefill: float,
) -> SpillPolicy:
    """The router's policy for a fleet: SLO concurrency per replica and hosted limits."""
    burst = spec.deployment.hosted
    budget_left = max(0.0, spec.deployment.cost.budget_dollars_per_hour - gpu_dollars_per_hour)
    return SpillPolicy(
        concurrency_limit_by_pool={n: max(1, c.concurrency_limit) for n, c in capacities.items()},
        hosted_enabled=burst is not None and burst.max_share > 0,
        max_hosted_share=burst.max_share if burst else 0.0,
        max_hosted_dollars_per_hour=min(burst.max_dollars_per_hour, budget_left) if burst else 0.0,
        max_local_prefill_tokens=max_prefill,
    )


def _make_plan(
    now: float,
    desired: dict[str, int],
    final: Outcome,
    ctx: _Context,
    spec: PlanningSpec,
    reasons: tuple[str, ...],
    alternatives: tuple[Alternative, ...],
    fc: Forecast,
    next_state: PlannerState,
) -> Plan:
    gpu_list = sum(desired[n] * spec.pools[n].dollars_per_replica_hour for n in desired)
    spill = spill_policy(spec, ctx.capacities, gpu_list, ctx.max_prefill)
    hosted_cap = final.hosted_allowed_rps
    plan_value = Plan(
        at_s=now,
        replicas=dict(desired),
        spill=spill,
        predicted_dollars_per_hour=gpu_list + final.hosted_dollars_per_hour,
        predicted_dollars_per_million_useful=final.dollars_per_million_useful,
        predicted_useful_fraction=final.useful_fraction,
        predicted_hosted_share=final.hosted_share,
        reasons=reasons,
        alternatives=alternatives,
        forecast=fc,
        planned_capacity_rps=final.local_capacity_rps + hosted_cap,
        local_capacity_rps=final.local_capacity_rps,
        replica_rps=min((r for r in ctx.rates.values() if r > 0), default=0.0),
    )
    return _with_state(plan_value, next_state)


def _with_state(value: Plan, state: PlannerState) -> Plan:
    """The plan carrying the state for the next decision (which points back at the plan)."""
    shell = replace(value, state=PlannerState())
    return replace(value, state=replace(state, last_plan=shell))


def _hold(
    spec: PlanningSpec,
    profiles: Mapping[str, EngineProfile],
    state: PlannerState,
    now: float,
    snapshot: Snapshot | None,
    why: str,
) -> Plan:
    """Keep the last plan (or the current fleet, within bounds) and say why."""
    last = state.last_plan
    if last is not None:
        held = replace(
            last, at_s=now, held=True, reasons=(f"holding last plan: {why}", *last.reasons)
        )
        return replace(held, state=state)
    observed = snapshot.pools if snapshot is not None else {}
    fleet = {
        b.pool: min(
            max(observed[b.pool].total if b.pool in observed else b.min_replicas, b.min_replicas),
            b.max_replicas,
        )
        for b in spec.deployment.pools
    }
    mix = state.last_mix or _DEFAULT_MIX
    fc = Forecast(0.0, 0.0, 0.0, FORECAST_QUANTILE, horizon_s(spec), 0)
    ctx = _context(
        spec, profiles, mix, 0.0, fc, state.capacity_scale, planning_speeds(state.speeds)
    )  # no plan yet: the TTFT-derived threshold
    gpu = sum(fleet[n] * spec.pools[n].dollars_per_replica_hour for n in fleet)
    return Plan(
        at_s=now,
        replicas=fleet,
        spill=spill_policy(spec, ctx.capacities, gpu, ctx.max_prefill),
        predicted_dollars_per_hour=gpu,
        predicted_dollars_per_million_useful=math.nan,
        predicted_useful_fraction=math.nan,
        predicted_hosted_share=math.nan,
        reasons=(f"no previous plan and {why}: keeping the current fleet within min/max",),
        alternatives=(),
        forecast=None,
        held=True,
        state=state,
    )
