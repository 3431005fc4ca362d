"""The cloud examples (GKE, EKS, Karpenter) through the operator's own renderer, no cluster.

Each file is read as written, every weir object validated as the API server
would (weir.api.resources.validate_resource: the models the CRDs are generated
from), the engine Deployments rendered by weir.controller.children, and then
placed by an independent reading of the scheduler's rules (nodeSelector and
taints/tolerations, as kube-scheduler's NodeAffinity and TaintToleration
filters apply them) on nodes labelled and tainted as each cloud labels and
taints them: each pool's pods fit its own nodes and no other.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.k8srules import object_problems
from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api.resources import validate_resource
from weir.controller.children import Inputs, Owner, desired_children, engine_name

REPO = Path(__file__).resolve().parents[2]
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def documents(folder: str) -> list[dict[str, Any]]:
    files = sorted((REPO / "examples" / folder).glob("*.yaml"))
    assert files, f"examples/{folder} has no YAML"
    return [d for f in files for d in yaml.safe_load_all(f.read_text()) if d]


def rendered(folder: str) -> tuple[dict[str, CapacityPoolSpec], dict[str, dict[str, Any]]]:
    """The example's pools, and each pool's engine pod spec as the operator renders it."""
    docs = documents(folder)
    specs = {
        (d["kind"], d["metadata"]["name"]): validate_resource(d)
        for d in docs
        if d["apiVersion"].startswith("weir.dev/")
    }
    pools = {name: s for (kind, name), s in specs.items() if isinstance(s, CapacityPoolSpec)}
    ((deployment_name, spec),) = [
        (name, s) for (kind, name), s in specs.items() if isinstance(s, InferenceDeploymentSpec)
    ]
    hosted = next(s for s in specs.values() if isinstance(s, HostedEndpointSpec))
    owner = Owner(deployment_name, "serving", "uid-1")
    children = desired_children(Inputs(owner, spec, pools, hosted, {}))
    for child in children:
        assert object_problems(child) == [], (child["kind"], child["metadata"]["name"])
    deployments = {c["metadata"]["name"]: c for c in children if c["kind"] == "Deployment"}
    pods = {
        b.pool: deployments[engine_name(owner.name, b.pool)]["spec"]["template"]["spec"]
        for b in spec.pools
    }
    return pools, pods


@dataclass(frozen=True)
class Node:
    name: str
    labels: dict[str, str]
    taints: tuple[tuple[str, str, str], ...] = ()  # (key, value, effect)


def tolerated(taint: tuple[str, str, str], tolerations: list[dict[str, Any]]) -> bool:
    key, value, effect = taint
    for t in tolerations:
        operator = t.get("operator", "Equal")
        if t.get("effect") and t["effect"] != effect:
            continue
        if operator == "Exists" and (not t.get("key") or t["key"] == key):
            return True
        if operator == "Equal" and t.get("key") == key and t.get("value", "") == value:
            return True
    return False


def fits(pod: dict[str, Any], node: Node) -> bool:
    """kube-scheduler's NodeAffinity (nodeSelector) and TaintToleration filters."""
    assert "affinity" not in pod, "the engine pod has an affinity this reading ignores"
    selected = all(node.labels.get(k) == v for k, v in pod.get("nodeSelector", {}).items())
    blocking = [t for t in node.taints if t[2] in ("NoSchedule", "NoExecute")]
    return selected and all(tolerated(t, pod.get("tolerations", [])) for t in blocking)


def placement(pods: dict[str, dict[str, Any]], nodes: list[Node]) -> dict[str, list[str]]:
    return {pool: [n.name for n in nodes if fits(pod, n)] for pool, pod in pods.items()}


GPU_PRESENT = ("nvidia.com/gpu", "present", "NoSchedule")
GKE_SPOT_TAINT = ("cloud.google.com/gke-spot", "true", "NoSchedule")
GKE_H100 = {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
GKE_NODES = [
    Node("od", {"cloud.google.com/gke-nodepool": "h100-on-demand", **GKE_H100}, (GPU_PRESENT,)),
    Node(
        "spot",
        {
            "cloud.google.com/gke-nodepool": "h100-spot",
            "cloud.google.com/gke-spot": "true",
            **GKE_H100,
        },
        (GPU_PRESENT,),
    ),
    Node(  # a Spot pool tainted as the spot how-to suggests: still the spot pool's
        "spot-tainted",
        {
            "cloud.google.com/gke-nodepool": "h100-spot",
            "cloud.google.com/gke-spot": "true",
            **GKE_H100,
        },
        (GPU_PRESENT, GKE_SPOT_TAINT),
    ),
    Node(  # another team's H100 Spot pool: same GPU, same spot label
        "other-spot",
        {"cloud.google.com/gke-nodepool": "batch", "cloud.google.com/gke-spot": "true", **GKE_H100},
        (GPU_PRESENT,),
    ),
    Node(
        "l4",
        {
            "cloud.google.com/gke-nodepool": "h100-spot",
            "cloud.google.com/gke-accelerator": "nvidia-l4",
        },
        (GPU_PRESENT,),
    ),
    Node("cpu", {"cloud.google.com/gke-nodepool": "default-pool"}),
]


def test_gke_example_renders_engines_onto_gke_labels_and_taints():
    pools, pods = rendered("gke")
    assert {p.capacity_type for p in pools.values()} == {"on-demand", "spot"}
    od, spot = pods["gke-h100-on-demand"], pods["gke-h100-spot"]
    assert od["nodeSelector"] == {
        "cloud.google.com/gke-nodepool": "h100-on-demand",
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
    }
    assert spot["nodeSelector"] == {
        "cloud.google.com/gke-nodepool": "h100-spot",
        "cloud.google.com/gke-spot": "true",
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
    }
    assert od["tolerations"] == [{**GPU_TOLERATION, "value": ""}]
    assert spot["tolerations"] == [
        {**GPU_TOLERATION, "value": ""},
        {
            "key": "cloud.google.com/gke-spot",
            "operator": "Equal",
            "value": "true",
            "effect": "NoSchedule",
        },
    ]
    for pod in (od, spot):
        assert "affinity" not in pod
        assert pod["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] == "1"
    assert placement(pods, GKE_NODES) == {
        "gke-h100-on-demand": ["od"],
        "gke-h100-spot": ["spot", "spot-tainted"],
    }
    assert pools["gke-h100-spot"].interruption_notice_seconds == 30


EKS_GPU_TAINT = ("nvidia.com/gpu", "true", "NoSchedule")
P5 = {"node.kubernetes.io/instance-type": "p5.48xlarge"}
EKS_NODES = [
    Node(
        "od",
        {
            "eks.amazonaws.com/nodegroup": "h100-on-demand",
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            **P5,
        },
        (EKS_GPU_TAINT,),
    ),
    Node(  # an untainted group: the toleration is harmless
        "od-untainted",
        {
            "eks.amazonaws.com/nodegroup": "h100-on-demand",
            "eks.amazonaws.com/capacityType": "ON_DEMAND",
            **P5,
        },
    ),
    Node(
        "spot",
        {
            "eks.amazonaws.com/nodegroup": "h100-spot",
            "eks.amazonaws.com/capacityType": "SPOT",
            **P5,
        },
        (EKS_GPU_TAINT,),
    ),
    Node(  # another group of the same instances, spot too
        "other-spot",
        {"eks.amazonaws.com/nodegroup": "batch", "eks.amazonaws.com/capacityType": "SPOT", **P5},
        (EKS_GPU_TAINT,),
    ),
    Node(
        "a100",
        {
            "eks.amazonaws.com/nodegroup": "h100-spot",
            "eks.amazonaws.com/capacityType": "SPOT",
            "node.kubernetes.io/instance-type": "p4d.24xlarge",
        },
        (EKS_GPU_TAINT,),
    ),
    Node(
        "system",
        {"eks.amazonaws.com/nodegroup": "system", "eks.amazonaws.com/capacityType": "ON_DEMAND"},
    ),
]


def test_eks_example_renders_engines_onto_managed_node_group_labels():
    pools, pods = rendered("eks")
    od, spot = pods["eks-h100-on-demand"], pods["eks-h100-spot"]
    assert od["nodeSelector"] == {
        "eks.amazonaws.com/nodegroup": "h100-on-demand",
        "eks.amazonaws.com/capacityType": "ON_DEMAND",
        **P5,
    }
    assert spot["nodeSelector"] == {
        "eks.amazonaws.com/nodegroup": "h100-spot",
        "eks.amazonaws.com/capacityType": "SPOT",
        **P5,
    }
    assert od["tolerations"] == spot["tolerations"] == [{**GPU_TOLERATION, "value": ""}]
    assert placement(pods, EKS_NODES) == {
        "eks-h100-on-demand": ["od", "od-untainted"],
        "eks-h100-spot": ["spot"],
    }
    assert pools["eks-h100-spot"].interruption_notice_seconds == 120


def test_karpenter_example_renders_engines_onto_karpenter_labels():
    _, pods = rendered("karpenter")
    for pool, capacity in (
        ("karpenter-h100-on-demand", "on-demand"),
        ("karpenter-h100-spot", "spot"),
    ):
        assert pods[pool]["nodeSelector"] == {
            "karpenter.sh/nodepool": "gpu-h100",
            "karpenter.sh/capacity-type": capacity,
            "karpenter.k8s.aws/instance-gpu-name": "h100",
        }
        assert pods[pool]["tolerations"] == [{**GPU_TOLERATION, "value": ""}]


@pytest.mark.parametrize("folder", ["gke", "eks", "karpenter"])
def test_cloud_example_is_self_contained_and_namespace_free(folder):
    docs = documents(folder)
    kinds = sorted(d["kind"] for d in docs)
    assert kinds == [
        "CapacityPool",
        "CapacityPool",
        "HostedEndpoint",
        "InferenceDeployment",
        "Secret",
    ]
    # `kubectl apply -n NS` puts every namespaced object in NS only when none names another.
    assert all("namespace" not in d["metadata"] for d in docs)
    secret = next(d for d in docs if d["kind"] == "Secret")
    endpoint = next(d for d in docs if d["kind"] == "HostedEndpoint")
    assert (
        secret["metadata"]["annotations"]["weir.dev/hosted-endpoints"]
        == endpoint["metadata"]["name"]
    )
    assert endpoint["spec"]["secretRef"]["name"] == secret["metadata"]["name"]
