"""Simulated clients: when they give up, when they retry, when they send twice.

Kept apart from the event loop so each behaviour is one small, seeded
function the runner asks at the right moment: `timers` when an attempt is
sent (its patience for a first token, its total timeout, and whether a naive
retry timer will fire), `retries` when an attempt was abandoned. Draws come
from the client generator only, so turning a stress on does not move the
random numbers of the engine or the spot risk.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Literal

from weir.sim.replica import Job
from weir.sim.stresses import Stresses

TimerKind = Literal["give_up", "timeout", "resend"]


@dataclass(frozen=True, slots=True)
class Timer:
    """A client-side timer of one attempt."""

    at_s: float
    kind: TimerKind


class Clients:
    """The clients' behaviour under a scenario's stresses."""

    def __init__(self, stresses: Stresses, rng: random.Random) -> None:
        self.stresses = stresses
        self.rng = rng

    def timers(self, job: Job, now_s: float) -> list[Timer]:
        """Timers of an attempt sent now (sets its give-up and timeout moments)."""
        out: list[Timer] = []
        if job.duplicate:
            return out
        ab = self.stresses.abandonment
        if ab is not None:
            job.give_up_s = now_s + ab.patience_s(self.rng)
            out.append(Timer(job.give_up_s, "give_up"))
            if ab.total_timeout_seconds is not None:
                job.timeout_s = now_s + ab.total_timeout_seconds
                out.append(Timer(job.timeout_s, "timeout"))
        dup = self.stresses.duplicates
        if dup is not None and dup.probability > 0 and self.rng.random() < dup.probability:
            out.append(Timer(now_s + dup.after_seconds, "resend"))
        return out

    def retries(self, job: Job) -> float | None:
        """Backoff before the client tries an abandoned request again (None: it does not)."""
        ab = self.stresses.abandonment
        if ab is None or job.duplicate or job.attempt + 1 >= ab.max_attempts:
            return None
        if ab.retry_probability <= 0 or self.rng.random() >= ab.retry_probability:
            return None
        return ab.retry_backoff_seconds


def next_attempt(job: Job, at_s: float, duplicate: bool = False) -> Job:
    """A new attempt of the same request, sent at `at_s` (a retry, or a duplicate)."""
    return Job(
        index=job.index,
        arrival_s=at_s,
        input_tokens=job.input_tokens,
        output_tokens=job.output_tokens,
        prefill_tokens=job.prefill_tokens,
        cached_tokens=job.cached_tokens,
        accounted=job.accounted,
        hashes=job.hashes,
        duplicate=duplicate,
        attempt=job.attempt if duplicate else job.attempt + 1,
    )


def cut_short(job: Job, first_s: float, end_s: float, itl_s: float) -> tuple[float, int] | None:
    """When a client leaves a stream that starts at `first_s` and ends at `end_s`, and the
    tokens it had by then (None: it stays to the end)."""
    late_start = first_s > job.give_up_s
    if not late_start and end_s <= job.timeout_s:
        return None
    quit_s = min(job.give_up_s if late_start else float("inf"), job.timeout_s)
    if quit_s < first_s:
        return quit_s, 0
    streamed = 1 + int((quit_s - first_s) / itl_s) if itl_s > 0 else job.output_tokens
    return quit_s, min(job.output_tokens, streamed)
