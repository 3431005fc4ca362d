"""One control decision: metrics in, the planner's plan out, translated for the cluster.

This module is the seam between the I/O world and the pure planner: it
turns a metrics snapshot and the observed replicas into the planner's
Snapshot, calls `weir.planner.optimise.plan` (the same function the simulator
calls), and turns the Plan into what the operator writes: replicas per pool,
the router's spill policy, status fields, conditions and events. It does no
I/O and reads no clock (time is an argument), so it is unit-tested directly.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from weir.api import CapacityPoolSpec, EngineProfile, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api.router import RouterPolicy
from weir.api.status import (
    Alternative,
    ConditionType,
    DecisionRecord,
    InferenceDeploymentStatus,
    SpillPolicyStatus,
)
from weir.metrics.observe import observe
from weir.metrics.snapshot import DeploymentMetrics, MetricsSnapshot
from weir.planner.forecast import DemandSample
from weir.planner.optimise import plan as make_plan
from weir.planner.profiles import match_profiles
from weir.planner.speed import SpeedBelief
from weir.planner.types import (
    MixBucket,
    Plan,
    PlannerState,
    PlanningError,
    PlanningSpec,
    PoolObservation,
)


class ConditionUpdate(NamedTuple):
    """One condition a decision sets."""

    type: ConditionType
    ok: bool
    reason: str
    message: str


@dataclass(frozen=True)
class ControlDecision:
    """What the operator does with one plan: replicas, the router's policy, status."""

    plan: Plan
    replicas: dict[str, int]
    router_policy: RouterPolicy
    status: dict[str, Any]  # InferenceDeploymentStatus fields (snake_case) this decision sets
    conditions: tuple[ConditionUpdate, ...]
    summary: str

    def into(self, status: InferenceDeploymentStatus) -> InferenceDeploymentStatus:
        """`status` with this decision's fields, validated (bounds hold)."""
        merged = {**status.model_dump(), **self.status}
        return InferenceDeploymentStatus.model_validate(merged)


@dataclass(frozen=True)
class NoPlan:
    """No decision could be made this step, and why (for the Degraded condition)."""

    reason: str


def pin_replicas(
    spec: InferenceDeploymentSpec, pools: Mapping[str, CapacityPoolSpec], total: int
) -> dict[str, int]:
    """`total` replicas spread cheapest pool first, each pool within its min/max."""
    replicas = {b.pool: b.min_replicas for b in spec.pools}
    left = total - sum(replicas.values())
    by_price = sorted(spec.pools, key=lambda b: pools[b.pool].dollars_per_replica_hour)
    for binding in by_price:
        if left <= 0:
            break
        extra = min(left, binding.max_replicas - replicas[binding.pool])
        replicas[binding.pool] += extra
        left -= extra
    return replicas


def router_policy(plan: Plan) -> RouterPolicy:
    """The plan's spill policy as the router reads it (the children add SLO and endpoint)."""
    spill = plan.spill
    prefill = spill.max_local_prefill_tokens
    return RouterPolicy(
        concurrency_limit_by_pool=dict(spill.concurrency_limit_by_pool),
        hosted_enabled=spill.hosted_enabled,
        max_hosted_share=spill.max_hosted_share,
        max_hosted_dollars_per_hour=spill.max_hosted_dollars_per_hour,
        max_local_prefill_tokens=prefill if math.isfinite(prefill) and prefill > 0 else None,
        max_waiting=spill.max_waiting,
    )


def spill_status(policy: RouterPolicy) -> SpillPolicyStatus:
    """The part of the router's policy that status shows."""
    return SpillPolicyStatus(
        concurrency_limit_by_pool=dict(policy.concurrency_limit_by_pool),
        hosted_enabled=policy.hosted_enabled,
        max_hosted_share=policy.max_hosted_share,
        max_hosted_dollars_per_hour=policy.max_hosted_dollars_per_hour,
        max_local_prefill_tokens=policy.max_local_prefill_tokens,
        max_waiting=policy.max_waiting,
    )


def summarise(plan: Plan) -> str:
    fleet = ", ".join(f"{pool}={n}" for pool, n in sorted(plan.replicas.items()))
    spill = (
        f"spill up to {plan.spill.max_hosted_share:.0%}"
        if plan.spill.hosted_enabled
        else "no spill"
    )
    return f"{fleet}; {spill}; predicted ${plan.predicted_dollars_per_million_useful:.2f}/M useful"


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) and value >= 0 else None


def _alternatives(plan: Plan) -> list[Alternative]:
    return [
        Alternative(
            description=alt.describe(),
            dollars_per_million_useful_tokens=_finite(alt.dollars_per_million_useful),
            useful_token_fraction=(
                min(1.0, max(0.0, alt.useful_fraction))
                if math.isfinite(alt.useful_fraction)
                else None
            ),
            chosen=dict(alt.replicas) == dict(plan.replicas),
        )
        for alt in plan.alternatives
    ]


def decide(
    spec: InferenceDeploymentSpec,
    pools: Mapping[str, CapacityPoolSpec],
    hosted: HostedEndpointSpec | None,
    profiles: Mapping[str, EngineProfile],
    snapshot: MetricsSnapshot,
    metrics: DeploymentMetrics,
    observed: Mapping[str, PoolObservation],
    state: PlannerState | None,
    now_s: float,
    now_text: str,
    router_ready: bool = False,
) -> ControlDecision:
    """Plan, then say what to apply and what to write.

    `router_ready`: the router pods were Ready at the last look, so a deployment
    without series is unscraped, not idle (see `weir.metrics.observe`).
    """
    planning = PlanningSpec(spec, dict(pools), hosted)
    view = observe(snapshot, metrics, observed, router_ready)
    plan = make_plan(view, planning, match_profiles(spec, pools, profiles), state, now_s)
    enforce = spec.control.mode == "enforce"
    current = {pool: obs.total for pool, obs in observed.items()}
    planned = dict(plan.replicas)
    summary = summarise(plan)
    if spec.replicas is not None:
        planned = pin_replicas(spec, pools, spec.replicas)
        fleet = ", ".join(f"{pool}={n}" for pool, n in sorted(planned.items()))
        summary = f"{fleet} (pinned by spec.replicas={spec.replicas}); planner wanted: {summary}"
    replicas = planned if enforce else current
    stale = snapshot.age_s(now_s) > spec.control.stale_after_seconds
    metrics_ok = view.healthy and not stale
    if not view.healthy:
        why_metrics = view.problem
    elif stale:
        why_metrics = f"metrics are {snapshot.age_s(now_s):.0f}s old"
    else:
        why_metrics = "Prometheus answered"
    share = metrics.hosted_share or 0.0
    spend = metrics.dollars_per_hour
    budget = spec.cost.budget_dollars_per_hour
    at_budget = plan.predicted_dollars_per_hour >= 0.98 * budget
    conditions = (
        ConditionUpdate(
            "MetricsAvailable",
            metrics_ok,
            "QueriesAnswered" if metrics_ok else "MetricsUnavailable",
            why_metrics,
        ),
        ConditionUpdate(
            "Spilling",
            share > 0,
            "HostedShare" if share > 0 else "LocalOnly",
            f"{share:.0%} of requests went hosted over the window",
        ),
        ConditionUpdate(
            "BudgetLimited",
            at_budget,
            "AtBudget" if at_budget else "WithinBudget",
            f"planned ${plan.predicted_dollars_per_hour:.2f}/h of ${budget:.2f}/h",
        ),
        ConditionUpdate(
            "Degraded",
            plan.held,
            "PlanHeld" if plan.held else "Planning",
            "; ".join(plan.reasons) if plan.held else "planning on fresh metrics",
        ),
    )
    reasons = list(plan.reasons)
    target = spec.cost.target_dollars_per_million_useful_tokens
    live = metrics.dollars_per_million_useful_tokens
    if target is not None and live is not None:
        verdict = "within" if live <= target else "above"
        reasons.append(f"live ${live:.2f}/M useful is {verdict} the target of ${target:.2f}/M")
    policy = router_policy(plan)
    hosted_per_s = metrics.hosted_dollars_per_s
    status: dict[str, Any] = {
        "hosted_share": metrics.hosted_share,
        "dollars_per_million_useful_tokens": _finite_or_none(live),
        "useful_token_fraction": metrics.useful_token_fraction,
        "hosted_dollars_per_hour": None if hosted_per_s is None else hosted_per_s * 3600,
        "spend_dollars_per_hour": _finite_or_none(spend),
        "last_decision": DecisionRecord(
            time=now_text,
            summary=summary,
            reasons=reasons,
            alternatives=_alternatives(plan),
            acted=enforce and not plan.held,
        ),
        "planned_replicas": planned,
        "planner_state": encode_state(plan.state),
        "spill_policy": spill_status(policy),
    }
    return ControlDecision(plan, replicas, policy, status, conditions, summary)


def _finite_or_none(value: float | None) -> float | None:
    return None if value is None else _finite(value)


def encode_state(state: PlannerState) -> str:
    """The planner's memory as JSON for status (the last plan is not kept: it is in status)."""
    return json.dumps(
        {
            "samples": [asdict(s) for s in state.samples],
            "recommendations": [[at, list(map(list, recs))] for at, recs in state.recommendations],
            "lastMix": [asdict(b) for b in state.last_mix],
            "capacityScale": state.capacity_scale,
            "capacityCutAt": (
                state.capacity_cut_at_s if math.isfinite(state.capacity_cut_at_s) else None
            ),
            "speeds": {pool: asdict(belief) for pool, belief in state.speeds},
            "prefillCap": state.prefill_cap if math.isfinite(state.prefill_cap) else None,
            "prefillCapAt": (
                state.prefill_cap_at_s if math.isfinite(state.prefill_cap_at_s) else None
            ),
        },
        separators=(",", ":"),
    )


def _float_or(value: Any, default: float) -> float:
    """A number from decoded JSON, or `default` where it was written as null."""
    return default if value is None else float(value)


def decode_state(text: str | None) -> PlannerState | None:
    """Back from status after a restart; anything unreadable starts afresh."""
    if not text:
        return None
    try:
        raw = json.loads(text)
        return PlannerState(
            samples=tuple(DemandSample(**s) for s in raw["samples"]),
            recommendations=tuple(
                (float(at), tuple((str(p), int(n)) for p, n in recs))
                for at, recs in raw["recommendations"]
            ),
            last_mix=tuple(MixBucket(**b) for b in raw["lastMix"]),
            capacity_scale=float(raw.get("capacityScale", 1.0)),
            capacity_cut_at_s=(
                -math.inf if raw.get("capacityCutAt") is None else float(raw["capacityCutAt"])
            ),
            speeds=tuple(
                sorted((str(pool), SpeedBelief(**b)) for pool, b in raw.get("speeds", {}).items())
            ),
            prefill_cap=_float_or(raw.get("prefillCap"), math.inf),
            prefill_cap_at_s=_float_or(raw.get("prefillCapAt"), -math.inf),
        )
    except (ValueError, KeyError, TypeError, AttributeError, PlanningError):
        return None
