"""Attainment feedback: multiplicative cut on a bad window, cooldown, slow recovery."""

from __future__ import annotations

from dataclasses import replace

from planner.conftest import snapshot
from weir.api import EngineProfile
from weir.planner.feedback import COOLDOWN_S, MIN_SCALE, update_scale
from weir.planner.optimise import plan
from weir.planner.types import PlanningSpec


def test_cut_cooldown_and_recovery() -> None:
    scale, why = update_scale(1.0, 0.95, 50_000, 0.99)
    assert scale < 1.0 and why is not None and "0.9500" in why
    assert update_scale(scale, 0.95, 50_000, 0.99, since_cut_s=COOLDOWN_S / 2)[0] == scale
    recovered, _ = update_scale(scale, 0.999, 50_000, 0.99)
    assert scale < recovered <= 1.0
    assert update_scale(1.0, 0.999, 50_000, 0.99) == (1.0, None)


def test_ignores_thin_or_missing_evidence() -> None:
    assert update_scale(1.0, None, 50_000, 0.99) == (1.0, None)
    assert update_scale(1.0, 0.5, 10, 0.99) == (1.0, None)
    assert update_scale(1.0, float("nan"), 50_000, 0.99) == (1.0, None)
    low = 1.0
    for _ in range(100):
        low, _ = update_scale(low, 0.0, 50_000, 0.99)
    assert low == MIN_SCALE


def test_planner_trusts_replicas_less_after_a_bad_window(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    def with_feedback(enabled: bool) -> PlanningSpec:
        control = spec.deployment.control.model_copy(update={"attainment_feedback": enabled})
        return replace(spec, deployment=spec.deployment.model_copy(update={"control": control}))

    assert spec.deployment.control.attainment_feedback  # on by default
    on = with_feedback(True)
    good = plan(snapshot(100.0, 20.0), on, profiles, None, 100.0)
    bad_snapshot = replace(
        snapshot(115.0, 20.0), local_useful_fraction=0.95, local_output_tokens=1e5
    )
    bad = plan(bad_snapshot, on, profiles, good.state, 115.0)
    assert bad.state.capacity_scale < 1.0
    assert (
        bad.spill.concurrency_limit_by_pool["spot"] < good.spill.concurrency_limit_by_pool["spot"]
    )
    assert any("trusting each replica" in r for r in bad.reasons)
    off = plan(bad_snapshot, with_feedback(False), profiles, good.state, 115.0)
    assert off.state.capacity_scale == 1.0
