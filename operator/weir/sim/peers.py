"""The peers weir is measured against, set up as the people who run them would.

Each peer may use every tier its real counterpart can: on-demand, spot or a
mixed pool (an on-demand floor with spot above it), and a LiteLLM-style
gateway in front (`max_parallel_requests` per replica, then the hosted
endpoint, within the deployment's hosted share and $/hour caps). Their knobs
are not chosen here: `weir.sim.tuning` sweeps them on tuning workloads and
freezes the winners in bench/peers/tuned.yaml.

Scalers (the signals a real deployment has):
- `hpa`: Kubernetes HPA on in-flight requests per ready replica against the
  SLO concurrency an SRE would load-test; 15 s sync, 10% tolerance, scale-up
  at most max(100%, 4 pods) per sync, scale-down after a stabilisation window.
- `keda_rate`: KEDA on the router's request rate, a target share of the
  replica's request rate at the SLO; 30 s polling, the HPA underneath.
- `keda_queue`: KEDA on queue depth (requests waiting, not running: router
  queue plus engine queues), a target of waiting requests per replica.
- `llmd_slo`: llm-d's SLO-aware KEDA recipe (llm-d/llm-d,
  guides/workload-autoscaling/README.slo-aware.md): s = max(P90 TTFT / TTFT
  SLO, P90 ITL / ITL SLO) over 1 min, clamped at 2.0, averaged over 45 s;
  scale up when s > θ_up (credited by ready/provisioned), down when
  s < θ_dn (0.40/0.55 of θ_up), HPA behaviour up max(100%, 4) per 60 s with
  a 30 s window, down 1 pod per 120 s with a 180 s window.
Plus SkyServe's SpotHedge, a rule-based hybrid (long prompts hosted), static
fleets, and all-hosted (weir.sim.baselines.AllHosted).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

from weir.planner.types import SpillPolicy
from weir.sim.policy import NO_LIMIT, Observation, PolicyDecision
from weir.sim.scenario import Scenario
from weir.sim.tap import LatencyTap
from weir.sim.workload import MinuteNeed

Kind = Literal["hpa", "keda_rate", "keda_queue", "llmd_slo", "spothedge", "static", "hybrid"]
Placement = Literal["on-demand", "spot", "mixed"]
KINDS: tuple[Kind, ...] = (
    "hpa",
    "keda_rate",
    "keda_queue",
    "llmd_slo",
    "spothedge",
    "static",
    "hybrid",
)


@dataclass(frozen=True)
class PeerSetting:
    """One peer with its knobs (units in the field comments)."""

    kind: Kind
    placement: Placement = "spot"
    fallback: bool = False  # LiteLLM-style gateway in front: local up to `parallel`, then hosted
    target: float = 0.7  # scaler set-point (see the module docstring for its unit per kind)
    window_s: float = 300.0  # scale-down stabilisation (SpotHedge: downscale delay), s
    floor: int = 2  # mixed placement: on-demand replicas under the spot ones
    overprovision: int = 0  # SpotHedge num_overprovision
    long_prompt_tokens: float = math.inf  # prompts with more uncached tokens go hosted
    parallel: float = 1.0  # max_parallel_requests as a multiple of the SLO concurrency

    @property
    def family(self) -> str:
        """The peer's name in reports: kind and pool placement."""
        if self.kind in ("spothedge", "hybrid"):
            return self.kind
        return f"{self.kind}_{self.placement.replace('-', '_')}"

    def knobs(self) -> dict[str, Any]:
        """The setting as plain values (for tuned.yaml and summary.json)."""
        out = asdict(self)
        if not math.isfinite(self.long_prompt_tokens):
            out["long_prompt_tokens"] = None
        return out

    @staticmethod
    def from_knobs(data: Mapping[str, Any]) -> PeerSetting:
        """The inverse of `knobs`."""
        values = dict(data)
        if values.get("long_prompt_tokens") is None:
            values["long_prompt_tokens"] = math.inf
        return PeerSetting(**values)


def gateway(scenario: Scenario, setting: PeerSetting, limit: int) -> SpillPolicy:
    """The router a peer runs: a plain Service, or LiteLLM with hosted fallback."""
    pools = [b.pool for b in scenario.deployment.pools]
    burst = scenario.deployment.hosted
    hosted = scenario.hosted is not None and burst is not None
    rule = hosted and math.isfinite(setting.long_prompt_tokens)
    spill = hosted and setting.fallback
    per = max(1, math.ceil(setting.parallel * limit)) if spill else NO_LIMIT
    return SpillPolicy(
        concurrency_limit_by_pool={p: per for p in pools},
        hosted_enabled=spill or rule,
        max_hosted_share=burst.max_share if burst else 0.0,
        max_hosted_dollars_per_hour=burst.max_dollars_per_hour if burst else 0.0,
        max_local_prefill_tokens=setting.long_prompt_tokens if rule else math.inf,
    )


def _spot_pool(scenario: Scenario) -> str:
    used = [b.pool for b in scenario.deployment.pools]
    spot = [p for p in used if scenario.pools[p].capacity_type == "spot"]
    return spot[0] if spot else scenario.on_demand_pool


def place(scenario: Scenario, placement: Placement, total: int, floor: int) -> dict[str, int]:
    """Replicas per pool for a fleet of `total` under the placement."""
    od, spot = scenario.on_demand_pool, _spot_pool(scenario)
    if placement == "on-demand":
        return {od: total, spot: 0} if spot != od else {od: total}
    if placement == "spot":
        return {od: 0, spot: total} if spot != od else {od: total}
    base = min(total, floor)
    return {od: base, spot: total - base} if spot != od else {od: total}


def _max_replicas(scenario: Scenario, placement: Placement) -> int:
    limits = {b.pool: b.max_replicas for b in scenario.deployment.pools}
    od, spot = scenario.on_demand_pool, _spot_pool(scenario)
    if placement == "on-demand":
        return limits.get(od, 1)
    if placement == "spot":
        return limits.get(spot, 1)
    return limits.get(od, 0) + (limits.get(spot, 0) if spot != od else 0)


class ReactivePeer:
    """An HPA-driven scaler (hpa, keda_rate, keda_queue) behind a plain or LiteLLM router."""

    def __init__(self, scenario: Scenario, need: MinuteNeed, setting: PeerSetting) -> None:
        self.name = setting.family
        self.scenario = scenario
        self.setting = setting
        self.limit = max(1, need.concurrency_limit_all)
        self.replica_rate = max(need.replica_rate_rps, 1e-6)
        self.max_replicas = max(1, _max_replicas(scenario, setting.placement))
        self.spill = gateway(scenario, setting, self.limit)
        self.sync_s = 15.0 if setting.kind in ("hpa", "hybrid") else 30.0
        first = next((x for x in need.replicas_all if x > 0), 1.0)
        start = math.ceil(first) if math.isfinite(first) else self.max_replicas
        self.replicas = min(max(start, 1), self.max_replicas)
        self.history: deque[tuple[float, int]] = deque([(0.0, self.replicas)])
        self.last_sync = -math.inf

    def initial(self) -> Mapping[str, int]:
        return self._fleet()

    def _fleet(self) -> dict[str, int]:
        s = self.setting
        return place(self.scenario, s.placement, self.replicas, s.floor)

    def desired(self, obs: Observation, now: float) -> int:
        """The scaler's recommendation before HPA behaviour (tolerance, rate limits)."""
        fleet, s = obs.fleet, self.setting
        if s.kind in ("keda_rate", "keda_queue"):
            # KEDA's AverageValue target: desired = ceil(metric total / target per replica)
            per = s.target * self.replica_rate if s.kind == "keda_rate" else s.target
            total = obs.snapshot.arrival_rate_rps if s.kind == "keda_rate" else fleet.waiting
            ratio = total / (max(self.replicas, 1) * per)
            return self.replicas if abs(ratio - 1.0) <= 0.1 else math.ceil(total / per)
        ready = max(fleet.ready, 1)
        ratio = fleet.in_flight / (ready * self.limit) / s.target
        return self.replicas if abs(ratio - 1.0) <= 0.1 else math.ceil(ready * ratio)

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        if now - self.last_sync >= self.sync_s - 1e-9:
            self.last_sync = now
            self._sync(self.desired(obs, now), now)
        return PolicyDecision(self._fleet(), self.spill)

    def _sync(self, wanted: int, now: float) -> None:
        wanted = min(max(wanted, 1), self.max_replicas)
        if wanted > self.replicas:
            wanted = min(wanted, self.replicas + max(4, self.replicas))
        self.history.append((now, wanted))
        while self.history and self.history[0][0] < now - self.setting.window_s:
            self.history.popleft()
        if wanted < self.replicas:
            wanted = min(self.replicas, max(w for _, w in self.history))
        self.replicas = wanted


class LlmdSloPeer(ReactivePeer):
    """llm-d's SLO-aware KEDA recipe (see the module docstring for its parameters)."""

    def __init__(self, scenario: Scenario, need: MinuteNeed, setting: PeerSetting) -> None:
        super().__init__(scenario, need, setting)
        self.tap = LatencyTap()
        self.samples: deque[tuple[float, float]] = deque()
        self.ups: deque[tuple[float, int]] = deque()
        self.downs: deque[tuple[float, int]] = deque()
        self.last_up = self.last_down = -math.inf
        self.sync_s = 15.0

    def _signal(self, now: float) -> float:
        delay = self.scenario.telemetry.scrape_delay_seconds
        q = self.tap.quantiles(now - delay - 60.0, now - delay, 0.9)
        slo = self.scenario.deployment.slo
        raw = 0.0 if q is None else max(q[0] / slo.ttft_seconds, q[1] / slo.itl_seconds)
        self.samples.append((now, min(raw, 2.0)))
        while self.samples and self.samples[0][0] <= now - 45.0:
            self.samples.popleft()
        return float(np.mean([v for _, v in self.samples]))

    def desired(self, obs: Observation, now: float) -> int:
        s = self._signal(now)
        up, down = self.setting.target, self.setting.target * 0.40 / 0.55
        n = max(self.replicas, 1)
        ready = obs.fleet.ready
        credit = ready / n if 0 < ready < n else 1.0
        if s > up:
            return n + math.ceil(n * (s * credit / up - 1.0))
        if s < down:
            return n - math.floor(n * (1.0 - s / down))
        return n

    def _sync(self, wanted: int, now: float) -> None:
        wanted = min(max(wanted, 1), self.max_replicas)
        for log, span in ((self.ups, 30.0), (self.downs, 180.0)):
            log.append((now, wanted))
            while log and log[0][0] < now - span:
                log.popleft()
        if wanted > self.replicas:
            wanted = min(w for _, w in self.ups)
            if wanted > self.replicas and now - self.last_up >= 60.0:
                self.replicas = min(wanted, self.replicas + max(4, self.replicas))
                self.last_up = now
        elif wanted < self.replicas:
            wanted = max(w for _, w in self.downs)
            if wanted < self.replicas and now - self.last_down >= 120.0:
                self.replicas -= 1
                self.last_down = now


class SpotHedgePeer(ReactivePeer):
    """SkyServe's SpotHedge: a request-rate target on spot plus num_overprovision,
    with on-demand replicas launched while spot replicas are missing (preempted or
    unavailable), upscale after 60 s above target, downscale after `window_s` below."""

    def __init__(self, scenario: Scenario, need: MinuteNeed, setting: PeerSetting) -> None:
        super().__init__(scenario, need, setting)
        self.spot = _spot_pool(scenario)
        self.od = scenario.on_demand_pool
        self.above_since = self.below_since = math.inf
        self.alive_spot = self.replicas + setting.overprovision

    def initial(self) -> Mapping[str, int]:
        return {self.spot: self.replicas + self.setting.overprovision, self.od: 0}

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        if now - self.last_sync >= self.sync_s - 1e-9:
            self.last_sync = now
            wanted = min(
                max(
                    1,
                    math.ceil(
                        obs.snapshot.arrival_rate_rps / (self.setting.target * self.replica_rate)
                    ),
                ),
                self.max_replicas,
            )
            self._hysteresis(wanted, now)
            pool = obs.snapshot.pools.get(self.spot)
            self.alive_spot = pool.total if pool is not None else 0
        spot = self.replicas + self.setting.overprovision
        od = max(0, self.replicas - self.alive_spot) if self.spot != self.od else 0
        return PolicyDecision({self.spot: spot, self.od: od}, self.spill)

    def _hysteresis(self, wanted: int, now: float) -> None:
        self.above_since = min(self.above_since, now) if wanted > self.replicas else math.inf
        self.below_since = min(self.below_since, now) if wanted < self.replicas else math.inf
        if now - self.above_since >= 60.0:
            self.replicas, self.above_since = wanted, math.inf
        elif now - self.below_since >= self.setting.window_s:
            self.replicas, self.below_since = wanted, math.inf


class StaticPeer:
    """A fixed fleet: `target` times the trace's P95-minute need (sized with hindsight)."""

    def __init__(self, scenario: Scenario, need: MinuteNeed, setting: PeerSetting) -> None:
        self.name = setting.family
        finite = sorted(x for x in need.replicas_all if math.isfinite(x))
        p50 = finite[len(finite) // 2] if finite else 1.0
        p95 = finite[int(0.95 * (len(finite) - 1))] if finite else 1.0
        total = max(1, math.ceil(p95 * setting.target))
        floor = max(1, math.ceil(p50)) if setting.placement == "mixed" else 0
        self.fleet = place(scenario, setting.placement, total, floor)
        self.spill = gateway(scenario, setting, max(1, need.concurrency_limit_all))

    def initial(self) -> Mapping[str, int]:
        return dict(self.fleet)

    def decide(self, obs: Observation, now: float) -> PolicyDecision:
        return PolicyDecision(dict(self.fleet), self.spill)


def build_peer(
    setting: PeerSetting, scenario: Scenario, need: MinuteNeed
) -> ReactivePeer | StaticPeer:
    """The policy object for one setting."""
    if setting.kind == "static":
        return StaticPeer(scenario, need, setting)
    if setting.kind == "llmd_slo":
        return LlmdSloPeer(scenario, need, setting)
    if setting.kind == "spothedge":
        return SpotHedgePeer(scenario, need, setting)
    return ReactivePeer(scenario, need, setting)
