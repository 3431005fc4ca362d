"""Router admission: where one request goes, decided in microseconds.

The planner sets the policy every period; the router (and the simulator,
which must behave like it) applies it per request with this pure function:

    admit(request, replicas, hosted, policy, waiting) -> Admission

Inputs: the request's shape (prompt tokens needing prefill, expected output),
the in-flight count of candidate replicas (the caller may pass every replica
or only the least loaded of each pool: the answer is the same), the hosted
endpoint's recent share, spend rate and 429 state, the plan's SpillPolicy and
how many requests already wait. Output: `local` (with the replica), `hosted`,
`wait` (queue until a local slot frees) or `reject`, always with a reason.

Order: prompts too long to meet TTFT locally go hosted when allowed; then the
least-loaded replica under its SLO concurrency limit; then hosted within its
share, dollar cap and rate limit; then wait while the queue has room.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from weir.planner.types import SpillPolicy

Route = Literal["local", "hosted", "wait", "reject"]


@dataclass(frozen=True, slots=True)
class RequestShape:
    """What the router knows about a request before sending it."""

    prefill_tokens: int
    expected_output_tokens: int = 0


@dataclass(frozen=True, slots=True)
class ReplicaLoad:
    """One ready replica: its pool and requests in flight on it."""

    replica_id: str
    pool: str
    in_flight: int
    accepting: bool = True


@dataclass(frozen=True, slots=True)
class HostedLoad:
    """Recent use of the hosted endpoint (sliding window kept by the router)."""

    recent_share: float
    recent_dollars_per_hour: float
    throttled: bool


@dataclass(frozen=True, slots=True)
class Admission:
    """Where the request goes and why."""

    route: Route
    replica_id: str | None
    reason: str


def hosted_allowed(hosted: HostedLoad, policy: SpillPolicy) -> str | None:
    """None when the hosted endpoint may take one more request, else why not."""
    if not policy.hosted_enabled:
        return "hosted spill disabled"
    if hosted.throttled:
        return "hosted endpoint rate-limited (429)"
    if policy.max_hosted_share < 1.0 and hosted.recent_share >= policy.max_hosted_share:
        return f"hosted share at its cap {policy.max_hosted_share:.0%}"
    if hosted.recent_dollars_per_hour >= policy.max_hosted_dollars_per_hour:
        return f"hosted spend at its cap ${policy.max_hosted_dollars_per_hour:.2f}/h"
    return None


def admit(
    request: RequestShape,
    replicas: Sequence[ReplicaLoad],
    hosted: HostedLoad,
    policy: SpillPolicy,
    waiting: int,
) -> Admission:
    """Route one request (see module docstring for the order of preference)."""
    blocked = hosted_allowed(hosted, policy)
    if request.prefill_tokens > policy.max_local_prefill_tokens and blocked is None:
        return Admission("hosted", None, "prompt too long to meet TTFT on a replica")
    best: ReplicaLoad | None = None
    best_load = 2.0
    for replica in replicas:
        if not replica.accepting:
            continue
        limit = policy.concurrency_limit_by_pool.get(replica.pool, 0)
        if replica.in_flight >= limit:
            continue
        load = replica.in_flight / limit
        if load < best_load:
            best, best_load = replica, load
    if best is not None:
        return Admission("local", best.replica_id, "replica under its SLO concurrency")
    if blocked is None:
        return Admission("hosted", None, "local replicas at their SLO concurrency")
    if waiting < policy.max_waiting:
        return Admission("wait", None, f"local full and {blocked}")
    return Admission("reject", None, f"queue full ({waiting}) and {blocked}")
