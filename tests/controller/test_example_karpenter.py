"""The cloud examples on the real control plane: Karpenter's applied unchanged, all validated.

examples/karpenter/ is applied byte for byte (`kubectl apply -n NS -f
examples/karpenter/`; its objects name no namespace) to the local cluster,
after KWOK nodes that carry what Karpenter writes on the nodes it launches
(a lab pool with `provider: karpenter`): the example's NodePool with one
on-demand and one spot p5.48xlarge, tainted `nvidia.com/gpu=true:NoSchedule`.
Decoys that a loose selector would accept stand beside them: a second
NodePool of the same instances and capacity types, and the lab's own H100
nodes (which carry `karpenter.sh/capacity-type` and the GPU product label but
no NodePool). The operator renders the engine Deployments from the pools; the
real scheduler places them: spot engines on the NodePool's spot node,
on-demand ones on its on-demand node, nothing anywhere else. The hosted
endpoint's base URL resolves nowhere, which only spill would need.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.operator import GROUP, VERSION, custom
from weir_lab.cluster import karpenter
from weir_lab.cluster.pools import PoolSpec, Taint, node_manifests
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import wait_for

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
KARPENTER = EXAMPLES / "karpenter"
GPU_TAINT = Taint(key=karpenter.GPU_TAINT_KEY, value="true", effect="NoSchedule")


def example(folder: Path) -> list[dict[str, Any]]:
    return [
        d for f in sorted(folder.glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d
    ]


def example_pools() -> dict[str, dict[str, Any]]:
    return {
        d["metadata"]["name"]: d["spec"] for d in example(KARPENTER) if d["kind"] == "CapacityPool"
    }


def the_node_pool() -> str:
    """The Karpenter NodePool the example's pools select (one, whatever it is named)."""
    (name,) = {p["nodeSelector"][karpenter.NODEPOOL_LABEL] for p in example_pools().values()}
    return str(name)


def karpenter_pool(name: str, node_pool: str, capacity_type: str) -> PoolSpec:
    return PoolSpec.model_validate(
        {
            "name": name,
            "provider": "karpenter",
            "nodePool": node_pool,
            "capacityType": capacity_type,
            "nodes": 1,
            "gpuProduct": "NVIDIA-H100-80GB-HBM3",
            "gpusPerNode": 8,
            "instanceType": "p5.48xlarge",
            "taints": [GPU_TAINT],
        }
    )


NODE_POOLS = (
    karpenter_pool("kp-example-od", the_node_pool(), "on-demand"),
    karpenter_pool("kp-example-spot", the_node_pool(), "spot"),
    karpenter_pool("kp-decoy-od", "decoy-h100", "on-demand"),  # same instances, other NodePool
    karpenter_pool("kp-decoy-spot", "decoy-h100", "spot"),
)


def _ready(node: client.V1Node) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])


@pytest.fixture
def karpenter_nodes(cluster) -> Iterator[dict[str, PoolSpec]]:
    """The simulated Karpenter nodes, by name; removed again (with the example's
    cluster-scoped CapacityPools) after the test's namespace is gone."""
    core = cluster.core
    nodes = {m["metadata"]["name"]: (pool, m) for pool in NODE_POOLS for m in node_manifests(pool)}
    for name, (_, manifest) in nodes.items():
        try:
            core.create_node(manifest)
        except ApiException as exc:
            if exc.status != 409:  # left by an interrupted run: make it what it should be
                raise
            core.patch_node(name, {"metadata": manifest["metadata"], "spec": manifest["spec"]})
        core.patch_node_status(name, {"status": manifest["status"]})
    wait_for(
        lambda: all(_ready(core.read_node(name)) for name in nodes),
        f"{len(nodes)} Karpenter nodes Ready",
        60,
    )
    try:
        yield {name: pool for name, (pool, _) in nodes.items()}
    finally:
        api = custom(cluster.api)
        for name in example_pools():
            try:
                api.delete_cluster_custom_object(GROUP, VERSION, "capacitypools", name)
            except ApiException as exc:
                if exc.status != 404:
                    raise
        for name in nodes:
            try:
                core.delete_node(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise


def kubectl(cluster, *args: str) -> subprocess.CompletedProcess[str]:
    tools = ensure(cluster.settings.e2e_dir, build=False)
    return subprocess.run(
        [str(tools.kubectl), f"--kubeconfig={cluster.settings.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
    )


def engine_pods(cluster, namespace: str) -> list[client.V1Pod]:
    return cluster.core.list_namespaced_pod(
        namespace, label_selector="weir.dev/component=engine"
    ).items


# The order matters for teardown: the namespace (and so every engine pod) goes
# first, then the nodes the pods stood on.
def test_karpenter_example_applies_unchanged_and_engines_land_on_matching_nodes(
    cluster, operator, karpenter_nodes, namespace
):
    applied = kubectl(cluster, "apply", "-n", namespace, "-f", str(KARPENTER))
    assert applied.returncode == 0, applied.stderr
    assert len(applied.stdout.splitlines()) == 5, applied.stdout

    pools = example_pools()
    idep = next(d for d in example(KARPENTER) if d["kind"] == "InferenceDeployment")
    minimum = {b["pool"]: b["minReplicas"] for b in idep["spec"]["pools"]}
    assert set(minimum) == set(pools) and all(n >= 1 for n in minimum.values())

    def placed() -> list[client.V1Pod] | None:
        pods = engine_pods(cluster, namespace)
        per_pool = {p: [x for x in pods if x.metadata.labels["weir.dev/pool"] == p] for p in pools}
        settled = all(x.spec.node_name and x.status.phase == "Running" for x in pods)
        enough = all(len(per_pool[p]) >= n for p, n in minimum.items())
        return pods if settled and enough else None

    pods = wait_for(placed, "the example's engine pods running on their nodes", 120)

    node_pool = the_node_pool()
    landed: dict[str, set[str]] = {}
    for pod in pods:
        pool = pod.metadata.labels["weir.dev/pool"]
        capacity = pools[pool]["capacityType"]
        node = pod.spec.node_name
        assert node in karpenter_nodes, f"{pod.metadata.name} on {node}, not a Karpenter node"
        labels = cluster.core.read_node(node).metadata.labels
        assert labels[karpenter.NODEPOOL_LABEL] == node_pool, (pod.metadata.name, node)
        assert labels[karpenter.CAPACITY_TYPE_LABEL] == capacity, (pod.metadata.name, node)
        assert karpenter_nodes[node].capacity_type == capacity
        landed.setdefault(capacity, set()).add(node)
    assert landed == {"on-demand": {"kp-example-od-0"}, "spot": {"kp-example-spot-0"}}

    # What the scheduler was given is the file's placement, untouched by the operator.
    for name, spec in pools.items():
        engine = cluster.apps.read_namespaced_deployment(
            f"{idep['metadata']['name']}-{name}", namespace
        )
        pod_spec = engine.spec.template.spec
        assert pod_spec.node_selector == spec["nodeSelector"]
        assert [(t.key, t.operator, t.effect) for t in pod_spec.tolerations] == [
            (t["key"], t["operator"], t["effect"]) for t in spec["tolerations"]
        ]


@pytest.mark.parametrize("folder", ["gke", "eks"])
def test_cloud_example_passes_the_api_servers_validation(weir_crds, namespace, folder):
    done = kubectl(
        weir_crds, "apply", "--dry-run=server", "-n", namespace, "-f", str(EXAMPLES / folder)
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("created (server dry run)") == 5, done.stdout
