"""Stabilisation: turn the optimiser's wish into a safe step.

Cost curves are flat near their minimum and demand is noisy, so an
unstabilised optimiser flaps between neighbouring fleets and pays cold
starts for nothing. The rules, in order: keep the current fleet when it
meets the target and the saving is within the dead band (wider when leaving
an all-hosted fleet for GPUs); shrink a pool only to the largest count
recommended during the scale-down window (as the HPA does), a window never
shorter than the pool's cold start, but cancel at once a replica still
warming that the plan no longer wants (a spike shorter than a cold start
must not leave idle replicas behind); move at most the per-step caps; stay
inside min/max and the pool GPU limit; trim to the budget, dearest pool
first.
"""

from __future__ import annotations

from collections.abc import Mapping

from weir.planner.evaluate import Outcome
from weir.planner.types import PlanningSpec

Recommendation = tuple[float, tuple[tuple[str, int], ...]]

# Leaving an all-hosted fleet for GPUs must save at least this much: the hosted
# price is known exactly, a replica's yield only as well as the capacity model
# (leave-one-out error a few percent) and the traffic forecast.
GPU_ENTRY_MARGIN = 0.05


def stabilise(
    spec: PlanningSpec,
    current: dict[str, int],
    best: dict[str, int],
    best_outcome: Outcome,
    current_outcome: Outcome,
    history: tuple[Recommendation, ...],
    now: float,
    ready: Mapping[str, int] | None = None,
) -> tuple[dict[str, int], list[str], tuple[Recommendation, ...]]:
    """The fleet to ask for now, the notes explaining each adjustment, and the new history."""
    control = spec.deployment.control
    notes: list[str] = []
    windows = {b.pool: _scale_down_window(spec, b.pool) for b in spec.deployment.pools}
    longest = max(windows.values(), default=control.scale_down_stabilisation_seconds)
    recs = (
        *[r for r in history if r[0] > now - longest and r[0] <= now],
        (now, tuple(sorted(best.items()))),
    )
    wish = dict(best)
    target = spec.deployment.slo.useful_token_target
    if wish != current and current_outcome.useful_fraction >= target:
        saving = _saving(current_outcome, best_outcome)
        band = control.min_saving_fraction
        if not any(current.values()) and spec.hosted is not None:
            band = max(band, GPU_ENTRY_MARGIN)
        if saving < band:
            notes.append(f"kept the current fleet: the change saves {saving:.1%} (< dead band)")
            wish = dict(current)
    desired: dict[str, int] = {}
    for binding in spec.deployment.pools:
        name = binding.pool
        now_count, want = current.get(name, 0), wish.get(name, 0)
        if want < now_count:
            held = min(_recent_max(recs, name, now - windows[name], want), now_count)
            # only running replicas are held: one still warming that the plan no longer
            # wants is cancelled now, before it costs the rest of its cold start
            hold = held if ready is None or name not in ready else min(held, max(want, ready[name]))
            if hold < held:
                notes.append(
                    f"{name}: {held - hold} warming replica(s) cancelled: no longer needed"
                )
            if hold > want:
                notes.append(f"{name}: scale-down to {want} held at {hold} (window)")
                want = hold
            if now_count - want > control.max_scale_down_per_step:
                want = now_count - control.max_scale_down_per_step
                notes.append(f"{name}: scale-down capped at {control.max_scale_down_per_step}/step")
        elif want - now_count > control.max_scale_up_per_step:
            want = now_count + control.max_scale_up_per_step
            notes.append(f"{name}: scale-up capped at {control.max_scale_up_per_step}/step")
        limit = binding.max_replicas
        by_gpus = spec.pools[name].max_replicas_by_gpus
        if by_gpus is not None:
            limit = min(limit, by_gpus)
        desired[name] = min(max(want, binding.min_replicas), limit)
    _trim_to_budget(spec, desired, notes)
    return desired, notes, recs


def _recent_max(recs: tuple[Recommendation, ...], pool: str, since: float, want: int) -> int:
    return max((dict(r[1]).get(pool, 0) for r in recs if r[0] > since), default=want)


def _scale_down_window(spec: PlanningSpec, pool: str) -> float:
    """How long a pool holds its largest recent count: the configured window, and at least
    the pool's cold start. A replica released and wanted back pays a whole cold start of
    GPU time and spills its share meanwhile; holding it idle for as long as that costs at
    most as much (the rent-or-buy break-even), so a shorter hold can only lose."""
    control = spec.deployment.control
    return max(control.scale_down_stabilisation_seconds, spec.pools[pool].cold_start_seconds)


def _saving(current: Outcome, best: Outcome) -> float:
    cur, new = current.dollars_per_million_useful, best.dollars_per_million_useful
    if cur == float("inf") or cur <= 0:
        return 1.0
    return (cur - new) / cur


def _trim_to_budget(spec: PlanningSpec, desired: dict[str, int], notes: list[str]) -> None:
    budget = spec.deployment.cost.budget_dollars_per_hour
    mins = {b.pool: b.min_replicas for b in spec.deployment.pools}

    def spend() -> float:
        return sum(desired[n] * spec.pools[n].dollars_per_replica_hour for n in desired)

    while spend() > budget + 1e-9:
        over = [n for n in desired if desired[n] > mins[n]]
        if not over:
            break
        dearest = max(over, key=lambda n: (spec.pools[n].dollars_per_replica_hour, n))
        desired[dearest] -= 1
        notes.append(f"{dearest}: trimmed by one to stay within ${budget:.0f}/h")
