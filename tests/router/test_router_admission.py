"""The router's admission wrapper around the planner's policy, with a fake clock."""

from __future__ import annotations

from router.helpers import hosted_spec
from weir.router.backends import BackendSet, Endpoint
from weir.router.breaker import CircuitBreaker
from weir.router.config import RouterPolicy
from weir.router.metrics import RouterMetrics
from weir.router.spill import Request, Spill


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _spill(policy: RouterPolicy, clock: Clock) -> tuple[Spill, BackendSet]:
    backends = BackendSet()
    backends.update([Endpoint("a", "http://a", "od"), Endpoint("b", "http://b", "spot")])
    spill = Spill(
        backends,
        RouterMetrics(),
        policy,
        breaker=CircuitBreaker(1, 5.0),
        share_window_s=60,
        budget_window_s=60,
        clock=clock,
    )
    return spill, backends


POLICY = RouterPolicy.model_validate(
    {
        "concurrency_limit_by_pool": {"od": 2, "spot": 2},
        "hosted_enabled": True,
        "max_hosted_share": 1.0,
        "max_hosted_dollars_per_hour": 100.0,
        "hosted": hosted_spec("http://hosted"),
        "max_local_prefill_tokens": 1000,
        "slo": {"ttftSeconds": 0.5, "itlSeconds": 0.05},
    }
)
SMALL = Request(prefill_tokens=10, prompt_bound=50, max_tokens=16, hosted_input_bound=50)


def test_least_loaded_local_first_then_hosted() -> None:
    spill, backends = _spill(POLICY, Clock())
    backends.by_id["a"].in_flight = 1
    first = spill.decide(SMALL, exclude=None, allow_hosted=True)
    assert first.route == "local" and first.backend is backends.by_id["b"]
    for b in backends.by_id.values():
        b.in_flight = 2
    spilled = spill.decide(SMALL, exclude=None, allow_hosted=True)
    assert spilled.route == "hosted" and spilled.reason == "saturated"
    assert spilled.reservation is not None and spilled.reservation.dollars > 0


def test_replica_over_the_ttft_target_counts_as_full_until_the_sample_ages() -> None:
    clock = Clock()
    spill, backends = _spill(POLICY, clock)
    for b in backends.by_id.values():
        b.note_ttft(0.9, clock.now)  # both just answered slower than the 0.5 s target
    assert spill.decide(SMALL, exclude=None, allow_hosted=True).route == "hosted"
    clock.now += 10  # the samples are stale: the replicas are tried again
    assert spill.decide(SMALL, exclude=None, allow_hosted=True).route == "local"


def test_ttft_guard_never_turns_a_slow_replica_into_a_refusal() -> None:
    clock = Clock()
    no_hosted = POLICY.model_copy(update={"hosted_enabled": False, "max_waiting": 0})
    spill, backends = _spill(no_hosted, clock)
    for b in backends.by_id.values():
        b.note_ttft(0.9, clock.now)
    assert spill.decide(SMALL, exclude=None, allow_hosted=True).route == "local"


def test_long_prompt_goes_hosted_and_breaker_blocks_it() -> None:
    clock = Clock()
    spill, _ = _spill(POLICY, clock)
    long_prompt = Request(5000, 20000, 16, hosted_input_bound=20000)
    assert spill.decide(long_prompt, exclude=None, allow_hosted=True).reason == "long_prompt"
    spill.breaker.failure(clock.now)  # opens (threshold 1)
    blocked = spill.decide(long_prompt, exclude=None, allow_hosted=True)
    assert blocked.route == "local"  # hosted closed: the planner's policy serves it locally


def test_policy_change_applies_to_the_next_decision() -> None:
    spill, _ = _spill(POLICY, Clock())
    spill.set_policy(
        POLICY.model_copy(
            update={
                "concurrency_limit_by_pool": {"od": 0, "spot": 0},
                "max_waiting": 0,
                "hosted_enabled": False,
            }
        )
    )
    refused = spill.decide(SMALL, exclude=None, allow_hosted=True)
    assert refused.route == "reject" and refused.reason == "hosted_disabled"
