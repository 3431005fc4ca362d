"""Spot interruptions: move traffic off a node the moment it is being reclaimed.

Signals that a node is going away, whichever comes first: a reclaim taint
(the ones cloud node-termination handlers and autoscalers set; configurable),
its Ready condition turning False or Unknown, or its deletion. At the signal
weir deletes its engine pods on that node with a grace period as long as the
pool's interruption notice: their endpoints turn `terminating` at once, the
router sends them no new request while their open streams finish, and their
ReplicaSets start replacements on other nodes right away, seconds after the
notice instead of at the next control period. The planner sees the warming
replacements and spills to hosted until they are ready.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from weir.controller.children import COMPONENT_LABEL, DEPLOYMENT_LABEL, MANAGED_BY, POOL_LABEL
from weir.controller.port import ClusterError, Drained

DEFAULT_NOTICE_S = 30


def reclaim_reason(node: Mapping[str, Any], taint_keys: Iterable[str]) -> str | None:
    """Why this node is being reclaimed, or None when it is not."""
    meta = node.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return "node is being deleted"
    keys = set(taint_keys)
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("key") in keys:
            return f"reclaim taint {taint['key']}"
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") in ("False", "Unknown"):
            return f"node Ready={condition['status']}"
    return None


def _notice_s(api: client.ApiClient, pool: str | None) -> int:
    if not pool:
        return DEFAULT_NOTICE_S
    try:
        body = client.CustomObjectsApi(api).get_cluster_custom_object(
            "weir.dev", "v1alpha1", "capacitypools", pool
        )
    except ApiException:
        return DEFAULT_NOTICE_S
    if not isinstance(body, dict):
        return DEFAULT_NOTICE_S
    notice = (body.get("spec") or {}).get("interruptionNoticeSeconds") or DEFAULT_NOTICE_S
    return max(1, int(notice))


def drain_node(api: client.ApiClient, node: str) -> list[Drained]:
    """Delete weir's engine pods on `node` with the pool's notice as grace period."""
    core = client.CoreV1Api(api)
    selector = ",".join([f"{COMPONENT_LABEL}=engine", *(f"{k}={v}" for k, v in MANAGED_BY.items())])
    pods = core.list_pod_for_all_namespaces(
        field_selector=f"spec.nodeName={node}", label_selector=selector
    ).items
    drained: dict[tuple[str, str], list[str]] = {}
    for pod in pods:
        meta = pod.metadata
        if meta is None or meta.deletion_timestamp is not None or not meta.name:
            continue  # already draining
        labels = meta.labels or {}
        grace = _notice_s(api, labels.get(POOL_LABEL))
        try:
            core.delete_namespaced_pod(meta.name, meta.namespace or "", grace_period_seconds=grace)
        except ApiException as exc:
            if exc.status != 404:
                raise ClusterError(
                    f"drain pod {meta.name}: {exc.status} {exc.reason}", True
                ) from exc
            continue
        key = (meta.namespace or "", labels.get(DEPLOYMENT_LABEL, ""))
        drained.setdefault(key, []).append(meta.name)
    return [Drained(ns, dep, tuple(sorted(names))) for (ns, dep), names in drained.items()]
