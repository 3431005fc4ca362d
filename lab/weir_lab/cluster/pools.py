"""GPU node pools of the local cluster: the `e2e/pools.yaml` schema and its nodes.

A pool is declared once in YAML and turned into simulated KWOK nodes that look
like the GPU nodes of a managed cluster (extended resource `nvidia.com/gpu`,
GPU product labels from NVIDIA's GPU feature discovery, Karpenter's
capacity-type label), so the scheduler places weir's engine pods exactly as it
would on real spot and on-demand pools.

A pool's `provider` says whose labels its nodes carry: `lab` (the default) adds
weir's own pool and capacity-type labels and taints spot nodes
`weir.dev/capacity-type=spot:NoSchedule`; `karpenter` gives the nodes only what
a node Karpenter launched on AWS carries (weir_lab.cluster.karpenter) and the
taints the pool declares, so the examples written for real clusters apply
here unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from weir.api._base import load_yaml_model
from weir_lab.cluster import karpenter
from weir_lab.cluster.errors import ClusterError

POOL_LABEL = "weir.dev/pool"
CAPACITY_TYPE_LABEL = "weir.dev/capacity-type"
KARPENTER_CAPACITY_TYPE_LABEL = karpenter.CAPACITY_TYPE_LABEL
GPU_PRODUCT_LABEL = "nvidia.com/gpu.product"
GPU_RESOURCE = "nvidia.com/gpu"
MANAGED_ANNOTATION = "weir.dev/local-cluster"
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
SPOT_TAINT = {"key": CAPACITY_TYPE_LABEL, "value": "spot", "effect": "NoSchedule"}


class Taint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(min_length=1)
    value: str = ""
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = "NoSchedule"


class PoolSpec(BaseModel):
    """One node pool: how many nodes and what each looks like."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$", description="DNS label.")
    capacity_type: Literal["on-demand", "spot"] = Field(alias="capacityType")
    nodes: int = Field(ge=0, le=200, description="Number of simulated nodes.")
    gpu_product: str = Field(alias="gpuProduct", min_length=1)
    gpus_per_node: int = Field(alias="gpusPerNode", ge=1, le=16)
    instance_type: str = Field(alias="instanceType", default="gpu-node")
    zone: str = "local-a"
    cpu: str = Field(default="192", description="Allocatable CPU cores per node.")
    memory: str = Field(default="2048Gi", description="Allocatable memory per node.")
    labels: dict[str, str] = Field(default_factory=dict, description="Extra node labels.")
    taints: tuple[Taint, ...] = Field(
        default=(), description="Extra taints (a lab spot pool adds its own)."
    )
    provider: Literal["lab", "karpenter"] = Field(
        default="lab", description="Whose labels the nodes carry: the lab's, or Karpenter's."
    )
    node_pool: str | None = Field(
        default=None,
        alias="nodePool",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Karpenter NodePool (karpenter.sh/nodepool); the pool's name when empty.",
    )

    @model_validator(mode="after")
    def _node_pool_is_karpenter(self) -> PoolSpec:
        if self.node_pool is not None and self.provider != "karpenter":
            raise ValueError("nodePool: only a pool with provider karpenter has one")
        return self


class PoolsFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    pools: tuple[PoolSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> PoolsFile:
        names = [p.name for p in self.pools]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(duplicates)}")
        return self


def load_pools(path: Path) -> PoolsFile:
    """Read and validate a pools file; errors name the file and the field."""
    return load_yaml_model(path, PoolsFile, "pools file", ClusterError)


def _provider_labels(pool: PoolSpec) -> dict[str, str]:
    if pool.provider == "karpenter":
        return karpenter.node_labels(
            pool.node_pool or pool.name,
            pool.capacity_type,
            pool.instance_type,
            pool.gpu_product,
            pool.gpus_per_node,
        )
    return {
        POOL_LABEL: pool.name,
        CAPACITY_TYPE_LABEL: pool.capacity_type,
        KARPENTER_CAPACITY_TYPE_LABEL: pool.capacity_type,
    }


def node_manifests(pool: PoolSpec) -> list[dict[str, Any]]:
    """The Node objects of one pool, status included (KWOK keeps declared capacity)."""
    taints = [t.model_dump() for t in pool.taints]
    if pool.capacity_type == "spot" and pool.provider == "lab":
        taints.append(dict(SPOT_TAINT))
    capacity = {
        "cpu": pool.cpu,
        "memory": pool.memory,
        "pods": "110",
        GPU_RESOURCE: str(pool.gpus_per_node),
    }
    nodes = []
    for index in range(pool.nodes):
        name = f"{pool.name}-{index}"
        labels = {
            "type": "kwok",
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": pool.instance_type,
            "topology.kubernetes.io/zone": pool.zone,
            **_provider_labels(pool),
            GPU_PRODUCT_LABEL: pool.gpu_product,
            "nvidia.com/gpu.count": str(pool.gpus_per_node),
            "nvidia.com/gpu.present": "true",
            **pool.labels,
        }
        nodes.append(
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {
                    "name": name,
                    "labels": labels,
                    "annotations": {KWOK_ANNOTATION: "fake", MANAGED_ANNOTATION: "true"},
                },
                "spec": {"taints": taints},
                "status": {"capacity": capacity, "allocatable": capacity},
            }
        )
    return nodes
