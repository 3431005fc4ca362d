"""Attainment feedback: multiplicative cut on a bad window, cooldown, slow recovery."""

from __future__ import annotations

import math
from dataclasses import replace

from planner.conftest import snapshot
from weir.api import EngineProfile
from weir.planner.feedback import COOLDOWN_S, MAX_SCALE, MIN_SCALE, bounded, update_scale
from weir.planner.optimise import PREFILL_CAP_RECOVERY_S, plan, thresholds
from weir.planner.types import EngineWindow, MixBucket, PlanningSpec, Snapshot


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


def _long_mix(rate_rps: float) -> tuple[MixBucket, ...]:
    """Chat prompts, a few long ones (7k uncached tokens) and many very long ones (30k,
    hosted by the TTFT target alone): a mix where hosting the 7k ones costs little more."""
    n = rate_rps * 60.0
    shares = ((1024.0, 0.55, 800.0), (8192.0, 0.05, 7000.0), (32768.0, 0.40, 30000.0))
    return tuple(
        MixBucket(bound, n * share, n * share * tokens, n * share * tokens, n * share * 150)
        for bound, share, tokens in shares
    )


def test_replicas_below_target_with_long_prompts_send_the_long_ones_hosted_then_recover(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """An attainment cut tries the next lower long-prompt threshold (when the model prices
    it close); calm attainment with the trust whole again lifts the cap a step later."""
    top = thresholds(spec, profiles, _long_mix(4.0))[-1]
    assert top > 8192  # the TTFT target alone lets the long prompts onto the replicas

    def at(now: float, useful: float) -> Snapshot:
        return replace(
            snapshot(now, 4.0),
            mix=_long_mix(4.0),
            local_useful_fraction=useful,
            local_output_tokens=1e5,
        )

    result = plan(at(1000.0, 0.999), spec, profiles, None, 1000.0)
    assert result.spill.max_local_prefill_tokens == top
    result = plan(at(1015.0, 0.95), spec, profiles, result.state, 1015.0)
    assert result.state.capacity_scale < 1.0
    assert result.spill.max_local_prefill_tokens == 4096.0  # the 8192 bucket goes hosted
    assert any("go hosted now" in r for r in result.reasons)
    now = 1015.0
    while result.state.capacity_scale < 1.0:  # calm: the trust recovers first
        now += 15.0
        result = plan(at(now, 0.999), spec, profiles, result.state, now)
    assert result.spill.max_local_prefill_tokens == 4096.0
    later = now + PREFILL_CAP_RECOVERY_S
    result = plan(at(later, 0.999), spec, profiles, result.state, later)
    assert result.spill.max_local_prefill_tokens > 4096.0


def test_a_cut_without_long_prompts_moves_no_threshold(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    good = plan(snapshot(1000.0, 4.0), spec, profiles, None, 1000.0)
    bad = replace(snapshot(1015.0, 4.0), local_useful_fraction=0.95, local_output_tokens=1e5)
    cut = plan(bad, spec, profiles, good.state, 1015.0)
    assert cut.state.capacity_scale < 1.0
    assert cut.spill.max_local_prefill_tokens == good.spill.max_local_prefill_tokens
    assert cut.state.prefill_cap == math.inf


def test_trust_rises_above_the_model_only_for_replicas_run_near_their_limit() -> None:
    scale = 1.0
    for _ in range(100):
        scale, _ = update_scale(scale, 0.999, 50_000, 0.99)
    assert scale == 1.0  # margin at light load says nothing about more load
    notes = []
    for _ in range(100):
        scale, why = update_scale(scale, 0.999, 50_000, 0.99, loaded=True)
        notes.append(why)
    assert scale == MAX_SCALE
    assert any(n and "near their in-flight limit" in n for n in notes)
    cut, why = update_scale(scale, 0.95, 50_000, 0.99, loaded=True)
    assert cut < scale and why is not None  # the first bad window cuts it back


def test_a_stored_scale_is_bounded() -> None:
    assert bounded(1e9) == MAX_SCALE and bounded(-3.0) == MIN_SCALE
    assert bounded(float("nan")) == 1.0 and bounded(float("inf")) == 1.0
    assert bounded(0.8) == 0.8


def test_replicas_run_near_their_limit_with_margin_are_trusted_with_more(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """Busy replicas (running at the plan's in-flight limit) that still deliver above
    the target: the planner gives each more in flight and plans fewer of them."""
    on = replace(
        spec,
        deployment=spec.deployment.model_copy(
            update={
                "control": spec.deployment.control.model_copy(update={"attainment_feedback": True})
            }
        ),
    )
    first = plan(snapshot(100.0, 20.0), on, profiles, None, 100.0)
    state, result, notes = first.state, first, []
    for k in range(1, 40):
        limits = result.spill.concurrency_limit_by_pool
        at = 100.0 + 15.0 * k
        engines = {
            # running at the limit; no speed evidence (Little's law fails: e2e says 1 s)
            pool: EngineWindow(2.0, float(limit), 0.05, 1.0, 4000.0, e2e_s=1.0)
            for pool, limit in limits.items()
            if limit > 0
        }
        view = replace(
            snapshot(at, 20.0),
            engines=engines,
            local_useful_fraction=0.999,
            local_output_tokens=50_000.0,
        )
        result = plan(view, on, profiles, state, at)
        state, notes = result.state, [*notes, *result.reasons]
    assert state.capacity_scale > 1.0
    assert any("near their in-flight limit" in r for r in notes)
    fresh = plan(snapshot(at, 20.0), on, profiles, None, at)
    busy = [pool for pool, n in result.replicas.items() if n > 0]
    assert busy
    for pool in busy:
        assert (
            result.spill.concurrency_limit_by_pool[pool]
            > fresh.spill.concurrency_limit_by_pool[pool]
        )
    assert sum(result.replicas.values()) <= sum(fresh.replicas.values())
