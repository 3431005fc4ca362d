"""The planner: bounds, hysteresis, fail-static, explanations, and its properties."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planner.conftest import conversation_mix, snapshot
from weir.api import EngineProfile
from weir.planner.optimise import plan
from weir.planner.types import (
    MixBucket,
    PlannerState,
    PlanningError,
    PlanningSpec,
    PoolObservation,
    Snapshot,
)

FAST = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _run(
    spec: PlanningSpec, profiles: dict[str, EngineProfile], rates: list[float], period: float = 15.0
):  # type: ignore[no-untyped-def]
    state: PlannerState | None = None
    plans = []
    for i, rate in enumerate(rates):
        now = 1000.0 + i * period
        result = plan(snapshot(now, rate), spec, profiles, state, now)
        state = result.state
        plans.append(result)
    return plans


def _with_hosted_price(spec: PlanningSpec, factor: float) -> PlanningSpec:
    assert spec.hosted is not None
    names = (
        "dollars_per_million_input_tokens",
        "dollars_per_million_cached_input_tokens",
        "dollars_per_million_output_tokens",
    )
    hosted = spec.hosted.model_copy(
        update={name: getattr(spec.hosted, name) * factor for name in names}
    )
    return replace(spec, hosted=hosted)


def test_plan_explains_itself(spec: PlanningSpec, profiles: dict[str, EngineProfile]) -> None:
    result = _run(spec, profiles, [20.0] * 4)[-1]
    assert sum(result.replicas.values()) > 0
    assert any("forecast" in r for r in result.reasons)
    assert any(a.label.startswith("chosen") for a in result.alternatives)
    assert all(math.isfinite(a.dollars_per_million_useful) for a in result.alternatives)
    assert result.predicted_useful_fraction >= spec.deployment.slo.useful_token_target
    assert result.spill.concurrency_limit_by_pool["spot"] > 0


def test_spot_first_when_cheaper(spec: PlanningSpec, profiles: dict[str, EngineProfile]) -> None:
    result = _run(spec, profiles, [20.0] * 4)[-1]
    assert result.replicas["spot"] > 0 and result.replicas["on-demand"] == 0


def test_cheap_hosted_means_no_gpus(spec: PlanningSpec, profiles: dict[str, EngineProfile]) -> None:
    cheap = _with_hosted_price(spec, 0.08)
    result = _run(cheap, profiles, [20.0] * 4)[-1]
    assert sum(result.replicas.values()) == 0
    assert result.predicted_hosted_share > 0.99


def test_no_flapping_on_steady_demand(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    plans = _run(spec, profiles, [20.0] * 40)
    fleets = [tuple(sorted(p.replicas.items())) for p in plans[5:]]
    assert len(set(fleets)) == 1


def test_scale_down_is_stabilised_and_capped(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    plans = _run(spec, profiles, [40.0] * 30 + [2.0] * 60)
    peak = sum(plans[29].replicas.values())
    totals = [sum(p.replicas.values()) for p in plans[30:]]
    control = spec.deployment.control
    cap = control.max_scale_down_per_step
    # a pool holds its peak for the configured window and at least its cold start: a
    # replica released and wanted back pays a whole cold start (rent or buy)
    cold = max(spec.pools[b.pool].cold_start_seconds for b in spec.deployment.pools)
    assert cold > control.scale_down_stabilisation_seconds  # the case this test is about
    hold_steps = int(max(control.scale_down_stabilisation_seconds, cold) // 15)
    assert all(t == peak for t in totals[: hold_steps - 2])
    assert all(a - b <= cap for a, b in zip([peak, *totals], totals, strict=False))
    assert totals[hold_steps + 8] < peak


def test_a_replica_still_warming_when_no_longer_needed_is_cancelled(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """A spike shorter than a cold start: the replicas it started are let go while still
    warming, the ones already serving are held through the window."""

    def run(warm_until_ready: bool) -> tuple[list[dict[str, int]], list[str]]:
        state: PlannerState | None = None
        fleets, notes, ready = [], [], {b.pool: 0 for b in spec.deployment.pools}
        for i, rate in enumerate([10.0] * 30 + [60.0] * 6 + [10.0] * 6):
            now = 1000.0 + i * 15.0
            pools = {
                name: PoolObservation(
                    ready=min(count, ready[name]), warming=max(0, count - ready[name])
                )
                for name, count in (
                    state.last_plan.replicas if state and state.last_plan else ready
                ).items()
            }
            view = replace(snapshot(now, rate), pools=pools)
            result = plan(view, spec, profiles, state, now)
            state = result.state
            if i < 30 or warm_until_ready:  # before the spike every replica comes up
                ready = dict(result.replicas)
            fleets.append(dict(result.replicas))
            notes += result.reasons
        return fleets, notes

    (warming, cancelled), (served, held) = run(False), run(True)
    before, peak = sum(warming[29].values()), max(sum(f.values()) for f in warming[30:36])
    assert peak > before  # the spike bought replicas
    assert sum(warming[-1].values()) == before  # never came up: cancelled at once
    assert sum(served[-1].values()) > before  # came up and served: held through the window
    assert any("warming replica(s) cancelled: no longer needed" in r for r in cancelled)
    assert not any("cancelled" in r for r in held)


def test_stale_data_holds_the_last_plan(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    last = _run(spec, profiles, [20.0] * 4)[-1]
    stale = plan(snapshot(1000.0, 0.0), spec, profiles, last.state, 5000.0)
    assert stale.held and stale.replicas == last.replicas
    assert "stale" in stale.reasons[0] or "old" in stale.reasons[0]
    unhealthy = plan(snapshot(5000.0, 1.0, healthy=False), spec, profiles, last.state, 5000.0)
    assert unhealthy.held and unhealthy.replicas == last.replicas


def test_missing_data_never_scales_to_zero(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    result = plan(None, spec, profiles, None, 100.0)
    assert result.held and sum(result.replicas.values()) == 0
    observed = snapshot(0.0, 0.0, pools={"spot": 3})
    kept = plan(observed, spec, profiles, None, 5000.0)
    assert kept.held and kept.replicas["spot"] == 3


def test_min_and_max_are_respected(spec: PlanningSpec, profiles: dict[str, EngineProfile]) -> None:
    bounded = spec.deployment.model_copy(
        update={
            "pools": tuple(
                b.model_copy(update={"min_replicas": 1, "max_replicas": 2})
                for b in spec.deployment.pools
            )
        }
    )
    narrow = replace(spec, deployment=bounded)
    for result in _run(narrow, profiles, [0.0, 0.0, 80.0, 80.0, 80.0]):
        for name, count in result.replicas.items():
            assert 1 <= count <= 2, name  # the pools' minReplicas 1 and maxReplicas 2


def test_refuses_bad_inputs(spec: PlanningSpec, profiles: dict[str, EngineProfile]) -> None:
    with pytest.raises(PlanningError, match="arrival_rate_rps"):
        snapshot(0.0, float("nan"))
    with pytest.raises(PlanningError, match="requests"):
        MixBucket(512, -1, 0, 0, 0)
    empty = Snapshot(10.0, 60.0, 5.0, 500.0, (), {})
    with pytest.raises(PlanningError, match="mix is empty"):
        plan(empty, spec, profiles, None, 10.0)
    with pytest.raises(PlanningError, match="now"):
        plan(snapshot(0.0, 1.0), spec, profiles, None, float("nan"))
    with pytest.raises(PlanningError, match="profile"):
        plan(snapshot(0.0, 1.0), spec, {}, None, 0.0)
    with pytest.raises(PlanningError, match="later than now"):
        plan(snapshot(20.0, 1.0), spec, profiles, None, 10.0)


@FAST
@given(low=st.floats(0.1, 60.0), extra=st.floats(0.0, 60.0))
def test_more_demand_never_lowers_planned_capacity(
    spec: PlanningSpec, profiles: dict[str, EngineProfile], low: float, extra: float
) -> None:
    a = plan(snapshot(100.0, low), spec, profiles, None, 100.0)
    b = plan(snapshot(100.0, low + extra), spec, profiles, None, 100.0)
    assert b.planned_capacity_rps >= a.planned_capacity_rps - 1e-6


@FAST
@given(rate=st.floats(0.5, 60.0), factor=st.floats(1.0, 20.0))
def test_dearer_hosted_never_raises_planned_spill(
    spec: PlanningSpec, profiles: dict[str, EngineProfile], rate: float, factor: float
) -> None:
    base = plan(snapshot(100.0, rate), spec, profiles, None, 100.0)
    dear = plan(snapshot(100.0, rate), _with_hosted_price(spec, factor), profiles, None, 100.0)
    assert dear.predicted_hosted_share <= base.predicted_hosted_share + 1e-9


@FAST
@given(rate=st.floats(0.0, 200.0), budget=st.floats(8.0, 400.0))
def test_planned_spend_never_exceeds_budget(
    spec: PlanningSpec, profiles: dict[str, EngineProfile], rate: float, budget: float
) -> None:
    cost = spec.deployment.cost.model_copy(update={"budget_dollars_per_hour": budget})
    hosted = spec.deployment.hosted
    assert hosted is not None
    burst = hosted.model_copy(
        update={"max_dollars_per_hour": min(budget, hosted.max_dollars_per_hour)}
    )
    tight = replace(
        spec, deployment=spec.deployment.model_copy(update={"cost": cost, "hosted": burst})
    )
    state: PlannerState | None = None
    for i in range(3):
        result = plan(snapshot(100.0 + 15 * i, rate), tight, profiles, state, 100.0 + 15 * i)
        state = result.state
        assert result.predicted_dollars_per_hour <= budget + 1e-6
        assert result.spill.max_hosted_dollars_per_hour <= budget + 1e-6


@FAST
@given(
    value=st.sampled_from([float("nan"), float("inf"), -1.0]),
    field=st.sampled_from(["observed_at_s", "window_s", "arrival_rate_rps", "output_tokens_per_s"]),
)
def test_nan_negative_inputs_refused(value: float, field: str) -> None:
    kwargs = {
        "observed_at_s": 1.0,
        "window_s": 60.0,
        "arrival_rate_rps": 1.0,
        "output_tokens_per_s": 1.0,
    }
    kwargs[field] = value
    with pytest.raises(PlanningError, match=field):
        Snapshot(mix=conversation_mix(1.0), pools={}, **kwargs)


def _poisoned(snap: Snapshot, factor: float) -> Snapshot:
    """One scrape whose token counts are `factor` times too high (a broken exporter)."""
    mix = tuple(
        replace(b, input_tokens=b.input_tokens * factor, output_tokens=b.output_tokens * factor)
        for b in snap.mix
    )
    return replace(snap, mix=mix, output_tokens_per_s=snap.output_tokens_per_s * factor)


def test_one_scrape_with_token_counts_far_too_high_buys_nothing(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """A window's per-request tokens count toward the mix at most a few times the mix's
    own: one poisoned scrape (1000x the tokens) must not pin the fleet at its maximum."""
    state: PlannerState | None = None
    clean: PlannerState | None = None
    fleets, calm = [], []
    for i in range(120):
        now = 1000.0 + 15.0 * i
        snap = snapshot(now, 4.0)
        seen = _poisoned(snap, 1000.0) if i == 60 else snap
        result = plan(seen, spec, profiles, state, now)
        reference = plan(snap, spec, profiles, clean, now)
        state, clean = result.state, reference.state
        fleets.append(sum(result.replicas.values()))
        calm.append(sum(reference.replicas.values()))
    assert max(fleets[60:]) <= max(calm[60:]) + 1, (fleets[55:70], calm[55:70])
    assert fleets[-1] == calm[-1]


def test_two_spiked_demand_samples_do_not_buy_the_maximum(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """Two consecutive windows with 100x the requests (a broken or hostile exporter) once
    took a 1-replica fleet to 33 replicas. Believed demand now at most doubles per sample
    over what the planned replicas serve, so two samples buy at most 4x the calm fleet,
    and the fleet is back to its calm size once the stabilisation window ends."""
    calm = [sum(p.replicas.values()) for p in _run(spec, profiles, [4.0] * 100)]
    rates = [4.0] * 60 + [400.0] * 2 + [4.0] * 38
    spiked = [sum(p.replicas.values()) for p in _run(spec, profiles, rates)]
    assert max(spiked) <= 4 * max(calm), spiked[55:75]
    limit = sum(b.max_replicas for b in spec.deployment.pools)
    assert max(spiked) < limit / 10
    assert spiked[-1] == calm[-1]


def test_a_deployment_at_zero_orders_its_first_replica_at_once(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """From an empty fleet the bound starts at one replica's worth, not at a few requests
    per window: 4 req/s after idle orders the first replica by the second sample (from
    the request floor alone it took five, a minute more on hosted)."""
    fleets = [sum(p.replicas.values()) for p in _run(spec, profiles, [0.0] * 40 + [4.0] * 6)]
    assert fleets[39] == 0
    assert fleets[41] >= 1, fleets[38:]


def test_a_sustained_flash_crowd_is_planned_for_within_a_minute(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """The bound on how fast believed demand grows costs a real 10x crowd a few periods
    (the router spills it meanwhile), not a cold start."""
    settled = sum(_run(spec, profiles, [40.0] * 40)[-1].replicas.values())
    fleets = [sum(p.replicas.values()) for p in _run(spec, profiles, [4.0] * 60 + [40.0] * 40)]
    assert max(fleets[60:65]) >= settled, fleets[58:70]


def test_a_real_shift_to_longer_outputs_is_still_learned(
    spec: PlanningSpec, profiles: dict[str, EngineProfile]
) -> None:
    """The cap on one window's tokens slows belief in a huge jump, not in a real one: a
    workload whose outputs become 3x longer and stay so plans for them within minutes."""
    state: PlannerState | None = None
    for i in range(40):
        now = 1000.0 + 15.0 * i
        snap = snapshot(now, 4.0)
        result = plan(_poisoned(snap, 3.0) if i >= 20 else snap, spec, profiles, state, now)
        state = result.state
        if i == 19:
            before = result.state.last_mix
    after = result.state.last_mix
    out = lambda mix: sum(b.output_tokens for b in mix) / sum(b.requests for b in mix)  # noqa: E731
    assert out(after) > 1.5 * out(before)
