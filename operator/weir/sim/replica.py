"""One simulated engine replica: continuous batching, chunked prefill, KV cache, preemption.

Every engine step gives one token to each decoding request and up to the
token budget (less the decode tokens) to the prompt at the head of the
prefill queue; its duration is the roofline of `weir.sim.engine`, never the
planner's capacity model. Per-token events would make an hour at 10x rate
take hours, so steps are advanced in runs: between two events (a prompt
done, a request done, the KV cache full, an arrival) every step is alike,
and three clocks move linearly: V counts steps, L counts expected late
steps (the share of jittered steps longer than the ITL bound, which is what
the per-token rule charges), and the head prompt's progress.

The KV cache holds each running request's prompt and the tokens it has
generated; a request is admitted when its prompt fits (as vLLM and
TensorRT-LLM's max-utilisation scheduler do, not knowing the output length),
so contexts grow until the cache is full, and then the newest decoding
request is preempted: its cache is dropped and it goes back to the front of
the queue to recompute its prompt and the tokens it had, then resumes (the
gap is a stall its next token pays for). Clients may cancel (`cancel`).
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from dataclasses import dataclass, field

from weir.sim.engine import EngineSpec, late_step_share

_EPS = 1e-7
_KV_SLACK = 0.5  # tokens: a cache with less room than this is full
_MIN_DT = 1e-9  # s: every event moves time on, so float rounding cannot stall the loop
QUEUED, PREFILL, DECODE, GONE = range(4)


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
    duplicate: bool = False
    attempt: int = 0
    produced: int = 0
    late_tokens: float = 0.0
    stage: int = GONE
    epoch: int = 0
    v_start: float = 0.0
    l_start: float = 0.0
    kv_need: float = 0.0
    admit_seq: int = 0
    stalled_s: float = -1.0
    host: object = None
    useful_tokens: float = -1.0
    ended: bool = False
    give_up_s: float = float("inf")
    timeout_s: float = float("inf")


@dataclass(slots=True, eq=False)
class _Prefill:
    job: Job
    remaining: float


class Replica:
    """A replica of one pool; see the module docstring for the mechanics."""

    _seq = itertools.count()

    def __init__(
        self,
        rid: int,
        pool: str,
        engine: EngineSpec,
        created_s: float,
        ready_s: float,
        itl_bound_s: float = float("inf"),
        slowdown: float = 1.0,
    ) -> None:
        self.rid = rid
        self.pool = pool
        self.engine = engine
        self.itl_bound_s = itl_bound_s
        self.slowdown = slowdown
        self.created_s = created_s
        self.ready_s = ready_s
        self.ended_s: float | None = None
        self.state = "warming"
        self.interrupt_s: float | None = None
        self.queue: deque[Job] = deque()
        self.prefill: deque[_Prefill] = deque()
        self.decoding: list[tuple[float, int, int, Job]] = []
        self.newest: list[tuple[int, int, Job]] = []
        self.n_dec = 0
        self.kv_dec_base = 0.0
        self.kv_prefill = 0.0
        self.admitted = 0
        self.in_flight = 0
        self.preemptions = 0
        self.v = 0.0
        self.late = 0.0
        self.busy_s = 0.0  # integral of the running batch over time (trtllm_num_requests_running)
        self.reported_s = created_s  # engine evidence handed to telemetry up to here
        self.reported_busy_s = 0.0
        self.last_s = created_s
        self.version = 0
        self._cache: tuple[float, float, float] | None = None

    @property
    def first_token_overhead_s(self) -> float:
        """Host time between the last prompt step and the token reaching the router."""
        return self.engine.calibration.first_token_overhead_s

    @property
    def accepting(self) -> bool:
        """Ready and not draining."""
        return self.state == "ready"

    @property
    def waiting(self) -> int:
        """Requests not yet decoding (engine queue plus prefill queue)."""
        return len(self.queue) + len(self.prefill)

    def kv_used(self) -> float:
        """KV tokens held now: prompts being prefilled, running contexts."""
        return self.kv_prefill + self.kv_dec_base + self.n_dec * self.v

    def _step(self) -> tuple[float, float, float]:
        """(step seconds, prompt tokens per step, late-step share) with the batch as it is."""
        if self._cache is not None:
            return self._cache
        e = self.engine
        n = self.n_dec
        ctx = self.kv_dec_base + n * self.v
        q = 0.0
        pos = 0.0
        if self.prefill:
            head = self.prefill[0]
            q = float(max(e.token_budget - n, e.token_budget // 8))
            backlog = 0.0
            for entry in self.prefill:  # only as far as the step's budget reaches
                backlog += entry.remaining if entry.remaining > 0 else 0.0
                if backlog >= q:
                    break
            q = min(q, max(backlog, 1.0))
            pos = max(head.job.kv_need - head.remaining, 0.0) + min(q, head.remaining) / 2
        step = e.step_s(n, ctx, q, pos) * self.slowdown
        self._cache = (step, q, late_step_share(step, self.itl_bound_s) if n else 0.0)
        return self._cache

    def _changed(self) -> None:
        self._cache = None

    def advance(self, now: float) -> None:
        """Move the clocks to `now` with the batch as it has been since the last event."""
        dt = now - self.last_s
        if dt <= 0:
            return
        self.busy_s += self.admitted * dt
        if self.prefill or self.n_dec:
            step, q, late = self._step()
            steps = dt / step
            self.v += steps
            self.late += steps * late
            if self.prefill:
                self.prefill[0].remaining -= steps * q
            self._changed()
        self.last_s = now

    def busy_through(self, now: float) -> float:
        """`busy_s` as it stands at `now` (the batch unchanged since the last event)."""
        return self.busy_s + self.admitted * max(0.0, now - self.last_s)

    def _clean_top(self) -> None:
        while self.decoding and not self._valid(self.decoding[0][2], self.decoding[0][3]):
            heapq.heappop(self.decoding)

    def _valid(self, epoch: int, job: Job) -> bool:
        return job.stage == DECODE and job.epoch == epoch and job.host is self

    def next_event_s(self) -> float | None:
        """When the next prompt, request or cache-full moment comes, with the batch unchanged."""
        self._clean_top()
        if not self.prefill and not self.n_dec:
            return None
        step, q, _ = self._step()
        best = float("inf")
        if self.prefill:
            best = self.last_s + max(0.0, self.prefill[0].remaining) / q * step
        if self.decoding:
            best = min(best, self.last_s + max(0.0, self.decoding[0][0] - self.v) * step)
        if self.n_dec > 1:
            room = self.engine.kv_cache_tokens - self.kv_used() - _KV_SLACK
            best = min(best, self.last_s + max(0.0, room / self.n_dec) * step)
        return max(best, self.last_s + _MIN_DT)

    def add(self, job: Job, now: float) -> None:
        """A request routed here (it may wait in the engine queue)."""
        self.advance(now)
        self.in_flight += 1
        job.host = self
        job.stage = QUEUED
        job.kv_need = float(job.input_tokens + job.produced)
        self.queue.append(job)
        self._admit()

    def _admit(self) -> None:
        e = self.engine
        while self.queue and self.admitted < e.max_batch:
            job = self.queue[0]
            if self.admitted > 0 and self.kv_used() + job.kv_need > e.kv_cache_tokens:
                break
            self.queue.popleft()
            self.admitted += 1
            self.kv_prefill += job.kv_need
            job.stage = PREFILL
            work = job.prefill_tokens if job.produced == 0 else job.kv_need
            self.prefill.append(_Prefill(job, float(max(work, 1))))
            self._changed()

    def process(self, now: float) -> list[Job]:
        """Complete what is due at `now`; returns finished jobs."""
        self.advance(now)
        done: list[Job] = []
        while self.prefill and self.prefill[0].remaining <= _EPS * self.engine.token_budget:
            job = self.prefill.popleft().job
            self.kv_prefill -= job.kv_need
            self._changed()
            if self._prompt_done(job, now):
                self._release(job)
                done.append(job)
        self._clean_top()
        while self.decoding and self.decoding[0][0] <= self.v + _EPS:
            job = heapq.heappop(self.decoding)[3]
            self._leave_decode(job)
            job.produced = job.output_tokens
            self._release(job)
            done.append(job)
            self._clean_top()
        self._preempt_while_full(now)
        self._admit()
        return done

    def _prompt_done(self, job: Job, now: float) -> bool:
        """The prompt step gave the first (or, after a preemption, the next) token."""
        if job.produced == 0:
            job.prefill_done_s = now
            job.first_token_s = now + self.first_token_overhead_s
        elif now - job.stalled_s > self.itl_bound_s:
            job.late_tokens += 1.0
        job.produced += 1
        if job.produced >= job.output_tokens:
            return True
        job.stage = DECODE
        job.epoch += 1
        job.v_start = self.v
        job.l_start = self.late
        job.v_target = self.v + job.output_tokens - job.produced
        job.admit_seq = next(self._seq)
        self.n_dec += 1
        self.kv_dec_base += job.kv_need + 1 - self.v
        heapq.heappush(self.decoding, (job.v_target, job.admit_seq, job.epoch, job))
        heapq.heappush(self.newest, (-job.admit_seq, job.epoch, job))
        if len(self.newest) > 4 * self.n_dec + 64:
            self.newest = [e for e in self.newest if self._valid(e[1], e[2])]
            heapq.heapify(self.newest)
        return False

    def _leave_decode(self, job: Job) -> None:
        """Stop decoding `job`: settle its tokens and late steps, free its cache."""
        job.late_tokens += self.late - job.l_start
        self.n_dec -= 1
        self.kv_dec_base -= job.kv_need + 1 - job.v_start
        job.produced = min(job.output_tokens, job.produced + int(self.v - job.v_start + _EPS))
        job.epoch += 1
        self._changed()
        if not self.n_dec:
            self.kv_dec_base = 0.0

    def _preempt_while_full(self, now: float) -> None:
        while self.n_dec > 1 and self.kv_used() >= self.engine.kv_cache_tokens - _KV_SLACK:
            _, epoch, job = heapq.heappop(self.newest)
            if not self._valid(epoch, job):
                continue
            self._leave_decode(job)
            self.admitted -= 1
            self.preemptions += 1
            job.stage = QUEUED
            job.stalled_s = now
            job.kv_need = float(job.input_tokens + job.produced)
            self.queue.appendleft(job)

    def _release(self, job: Job) -> None:
        self.admitted -= 1
        self.in_flight -= 1
        job.stage = GONE
        job.host = None

    def cancel(self, job: Job, now: float) -> int:
        """The client went away: drop `job` wherever it is; returns the tokens it had."""
        self.advance(now)
        if job.stage == QUEUED:
            self.queue.remove(job)
            self.in_flight -= 1
            job.stage, job.host = GONE, None
        elif job.stage == PREFILL:
            for entry in self.prefill:
                if entry.job is job:
                    self.prefill.remove(entry)
                    break
            self.kv_prefill -= job.kv_need
            self._release(job)
        elif job.stage == DECODE:
            self._leave_decode(job)
            self._release(job)
        self._changed()
        self._admit()
        return job.produced

    def evict_all(self, now: float) -> list[tuple[Job, int]]:
        """Interruption: every job in the replica with the tokens it had already produced."""
        self.advance(now)
        self._clean_top()
        out: list[tuple[Job, int]] = [(job, job.produced) for job in self.queue]
        out += [(entry.job, entry.job.produced) for entry in self.prefill]
        for _, _, epoch, job in self.decoding:
            if self._valid(epoch, job):
                self._leave_decode(job)
                out.append((job, job.produced))
        for job, _ in out:
            job.stage, job.host = GONE, None
        self.queue.clear()
        self.prefill.clear()
        self.decoding.clear()
        self.newest.clear()
        self.n_dec = 0
        self.kv_dec_base = self.kv_prefill = 0.0
        self.admitted = self.in_flight = 0
        self._changed()
        return out
