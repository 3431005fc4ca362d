"""Workloads and queries the cluster tests share."""

from __future__ import annotations

from typing import Any

from kubernetes import client

from weir_lab.cluster.pools import CAPACITY_TYPE_LABEL, GPU_RESOURCE, SPOT_TAINT

SPOT_TOLERATION = {**SPOT_TAINT, "operator": "Equal"}


def gpu_deployment(name: str, replicas: int, gpus: int, spot: bool) -> dict[str, Any]:
    pod_spec: dict[str, Any] = {
        "containers": [
            {
                "name": "engine",
                "image": "nvcr.io/nvidia/tensorrt-llm/release:test",
                "ports": [{"containerPort": 8000}],
                "resources": {"limits": {GPU_RESOURCE: str(gpus)}},
            }
        ],
    }
    if spot:
        pod_spec["nodeSelector"] = {CAPACITY_TYPE_LABEL: "spot"}
        pod_spec["tolerations"] = [SPOT_TOLERATION]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": pod_spec},
        },
    }


def running_pods(core: client.CoreV1Api, namespace: str, app: str) -> list[client.V1Pod]:
    pods = core.list_namespaced_pod(namespace, label_selector=f"app={app}").items
    return [p for p in pods if p.status.phase == "Running" and p.status.pod_ip]


def capacity_type_of(core: client.CoreV1Api, node: str) -> str:
    labels: dict[str, str] = core.read_node(node).metadata.labels
    return labels[CAPACITY_TYPE_LABEL]
