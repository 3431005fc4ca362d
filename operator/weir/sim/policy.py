"""What a scaling policy sees and returns in the simulator.

weir and every baseline implement the same small protocol, so they run in
the same simulator on the same workload and the comparison is fair: each
sees only what Prometheus would show (windowed, delayed) and the replica
counts the API server reports, and returns replicas per pool and a spill
policy for the router.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from weir.planner.types import Snapshot, SpillPolicy

NO_LIMIT = 1_000_000


@dataclass(frozen=True)
class FleetMetrics:
    """Engine gauges as last scraped: requests in flight and waiting, ready replicas."""

    in_flight: int
    waiting: int
    ready: int


@dataclass(frozen=True)
class Observation:
    """The policy's whole view at one control tick."""

    snapshot: Snapshot
    fleet: FleetMetrics


@dataclass(frozen=True)
class PolicyDecision:
    """Replicas per pool and the router's policy until the next tick."""

    replicas: Mapping[str, int]
    spill: SpillPolicy
    note: str = ""


class Policy(Protocol):
    """A scaling policy under test."""

    name: str

    def initial(self) -> Mapping[str, int]:
        """Replicas already ready when the run starts (before the preroll)."""
        ...

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        """Called every control period."""
        ...


def local_only(pools: Mapping[str, int]) -> SpillPolicy:
    """A router with no hosted tier and no SLO limit: what the baselines run."""
    return SpillPolicy(
        concurrency_limit_by_pool={name: NO_LIMIT for name in pools},
        hosted_enabled=False,
        max_hosted_share=0.0,
        max_hosted_dollars_per_hour=0.0,
    )
