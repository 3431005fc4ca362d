"""A lost spot node's pods are replaced on the remaining nodes by the real controllers."""

from __future__ import annotations

from support.workloads import capacity_type_of, gpu_deployment, running_pods
from weir_lab.cluster import kube
from weir_lab.cluster.pools import load_pools
from weir_lab.cluster.wait import wait_for


def test_deleting_a_spot_node_reschedules_its_pods(cluster, namespace):
    core, apps = cluster.core, cluster.apps
    apps.create_namespaced_deployment(namespace, gpu_deployment("spot", 2, 8, spot=True))
    pods = wait_for(
        lambda: (p := running_pods(core, namespace, "spot")) and len(p) == 2 and p,
        "2 running spot pods",
        90,
    )
    victim = pods[0].spec.node_name
    try:
        core.delete_node(victim)  # what the cloud does when it reclaims a spot instance

        def replaced() -> list[str] | None:
            nodes = [p.spec.node_name for p in running_pods(core, namespace, "spot")]
            total = len(core.list_namespaced_pod(namespace, label_selector="app=spot").items)
            return nodes if len(nodes) == 2 and total == 2 and victim not in nodes else None

        # The pod garbage collector removes pods of a vanished node after its
        # 40 s quarantine (and a 20 s sweep); then the ReplicaSet replaces them.
        nodes = wait_for(replaced, f"pods of {victim} to be replaced", 180, interval_s=1.0)
        assert all(capacity_type_of(core, n) == "spot" for n in nodes)
    finally:
        kube.apply_pools(cluster.settings, load_pools(cluster.settings.pools_path), print)
    assert victim in {n.metadata.name for n in core.list_node().items}
