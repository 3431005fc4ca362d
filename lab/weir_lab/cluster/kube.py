"""The local cluster's use of the Kubernetes API: nodes of the GPU pools, and what its
Prometheus may read.

Uses the official client (the same one the operator uses) with the admin
kubeconfig that `up` writes. API errors are translated into ClusterError at
this boundary.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.pki import PROMETHEUS_USER
from weir_lab.cluster.pools import (
    CAPACITY_TYPE_LABEL,
    GPU_PRODUCT_LABEL,
    GPU_RESOURCE,
    MANAGED_ANNOTATION,
    POOL_LABEL,
    PoolsFile,
    node_manifests,
)
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

Say = Callable[[str], None]


def api_client(settings: ClusterSettings) -> client.ApiClient:
    if not settings.kubeconfig.exists():
        raise ClusterError(f"no kubeconfig at {settings.kubeconfig}: run `weir cluster up` first")
    api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
        config_file=str(settings.kubeconfig)
    )
    return api


PROMETHEUS_ROLE = "weir-lab-prometheus"


def cluster_role_binding(name: str, role: str, kind: str, subject: str) -> dict[str, Any]:
    """A ClusterRoleBinding of `role` to one subject (`kind` User or Group)."""
    group = "rbac.authorization.k8s.io"
    return {
        "apiVersion": f"{group}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": group, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": group, "kind": kind, "name": subject}],
    }


def grant_prometheus(settings: ClusterSettings) -> None:
    """Let the cluster's Prometheus read pods, as the RBAC of a Prometheus in a cluster
    does (the rules its Kubernetes discovery of `role: pod` needs, nothing more)."""
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": PROMETHEUS_ROLE},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch"]}],
    }
    binding = cluster_role_binding(PROMETHEUS_ROLE, PROMETHEUS_ROLE, "User", PROMETHEUS_USER)
    with api_client(settings) as api:
        rbac = client.RbacAuthorizationV1Api(api)
        try:
            rbac.create_cluster_role(cast(Any, role))
            rbac.create_cluster_role_binding(cast(Any, binding))
        except ApiException as exc:
            raise ClusterError(f"cannot grant Prometheus its pod reads: {exc.reason}") from exc


@dataclass(frozen=True)
class NodeRow:
    """What `weir cluster status` shows for one node."""

    name: str
    pool: str
    capacity_type: str
    gpu_product: str
    gpus: int
    ready: bool
    pod_cidr: str


def _apply_node(core: client.CoreV1Api, manifest: dict[str, Any]) -> None:
    name = manifest["metadata"]["name"]
    try:
        core.create_node(cast(Any, manifest))  # the client serialises plain dicts as they are
    except ApiException as exc:
        if exc.status != 409:
            raise ClusterError(f"cannot create node {name}: {exc.reason}") from exc
        core.patch_node(name, {"metadata": manifest["metadata"], "spec": manifest["spec"]})
    # The API server may drop status on create; patch it so capacity is what the pool says.
    core.patch_node_status(name, {"status": manifest["status"]})


def apply_pools(settings: ClusterSettings, pools: PoolsFile, say: Say) -> list[NodeRow]:
    """Create or update every declared node, remove undeclared ones, wait until all are Ready."""
    with api_client(settings) as api:
        core = client.CoreV1Api(api)
        wanted = {}
        for pool in pools.pools:
            for manifest in node_manifests(pool):
                wanted[manifest["metadata"]["name"]] = manifest
                _apply_node(core, manifest)
        for node in core.list_node().items:
            name, _, annotations = _meta(node)
            if annotations.get(MANAGED_ANNOTATION) == "true" and name not in wanted:
                core.delete_node(name)
                say(f"  removed node {name} (no longer in {settings.pools_path.name})")

        def all_ready() -> list[NodeRow] | None:
            rows = [r for r in node_rows(core) if r.name in wanted]
            ready = len(rows) == len(wanted) and all(r.ready and r.pod_cidr for r in rows)
            return rows if ready else None

        rows = wait_for(all_ready, f"{len(wanted)} nodes to be Ready", settings.start_timeout_s)
    say(f"  {len(rows)} GPU nodes Ready in {len(pools.pools)} pools")
    return rows


def _meta(node: client.V1Node) -> tuple[str, dict[str, str], dict[str, str]]:
    """Name, labels and annotations of a node (the client types every field optional)."""
    meta = node.metadata or client.V1ObjectMeta()
    return meta.name or "", dict(meta.labels or {}), dict(meta.annotations or {})


def node_rows(core: client.CoreV1Api) -> list[NodeRow]:
    rows = []
    for node in core.list_node().items:
        name, labels, _ = _meta(node)
        conditions = (node.status.conditions or []) if node.status else []
        ready = any(c.type == "Ready" and c.status == "True" for c in conditions)
        capacity = (node.status.capacity or {}) if node.status else {}
        rows.append(
            NodeRow(
                name=name,
                pool=labels.get(POOL_LABEL, "-"),
                capacity_type=labels.get(CAPACITY_TYPE_LABEL, "-"),
                gpu_product=labels.get(GPU_PRODUCT_LABEL, "-"),
                gpus=int(capacity.get(GPU_RESOURCE, "0")),
                ready=ready,
                pod_cidr=(node.spec.pod_cidr or "") if node.spec else "",
            )
        )
    return sorted(rows, key=lambda r: (r.pool, r.name))


def list_nodes(settings: ClusterSettings) -> list[NodeRow]:
    with api_client(settings) as api:
        return node_rows(client.CoreV1Api(api))
