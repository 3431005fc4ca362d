"""Pools with `provider: karpenter`: nodes that carry Karpenter's labels, not the lab's."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from weir_lab.cluster import karpenter
from weir_lab.cluster.pools import CAPACITY_TYPE_LABEL, POOL_LABEL, PoolSpec, node_manifests

BASE = {
    "name": "gpu-spot",
    "capacityType": "spot",
    "nodes": 2,
    "gpuProduct": "NVIDIA-H100-80GB-HBM3",
    "gpusPerNode": 8,
    "instanceType": "p5.48xlarge",
}


def test_karpenter_nodes_carry_karpenter_labels_and_only_the_declared_taints():
    pool = PoolSpec.model_validate(
        {
            **BASE,
            "provider": "karpenter",
            "nodePool": "gpu-h100",
            "taints": [{"key": "nvidia.com/gpu", "value": "true"}],
        }
    )
    nodes = node_manifests(pool)
    assert [n["metadata"]["name"] for n in nodes] == ["gpu-spot-0", "gpu-spot-1"]
    labels = nodes[0]["metadata"]["labels"]
    # As aws/karpenter-provider-aws's instance-types reference lists p5.48xlarge.
    assert {k: labels[k] for k in labels if k.startswith("karpenter.")} == {
        "karpenter.sh/nodepool": "gpu-h100",
        "karpenter.sh/capacity-type": "spot",
        "karpenter.sh/registered": "true",
        "karpenter.sh/initialized": "true",
        "karpenter.k8s.aws/instance-category": "p",
        "karpenter.k8s.aws/instance-family": "p5",
        "karpenter.k8s.aws/instance-generation": "5",
        "karpenter.k8s.aws/instance-size": "48xlarge",
        "karpenter.k8s.aws/instance-gpu-name": "h100",
        "karpenter.k8s.aws/instance-gpu-manufacturer": "nvidia",
        "karpenter.k8s.aws/instance-gpu-count": "8",
        "karpenter.k8s.aws/instance-gpu-memory": "81920",
    }
    assert labels["node.kubernetes.io/instance-type"] == "p5.48xlarge"
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-H100-80GB-HBM3"
    assert POOL_LABEL not in labels and CAPACITY_TYPE_LABEL not in labels
    # No lab spot taint: a real Karpenter node has only its NodePool's taints.
    assert nodes[0]["spec"]["taints"] == [
        {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
    ]


def test_karpenter_node_pool_defaults_to_the_pool_name_and_lab_pools_are_unchanged():
    pool = PoolSpec.model_validate({**BASE, "provider": "karpenter"})
    assert node_manifests(pool)[0]["metadata"]["labels"][karpenter.NODEPOOL_LABEL] == "gpu-spot"
    lab = node_manifests(PoolSpec.model_validate(BASE))[0]
    assert lab["metadata"]["labels"][POOL_LABEL] == "gpu-spot"
    assert karpenter.NODEPOOL_LABEL not in lab["metadata"]["labels"]
    assert [t["key"] for t in lab["spec"]["taints"]] == [CAPACITY_TYPE_LABEL]


def test_a_node_pool_name_needs_provider_karpenter():
    with pytest.raises(ValidationError, match="nodePool: only a pool with provider karpenter"):
        PoolSpec.model_validate({**BASE, "nodePool": "gpu-h100"})
