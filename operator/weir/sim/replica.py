"""One simulated engine replica: continuous batching with chunked prefill.

Per-token events would make an hour at 10x rate take hours, so a replica
keeps two fluid clocks instead: a decode clock V that advances one token per
engine step for every running request, and the prefill progress of the
request at the head of the prefill queue. Between events the batch is fixed,
so both advance linearly; a request's last token is the moment V reaches
its target, found analytically. A step of `n` running requests with mean
context `ctx` lasts `a + b*n + c*n*ctx` (weir.planner.capacity.EngineParams),
plus `chunk * prefill_s_per_token` when a prompt chunk rides along. Requests
beyond the batch limit or the KV cache wait in the engine's queue.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from weir.planner.capacity import EngineParams

_EPS = 1e-7


@dataclass(slots=True, eq=False)
class Job:
    """A request attempt inside the simulator (mutable bookkeeping)."""

    index: int
    arrival_s: float
    input_tokens: int
    output_tokens: int
    prefill_tokens: int
    cached_tokens: int
    accounted: bool
    first_token_s: float = -1.0
    prefill_done_s: float = -1.0
    v_target: float = 0.0
    retries: int = 0
    dispatched_s: float = 0.0
    hashes: tuple[int, ...] = field(default=())

    @property
    def context(self) -> float:
        """KV tokens the request holds while it runs (prompt plus half its output)."""
        return self.input_tokens + self.output_tokens / 2


@dataclass(slots=True, eq=False)
class _Prefill:
    job: Job
    remaining: float


class Replica:
    """A replica of one pool; see the module docstring for the mechanics."""

    _seq = itertools.count()

    def __init__(
        self, rid: int, pool: str, params: EngineParams, created_s: float, ready_s: float
    ) -> None:
        self.rid = rid
        self.pool = pool
        self.params = params
        self.created_s = created_s
        self.ready_s = ready_s
        self.ended_s: float | None = None
        self.state = "warming"
        self.interrupt_s: float | None = None
        self.queue: deque[Job] = deque()
        self.prefill: deque[_Prefill] = deque()
        self.decoding: list[tuple[float, int, Job]] = []
        self.dec_ctx = 0.0
        self.kv_used = 0.0
        self.admitted = 0
        self.in_flight = 0
        self.v = 0.0
        self.last_s = created_s
        self.version = 0
        self._chunk_cost = params.chunk_tokens * params.prefill_s_per_token

    @property
    def accepting(self) -> bool:
        """Ready and not draining."""
        return self.state == "ready"

    @property
    def waiting(self) -> int:
        """Requests not yet decoding (engine queue plus prefill queue)."""
        return len(self.queue) + len(self.prefill)

    def _step(self) -> float:
        p = self.params
        n = len(self.decoding)
        step = p.step_base_s + p.step_per_seq_s * n + p.step_per_seq_ktok_s * self.dec_ctx / 1000.0
        return step + self._chunk_cost if self.prefill else step

    def advance(self, now: float) -> None:
        """Move both clocks to `now` with the batch as it has been since the last event."""
        dt = now - self.last_s
        if dt <= 0:
            return
        step = self._step()
        self.v += dt / step
        if self.prefill:
            self.prefill[0].remaining -= dt * self.params.chunk_tokens / step
        self.last_s = now

    def next_event_s(self) -> float | None:
        """When the next prefill or decode completes, with the batch unchanged."""
        if not self.prefill and not self.decoding:
            return None
        step = self._step()
        best = float("inf")
        if self.prefill:
            remaining = max(0.0, self.prefill[0].remaining)
            best = self.last_s + remaining * step / self.params.chunk_tokens
        if self.decoding:
            best = min(best, self.last_s + max(0.0, self.decoding[0][0] - self.v) * step)
        return best

    def add(self, job: Job, now: float) -> None:
        """A request routed here (it may wait in the engine queue)."""
        self.advance(now)
        self.in_flight += 1
        self.queue.append(job)
        self._admit()

    def _admit(self) -> None:
        p = self.params
        while self.queue and self.admitted < p.max_batch:
            job = self.queue[0]
            if self.admitted > 0 and self.kv_used + job.context > p.kv_cache_tokens:
                break
            self.queue.popleft()
            self.admitted += 1
            self.kv_used += job.context
            self.prefill.append(_Prefill(job, float(max(job.prefill_tokens, 1))))

    def process(self, now: float) -> list[Job]:
        """Complete what is due at `now`; returns finished jobs (first_token_s set)."""
        self.advance(now)
        done: list[Job] = []
        t0 = self.params.ttft_base_s
        while self.prefill and self.prefill[0].remaining <= _EPS * self.params.chunk_tokens:
            job = self.prefill.popleft().job
            job.prefill_done_s = now
            job.first_token_s = now + t0
            if job.output_tokens <= 1:
                self._release(job)
                done.append(job)
                continue
            job.v_target = self.v + job.output_tokens - 1
            self.dec_ctx += job.context
            heapq.heappush(self.decoding, (job.v_target, next(self._seq), job))
        while self.decoding and self.decoding[0][0] <= self.v + _EPS:
            job = heapq.heappop(self.decoding)[2]
            self.dec_ctx -= job.context
            self._release(job)
            done.append(job)
        if not self.decoding:
            self.dec_ctx = 0.0
        self._admit()
        return done

    def _release(self, job: Job) -> None:
        self.admitted -= 1
        self.kv_used -= job.context
        self.in_flight -= 1

    def evict_all(self, now: float) -> list[tuple[Job, int]]:
        """Interruption: every job in the replica with the tokens it had already produced."""
        self.advance(now)
        out: list[tuple[Job, int]] = [(job, 0) for job in self.queue]
        out += [(entry.job, 0) for entry in self.prefill]
        for v_target, _, job in self.decoding:
            produced = 1 + int(max(0.0, job.output_tokens - 1 - (v_target - self.v)))
            out.append((job, produced))
        self.queue.clear()
        self.prefill.clear()
        self.decoding.clear()
        self.dec_ctx = self.kv_used = 0.0
        self.admitted = self.in_flight = 0
        return out
