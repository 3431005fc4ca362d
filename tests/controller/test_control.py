"""The control decision (pure): metrics and observation in, plan and status out."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec, load_profiles
from weir.controller.control import decide, decode_state, encode_state
from weir.metrics.source import DeploymentMetrics, MetricsSnapshot
from weir.planner.profiles import match_profiles
from weir.planner.types import PlanningError, PoolObservation

REPO = Path(__file__).resolve().parents[2]
PROFILES = load_profiles(REPO / "engines" / "profiles")


def example() -> tuple[InferenceDeploymentSpec, dict[str, CapacityPoolSpec], HostedEndpointSpec]:
    docs = [
        d for d in yaml.safe_load_all((REPO / "examples" / "llama-3.1-8b.yaml").read_text()) if d
    ]
    spec = InferenceDeploymentSpec.model_validate(
        next(d for d in docs if d["kind"] == "InferenceDeployment")["spec"]
    )
    pools = {
        d["metadata"]["name"]: CapacityPoolSpec.model_validate(d["spec"])
        for d in docs
        if d["kind"] == "CapacityPool"
    }
    hosted = HostedEndpointSpec.model_validate(
        next(d for d in docs if d["kind"] == "HostedEndpoint")["spec"]
    )
    return spec, pools, hosted


def busy(rps: float) -> DeploymentMetrics:
    return DeploymentMetrics(
        requests_per_s=rps,
        hosted_requests_per_s=0.0,
        output_tokens_per_s=rps * 150,
        useful_tokens_per_s=rps * 150,
        input_tokens_per_s=rps * 1000,
        gpu_dollars_per_hour=3.9,
        present=True,
    )


OBSERVED = {"h100-on-demand": PoolObservation(ready=1), "h100-spot": PoolObservation(ready=0)}


def run(rps: float, mode: str = "enforce", healthy: bool = True, state=None, now: float = 1000.0):
    spec, pools, hosted = example()
    spec = spec.model_copy(update={"control": spec.control.model_copy(update={"mode": mode})})
    snapshot = MetricsSnapshot(now - 5, 120.0, healthy, None if healthy else "down")
    return decide(spec, pools, hosted, PROFILES, snapshot, busy(rps), OBSERVED, state, now, "t")


def test_profiles_match_model_gpu_precision_and_tp():
    spec, pools, _ = example()
    matched = match_profiles(spec, pools, PROFILES)
    assert set(matched) == set(pools)
    assert all("8B" in p.model and "H100" in p.gpu for p in matched.values())


def test_a_missing_profile_is_named():
    spec, pools, _ = example()
    spec = spec.model_copy(update={"model": spec.model.model_copy(update={"name": "acme/llm"})})
    with pytest.raises(PlanningError, match="no engine profile for acme/llm"):
        match_profiles(spec, pools, PROFILES)


def test_more_demand_plans_more_capacity_within_bounds():
    low, high = run(2.0), run(60.0)
    spec, _, _ = example()
    for decision in (low, high):
        for binding in spec.pools:
            assert binding.min_replicas <= decision.replicas[binding.pool] <= binding.max_replicas
    assert sum(high.replicas.values()) >= sum(low.replicas.values())
    assert high.status["last_decision"].acted is True
    assert high.status["last_decision"].alternatives
    assert high.router_policy.max_hosted_dollars_per_hour <= 20


def test_recommend_mode_applies_nothing_but_says_what_it_would_do():
    decision = run(60.0, mode="recommend")
    assert decision.replicas == {pool: obs.total for pool, obs in OBSERVED.items()}
    assert decision.status["planned_replicas"] != decision.replicas
    assert decision.status["last_decision"].acted is False


def test_unhealthy_metrics_hold_the_plan_and_say_so():
    decision = run(60.0, healthy=False)
    conditions = {c[0]: c for c in decision.conditions}
    assert conditions["MetricsAvailable"][1] is False
    assert conditions["Degraded"][1] is True
    assert decision.plan.held
    # the fleet the API server reports is held, not dropped to the minimum
    assert decision.replicas == {pool: obs.total for pool, obs in OBSERVED.items()}


def test_planner_state_survives_a_restart_through_status():
    first = run(30.0)
    restored = decode_state(first.status["planner_state"])
    assert restored is not None
    assert restored.samples == first.plan.state.samples
    assert encode_state(restored) == first.status["planner_state"]
    assert decode_state("{not json") is None


def test_pinned_replicas_fill_the_cheapest_pool_first_within_bounds():
    spec, pools, hosted = example()
    pinned = spec.model_copy(update={"replicas": 6})
    snapshot = MetricsSnapshot(995.0, 120.0, True)
    decision = decide(
        pinned, pools, hosted, PROFILES, snapshot, busy(2.0), OBSERVED, None, 1000.0, "t"
    )
    # spot ($2.00/GPU-h) is cheaper: it takes 5 above the on-demand minimum of 1
    assert decision.replicas == {"h100-on-demand": 1, "h100-spot": 5}
    assert "pinned by spec.replicas=6" in decision.summary
    huge = spec.model_copy(update={"replicas": 100})
    decision = decide(
        huge, pools, hosted, PROFILES, snapshot, busy(2.0), OBSERVED, None, 1000.0, "t"
    )
    assert decision.replicas == {"h100-on-demand": 4, "h100-spot": 8}  # the maxima
