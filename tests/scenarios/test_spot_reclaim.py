"""Spot reclaim: a spot node gets the reclaim taint with notice, then is deleted. No new
request reaches its pod after the notice (allowing 1.5 s for the endpoint change to reach
the router), open streams finish, no request fails, and the capacity is replaced."""

from __future__ import annotations

import time

import httpx

from support.promtext import metric
from support.scenarios import assert_none_failed, workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster import kube
from weir_lab.cluster.pools import load_pools
from weir_lab.cluster.wait import wait_for

RECLAIM = {"key": "weir.dev/reclaim", "value": "true", "effect": "NoSchedule"}
PROPAGATION_S = 1.5


def arrivals(ip: str) -> float | None:
    """Requests the engine pod has taken: first tokens sent plus requests waiting."""
    try:
        text = httpx.get(f"http://{ip}:8000/prometheus/metrics", timeout=1).text
    except httpx.HTTPError:
        return None
    return metric(text, "trtllm_time_to_first_token_seconds_count") + metric(
        text, "trtllm_num_requests_waiting"
    )


def test_spot_reclaim_drains_without_failures(cluster, loop_for):
    loop = loop_for(Shape(on_demand=(1, 1), spot=(2, 4), notice_s=30.0))
    url = loop.wait_router()
    wait_for(lambda: loop.ready_engines("-spot") >= 2, "two spot replicas ready", 90)
    traffic = Background(
        url, workload(3.0, 90.0, max_output_tokens=256), model=MODEL, api_key=loop.client_token()
    ).start()
    try:
        wait_for(lambda: traffic.elapsed_s() > 20, "20 s of traffic", 30, interval_s=0.5)
        victim = next(
            p
            for p in loop.engine_pods()
            if p.metadata.labels["weir.dev/pool"].endswith("-spot") and p.status.pod_ip
        )
        ip, node = victim.status.pod_ip, victim.spec.node_name
        in_flight_at_notice = arrivals(ip)
        notice = time.monotonic()
        cluster.core.patch_node(node, {"spec": {"taints": [RECLAIM]}})
        seen: list[tuple[float, float]] = []
        while (count := arrivals(ip)) is not None and time.monotonic() - notice < 60:
            seen.append((time.monotonic() - notice, count))
            # a sampling period: the assertion below needs the victim's counters as a series
            # over the drain; that the pod then goes away is waited for (and bounded) below
            time.sleep(0.2)
        settled = [c for t, c in seen if t >= PROPAGATION_S]
        assert in_flight_at_notice is not None and seen, "the victim's engine was not reachable"
        assert not settled or max(settled) == settled[0], (
            f"requests reached {victim.metadata.name} after the notice: {seen}"
        )
        wait_for(
            lambda: all(p.metadata.name != victim.metadata.name for p in loop.engine_pods()),
            "the drained pod to be deleted",
            60,
        )
        cluster.core.delete_node(node)  # the reclaim itself
        wait_for(lambda: loop.ready_engines("-spot") >= 2, "the spot capacity to be replaced", 90)
        result = traffic.join(200)
    finally:
        kube.apply_pools(cluster.settings, load_pools(cluster.settings.pools_path), print)
    assert_none_failed(result)
    assert loop.condition("SpotInterrupted") == "True"
