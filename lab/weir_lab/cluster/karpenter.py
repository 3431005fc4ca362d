"""What a GPU node that Karpenter launched on AWS carries: its labels, for simulated nodes.

The lab's own pools label nodes `weir.dev/pool`, which no real cluster has. A
pool with `provider: karpenter` gets instead the labels Karpenter writes on
the nodes it launches, so an example written for a Karpenter cluster
(examples/karpenter/) applies here unchanged and its pods land by the labels
they would land by on AWS. Sources, checked Dec 2026:

- `karpenter.sh/nodepool`, `karpenter.sh/capacity-type` (`spot`, `on-demand`),
  `karpenter.sh/registered`, `karpenter.sh/initialized`:
  kubernetes-sigs/karpenter, pkg/apis/v1/labels.go;
- `karpenter.k8s.aws/instance-*` and their values for p5.48xlarge (family p5,
  gpu-name h100, gpu-count 8, gpu-memory 81920) and p5e.48xlarge (h200,
  144384): aws/karpenter-provider-aws, pkg/apis/v1/labels.go and
  website/content/en/docs/reference/instance-types.md;
- `nvidia.com/gpu.product`, `.count`, `.present`: NVIDIA GPU feature discovery.

Karpenter puts no GPU taint of its own; the NodePool's author does (commonly
`nvidia.com/gpu:NoSchedule`), so taints stay what the pool declares.
"""

from __future__ import annotations

import re

NODEPOOL_LABEL = "karpenter.sh/nodepool"
CAPACITY_TYPE_LABEL = "karpenter.sh/capacity-type"
AWS = "karpenter.k8s.aws"
GPU_NAME_LABEL = f"{AWS}/instance-gpu-name"
GPU_COUNT_LABEL = f"{AWS}/instance-gpu-count"
GPU_TAINT_KEY = "nvidia.com/gpu"  # the taint GPU NodePools commonly set (value "true")

# GPU feature discovery's product name -> Karpenter's gpu-name and gpu-memory (MiB).
_GPUS = {
    "NVIDIA-H100-80GB-HBM3": ("h100", 81920),
    "NVIDIA-H200": ("h200", 144384),
}
_FAMILY = re.compile(r"^(?P<category>[a-z]+)(?P<generation>\d+)")


def _gpu(product: str) -> tuple[str, int | None]:
    if product in _GPUS:
        return _GPUS[product]
    found = re.search(r"([A-Z]+\d{2,4}[A-Z]?)", product.upper().replace("NVIDIA", ""))
    return (found.group(1).lower() if found else product.lower()), None


def node_labels(
    node_pool: str, capacity_type: str, instance_type: str, gpu_product: str, gpus: int
) -> dict[str, str]:
    """The Karpenter and Karpenter-on-AWS labels of one node (not the generic ones)."""
    family, _, size = instance_type.partition(".")
    labels = {
        NODEPOOL_LABEL: node_pool,
        CAPACITY_TYPE_LABEL: capacity_type,
        "karpenter.sh/registered": "true",
        "karpenter.sh/initialized": "true",
        f"{AWS}/instance-family": family,
        f"{AWS}/instance-size": size,
        f"{AWS}/instance-gpu-manufacturer": "nvidia",
        GPU_COUNT_LABEL: str(gpus),
    }
    parts = _FAMILY.match(family)
    if parts:
        labels[f"{AWS}/instance-category"] = parts["category"]
        labels[f"{AWS}/instance-generation"] = parts["generation"]
    name, memory = _gpu(gpu_product)
    labels[GPU_NAME_LABEL] = name
    if memory is not None:
        labels[f"{AWS}/instance-gpu-memory"] = str(memory)
    return labels
