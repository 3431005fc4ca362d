"""GPU pods land on the right pools, get pod-CIDR addresses and sit behind a Service."""

from __future__ import annotations

import ipaddress

from kubernetes import client

from support.workloads import capacity_type_of, gpu_deployment, running_pods
from weir_lab.cluster.pools import load_pools
from weir_lab.cluster.wait import wait_for


def test_spot_deployment_runs_on_spot_nodes_behind_a_service(cluster, namespace):
    core, apps = cluster.core, cluster.apps
    apps.create_namespaced_deployment(namespace, gpu_deployment("engine", 3, 2, spot=True))
    core.create_namespaced_service(
        namespace,
        {
            "metadata": {"name": "engine"},
            "spec": {"selector": {"app": "engine"}, "ports": [{"port": 80, "targetPort": 8000}]},
        },
    )
    pods = wait_for(
        lambda: (p := running_pods(core, namespace, "engine")) and len(p) == 3 and p,
        "3 running spot pods",
        90,
    )
    pod_cidr = ipaddress.ip_network(cluster.settings.pod_cidr)
    for pod in pods:
        assert capacity_type_of(core, pod.spec.node_name) == "spot"
        assert ipaddress.ip_address(pod.status.pod_ip) in pod_cidr

    def slice_addresses() -> set[str] | None:
        slices = cluster.discovery.list_namespaced_endpoint_slice(
            namespace, label_selector="kubernetes.io/service-name=engine"
        ).items
        found = {a for s in slices for e in (s.endpoints or []) for a in e.addresses}
        return found if len(found) == 3 else None

    addresses = wait_for(slice_addresses, "an EndpointSlice with 3 addresses", 60)
    assert addresses == {p.status.pod_ip for p in pods}


def test_pods_without_the_toleration_never_land_on_spot(cluster, namespace):
    core, apps = cluster.core, cluster.apps
    pools = load_pools(cluster.settings.pools_path).pools
    per_node = min(p.gpus_per_node for p in pools)
    on_demand_nodes = sum(p.nodes for p in pools if p.capacity_type == "on-demand")
    # More whole-node pods than on-demand nodes: the surplus must wait, not spill to spot.
    replicas = on_demand_nodes + 2
    deployment = gpu_deployment("od", replicas, per_node, spot=False)
    apps.create_namespaced_deployment(namespace, deployment)

    def settled() -> list[client.V1Pod] | None:
        pods = core.list_namespaced_pod(namespace, label_selector="app=od").items
        unschedulable = [
            p
            for p in pods
            for c in (p.status.conditions or [])
            if c.type == "PodScheduled" and c.reason == "Unschedulable"
        ]
        return pods if len(pods) == replicas and len(unschedulable) >= 2 else None

    pods = wait_for(settled, "surplus pods to be reported unschedulable", 90)
    placed = [p for p in pods if p.spec.node_name]
    assert placed, "no pod was placed on an on-demand node"
    assert all(capacity_type_of(core, p.spec.node_name) == "on-demand" for p in placed)
    messages = " ".join(
        c.message or "" for p in pods if not p.spec.node_name for c in p.status.conditions or []
    )
    assert "untolerated taint" in messages
