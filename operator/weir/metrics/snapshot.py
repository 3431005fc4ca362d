"""What one cycle read from Prometheus: immutable, timestamped values that know their health.

Pure data, apart from the client that fills it (`weir.metrics.source`), so the
simulator can build the same values from its own counters and hand them to the
same observation path (`weir.metrics.observe`) as the operator does.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from weir.planner.types import EngineWindow

# The router's attainment window: long enough that a fraction of late tokens means
# something (they come a request at a time), short enough to follow a profile gone wrong.
ATTAINMENT_WINDOW_S = 300.0

Key = tuple[str, str]  # (namespace, InferenceDeployment name)
Histogram = tuple[tuple[float, float], ...]  # cumulative (le, per second), le ascending


@dataclass(frozen=True)
class DeploymentMetrics:
    """One deployment's window: rates per second unless the name says otherwise."""

    requests_per_s: float | None = 0.0
    hosted_requests_per_s: float | None = 0.0
    output_tokens_per_s: float | None = 0.0
    useful_tokens_per_s: float | None = 0.0
    input_tokens_per_s: float | None = 0.0
    cached_input_tokens_per_s: float | None = 0.0
    hosted_dollars_per_s: float | None = 0.0
    gpu_dollars_per_hour: float | None = 0.0
    # Over the attainment window (ATTAINMENT_WINDOW_S), not per second: the tokens the
    # local replicas generated and how many of them were useful (attainment feedback).
    local_output_tokens: float | None = 0.0
    local_useful_tokens: float | None = 0.0
    prefill_histogram: Histogram = ()
    # pool -> what its engines showed over the window (capacity learned online)
    engines: tuple[tuple[str, EngineWindow], ...] = ()
    notes: tuple[str, ...] = ()
    # Whether Prometheus had any series of this deployment at all: no series is either
    # no traffic ever or a router nobody scrapes, which the caller tells apart.
    present: bool = False

    @property
    def dollars_per_hour(self) -> float | None:
        if self.gpu_dollars_per_hour is None or self.hosted_dollars_per_s is None:
            return None
        return self.gpu_dollars_per_hour + self.hosted_dollars_per_s * 3600.0

    @property
    def dollars_per_million_useful_tokens(self) -> float | None:
        """Live $ per million useful tokens; None when nothing useful was produced."""
        spend = self.dollars_per_hour
        useful = self.useful_tokens_per_s
        if spend is None or useful is None or useful <= 0:
            return None
        return spend / 3600.0 / useful * 1e6

    @property
    def useful_token_fraction(self) -> float | None:
        if not self.output_tokens_per_s or self.useful_tokens_per_s is None:
            return None
        return min(1.0, self.useful_tokens_per_s / self.output_tokens_per_s)

    @property
    def local_useful_fraction(self) -> float | None:
        """Useful share of the local replicas' tokens; None when unknown or none were made."""
        total, useful = self.local_output_tokens, self.local_useful_tokens
        if not total or total <= 0 or useful is None:
            return None
        return min(1.0, max(0.0, useful / total))

    @property
    def hosted_share(self) -> float | None:
        if not self.requests_per_s or self.hosted_requests_per_s is None:
            return None
        return min(1.0, self.hosted_requests_per_s / self.requests_per_s)


@dataclass(frozen=True)
class MetricsSnapshot:
    """Everything one cycle read, when it read it, and whether it can be trusted."""

    taken_at_s: float
    window_s: float
    healthy: bool
    error: str | None = None
    deployments: Mapping[Key, DeploymentMetrics] = field(default_factory=dict)
    queries: int = 0

    def for_deployment(self, namespace: str, name: str) -> DeploymentMetrics:
        """Its metrics; a deployment with no series had no traffic in the window."""
        return self.deployments.get((namespace, name), DeploymentMetrics())

    def age_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.taken_at_s)


class MetricsSource(Protocol):
    """Where the control loop gets its snapshot (Prometheus; a fake in unit tests)."""

    def collect(self, now_s: float) -> MetricsSnapshot: ...
