"""weir and the baselines people run today, as simulator policies.

- `weir`: the planner (weir.planner.plan) every control period.
- `static_p95`: on-demand replicas for the trace's P95 minute plus 30%.
- `hpa_utilisation`: the Kubernetes HPA on in-flight requests per replica
  against the SLO concurrency (the "utilisation" an SRE would load-test),
  target 70%, 15 s sync, scale-up at most max(4, 100%) per sync, 300 s
  scale-down stabilisation.
- `keda_queue`: KEDA on queue depth (running + waiting per replica against
  the SLO concurrency), 30 s polling, HPA behaviour underneath.
- `all_hosted`: every request to the hosted endpoint.
The baselines run a plain least-loaded router with no hosted tier, as a
Kubernetes Service would; only weir and the oracle use spill.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping

from weir.api.profile import EngineProfile
from weir.planner.optimise import plan
from weir.planner.types import PlannerState, SpillPolicy
from weir.sim.policy import Observation, PolicyDecision, local_only
from weir.sim.scenario import Scenario
from weir.sim.workload import MinuteNeed


class WeirPolicy:
    """The planner, carried state and all."""

    name = "weir"

    def __init__(self, scenario: Scenario, profiles: Mapping[str, EngineProfile]) -> None:
        self.spec = scenario.planning_spec()
        self.profiles = {b.pool: profiles[b.pool] for b in scenario.deployment.pools}
        self.state: PlannerState | None = None
        self.decisions = 0
        self.last_reasons: tuple[str, ...] = ()

    def initial(self) -> Mapping[str, int]:
        return {b.pool: b.min_replicas for b in self.spec.deployment.pools}

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        result = plan(obs.snapshot, self.spec, self.profiles, self.state, now)
        self.state = result.state
        self.decisions += 1
        self.last_reasons = result.reasons
        return PolicyDecision(result.replicas, result.spill, "; ".join(result.reasons[-1:]))


class StaticP95:
    """A fixed fleet sized for the P95 minute plus 30% headroom."""

    name = "static_p95"

    def __init__(self, scenario: Scenario, need: MinuteNeed, headroom: float = 0.3) -> None:
        finite = [x for x in need.replicas_all if math.isfinite(x)]
        p95 = sorted(finite)[int(0.95 * (len(finite) - 1))] if finite else 1.0
        self.pool = scenario.on_demand_pool
        self.count = max(1, math.ceil(p95 * (1 + headroom)))

    def initial(self) -> Mapping[str, int]:
        return {self.pool: self.count}

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision({self.pool: self.count}, local_only({self.pool: 0}))


class _Reactive:
    """HPA mechanics shared by the two reactive baselines."""

    name = "reactive"

    def __init__(
        self,
        scenario: Scenario,
        need: MinuteNeed,
        target: float,
        sync_s: float,
        stabilisation_s: float = 300.0,
        min_replicas: int = 1,
    ) -> None:
        self.pool = scenario.on_demand_pool
        binding = next(b for b in scenario.deployment.pools if b.pool == self.pool)
        self.max_replicas = max(min_replicas, binding.max_replicas)
        self.limit = max(1, need.concurrency_limit_all)
        self.target = target
        self.sync_s = sync_s
        self.stabilisation_s = stabilisation_s
        self.min_replicas = min_replicas
        first = next((x for x in need.replicas_all if x > 0), 0.0)
        start = math.ceil(first / target) if math.isfinite(first) else self.max_replicas
        # start where the autoscaler would have settled on the opening traffic, as a
        # deployment that has been running for a while would
        self.replicas = min(max(start, min_replicas), self.max_replicas)
        self.history: deque[tuple[float, int]] = deque([(0.0, self.replicas)])
        self.last_sync = -math.inf

    def initial(self) -> Mapping[str, int]:
        return {self.pool: self.replicas}

    def metric(self, obs: Observation) -> float:
        """Load per ready replica, relative to the SLO concurrency."""
        return obs.fleet.in_flight / (max(obs.fleet.ready, 1) * self.limit)

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        if now - self.last_sync >= self.sync_s - 1e-9:
            self.last_sync = now
            self._sync(obs, now)
        return PolicyDecision({self.pool: self.replicas}, local_only({self.pool: 0}))

    def _sync(self, obs: Observation, now: float) -> None:
        ratio = self.metric(obs) / self.target
        ready = max(obs.fleet.ready, 1)
        wanted = self.replicas if abs(ratio - 1.0) <= 0.1 else math.ceil(ready * ratio)
        wanted = min(max(wanted, self.min_replicas), self.max_replicas)
        if wanted > self.replicas:
            wanted = min(wanted, self.replicas + max(4, self.replicas))
        self.history.append((now, wanted))
        while self.history and self.history[0][0] < now - self.stabilisation_s:
            self.history.popleft()
        if wanted < self.replicas:
            wanted = min(self.replicas, max(w for _, w in self.history))
        self.replicas = wanted


class HpaUtilisation(_Reactive):
    """Kubernetes HPA at 70% of the SLO concurrency, 15 s sync."""

    name = "hpa_utilisation"

    def __init__(self, scenario: Scenario, need: MinuteNeed) -> None:
        super().__init__(scenario, need, target=0.7, sync_s=15.0)


class KedaQueue(_Reactive):
    """KEDA on queue depth per replica, 30 s polling."""

    name = "keda_queue"

    def __init__(self, scenario: Scenario, need: MinuteNeed) -> None:
        super().__init__(scenario, need, target=1.0, sync_s=30.0)


class AllHosted:
    """No GPUs: every request to the hosted endpoint."""

    name = "all_hosted"

    def __init__(self, scenario: Scenario) -> None:
        self.pools = [b.pool for b in scenario.deployment.pools]

    def initial(self) -> Mapping[str, int]:
        return {}

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        spill = SpillPolicy(
            concurrency_limit_by_pool={p: 0 for p in self.pools},
            hosted_enabled=True,
            max_hosted_share=1.0,
            max_hosted_dollars_per_hour=math.inf,
        )
        return PolicyDecision({p: 0 for p in self.pools}, spill)
