"""The one observation path: a metrics snapshot and the observed pools -> the planner's Snapshot.

The operator (`weir.controller.control`) and the simulator (`weir.sim.telemetry`)
both call `observe`, so the planner is tested in the simulator on exactly the
input it gets in a cluster: windowed rates from Prometheus' counters, the
prompt mix estimated from the router's histogram (`weir.metrics.mix`), the
local replicas' attainment over the router's attainment window, and the
replicas the API server reports.

Unknown is not zero. When the source failed, or a demand quantity came back
NaN or Inf (None here), the view is unhealthy, says why in `problem`, and
still carries the replicas the API server reports, so the planner holds the
fleet it sees instead of reading the hole as no traffic (or a restarted
operator as no fleet) and scaling to the minimum.
"""

from __future__ import annotations

from collections.abc import Mapping

from weir.metrics.mix import mix_from_histogram
from weir.metrics.snapshot import DeploymentMetrics, MetricsSnapshot
from weir.planner.types import PoolObservation, Snapshot

# The rates the planner sizes replicas from: any of them unknown and it cannot plan.
DEMAND_FIELDS = (
    "requests_per_s",
    "output_tokens_per_s",
    "input_tokens_per_s",
    "cached_input_tokens_per_s",
)


def observe(
    snapshot: MetricsSnapshot,
    metrics: DeploymentMetrics,
    observed: Mapping[str, PoolObservation],
    router_ready: bool = False,
) -> Snapshot:
    """The planner's view of one deployment: rates over the window, the mix, replicas now.

    `router_ready`: the deployment's router pods are Ready, so it must have series
    (the router exports its request counter from the start); none means Prometheus
    does not scrape it, which is not the same as no traffic.
    """
    problem = None
    if not snapshot.healthy:
        problem = snapshot.error or "the metrics source is unhealthy"
    elif router_ready and not metrics.present:
        problem = (
            "the router is Ready but Prometheus has no series of it: is it scraped, and do "
            "the WEIR_QUERY_* labels match its namespace and weir_dev_deployment labels?"
        )
    elif unknown := [name for name in DEMAND_FIELDS if getattr(metrics, name) is None]:
        problem = f"Prometheus answered NaN or Inf for {', '.join(unknown)}"
    if problem is not None:
        return blind(snapshot.taken_at_s, snapshot.window_s, observed, problem)
    window = snapshot.window_s
    rate = metrics.requests_per_s or 0.0
    uncached = metrics.input_tokens_per_s or 0.0
    cached = metrics.cached_input_tokens_per_s or 0.0
    output = metrics.output_tokens_per_s or 0.0
    mix = mix_from_histogram(
        metrics.prefill_histogram,
        requests=rate * window,
        input_tokens=(uncached + cached) * window,
        prefill_tokens=uncached * window,
        output_tokens=output * window,
    )
    total_input = uncached + cached
    return Snapshot(
        observed_at_s=snapshot.taken_at_s,
        window_s=window,
        arrival_rate_rps=rate,
        output_tokens_per_s=output,
        mix=mix,
        pools=dict(observed),
        hosted_cached_fraction=cached / total_input if total_input > 0 else 0.0,
        healthy=True,
        local_useful_fraction=metrics.local_useful_fraction,
        local_output_tokens=metrics.local_output_tokens or 0.0,
        engines=dict(metrics.engines),
    )


def blind(
    at_s: float, window_s: float, observed: Mapping[str, PoolObservation], problem: str
) -> Snapshot:
    """A view with the replicas but no trustworthy demand: the planner holds."""
    return Snapshot(
        observed_at_s=at_s,
        window_s=max(window_s, 1.0),
        arrival_rate_rps=0.0,
        output_tokens_per_s=0.0,
        mix=(),
        pools=dict(observed),
        healthy=False,
        problem=problem,
    )
