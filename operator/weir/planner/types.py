"""The values that go into and come out of the planner.

Everything here is frozen: a snapshot is what Prometheus and the API server
said at one moment, a Plan is a decision with its reasons, and the state the
planner needs next time (demand history, recent recommendations for
hysteresis) travels inside the Plan, so the planner itself keeps nothing and
the controller can store it in the resource's status.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from weir.api.deployment import InferenceDeploymentSpec
from weir.api.hosted import HostedEndpointSpec
from weir.api.pool import CapacityPoolSpec
from weir.planner.forecast import DemandSample, Forecast
from weir.planner.speed import SpeedBelief

# Bucket bounds of the request mix by prefill tokens: the router's histogram exports
# exactly these, and the simulator's telemetry bins with them, so the planner is tested
# on the resolution it gets in production. Steps of sqrt(2) from 64 to 262,144 tokens.
MIX_BOUNDS: tuple[float, ...] = (*(64.0 * 2 ** (k / 2) for k in range(25)), math.inf)
# The open top bucket's bound, finite because the planner interpolates percentiles in it.
MIX_TOP_BOUND = 262144.0 * 4


class PlanningError(ValueError):
    """The inputs cannot be planned on (refused, not guessed around)."""


def _check(owner: str, name: str, value: float) -> None:
    if not math.isfinite(value) or value < 0:
        raise PlanningError(f"{owner}.{name} must be a finite number >= 0, got {value}")


@dataclass(frozen=True)
class MixBucket:
    """Requests whose uncached prompt (prefill) was at most `prefill_tokens_le` tokens."""

    prefill_tokens_le: float
    requests: float
    input_tokens: float
    prefill_tokens: float
    output_tokens: float

    def __post_init__(self) -> None:
        if not self.prefill_tokens_le > 0:
            raise PlanningError("MixBucket.prefill_tokens_le must be > 0")
        for name in ("requests", "input_tokens", "prefill_tokens", "output_tokens"):
            _check("MixBucket", name, getattr(self, name))


@dataclass(frozen=True)
class EngineWindow:
    """What one pool's engines showed over the window (per replica unless named).

    The evidence of online capacity learning (`weir.planner.learn`), from the
    engines' own `trtllm_*` series: mean running requests, mean time per
    output token, request rate, and the output tokens behind those means.
    """

    replicas: float
    running: float  # mean running requests per replica
    tpot_s: float  # mean time per output token
    requests_per_s: float  # per replica
    output_tokens: float  # all replicas, over the window
    e2e_s: float = 0.0  # mean request duration (0: unknown)


@dataclass(frozen=True)
class PoolObservation:
    """Replicas of one pool as the API server reports them now."""

    ready: int
    warming: int = 0

    def __post_init__(self) -> None:
        if self.ready < 0 or self.warming < 0:
            raise PlanningError("PoolObservation counts must be >= 0")

    @property
    def total(self) -> int:
        """Replicas paid for (ready or warming)."""
        return self.ready + self.warming


@dataclass(frozen=True)
class Snapshot:
    """What the control loop saw: windowed demand (with scrape delay) and replicas now.

    `local_useful_fraction` is the useful share of the tokens the replicas
    (not the hosted endpoint) generated over the router's attainment window,
    with `local_output_tokens` the tokens it is measured on; None when unknown.
    An unhealthy snapshot still carries the replicas (so the planner can hold
    the fleet it sees) and says in `problem` why its demand cannot be trusted.
    """

    observed_at_s: float
    window_s: float
    arrival_rate_rps: float
    output_tokens_per_s: float
    mix: tuple[MixBucket, ...]
    pools: Mapping[str, PoolObservation]
    hosted_cached_fraction: float = 0.0
    healthy: bool = True
    local_useful_fraction: float | None = None
    local_output_tokens: float = 0.0
    problem: str = ""
    engines: Mapping[str, EngineWindow] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("observed_at_s", "window_s", "arrival_rate_rps", "output_tokens_per_s"):
            _check("Snapshot", name, getattr(self, name))
        _check("Snapshot", "local_output_tokens", self.local_output_tokens)
        useful = self.local_useful_fraction
        if useful is not None and not 0 <= useful <= 1:
            raise PlanningError("Snapshot.local_useful_fraction must be in [0, 1]")
        if self.window_s == 0:
            raise PlanningError("Snapshot.window_s must be > 0")
        if not 0 <= self.hosted_cached_fraction <= 1:
            raise PlanningError("Snapshot.hosted_cached_fraction must be in [0, 1]")
        bounds = [b.prefill_tokens_le for b in self.mix]
        if bounds != sorted(bounds):
            raise PlanningError("Snapshot.mix buckets must be sorted by prefill_tokens_le")


@dataclass(frozen=True)
class PlanningSpec:
    """A deployment with the pools and hosted endpoint it names, resolved."""

    deployment: InferenceDeploymentSpec
    pools: Mapping[str, CapacityPoolSpec]
    hosted: HostedEndpointSpec | None = None

    def __post_init__(self) -> None:
        for binding in self.deployment.pools:
            if binding.pool not in self.pools:
                raise PlanningError(f"pools: deployment names pool {binding.pool!r}, not given")
        if (self.deployment.hosted is None) != (self.hosted is None):
            raise PlanningError("hosted: the deployment's hosted burst and endpoint go together")
        floor = sum(
            b.min_replicas * self.pools[b.pool].dollars_per_replica_hour
            for b in self.deployment.pools
        )
        if floor > self.deployment.cost.budget_dollars_per_hour:
            raise PlanningError(
                f"cost.budgetDollarsPerHour ({self.deployment.cost.budget_dollars_per_hour}) "
                f"does not cover the minimum replicas ({floor:.2f} $/h)"
            )


@dataclass(frozen=True)
class SpillPolicy:
    """What the router applies until the next plan (see weir.planner.admission)."""

    concurrency_limit_by_pool: Mapping[str, int]
    hosted_enabled: bool
    max_hosted_share: float
    max_hosted_dollars_per_hour: float
    max_local_prefill_tokens: float = math.inf
    max_waiting: int = 10_000


@dataclass(frozen=True)
class Alternative:
    """One option the planner weighed, with its predicted economics."""

    label: str
    replicas: Mapping[str, int]
    dollars_per_hour: float
    dollars_per_million_useful: float
    useful_fraction: float
    hosted_share: float
    feasible: bool

    def describe(self) -> str:
        """One line, for status and events."""
        mark = "" if self.feasible else " (misses SLO or budget)"
        return (
            f"{self.label}: ${self.dollars_per_million_useful:.2f}/M useful, "
            f"{self.useful_fraction:.3f} useful, {self.hosted_share:.0%} hosted{mark}"
        )


@dataclass(frozen=True)
class PlannerState:
    """What the planner carries from one decision to the next."""

    samples: tuple[DemandSample, ...] = ()
    recommendations: tuple[tuple[float, tuple[tuple[str, int], ...]], ...] = ()
    last_mix: tuple[MixBucket, ...] = ()
    capacity_scale: float = 1.0
    capacity_cut_at_s: float = -math.inf
    # the longest long-prompt threshold the SLO evidence still allows (weir.planner.optimise)
    prefill_cap: float = math.inf
    prefill_cap_at_s: float = -math.inf
    # pool -> belief about its engines' speed relative to the profile (weir.planner.learn)
    speeds: tuple[tuple[str, SpeedBelief], ...] = ()
    last_plan: Plan | None = None


@dataclass(frozen=True)
class Plan:
    """A decision: replicas per pool, the router's spill policy, and why."""

    at_s: float
    replicas: Mapping[str, int]
    spill: SpillPolicy
    predicted_dollars_per_hour: float
    predicted_dollars_per_million_useful: float
    predicted_useful_fraction: float
    predicted_hosted_share: float
    reasons: tuple[str, ...]
    alternatives: tuple[Alternative, ...]
    forecast: Forecast | None
    planned_capacity_rps: float = 0.0
    # what the planned replicas serve at the SLO: demand believed up to it buys no GPU
    local_capacity_rps: float = 0.0
    # what one replica of the cheapest-to-serve pool serves at the SLO (the first GPU)
    replica_rps: float = 0.0
    held: bool = False
    state: PlannerState = field(default_factory=PlannerState, repr=False)
