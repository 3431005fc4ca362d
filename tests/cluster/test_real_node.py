"""The local cluster's real node: a pod from weir's image, run by a kubelet.

The node comes and goes with this module (the `real_node` fixture in
conftest.py, which checks it leaves nothing behind). The pod is `weir router`
from the image `make image` builds, loaded into containerd without a registry
(`imagePullPolicy: Never`): Ready by its own readiness probe (which needs its
policy file, a ConfigMap volume), serving the host at its pod IP to the bearer
token of a Secret volume.
"""

from __future__ import annotations

import ipaddress
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from conftest import Cluster
from weir_lab.cluster import apiservice, node
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

TOKEN = "real-node-token"
# A cold image build makes a Debian root filesystem (tests/image builds it first).
pytestmark = pytest.mark.timeout(1800)


def _router_pod(image: str) -> dict[str, Any]:
    args = [
        *("router", "--model", "m", "--port", "8080", "--metrics-port", "0"),
        # a fixed backend counts as routable: readiness then waits for the policy only
        *("--backend", "http://127.0.0.1:9"),
        *("--policy-file", "/etc/weir/policy/policy.yaml"),
        *("--client-tokens-file", "/etc/weir/tokens/tokens"),
    ]
    return {
        "metadata": {"name": "router"},
        "spec": {
            "nodeSelector": {node.ROLE_LABEL: node.ROLE},
            "tolerations": [node.TOLERATION],
            "automountServiceAccountToken": False,
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "router",
                    "image": image,
                    "imagePullPolicy": "Never",
                    "args": args,
                    "readinessProbe": {
                        "httpGet": {"path": "/readyz", "port": 8080},
                        "periodSeconds": 1,
                    },
                    "securityContext": {"readOnlyRootFilesystem": True, "runAsNonRoot": True},
                    "volumeMounts": [
                        {"name": "policy", "mountPath": "/etc/weir/policy"},
                        {"name": "tokens", "mountPath": "/etc/weir/tokens"},
                        {"name": "tmp", "mountPath": "/tmp"},
                    ],
                }
            ],
            "volumes": [
                {"name": "policy", "configMap": {"name": "router-policy"}},
                {"name": "tokens", "secret": {"secretName": "router-tokens"}},
                {"name": "tmp", "emptyDir": {}},
            ],
        },
    }


def test_the_node_is_a_system_node_without_gpus(cluster: Cluster, real_node: ClusterSettings):
    found = cluster.core.read_node(real_node.real_node_name)
    assert found.metadata.labels[node.ROLE_LABEL] == node.ROLE
    assert [(t.key, t.value, t.effect) for t in found.spec.taints or []] == [
        (node.ROLE_LABEL, node.ROLE, "NoSchedule")
    ]
    assert "nvidia.com/gpu" not in (found.status.capacity or {})
    assert found.status.node_info.container_runtime_version.startswith("containerd://1.6")


def test_a_pod_from_weirs_image_runs_on_the_node(
    cluster: Cluster, real_node: ClusterSettings, namespace: str, image: str
):
    core = cluster.core
    policy = {"metadata": {"name": "router-policy"}, "data": {"policy.yaml": "maxWaiting: 3\n"}}
    core.create_namespaced_config_map(namespace, policy)
    secret = {"metadata": {"name": "router-tokens"}, "stringData": {"tokens": TOKEN}}
    core.create_namespaced_secret(namespace, secret)
    core.create_namespaced_pod(namespace, _router_pod(image))

    def ready() -> Any:
        pod = core.read_namespaced_pod("router", namespace)
        conditions = pod.status.conditions or []
        return pod if any(c.type == "Ready" and c.status == "True" for c in conditions) else None

    pod = wait_for(ready, "the router pod on the real node to be Ready", 120)
    assert pod.spec.node_name == real_node.real_node_name
    address = ipaddress.ip_address(pod.status.pod_ip)
    assert address in ipaddress.ip_network(real_node.real_node_pod_cidr)

    url = f"http://{address}:8080/v1/models"
    refused = httpx.get(url, timeout=5)
    assert refused.status_code == 401  # tokens come from the Secret volume only
    served = httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
    assert served.status_code == 200
    assert [m["id"] for m in served.json()["data"]] == ["m"]


def test_cleaning_up_another_node_folder_leaves_this_nodes_rule(
    real_node: ClusterSettings, tmp_path: Path
):
    """The `kubernetes` Service rule is keyed by its cluster's state folder: a cleanup of
    some other node folder (as a unit test does) must not cut the running node's pods
    off the API server."""

    def rules() -> str:
        listed = ["iptables", "-t", "nat", "-S", "PREROUTING"]
        return subprocess.run(listed, capture_output=True, text=True, check=True).stdout

    assert apiservice.comment(real_node) in rules()
    other = ClusterSettings(state_dir=tmp_path / "other", real_node=True)
    assert apiservice.remove(other) is False  # what a cleanup of its folder runs
    assert apiservice.comment(real_node) in rules()
