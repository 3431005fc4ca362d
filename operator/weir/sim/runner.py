"""The discrete-event simulator: one trace, one scenario, one policy.

Requests arrive from the trace, go through the same admission function the
live router calls, and run on replicas (weir.sim.replica, timed by the
engine's own physics, weir.sim.engine, at `RunConfig.engine_speed` times its
profile) or the hosted endpoint (weir.sim.hosted). Replicas take their
pool's cold start to become ready; spot replicas are interrupted at seeded
random times, or as a real spot trace says (weir.sim.spot), after their
notice; clients may abandon, retry or send duplicates (weir.sim.stresses);
tokens are judged by the rule the router uses (weir.planner.usefulness); the
policy runs every control period on delayed, windowed metrics.
Events live in one heap; arrivals are merged from the sorted trace. The run
starts `preroll_s` early on a copy of the trace's opening so every policy
reaches its own steady state; nothing before trace time 0 is accounted.
Same seed, same result; every accounted request ends useful, late or failed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import cast

from weir.api.profile import EngineProfile
from weir.planner.admission import HostedLoad, ReplicaLoad, RequestShape, admit
from weir.planner.economics import hosted_dollars
from weir.planner.types import PoolObservation, SpillPolicy
from weir.planner.usefulness import Usefulness, judge_tokens, late_in_chunk
from weir.sim.calibrate import engine_for
from weir.sim.clients import Clients, cut_short, next_attempt
from weir.sim.engine import REPLICA_SPEED_SIGMA
from weir.sim.hosted import HostedSim
from weir.sim.policy import FleetMetrics, Observation, Policy, PolicyDecision, local_only
from weir.sim.prefix import FleetCache
from weir.sim.recorder import Recorder, RunResult
from weir.sim.replica import Job, Replica
from weir.sim.scenario import Scenario
from weir.sim.spot import SpotRisk
from weir.sim.telemetry import Telemetry
from weir.sim.traces import Request

_WAKE, _READY, _NOTICE, _KILL, _TICK, _GIVE_UP, _RESEND, _RETRY, _RECLAIM = range(9)
_SHARE_WINDOW_S = 60.0


@dataclass(frozen=True)
class RunConfig:
    """Knobs of one run that are not part of the scenario.

    `engine_speed` runs every simulated engine at that multiple of its
    profile's speed (0.8: steps take 1.25 times as long) while the planner and
    the peers still read the profile as published: robustness to a wrong
    profile, measured by changing only the truth.
    """

    seed: int = 0
    preroll_s: float = 900.0
    drain_limit_s: float = 1800.0
    engine_speed: float = 1.0

    def __post_init__(self) -> None:
        if not math.isfinite(self.engine_speed) or self.engine_speed <= 0:
            raise ValueError(f"engine_speed must be finite and > 0, got {self.engine_speed}")


class Simulation:
    """State of one run; `run()` drives it to the end."""

    def __init__(
        self,
        trace: Sequence[Request],
        scenario: Scenario,
        profiles: Mapping[str, EngineProfile],
        policy: Policy,
        config: RunConfig,
    ) -> None:
        self.scenario = scenario
        self.policy = policy
        self.config = config
        self.rng = random.Random(config.seed)
        self.speed_rng = random.Random(config.seed * 15_485_863 + 5)
        self.engines = {pool: engine_for(profiles[pool]) for pool in scenario.pools}
        self.pool_names = [b.pool for b in scenario.deployment.pools]
        self.heap: list[tuple[float, int, int, object]] = []
        self.seq = itertools.count()
        self.replicas: list[Replica] = []
        self.all_replicas: list[Replica] = []
        self.rid = itertools.count()
        self.waiting: deque[Job] = deque()
        hosted_rng = random.Random(config.seed * 7919 + 1)
        stress = scenario.stresses
        self.hosted = (
            HostedSim(scenario.hosted, hosted_rng, stress.hosted_prefill_tokens_per_second)
            if scenario.hosted
            else None
        )
        self.retrying: dict[int, Job] = {}
        self.clients = Clients(stress, random.Random(config.seed * 104_729 + 3))
        self.dispatches: deque[tuple[float, bool, float]] = deque()
        self.hosted_recent = 0
        self.hosted_dollars_recent = 0.0
        self.spill: SpillPolicy = local_only({name: 0 for name in self.pool_names})
        tel = scenario.telemetry
        self.telemetry = Telemetry(0.0, tel.window_seconds, tel.scrape_delay_seconds)
        self.fleet_samples: list[tuple[float, FleetMetrics]] = []
        self.jobs = self._jobs(trace)
        self.accounting_start = config.preroll_s
        self.trace_end = config.preroll_s + (trace[-1].arrival_s if trace else 0.0)
        self.recorder = Recorder(self.pool_names, len(trace), self.accounting_start, self.trace_end)
        self.cache = FleetCache(scenario.prefix_cache_tokens)
        horizon = self.trace_end + config.drain_limit_s
        self.spot = SpotRisk(scenario, random.Random(config.seed * 31 + 7), horizon)

    def _jobs(self, trace: Sequence[Request]) -> list[tuple[Request, float, bool, int]]:
        pre = self.config.preroll_s
        opening = [r for r in trace if r.arrival_s < pre]
        out = [(r, r.arrival_s, False, -1) for r in opening]
        out += [(r, r.arrival_s + pre, True, i) for i, r in enumerate(trace)]
        out.sort(key=lambda item: item[1])
        return out

    # -- events ---------------------------------------------------------------------------
    def push(self, at: float, kind: int, payload: object) -> None:
        """Schedule an event."""
        heapq.heappush(self.heap, (at, next(self.seq), kind, payload))

    def run(self) -> RunResult:
        """Drive the run to completion and return what was recorded."""
        for pool, count in self.policy.initial().items():
            for _ in range(count):
                self._start_replica(pool, 0.0, ready=True)
        self.push(0.0, _TICK, None)
        for at, pool, fraction in self.spot.pool_reclaims():
            notice = self.scenario.pools[pool].interruption_notice_seconds
            self.push(max(0.0, at - notice), _RECLAIM, (pool, fraction, at))
        arrivals = iter(self.jobs)
        upcoming = next(arrivals, None)
        while True:
            next_event = self.heap[0][0] if self.heap else float("inf")
            if upcoming is not None and upcoming[1] < next_event:
                self._arrive(*upcoming)
                upcoming = next(arrivals, None)
                continue
            if not self.heap:
                break
            at, _, kind, payload = heapq.heappop(self.heap)
            if kind == _TICK and not self._tick(at, upcoming is None):
                break
            self._dispatch_event(at, kind, payload)
        self._finish()
        return self.recorder.result(self.all_replicas, self.scenario, self.policy.name)

    def _dispatch_event(self, at: float, kind: int, payload: object) -> None:
        if kind == _WAKE:
            replica, version = cast(tuple[Replica, int], payload)
            if replica.version == version and replica.ended_s is None:
                self._on_wake(replica, at)
        elif kind == _READY:
            self._on_ready(cast(Replica, payload), at)
        elif kind == _NOTICE:
            self._on_notice(cast(tuple[Replica, float], payload), at)
        elif kind == _KILL:
            self._on_kill(cast(Replica, payload), at)
        elif kind == _GIVE_UP:
            self._on_give_up(*cast(tuple[Job, int, str], payload), at)
        elif kind == _RESEND:
            self._on_resend(*cast(tuple[Job, int], payload), at)
        elif kind == _RETRY:
            job = cast(Job, payload)
            del self.retrying[id(job)]
            self._send(job, at)
        elif kind == _RECLAIM:
            self._on_reclaim(*cast(tuple[str, float, float], payload), at)

    # -- requests ---------------------------------------------------------------------------
    def _arrive(self, request: Request, at: float, accounted: bool, index: int) -> None:
        cached = self.cache.hits(request)
        job = Job(
            index=index,
            arrival_s=at,
            input_tokens=request.input_tokens,
            output_tokens=request.output_tokens,
            prefill_tokens=max(1, request.input_tokens - cached),
            cached_tokens=cached,
            accounted=accounted,
            hashes=request.hash_ids,
        )
        if accounted:
            self.recorder.demand(job)
        self._send(job, at)

    def _send(self, job: Job, at: float) -> None:
        """An attempt reaches the router: the client starts its timers."""
        self.telemetry.arrival(at, job.input_tokens, job.prefill_tokens, job.output_tokens)
        for timer in self.clients.timers(job, at):
            if timer.kind == "resend":
                self.push(timer.at_s, _RESEND, (job, job.attempt))
            else:
                self.push(timer.at_s, _GIVE_UP, (job, job.attempt, timer.kind))
        self._route(job, at)

    def _hosted_load(self, now: float) -> HostedLoad:
        while self.dispatches and self.dispatches[0][0] <= now - _SHARE_WINDOW_S:
            _, was_hosted, dollars = self.dispatches.popleft()
            self.hosted_recent -= was_hosted
            self.hosted_dollars_recent -= dollars
        total = len(self.dispatches)
        share = self.hosted_recent / total if total else 0.0
        throttled = self.hosted.throttled(now) if self.hosted else True
        per_hour = self.hosted_dollars_recent * 3600.0 / _SHARE_WINDOW_S
        return HostedLoad(share, per_hour, throttled)

    def _candidates(self) -> dict[str, Replica]:
        best: dict[str, Replica] = {}
        limits = self.spill.concurrency_limit_by_pool
        for replica in self.replicas:
            if replica.state != "ready":
                continue
            current = best.get(replica.pool)
            if current is None or replica.in_flight < current.in_flight:
                best[replica.pool] = replica
        return {str(r.rid): r for r in best.values() if r.in_flight < limits.get(r.pool, 0)}

    def _route(self, job: Job, now: float, queued: bool = False) -> bool:
        """Admit one job; returns False when it must (keep) wait."""
        shape = RequestShape(job.prefill_tokens, job.output_tokens)
        hosted_load = self._hosted_load(now)
        waiting = len(self.waiting) - (1 if queued else 0)
        candidates = self._candidates()
        loads = [ReplicaLoad(key, r.pool, r.in_flight) for key, r in candidates.items()]
        decision = admit(shape, loads, hosted_load, self.spill, waiting)
        if decision.route == "local":
            replica = candidates[str(decision.replica_id)]
            self._note_dispatch(now, False, 0.0)
            job.dispatched_s = now
            replica.add(job, now)
            self._reschedule(replica, now)
            return True
        if decision.route == "hosted":
            self._send_hosted(job, now)
            return True
        if decision.route == "wait":
            if not queued:
                self.waiting.append(job)
            return False
        self.recorder.failed(job, now)
        return True

    def _note_dispatch(self, now: float, hosted: bool, dollars: float) -> None:
        self.dispatches.append((now, hosted, dollars))
        self.hosted_recent += hosted
        self.hosted_dollars_recent += dollars

    def _send_hosted(self, job: Job, now: float) -> None:
        assert self.hosted is not None
        ttft, itl, dollars, cached = self.hosted.serve(
            now, job.input_tokens, job.output_tokens, job.hashes
        )
        self._note_dispatch(now, True, dollars)
        self.telemetry.hosted_sent(now, job.input_tokens, cached)
        first = now + ttft
        end = first + itl * (job.output_tokens - 1)
        job.ended = True
        job.first_token_s = first
        cut = cut_short(job, first, end, itl)
        if cut is not None:
            quit_s, produced = cut
            spec = self.scenario.hosted
            assert spec is not None
            paid = hosted_dollars(spec, job.input_tokens, cached, produced)
            self._abandon(job, produced, paid, quit_s, False)
            return
        total_ttft = first - job.arrival_s
        late = late_in_chunk(itl, 1, self._slo_itl) * max(job.output_tokens - 1, 0)
        verdict = self._judge(job, total_ttft, itl, late)
        self.recorder.completed(
            job, end, total_ttft, itl, verdict.reason == "useful", True, dollars
        )

    def _judge(self, job: Job, ttft: float, itl: float, late: float) -> Usefulness:
        """The shared usefulness rule; puts the useful token count on the job."""
        verdict = judge_tokens(
            completed="completed",
            duplicate=job.duplicate,
            output_tokens=job.output_tokens,
            ttft_s=ttft,
            mean_itl_s=itl,
            late_tokens=late,
            ttft_target_s=self._slo_ttft,
            itl_target_s=self._slo_itl,
            rule=self.scenario.stresses.itl_rule,
        )
        job.useful_tokens = verdict.useful_tokens
        return verdict

    # -- clients --------------------------------------------------------------------------
    def _on_give_up(self, job: Job, attempt: int, why: str, now: float) -> None:
        if job.ended or job.attempt != attempt:
            return
        if why == "give_up" and 0 <= job.first_token_s <= now:
            return
        produced = 0
        host = job.host
        if isinstance(host, Replica):
            produced = host.cancel(job, now)
            self._reschedule(host, now)
            self._maybe_end_draining(host, now)
        elif job in self.waiting:
            self.waiting.remove(job)
        else:
            return
        self._abandon(job, produced, 0.0, now, True)
        self._drain_waiting(now)

    def _abandon(self, job: Job, produced: int, dollars: float, now: float, local: bool) -> None:
        """The client left: its tokens are wasted, its cost stays; it may try again."""
        job.ended = True
        if local and produced:
            self.telemetry.local_tokens(now, produced, 0.0)
        backoff = self.clients.retries(job)
        self.recorder.abandoned(job, produced, dollars, final=backoff is None)
        if backoff is not None:
            retry = next_attempt(job, now + backoff)
            self.retrying[id(retry)] = retry
            self.push(now + backoff, _RETRY, retry)

    def _on_resend(self, job: Job, attempt: int, now: float) -> None:
        """A naive retry timer fired: the same request again, the first one not cancelled."""
        if job.ended or job.attempt != attempt or 0 <= job.first_token_s <= now:
            return
        self._send(next_attempt(job, now, duplicate=True), now)

    @property
    def _slo_ttft(self) -> float:
        return self.scenario.deployment.slo.ttft_seconds

    @property
    def _slo_itl(self) -> float:
        return self.scenario.deployment.slo.itl_seconds

    def _drain_waiting(self, now: float) -> None:
        while self.waiting:
            if not self._route(self.waiting[0], now, queued=True):
                return
            self.waiting.popleft()

    # -- replicas ---------------------------------------------------------------------------
    def _reschedule(self, replica: Replica, now: float) -> None:
        replica.version += 1
        at = replica.next_event_s()
        if at is not None:
            self.push(max(at, now), _WAKE, (replica, replica.version))

    def _on_wake(self, replica: Replica, now: float) -> None:
        for job in replica.process(now):
            job.ended = True
            ttft = job.first_token_s - job.arrival_s
            decode_s = now - job.prefill_done_s
            itl = decode_s / (job.output_tokens - 1) if job.output_tokens > 1 else 0.0
            verdict = self._judge(job, ttft, itl, job.late_tokens)
            end = now + replica.first_token_overhead_s
            useful = verdict.reason == "useful"
            self.recorder.completed(job, end, ttft, itl, useful, False, 0.0)
            self.telemetry.local_tokens(now, job.output_tokens, verdict.useful_tokens)
            tpot = itl if job.output_tokens > 1 else None
            self.telemetry.engine_done(
                now, replica.pool, job.output_tokens, tpot, now - job.dispatched_s
            )
        self._reschedule(replica, now)
        self._maybe_end_draining(replica, now)
        self._drain_waiting(now)

    def _maybe_end_draining(self, replica: Replica, now: float) -> None:
        if replica.state == "draining" and replica.in_flight == 0 and replica.interrupt_s is None:
            self._end_replica(replica, now)

    def _start_replica(self, pool: str, now: float, ready: bool) -> None:
        spec = self.scenario.pools[pool]
        start = now if ready else self.spot.launch_at(pool, now)
        cold = 0.0 if ready else spec.cold_start_seconds
        slowdown = math.exp(self.speed_rng.gauss(0.0, REPLICA_SPEED_SIGMA))
        replica = Replica(
            next(self.rid),
            pool,
            self.engines[pool],
            start,
            start + cold,
            itl_bound_s=self._slo_itl,
            slowdown=slowdown / self.config.engine_speed,
        )
        self.replicas.append(replica)
        self.all_replicas.append(replica)
        if ready:
            replica.state = "ready"
        elif math.isfinite(start):
            self.push(start + cold, _READY, replica)
        if not math.isfinite(start):
            return
        at = self.spot.interruption_s(pool, start)
        if at is not None:
            self.push(max(now, at - spec.interruption_notice_seconds), _NOTICE, (replica, at))

    def _on_ready(self, replica: Replica, now: float) -> None:
        if replica.state == "warming" and replica.ended_s is None:
            replica.state = "ready"
            replica.last_s = now
            self._drain_waiting(now)

    def _on_notice(self, payload: tuple[Replica, float], now: float) -> None:
        replica, at = payload
        if replica.ended_s is not None:
            return
        replica.state = "draining"
        replica.interrupt_s = at
        self.push(at, _KILL, replica)

    def _on_kill(self, replica: Replica, now: float) -> None:
        if replica.ended_s is not None:
            return
        evicted = replica.evict_all(now)
        self._end_replica(replica, now)
        for job, produced in evicted:
            self.recorder.wasted(job, produced)
            job.retries += 1
            job.produced = 0
            job.late_tokens = 0.0
            job.first_token_s = job.prefill_done_s = -1.0
            self._route(job, now)

    def _on_reclaim(self, pool: str, fraction: float, at: float, now: float) -> None:
        """A correlated reclaim from a multi-node trace: the notice reaches its share."""
        live = [
            r
            for r in self.replicas
            if r.pool == pool and r.ended_s is None and r.interrupt_s is None
        ]
        for replica in self.spot.chosen(live, fraction):
            self._on_notice((replica, at), now)

    def _report_engine(self, replica: Replica, now: float) -> None:
        """Hand the engine's running-request gauge since the last report to telemetry."""
        if replica.state not in ("ready", "draining"):
            return
        since = max(replica.reported_s, replica.ready_s)
        busy = replica.busy_through(now)
        if now > since:
            self.telemetry.engine_span(
                now, replica.pool, replica.rid, now - since, busy - replica.reported_busy_s
            )
        replica.reported_s, replica.reported_busy_s = now, busy

    def _end_replica(self, replica: Replica, now: float) -> None:
        self._report_engine(replica, now)
        replica.ended_s = now
        replica.state = "gone"
        replica.version += 1
        self.replicas.remove(replica)

    def _scale(self, decision: PolicyDecision, now: float) -> None:
        for pool in self.pool_names:
            live = [r for r in self.replicas if r.pool == pool and r.state in ("warming", "ready")]
            want = max(0, int(decision.replicas.get(pool, 0)))
            for _ in range(want - len(live)):
                self._start_replica(pool, now, ready=False)
            surplus = len(live) - want
            warming = sorted((r for r in live if r.state == "warming"), key=lambda r: -r.created_s)
            ready = sorted((r for r in live if r.state == "ready"), key=lambda r: r.in_flight)
            for replica in (warming + ready)[: max(0, surplus)]:
                if replica.state == "warming" or replica.in_flight == 0:
                    self._end_replica(replica, now)
                else:
                    replica.state = "draining"

    # -- control loop -------------------------------------------------------------------------
    def _tick(self, now: float, arrivals_done: bool) -> bool:
        busy = self.waiting or self.retrying or any(r.in_flight for r in self.replicas)
        if arrivals_done and not busy:
            return False
        if arrivals_done and now > self.trace_end + self.config.drain_limit_s:
            return False
        pools = {
            name: PoolObservation(
                ready=sum(1 for r in self.replicas if r.pool == name and r.state == "ready"),
                warming=sum(1 for r in self.replicas if r.pool == name and r.state == "warming"),
            )
            for name in self.pool_names
        }
        fleet_now = FleetMetrics(
            in_flight=sum(r.in_flight for r in self.replicas) + len(self.waiting),
            waiting=sum(r.waiting for r in self.replicas) + len(self.waiting),
            ready=sum(p.ready for p in pools.values()),
        )
        self.fleet_samples.append((now, fleet_now))
        for replica in self.replicas:
            self._report_engine(replica, now)
        delay = self.scenario.telemetry.scrape_delay_seconds
        seen = [m for t, m in self.fleet_samples[-8:] if t <= now - delay]
        obs = Observation(self.telemetry.snapshot(now, pools), seen[-1] if seen else fleet_now)
        decision = self.policy.decide(obs, now)
        self.spill = decision.spill
        self._scale(decision, now)
        self._drain_waiting(now)
        self.recorder.tick(
            now, self.replicas, self.all_replicas, self.scenario, self._hosted_load(now)
        )
        self.push(now + self.scenario.deployment.control.period_seconds, _TICK, None)
        return True

    def _finish(self) -> None:
        now = self.trace_end + self.config.drain_limit_s
        for job in [*self.waiting, *self.retrying.values()]:
            self.recorder.failed(job, now)
        self.waiting.clear()
        self.retrying.clear()
        for replica in list(self.replicas):
            for job, produced in replica.evict_all(now):
                self.recorder.wasted(job, produced)
                self.recorder.failed(job, now)


def simulate(
    trace: Sequence[Request],
    scenario: Scenario,
    profiles: Mapping[str, EngineProfile],
    policy: Policy,
    config: RunConfig | None = None,
) -> RunResult:
    """Replay `trace` under `scenario` with `policy`; deterministic per `config.seed`."""
    if not trace:
        raise ValueError("simulate needs a non-empty trace")
    return Simulation(trace, scenario, profiles, policy, config or RunConfig()).run()
