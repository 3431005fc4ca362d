"""Run the operator as a real process against the test cluster, and read its log."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from weir_lab.closedloop.harness import Shape, install_crds, pool_manifests
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

GROUP, VERSION = "weir.dev", "v1alpha1"
__all__ = ["install_crds"]


@contextmanager
def operator_process(
    settings: ClusterSettings, log: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """`weir operator run ARGS` against the test cluster and its Prometheus; stopped on exit."""
    environment = {
        **os.environ,
        "WEIR_OPERATOR_KUBECONFIG": str(settings.kubeconfig),
        "KUBECONFIG": str(settings.kubeconfig),
        "WEIR_OPERATOR_PROMETHEUS_URL": settings.prometheus_url,
        "WEIR_OPERATOR_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "weir", "operator", "run", "--verbose", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=environment,
        )
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def get_deployment(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any]:
    body: dict[str, Any] = custom(api).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferencedeployments", name
    )
    return body


def pools(prefix: str) -> list[dict[str, Any]]:
    """The closed loop's two pools for the 8B model (one GPU a replica), with a short cold
    start: the pod supervisor emulates it before an engine pod turns Ready."""
    return pool_manifests(prefix, Shape(cold_start_s=10, notice_s=120), gpus_per_replica=1)


def create_pools(api: client.ApiClient, prefix: str) -> None:
    for pool in pools(prefix):
        custom(api).create_cluster_custom_object(GROUP, VERSION, "capacitypools", pool)


def delete_pools(api: client.ApiClient, prefix: str) -> None:
    """Delete the pools `create_pools` made (those already gone are skipped)."""
    for pool in pools(prefix):
        try:
            custom(api).delete_cluster_custom_object(
                GROUP, VERSION, "capacitypools", pool["metadata"]["name"]
            )
        except ApiException as exc:
            if exc.status != 404:
                raise


def deployment(prefix: str, name: str = "llm") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "fp8"},
            "slo": {"ttftSeconds": 1.5, "itlSeconds": 0.06},
            "cost": {"budgetDollarsPerHour": 50},
            "pools": [
                {"pool": f"{prefix}-od", "minReplicas": 1, "maxReplicas": 3},
                {"pool": f"{prefix}-spot", "minReplicas": 2, "maxReplicas": 4},
            ],
            "control": {"periodSeconds": 2, "staleAfterSeconds": 30},
        },
    }


def create(cluster, namespace: str, body: dict[str, Any]) -> None:
    custom(cluster.api).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferencedeployments", body
    )


def delete_and_wait(cluster: Any, namespace: str, name: str = "llm") -> None:
    """Delete an InferenceDeployment and wait until the operator let it go (its finalizer)."""
    api = custom(cluster.api)
    try:
        api.delete_namespaced_custom_object(GROUP, VERSION, namespace, "inferencedeployments", name)
    except ApiException as exc:
        if exc.status != 404:
            raise

    def gone() -> bool:
        try:
            api.get_namespaced_custom_object(
                GROUP, VERSION, namespace, "inferencedeployments", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        return False

    wait_for(gone, f"InferenceDeployment {namespace}/{name} to be deleted", 60)
