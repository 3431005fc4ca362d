"""A spot node tainted for reclaim: traffic leaves its pods within seconds, replacements start."""

from __future__ import annotations

import time

from kubernetes import client

from support.operator import create, deployment, get_deployment
from weir.controller.spot import reclaim_reason
from weir_lab.cluster import kube
from weir_lab.cluster.pools import load_pools
from weir_lab.cluster.wait import wait_for

RECLAIM = {"key": "weir.dev/reclaim", "value": "true", "effect": "NoSchedule"}


def routable_addresses(cluster, namespace: str, service: str) -> set[str]:
    """What the router would send to: ready, not terminating endpoints of the pool's Service."""
    slices = cluster.discovery.list_namespaced_endpoint_slice(
        namespace, label_selector=f"kubernetes.io/service-name={service}"
    ).items
    return {
        address
        for s in slices
        for e in s.endpoints or []
        if (e.conditions is None or e.conditions.ready is not False)
        and not (e.conditions and e.conditions.terminating)
        for address in e.addresses
    }


def test_reclaim_signals():
    taint = {"spec": {"taints": [RECLAIM]}}
    assert reclaim_reason(taint, ["weir.dev/reclaim"]) == "reclaim taint weir.dev/reclaim"
    assert reclaim_reason(taint, ["other"]) is None
    not_ready = {"status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}
    assert reclaim_reason(not_ready, []) == "node Ready=Unknown"
    assert reclaim_reason({"metadata": {"deletionTimestamp": "x"}}, []) == "node is being deleted"
    assert (
        reclaim_reason(
            {"status": {"conditions": [{"type": "Ready", "status": "True"}]}}, ["weir.dev/reclaim"]
        )
        is None
    )


def test_tainted_spot_node_loses_its_traffic_within_seconds(
    cluster, operator, namespace, capacity_pools
):
    create(cluster, namespace, deployment(namespace))
    service = f"llm-{namespace}-spot"

    def two_spot_endpoints() -> set[str] | None:
        found = routable_addresses(cluster, namespace, service)
        return found if len(found) == 2 else None

    before = wait_for(two_spot_endpoints, "2 routable spot endpoints", 90)
    pods = cluster.core.list_namespaced_pod(
        namespace, label_selector=f"weir.dev/pool={namespace}-spot"
    ).items
    victim = next(p for p in pods if p.status.pod_ip in before)
    node = victim.spec.node_name
    try:
        started = time.monotonic()
        cluster.core.patch_node(node, {"spec": {"taints": [RECLAIM]}})
        wait_for(
            lambda: victim.status.pod_ip not in routable_addresses(cluster, namespace, service),
            f"the endpoint on {node} to stop being routable",
            5,
            interval_s=0.1,
        )
        reacted_s = time.monotonic() - started
        assert reacted_s < 5

        def replaced() -> list[client.V1Pod] | None:
            running = [
                p
                for p in cluster.core.list_namespaced_pod(
                    namespace, label_selector=f"weir.dev/pool={namespace}-spot"
                ).items
                if p.status.phase == "Running" and p.metadata.deletion_timestamp is None
            ]
            return (
                running
                if len(running) == 2 and all(p.spec.node_name != node for p in running)
                else None
            )

        wait_for(replaced, "replacement spot pods on other nodes", 60)

        def interrupted() -> dict | None:
            conditions = (
                get_deployment(cluster.api, namespace, "llm")
                .get("status", {})
                .get("conditions", [])
            )
            found = next((c for c in conditions if c["type"] == "SpotInterrupted"), None)
            return found if found and found["status"] == "True" else None

        condition = wait_for(interrupted, "SpotInterrupted=True", 30)
        assert node in condition["message"]
        events = cluster.core.list_namespaced_event(namespace).items
        assert any(e.reason == "SpotInterruption" and node in e.message for e in events)
    finally:
        kube.apply_pools(cluster.settings, load_pools(cluster.settings.pools_path), print)
