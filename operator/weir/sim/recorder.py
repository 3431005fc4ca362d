"""What a run records: per-request outcomes, spend, and time series for plots.

Kept apart from the event loop so the accounting rules are in one place:
only requests of the trace proper (not the preroll) are counted; every one
ends useful, late (some or all of its tokens wasted), failed or abandoned;
tokens produced by an attempt that was killed or abandoned are wasted, and
so are a duplicate attempt's (it is paid, never counted); GPU spend is every
replica's time (warming, idle, draining included) inside the accounted span;
hosted spend is per attempt, input, cached input and output priced apart.
Under the per-token ITL rule a request may be partly useful: the runner
puts its useful token count on the job (`Job.useful_tokens`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

from weir.planner.admission import HostedLoad
from weir.planner.economics import CostSummary, replica_dollars
from weir.sim.replica import Job, Replica
from weir.sim.scenario import Scenario

USEFUL, LATE, FAILED, ABANDONED = 0, 1, 2, 3


@dataclass
class Series:
    """Per control tick, from trace time 0."""

    t_s: list[float] = field(default_factory=list)
    ready: dict[str, list[int]] = field(default_factory=dict)
    warming: dict[str, list[int]] = field(default_factory=dict)
    hosted_share: list[float] = field(default_factory=list)
    ttft_p95_s: list[float] = field(default_factory=list)
    dollars: list[float] = field(default_factory=list)
    useful_tokens: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class RunResult:
    """Everything a benchmark reports about one run."""

    policy: str
    cost: CostSummary
    requests: int
    useful_requests: int
    late_requests: int
    failed_requests: int
    hosted_requests: int
    ttft_p95_s: float
    itl_p95_s: float
    series: Series
    abandoned_requests: int = 0
    duplicate_attempts: int = 0
    retried_attempts: int = 0
    preemptions: int = 0

    def summary(self) -> dict[str, float]:
        """The per-policy numbers of summary.json."""
        return {
            "dollars_per_million_useful_tokens": self.cost.dollars_per_million_useful_tokens,
            "useful_token_fraction": self.cost.useful_token_fraction,
            "total_dollars": self.cost.total_dollars,
            "gpu_dollars": sum(self.cost.gpu_dollars_by_pool.values()),
            "hosted_dollars": self.cost.hosted_dollars,
            "useful_tokens": self.cost.useful_tokens,
            "wasted_tokens": self.cost.wasted_tokens,
            "ttft_p95_s": self.ttft_p95_s,
            "itl_p95_s": self.itl_p95_s,
            "requests": self.requests,
            "failed_requests": self.failed_requests,
            "hosted_request_share": self.hosted_requests / self.requests if self.requests else 0.0,
            "abandoned_requests": self.abandoned_requests,
            "duplicate_attempts": self.duplicate_attempts,
            "retried_attempts": self.retried_attempts,
            "preemptions": self.preemptions,
        }


class Recorder:
    """Accumulates outcomes during a run."""

    def __init__(self, pools: list[str], requests: int, start_s: float, end_s: float) -> None:
        self.pools = pools
        self.start_s = start_s
        self.end_s = end_s
        self.expected = requests
        self.outcome = np.full(requests, -1, dtype=np.int8)
        self.ttft = np.full(requests, np.nan)
        self.itl = np.full(requests, np.nan)
        self.demanded = 0.0
        self.useful = 0.0
        self.wasted_tokens = 0.0
        self.hosted_dollars = 0.0
        self.hosted_requests = 0
        self.duplicates = 0
        self.retries = 0
        self.preemptions = 0
        self.recent: deque[tuple[float, float]] = deque()
        self.series = Series(ready={p: [] for p in pools}, warming={p: [] for p in pools})

    def demand(self, job: Job) -> None:
        """An accounted request arrived."""
        self.demanded += job.output_tokens

    def completed(
        self,
        job: Job,
        end_s: float,
        ttft: float,
        itl: float,
        useful: bool,
        hosted: bool,
        dollars: float,
    ) -> None:
        """A request attempt finished (locally or hosted); a duplicate is paid, never counted."""
        self.recent.append((end_s, ttft))
        if not job.accounted:
            return
        if hosted:
            self.hosted_dollars += dollars
        if job.duplicate:
            self.duplicates += 1
            self.wasted_tokens += job.output_tokens
            return
        if self.outcome[job.index] != -1:
            raise RuntimeError(f"request {job.index} finished twice")
        tokens = float(job.output_tokens)
        kept = (tokens if useful else 0.0) if job.useful_tokens < 0 else job.useful_tokens
        self.outcome[job.index] = USEFUL if useful and kept >= tokens else LATE
        self.ttft[job.index] = ttft
        self.itl[job.index] = itl
        self.useful += kept
        self.wasted_tokens += tokens - kept
        if hosted:
            self.hosted_requests += 1

    def abandoned(self, job: Job, produced: int, dollars: float, final: bool) -> None:
        """The client gave up on an attempt: its tokens are wasted, its cost stays."""
        if not job.accounted:
            return
        self.wasted_tokens += produced
        self.hosted_dollars += dollars
        if job.duplicate:
            self.duplicates += 1
        elif final:
            if self.outcome[job.index] != -1:
                raise RuntimeError(f"request {job.index} ended twice")
            self.outcome[job.index] = ABANDONED
        else:
            self.retries += 1

    def failed(self, job: Job, now: float) -> None:
        """A request was refused or never finished (a duplicate attempt only wastes)."""
        if job.accounted and not job.duplicate:
            if self.outcome[job.index] != -1:
                raise RuntimeError(f"request {job.index} ended twice")
            self.outcome[job.index] = FAILED

    def wasted(self, job: Job, produced: int) -> None:
        """Tokens of a killed attempt."""
        if job.accounted:
            self.wasted_tokens += produced

    def gpu_dollars(
        self, replicas: Iterable[Replica], scenario: Scenario, until: float
    ) -> dict[str, float]:
        """Spend of every replica inside [start, until], by pool."""
        out = {p: 0.0 for p in self.pools}
        for r in replicas:
            lo = max(r.created_s, self.start_s)
            hi = min(r.ended_s if r.ended_s is not None else until, until)
            if hi > lo:
                price = scenario.pools[r.pool].dollars_per_replica_hour
                out[r.pool] = out.get(r.pool, 0.0) + replica_dollars(hi - lo, price)
        return out

    def tick(
        self,
        now: float,
        live: list[Replica],
        every: list[Replica],
        scenario: Scenario,
        hosted: HostedLoad,
    ) -> None:
        """Record one point of the time series (trace time >= 0 only)."""
        while self.recent and self.recent[0][0] <= now - 60.0:
            self.recent.popleft()
        if now < self.start_s or now > self.end_s + 60:
            return
        s = self.series
        s.t_s.append(now - self.start_s)
        for pool in self.pools:
            s.ready[pool].append(sum(1 for r in live if r.pool == pool and r.state == "ready"))
            s.warming[pool].append(sum(1 for r in live if r.pool == pool and r.state == "warming"))
        s.hosted_share.append(hosted.recent_share)
        window = [t for _, t in self.recent]
        s.ttft_p95_s.append(float(np.percentile(window, 95)) if window else 0.0)
        gpu = sum(self.gpu_dollars(every, scenario, now).values())
        s.dollars.append(gpu + self.hosted_dollars)
        s.useful_tokens.append(self.useful)

    def result(self, replicas: list[Replica], scenario: Scenario, policy: str) -> RunResult:
        """Close the books."""
        missing = int(np.sum(self.outcome == -1))
        if missing:
            raise RuntimeError(f"{missing} requests disappeared (conservation broken)")
        served = (self.outcome == USEFUL) | (self.outcome == LATE)
        cost = CostSummary(
            gpu_dollars_by_pool=self.gpu_dollars(replicas, scenario, self.end_s),
            hosted_dollars=self.hosted_dollars,
            useful_tokens=self.useful,
            wasted_tokens=self.wasted_tokens,
            demanded_tokens=self.demanded,
        )
        return RunResult(
            policy=policy,
            cost=cost,
            requests=self.expected,
            useful_requests=int(np.sum(self.outcome == USEFUL)),
            late_requests=int(np.sum(self.outcome == LATE)),
            failed_requests=int(np.sum(self.outcome == FAILED)),
            hosted_requests=self.hosted_requests,
            ttft_p95_s=_pct(self.ttft[served], 95),
            itl_p95_s=_pct(self.itl[served], 95),
            series=self.series,
            abandoned_requests=int(np.sum(self.outcome == ABANDONED)),
            duplicate_attempts=self.duplicates,
            retried_attempts=self.retries,
            preemptions=sum(r.preemptions for r in replicas),
        )


def _pct(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else 0.0


def pools_of(result: RunResult) -> Mapping[str, list[int]]:
    """Replicas (ready plus warming) per pool over time."""
    s = result.series
    return {p: [a + b for a, b in zip(s.ready[p], s.warming[p], strict=True)] for p in s.ready}
