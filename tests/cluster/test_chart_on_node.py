"""weir installed as users install it: `helm install charts/weir`, onto the real node.

The chart's operator Deployment runs from weir's image on the local cluster's
real node, with in-cluster credentials of its own ServiceAccount and
ClusterRole (no kubeconfig of ours), two replicas electing one through kopf's
peering. It reconciles an InferenceDeployment whose engines stay on the
simulated GPU pools and whose router pod it places on the real node (the
chart's `router.nodeSelector`/`router.tolerations`), where the kubelet mounts
the router's ConfigMap and Secret volumes and its readiness probe makes it
Ready. Then the acting replica's container is killed through containerd (as
an OOM kill would) and a deployment made after that is still reconciled.
"""

from __future__ import annotations

import base64
import ipaddress
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from conftest import Cluster
from support.operator import (
    GROUP,
    VERSION,
    create,
    create_pools,
    custom,
    delete_and_wait,
    delete_pools,
    deployment,
    install_crds,
)
from weir.controller.children import CLIENT_TOKENS_KEY, client_tokens_name, router_name
from weir_lab.cluster import node
from weir_lab.cluster.release import values as release_values
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "weir"
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
LIFETIME_S = 10  # the peering lifetime: a silent replica is presumed dead after this
pytestmark = pytest.mark.timeout(1800)


@dataclass(frozen=True)
class Release:
    """The chart installed in its own namespace, which it also watches."""

    namespace: str

    @property
    def peering(self) -> str:
        return f"weir-{self.namespace}"


def _run(*argv: str) -> str:
    done = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(argv[:3])} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _values(settings: ClusterSettings, image: str, namespace: str) -> dict[str, Any]:
    """The demo's values (`weir_lab.cluster.release`), with two replicas watching one
    namespace and a short peering lifetime."""
    return {
        **release_values(
            settings, image, peering=f"weir-{namespace}", peeringLifetimeSeconds=LIFETIME_S
        ),
        "replicaCount": 2,
        "watchNamespaces": [namespace],
    }


@pytest.fixture(scope="module")
def release(
    cluster: Cluster, real_node: ClusterSettings, image: str, tmp_path_factory: Any
) -> Iterator[Release]:
    namespace = f"chart-{uuid.uuid4().hex[:6]}"
    core, objects = cluster.core, custom(cluster.api)
    install_crds(cluster.api)  # helm would too; other modules may have put them there first
    core.create_namespace({"metadata": {"name": namespace, "labels": {"weir.dev/test": "true"}}})
    values = tmp_path_factory.mktemp("chart") / "values.yaml"
    values.write_text(yaml.safe_dump(_values(real_node, image, namespace)))
    helm = (str(ensure(REPO / "e2e").helm), f"--kubeconfig={real_node.kubeconfig}")
    try:
        create_pools(cluster.api, namespace)
        # --wait: both operator pods Ready on the node (their image is already there)
        _run(*helm, "install", namespace, str(CHART), "-n", namespace, "-f", str(values), "--wait")
        yield Release(namespace)
    finally:
        listed = objects.list_namespaced_custom_object(
            GROUP, VERSION, namespace, "inferencedeployments"
        )
        for item in listed["items"]:  # while the operator runs, so it lets them go
            delete_and_wait(cluster, namespace, item["metadata"]["name"])
        _run(*helm, "uninstall", namespace, "-n", namespace, "--wait")
        delete_pools(cluster.api, namespace)
        core.delete_namespace(namespace)  # the peering object (a hook) goes with it
        wait_for(
            lambda: namespace not in {n.metadata.name for n in core.list_namespace().items},
            f"namespace {namespace} to be deleted",
            120,
        )


def _ready(pod: Any) -> bool:
    conditions = pod.status.conditions or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def _operator_pods(cluster: Cluster, release: Release) -> list[Any]:
    selector = "app.kubernetes.io/name=weir,app.kubernetes.io/component=operator"
    return list(cluster.core.list_namespaced_pod(release.namespace, label_selector=selector).items)


def _peers(cluster: Cluster, release: Release) -> dict[str, int]:
    """Peer id (the pod's name, from POD_ID) -> priority, as the replicas announce them."""
    try:
        body = custom(cluster.api).get_namespaced_custom_object(
            "kopf.dev", "v1", release.namespace, "kopfpeerings", release.peering
        )
    except ApiException as exc:
        if exc.status == 404:
            return {}
        raise
    status = body.get("status") or {}
    return {peer: int(seen["priority"]) for peer, seen in status.items() if seen}


def _engines(cluster: Cluster, namespace: str, owner: str) -> int:
    selector = f"weir.dev/deployment={owner},weir.dev/component=engine"
    return len(cluster.apps.list_namespaced_deployment(namespace, label_selector=selector).items)


def _log(cluster: Cluster, namespace: str, pod: str, previous: bool = False) -> str:
    """The container's log through the API server and the node's kubelet (kubectl logs)."""
    text: str = cluster.core.read_namespaced_pod_log(
        pod, namespace, container="operator", previous=previous
    )
    return text


def _reconciled(text: str, namespace: str, name: str) -> bool:
    return f"[{namespace}/{name}] Handler 'reconcile_deployment' succeeded" in text


def _both_announced(cluster: Cluster, release: Release) -> list[str]:
    names = sorted(p.metadata.name for p in _operator_pods(cluster, release))
    wait_for(
        lambda: sorted(_peers(cluster, release)) == names,
        "both replicas to announce themselves in the peering object",
        60,
        interval_s=0.5,
    )
    return names


def test_the_operator_runs_as_the_charts_deployment_on_its_own_account(
    cluster: Cluster, real_node: ClusterSettings, release: Release, image: str
):
    pods = _operator_pods(cluster, release)
    assert len(pods) == 2
    for pod in pods:
        assert pod.spec.node_name == real_node.real_node_name
        assert _ready(pod)
        assert pod.spec.service_account_name == f"{release.namespace}-weir"
        container = pod.spec.containers[0]
        assert container.image == image
        assert container.security_context.read_only_root_filesystem is True
        names = {e.name for e in container.env or []}
        assert not names & {"KUBECONFIG", "WEIR_OPERATOR_KUBECONFIG"}  # in-cluster only
        assert all(v.secret is None for v in pod.spec.volumes or [])
    _both_announced(cluster, release)
    peers = _peers(cluster, release)
    acting = max(peers, key=lambda peer: peers[peer])

    create(cluster, release.namespace, deployment(release.namespace, "first"))
    wait_for(
        lambda: _engines(cluster, release.namespace, "first") == 2,
        "the acting replica to create the engine Deployments",
        90,
        interval_s=0.5,
    )
    wait_for(
        lambda: _reconciled(_log(cluster, release.namespace, acting), release.namespace, "first"),
        "the acting replica's log of it",
        30,
        interval_s=0.5,
    )
    (follower,) = set(peers) - {acting}
    assert not _reconciled(_log(cluster, release.namespace, follower), release.namespace, "first")


def test_the_router_pod_runs_the_image_on_the_node(
    cluster: Cluster, real_node: ClusterSettings, release: Release, image: str
):
    namespace = release.namespace
    if _engines(cluster, namespace, "first") == 0:
        create(cluster, namespace, deployment(namespace, "first"))
    selector = "weir.dev/deployment=first,weir.dev/component=router"

    def ready_router() -> Any:
        found = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
        ready = [p for p in found if _ready(p) and p.metadata.deletion_timestamp is None]
        return ready[0] if ready else None

    pod = wait_for(ready_router, "the router pod to be Ready on the real node", 180)
    assert pod.metadata.owner_references[0].name.startswith(router_name("first"))
    assert pod.spec.node_name == real_node.real_node_name
    (container,) = pod.spec.containers
    assert container.image == image
    assert container.readiness_probe.http_get.path == "/readyz"
    (status,) = pod.status.container_statuses
    assert status.ready is True  # the kubelet's own probe, not a stand-in's patch
    address = ipaddress.ip_address(pod.status.pod_ip)
    assert address in ipaddress.ip_network(real_node.real_node_pod_cidr)

    secret = cluster.core.read_namespaced_secret(client_tokens_name("first"), namespace)
    token = base64.b64decode(secret.data[CLIENT_TOKENS_KEY]).decode().split()[0]
    url = f"http://{address}:8080/v1"
    with pytest.raises(openai.AuthenticationError):  # tokens come from the Secret volume
        openai.OpenAI(base_url=url, api_key="not-a-token", max_retries=0).models.list()
    served = openai.OpenAI(base_url=url, api_key=token, max_retries=0, timeout=30)
    wait_for(
        lambda: _an_engine_ready(cluster, namespace, "first"),
        "an engine to be Ready",
        120,
        interval_s=0.5,
    )
    answer = served.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "hello"}], max_tokens=8
    )
    assert answer.choices[0].message.content
    assert answer.usage is not None and answer.usage.completion_tokens > 0


def _an_engine_ready(cluster: Cluster, namespace: str, owner: str) -> bool:
    """An engine endpoint is ready (the router routes to ready endpoints only)."""
    selector = f"weir.dev/deployment={owner},weir.dev/component=engine"
    pods = cluster.core.list_namespaced_pod(namespace, label_selector=selector).items
    return any(_ready(p) for p in pods)


def test_killing_the_acting_replicas_container_hands_over(
    cluster: Cluster, real_node: ClusterSettings, release: Release
):
    namespace = release.namespace
    _both_announced(cluster, release)
    before = _peers(cluster, release)
    acting = max(before, key=lambda peer: before[peer])
    (survivor,) = set(before) - {acting}
    pod = cluster.core.read_namespaced_pod(acting, namespace)
    (status,) = pod.status.container_statuses
    container_id = status.container_id.removeprefix("containerd://")
    restarts = status.restart_count

    ctr = shutil.which("ctr")
    assert ctr, "the real node's ctr is missing"
    socket = str(node.NodePaths.of(real_node).socket)
    _run(ctr, "--address", socket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", container_id)

    def restarted() -> bool:
        (now,) = cluster.core.read_namespaced_pod(acting, namespace).status.container_statuses
        return bool(now.restart_count > restarts)

    wait_for(restarted, f"the kubelet to restart {acting}'s killed container", 60, interval_s=0.5)
    create(cluster, namespace, deployment(namespace, "second"))
    wait_for(
        lambda: _engines(cluster, namespace, "second") == 2,
        "a live replica to reconcile the deployment made after the kill",
        LIFETIME_S + 90,
        interval_s=0.5,
    )
    # The killed process is gone for good, and its pod's new container announced a new
    # priority. The live replica that ranks first acts: the survivor, after resuming,
    # when the new container ranks below it (or comes up after the peering lifetime),
    # else the new container. Either way a live process reconciled it, not the dead one.
    wait_for(
        lambda: _peers(cluster, release).get(acting) not in (None, before[acting]),
        f"{acting}'s new container to announce itself",
        60,
        interval_s=0.5,
    )

    def reconciled_by() -> list[str]:
        peers = (survivor, acting)
        return [p for p in peers if _reconciled(_log(cluster, namespace, p), namespace, "second")]

    try:
        by = wait_for(reconciled_by, "a live replica's log of the second deployment", 30)
    except WaitTimeoutError:
        for peer in (survivor, acting):  # what each replica did, for whoever reads the failure
            print(f"--- {peer}:\n{_log(cluster, namespace, peer)[-6000:]}")
        raise
    killed = _log(cluster, namespace, acting, previous=True)
    assert killed and not _reconciled(killed, namespace, "second")
    if survivor in by:
        assert "Resuming operations" in _log(cluster, namespace, survivor)
    print(f"after killing {acting}'s container, reconciled by: {', '.join(by)}")
