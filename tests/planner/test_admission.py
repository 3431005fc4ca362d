"""Router admission: local first under the SLO limit, then hosted within limits, then wait."""

from __future__ import annotations

from weir.planner.admission import HostedLoad, ReplicaLoad, RequestShape, admit, hosted_allowed
from weir.planner.types import SpillPolicy

POLICY = SpillPolicy(
    concurrency_limit_by_pool={"spot": 10, "on-demand": 20},
    hosted_enabled=True,
    max_hosted_share=0.5,
    max_hosted_dollars_per_hour=10.0,
    max_local_prefill_tokens=8000,
    max_waiting=2,
)
IDLE_HOSTED = HostedLoad(recent_share=0.0, recent_dollars_per_hour=0.0, throttled=False)
SHORT = RequestShape(prefill_tokens=500, expected_output_tokens=100)


def test_least_loaded_replica_relative_to_its_limit() -> None:
    replicas = [ReplicaLoad("a", "spot", 6), ReplicaLoad("b", "on-demand", 8)]
    decision = admit(SHORT, replicas, IDLE_HOSTED, POLICY, waiting=0)
    assert decision.route == "local" and decision.replica_id == "b"


def test_full_replicas_spill_to_hosted_then_wait_then_reject() -> None:
    full = [ReplicaLoad("a", "spot", 10), ReplicaLoad("b", "on-demand", 20, accepting=True)]
    assert admit(SHORT, full, IDLE_HOSTED, POLICY, 0).route == "hosted"
    capped = HostedLoad(recent_share=0.5, recent_dollars_per_hour=0.0, throttled=False)
    waiting = admit(SHORT, full, capped, POLICY, 0)
    assert waiting.route == "wait" and "share" in waiting.reason
    assert admit(SHORT, full, capped, POLICY, 2).route == "reject"
    throttled = HostedLoad(0.0, 0.0, throttled=True)
    assert "429" in admit(SHORT, full, throttled, POLICY, 0).reason


def test_draining_replica_gets_nothing() -> None:
    replicas = [ReplicaLoad("a", "spot", 0, accepting=False)]
    assert admit(SHORT, replicas, IDLE_HOSTED, POLICY, 0).route == "hosted"


def test_long_prompt_goes_hosted_when_allowed_else_local() -> None:
    long = RequestShape(prefill_tokens=20_000)
    replicas = [ReplicaLoad("a", "spot", 0)]
    assert admit(long, replicas, IDLE_HOSTED, POLICY, 0).route == "hosted"
    spent = HostedLoad(0.0, 10.0, False)
    assert admit(long, replicas, spent, POLICY, 0).route == "local"


def test_full_share_never_blocks_and_disabled_always_does() -> None:
    everything = SpillPolicy({}, True, 1.0, float("inf"))
    assert hosted_allowed(HostedLoad(1.0, 0.0, False), everything) is None
    off = SpillPolicy({}, False, 1.0, float("inf"))
    assert hosted_allowed(IDLE_HOSTED, off) == "hosted spill disabled"
