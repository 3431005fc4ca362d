"""Capacity learned online: engines 15% slower than their profile, and weir finds out.

The lab annotates the pool so its emulated engines run at 0.85x the profile
the operator plans with (`lab.weir.dev/engine-speed`); the operator is not
told. From the engines' own series it must learn a speed near 0.85, say so in
its decision's reasons, and keep the useful share of tokens at the target
once it has learned.
"""

from __future__ import annotations

import re
import time

from support.scenarios import assert_none_failed, workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster.standins import ENGINE_SPEED_ANNOTATION
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

SPEED = 0.85
# What "learned" means here: within [SPEED - 0.10, SPEED + 0.05], well away from the
# profile's 1.0. The lab's emulated engine reads slower than its setting at the small
# batches of this test (its own HTTP and event-loop time per token is not in the
# profile): 0.77 learned for 0.85 in two runs on an idle 2-core machine, lower when
# the machine is loaded; the estimator itself reads 0.849 and 0.836 against the bare
# reference engine (tests/planner/test_learn.py covers its error on generated evidence).
BELOW, ABOVE = 0.10, 0.05


def _near(speed: float | None) -> bool:
    return speed is not None and SPEED - BELOW <= speed <= SPEED + ABOVE


def _learned(loop, pool: str) -> float | None:
    reasons = (loop.status().get("lastDecision") or {}).get("reasons", [])
    for reason in reasons:
        found = re.match(rf"capacity {re.escape(pool)}: ([0-9.]+)x profile", reason)
        if found:
            return float(found.group(1))
    return None


def _useful(loop) -> tuple[float, float]:
    useful = loop.counter("weir_router_tokens_total", 'kind="output",usefulness="useful"')
    return useful, loop.counter("weir_router_tokens_total", 'kind="output"')


def test_weir_learns_engines_slower_than_their_profile_and_holds_the_slo(loop_for):
    loop = loop_for(Shape(on_demand=(1, 4), spot=(0, 0), cold_start_s=3.0))
    pool = f"{loop.namespace}-od"
    loop.custom.patch_cluster_custom_object(
        "weir.dev",
        "v1alpha1",
        "capacitypools",
        pool,
        {"metadata": {"annotations": {ENGINE_SPEED_ANNOTATION: str(SPEED)}}},
    )
    for pod in loop.engine_pods():  # their replacements run at the pool's real speed
        loop.core.delete_namespaced_pod(pod.metadata.name, loop.namespace)
    wait_for(lambda: loop.ready_engines() >= 1, "a slow engine to be ready", 90)
    url = loop.wait_router()
    traffic = Background(url, workload(6.0, 180.0), model=MODEL, api_key=loop.client_token())
    traffic.start()
    seen: list[object] = []

    def learned_near() -> bool:
        speed = _learned(loop, pool)
        seen[:] = [speed, (loop.status().get("lastDecision") or {}).get("reasons")]
        return _near(speed)

    try:
        wait_for(learned_near, f"the operator to learn a speed near {SPEED}", 150, interval_s=2.0)
    except WaitTimeoutError as exc:
        raise AssertionError(f"{exc}; last learned {seen[0]}, reasons {seen[1]}") from exc
    learned_after_s = traffic.elapsed_s()
    start_useful, start_total = _useful(loop)
    result = traffic.join(300)
    assert_none_failed(result)
    loop.wait_scraped(time.time())
    end_useful, end_total = _useful(loop)
    speed = _learned(loop, pool)
    reasons = (loop.status().get("lastDecision") or {}).get("reasons")
    assert _near(speed), (speed, reasons)
    assert learned_after_s < 150
    assert end_total - start_total > 5000, "enough tokens after learning to judge"
    share = (end_useful - start_useful) / (end_total - start_total)
    assert share >= 0.99, (share, speed)
