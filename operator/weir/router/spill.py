"""Admission and spill for live requests: the planner's policy plus the router's hard limits.

`weir.planner.admission.admit` decides local / hosted / wait / reject from
the replicas' load, the hosted share and spend rate and the policy; the
simulator calls the same function, so the router behaves as planned. What a
live router needs on top, kept here rather than in the pure policy:

- a *hard* dollar cap: a hosted decision must also reserve its worst-case
  price in `HostedBudget` (every prompt byte of the body it will send, every
  token of every choice: `weir.router.cost`); when it cannot, the request
  waits or is refused as if the cap were reached; a request whose price
  cannot be bounded (images, audio) never goes hosted;
- the circuit breaker and a 429 from the hosted endpoint make it count as
  throttled;
- short reason codes for the decision metric (the planner's reasons are
  sentences with numbers in them, unbounded as label values);
- waiting: a queued request re-runs admission whenever a local slot frees,
  until its queue timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from weir.planner.admission import HostedLoad, ReplicaLoad, RequestShape, Route, admit
from weir.planner.economics import hosted_dollars
from weir.planner.types import SpillPolicy
from weir.router.backends import Backend, BackendSet
from weir.router.breaker import CircuitBreaker
from weir.router.budget import HostedBudget, Reservation, ShareWindow
from weir.router.config import RouterPolicy, spill_policy
from weir.router.errors import OverloadedError
from weir.router.metrics import RouterMetrics


@dataclass(frozen=True, slots=True)
class Request:
    """What admission needs to know about one request."""

    prefill_tokens: int
    prompt_bound: int
    max_tokens: int | None
    choices: int = 1
    hosted_input_bound: int | None = None  # None: no hosted price can be bounded
    # computes the bound when first needed instead (most requests never go hosted)
    bound_fn: Callable[[], int | None] | None = None

    def hosted_tokens(self, model: str, default_max_tokens: int) -> tuple[int, int] | None:
        """(input, output) tokens a hosted answer may bill at most, or None."""
        bound = self.hosted_input_bound if self.bound_fn is None else self.bound_fn()
        if bound is None:
            return None
        output = self.choices * (self.max_tokens or default_max_tokens)
        return bound + len(model.encode()), output


@dataclass(slots=True)
class SpillDecision:
    """Where one request goes (local with its replica, or hosted with its reservation)."""

    route: Route
    reason: str
    backend: Backend | None = None
    reservation: Reservation | None = None


class Spill:
    """Applies the policy to each request; owns the hosted budget, share and breaker."""

    def __init__(
        self,
        backends: BackendSet,
        metrics: RouterMetrics,
        policy: RouterPolicy,
        *,
        breaker: CircuitBreaker,
        share_window_s: float,
        budget_window_s: float,
        clock: Callable[[], float],
    ) -> None:
        self.backends = backends
        self.metrics = metrics
        self.breaker = breaker
        self.share = ShareWindow(share_window_s)
        self.budget = HostedBudget(policy.max_hosted_dollars_per_hour, budget_window_s)
        self.clock = clock
        self.waiting = 0
        self.throttled_until = 0.0
        self._cache: tuple[int, frozenset[str], SpillPolicy] | None = None
        self.policy = policy
        self.set_policy(policy)

    def set_policy(self, policy: RouterPolicy) -> None:
        """A new plan: takes effect for the next admission."""
        self.policy = policy
        self.budget.set_cap(policy.max_hosted_dollars_per_hour)
        self.metrics.spend_cap.set(policy.max_hosted_dollars_per_hour)
        self._cache = None

    def _spill_policy(self) -> SpillPolicy:
        pools = frozenset(self.backends.pools())
        cached = self._cache
        if cached is None or cached[1] != pools:
            cached = self._cache = (0, pools, spill_policy(self.policy, set(pools)))
        return cached[2]

    def hosted_price(self, input_tokens: int, cached: int, output: int) -> float:
        """Dollars for a hosted request (0 when the policy names no prices)."""
        hosted = self.policy.hosted
        if hosted is None:
            return 0.0
        return hosted_dollars(hosted, input_tokens, cached, output)

    def hosted_max_tokens(self, request: Request) -> int:
        return request.max_tokens or self.policy.hosted_default_max_tokens

    def _hosted_tokens(self, request: Request) -> tuple[int, int] | None:
        hosted = self.policy.hosted
        if hosted is None:
            return None
        return request.hosted_tokens(hosted.model, self.policy.hosted_default_max_tokens)

    def throttle(self, retry_after_s: float) -> None:
        """The hosted endpoint said 429: count it as throttled for that long."""
        self.throttled_until = max(self.throttled_until, self.clock() + retry_after_s)

    def _hosted_load(self, now: float, allow_hosted: bool) -> HostedLoad:
        throttled = (
            not allow_hosted or now < self.throttled_until or not self.breaker.available(now)
        )
        return HostedLoad(
            recent_share=self.share.share(now),
            recent_dollars_per_hour=self.budget.dollars_per_hour(now),
            throttled=throttled,
        )

    def _blocked_code(
        self, load: HostedLoad, policy: SpillPolicy, now: float, allow_hosted: bool
    ) -> str:
        """Why hosted is closed, as a short label value (same order as the planner's checks)."""
        if not policy.hosted_enabled:
            return "hosted_disabled"
        if not allow_hosted:
            return "hosted_failed"
        if load.throttled:
            return "hosted_breaker_open" if not self.breaker.available(now) else "hosted_throttled"
        if load.recent_share >= policy.max_hosted_share:
            return "hosted_share_cap"
        return "hosted_dollar_cap"

    def _loads(self, now: float, guard: float | None, exclude: str | None) -> list[ReplicaLoad]:
        loads = self.backends.loads(now, guard)
        return loads if exclude is None else [r for r in loads if r.replica_id != exclude]

    def decide(self, request: Request, *, exclude: str | None, allow_hosted: bool) -> SpillDecision:
        """One admission (no waiting): local, hosted (reserved), wait or reject."""
        now = self.clock()
        policy = self._spill_policy()
        hosted_load = self._hosted_load(now, allow_hosted)
        shape = RequestShape(request.prefill_tokens, request.max_tokens or 0)
        guard = self.policy.slo.ttft_seconds if self.policy.ttft_guard else None
        verdict = admit(shape, self._loads(now, guard, exclude), hosted_load, policy, self.waiting)
        if guard is not None and verdict.route in ("wait", "reject"):
            # the guard only steers toward a faster path; with none, a slow replica beats a 429
            verdict = admit(
                shape, self._loads(now, None, exclude), hosted_load, policy, self.waiting
            )
        if verdict.route == "local":
            assert verdict.replica_id is not None
            self.share.record(now, hosted=False)
            return SpillDecision(
                "local", "under_limit", backend=self.backends.by_id[verdict.replica_id]
            )
        tokens = self._hosted_tokens(request) if verdict.route == "hosted" else None
        if verdict.route == "hosted" and tokens is None:
            blocked = "hosted_unpriced"
        elif verdict.route == "hosted" and tokens is not None:
            worst = self.hosted_price(tokens[0], 0, tokens[1])
            reservation = self.budget.reserve(now, worst)
            if reservation is not None and self.breaker.allow(now):
                self.share.record(now, hosted=True)
                if request.prefill_tokens > policy.max_local_prefill_tokens:
                    reason = "long_prompt"
                else:
                    reason = "saturated" if exclude is None else "local_failed"
                return SpillDecision("hosted", reason, reservation=reservation)
            if reservation is not None:
                self.budget.settle(reservation, 0.0)
            blocked = "hosted_dollar_cap" if reservation is None else "hosted_breaker_open"
        else:
            blocked = self._blocked_code(hosted_load, policy, now, allow_hosted)
        if self.waiting < policy.max_waiting:
            return SpillDecision("wait", blocked)
        return SpillDecision("reject", "queue_full" if policy.max_waiting else blocked)

    async def admit(
        self,
        request: Request,
        *,
        exclude: str | None = None,
        allow_hosted: bool = True,
        may_wait: bool = True,
    ) -> SpillDecision:
        """Admission with waiting: returns local or hosted, or raises OverloadedError."""
        loop_deadline: float | None = None
        while True:
            decision = self.decide(request, exclude=exclude, allow_hosted=allow_hosted)
            if decision.route in ("local", "hosted"):
                self.metrics.decision(decision.route, decision.reason)
                return decision
            if (
                decision.route == "reject"
                or not may_wait
                or (loop_deadline is not None and self.clock() >= loop_deadline)
            ):
                self.metrics.decision("reject", decision.reason)
                raise OverloadedError(
                    f"no capacity: local replicas full and {decision.reason.replace('_', ' ')}",
                    self._retry_after(),
                )
            if loop_deadline is None:
                self.metrics.decision("wait", decision.reason)
                loop_deadline = self.clock() + self.policy.queue_timeout_seconds
            await self._wait(loop_deadline - self.clock())

    async def _wait(self, timeout_s: float) -> None:
        self.waiting += 1
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                await self.backends.slot_freed()
        except TimeoutError:
            pass  # the admission loop re-checks and refuses at its deadline
        finally:
            self.waiting -= 1

    def _retry_after(self) -> float:
        now = self.clock()
        worst = self.hosted_price(256, 0, self.policy.hosted_default_max_tokens)
        waits = (
            self.breaker.retry_after_s(now),
            self.throttled_until - now,
            self.budget.retry_after_s(now, worst),
        )
        positive = [w for w in waits if w > 0]
        return max(1.0, min(positive)) if positive else 1.0
