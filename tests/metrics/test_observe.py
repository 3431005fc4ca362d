"""The one observation path: the operator and the simulator give the planner the same view.

The simulator's telemetry renders its counters as the metrics snapshot the
operator's Prometheus source returns; both then go through
`weir.metrics.observe`. These tests feed the same metrics to both and
compare, check that the attainment feedback reaches the operator's plan, and
that unknown demand (NaN) holds the fleet rather than reading as no traffic.
"""

from __future__ import annotations

from dataclasses import replace

from controller.test_control import OBSERVED, PROFILES, busy, example
from weir.controller.control import decide
from weir.metrics.observe import observe
from weir.metrics.snapshot import DeploymentMetrics, MetricsSnapshot
from weir.metrics.source import parse_histogram, parse_split, parse_vector
from weir.planner.types import PoolObservation
from weir.sim.telemetry import SIMULATED, Telemetry

POOLS = {"spot": PoolObservation(ready=2, warming=1)}


def _fed_telemetry() -> Telemetry:
    tel = Telemetry(0.0, window_s=120.0, delay_s=15.0)
    for second in range(400):
        for k in range(3):
            prompt = 300 if k else 9000  # a long-prompt tail beside the short ones
            tel.arrival(float(second), prompt + 200, prompt, 150)
        tel.local_done(float(second), 150, useful=second % 10 != 0)
    return tel


def _as_prometheus(metrics: DeploymentMetrics) -> tuple[dict[str, list], list, list]:
    """The answers Prometheus would give for these metrics (instant vectors)."""
    ns, name = SIMULATED
    labels = {"namespace": ns, "weir_dev_deployment": name}
    vectors = {
        field: [{"metric": labels, "value": [0, str(getattr(metrics, field))]}]
        for field in (
            "requests_per_s",
            "output_tokens_per_s",
            "input_tokens_per_s",
            "cached_input_tokens_per_s",
        )
    }
    histogram = [
        {
            "metric": {**labels, "le": "+Inf" if le == float("inf") else str(le)},
            "value": [0, str(v)],
        }
        for le, v in metrics.prefill_histogram
    ]
    useful = metrics.local_useful_tokens or 0.0
    split = [
        {"metric": {**labels, "usefulness": "useful"}, "value": [0, str(useful)]},
        {
            "metric": {**labels, "usefulness": "wasted"},
            "value": [0, str((metrics.local_output_tokens or 0.0) - useful)],
        },
    ]
    return vectors, histogram, split


def test_operator_and_simulator_build_the_same_snapshot_from_the_same_metrics() -> None:
    tel = _fed_telemetry()
    read = tel.metrics(400.0)
    sim_view = tel.snapshot(400.0, POOLS)
    # The operator's path: Prometheus answers -> the source's parsers -> observe.
    vectors, histogram, split = _as_prometheus(read.for_deployment(*SIMULATED))
    key = SIMULATED
    parsed = {
        f: parse_vector(v, "namespace", "weir_dev_deployment")[0][key] for f, v in vectors.items()
    }
    hist = parse_histogram(histogram, "namespace", "weir_dev_deployment")[0][key]
    parts = parse_split(split, "namespace", "weir_dev_deployment", "usefulness")[0][key]
    operator_metrics = DeploymentMetrics(
        **parsed,
        prefill_histogram=hist,
        local_output_tokens=sum(parts.values()),
        local_useful_tokens=parts["useful"],
    )
    operator_view = observe(read, operator_metrics, POOLS)
    assert operator_view == sim_view
    # and the view is the estimate from the histogram, not the simulator's exact truth
    assert len(sim_view.mix) == 2
    assert sim_view.local_useful_fraction is not None
    assert abs(sim_view.local_useful_fraction - 0.9) < 0.01
    assert sim_view.pools == POOLS


def test_attainment_feedback_changes_the_operators_plan() -> None:
    spec, pools, hosted = example()
    late = replace(busy(20.0), local_output_tokens=2e5, local_useful_tokens=0.95 * 2e5)
    snapshot = MetricsSnapshot(995.0, 120.0, True)

    def decided(feedback: bool):
        control = spec.control.model_copy(update={"attainment_feedback": feedback})
        s = spec.model_copy(update={"control": control})
        return decide(s, pools, hosted, PROFILES, snapshot, late, OBSERVED, None, 1000.0, "t")

    on, off = decided(True), decided(False)
    assert off.plan.state.capacity_scale == 1.0
    assert on.plan.state.capacity_scale < 1.0
    assert any("trusting each replica" in r for r in on.plan.reasons)
    limits_on = on.plan.spill.concurrency_limit_by_pool
    limits_off = off.plan.spill.concurrency_limit_by_pool
    assert all(limits_on[p] <= limits_off[p] for p in limits_off)
    assert limits_on != limits_off


def test_unknown_demand_holds_the_observed_fleet_and_says_why() -> None:
    spec, pools, hosted = example()
    fleet = {"h100-on-demand": PoolObservation(ready=3), "h100-spot": PoolObservation(ready=5)}
    nan = replace(busy(20.0), requests_per_s=None)  # Prometheus answered NaN
    snapshot = MetricsSnapshot(995.0, 120.0, True)
    decision = decide(spec, pools, hosted, PROFILES, snapshot, nan, fleet, None, 1000.0, "t")
    assert decision.plan.held
    assert decision.replicas == {"h100-on-demand": 3, "h100-spot": 5}
    conditions = {c[0]: c for c in decision.conditions}
    assert conditions["MetricsAvailable"][1] is False
    assert "requests_per_s" in conditions["MetricsAvailable"][3]
