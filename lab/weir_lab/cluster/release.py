"""weir installed on the local cluster the way users install it: its image and chart.

`install` builds the image (`e2e/image/build.sh`, cached by content), adds
the real node when the cluster runs without one, loads the image into the
node's containerd (no registry: `pullPolicy: Never`) and runs `helm upgrade
--install` of charts/weir. The operator then runs as the chart's Deployment on
the system node, on its own ServiceAccount and ClusterRole, and places the
router pods there too (`router.nodeSelector`/`tolerations`); engine pods stay
on the simulated GPU pools. What differs from a user's values is only where
things are on this machine: Prometheus at the host end of the pods' veth, and
the hosted stand-ins there on plain http.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from kubernetes import client

from weir_lab.cluster import node
from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.pki import Pki
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

__all__ = [
    "NAMESPACE",
    "RELEASE",
    "Release",
    "against_cluster",
    "build_image",
    "install",
    "installed",
    "operator_targets",
    "uninstall",
    "values",
]

Say = Callable[[str], None]
RELEASE = "weir"
NAMESPACE = "weir-system"
METRICS_PORT = 9464  # the chart's operator.metricsPort


@dataclass(frozen=True)
class Release:
    """The installed chart: its image and where its operator pods answer."""

    image: str
    operator_ips: tuple[str, ...]


def build_image(settings: ClusterSettings) -> str:
    """The image reference `make image` builds (built only when the sources changed)."""
    script = settings.e2e_dir / "image" / "build.sh"
    done = subprocess.run(
        [str(script)], stdout=subprocess.PIPE, stderr=sys.stderr, text=True, check=False
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise ClusterError(f"building weir's image failed (exit {done.returncode}, output above)")
    return done.stdout.strip().splitlines()[-1]


def values(settings: ClusterSettings, image: str, **operator: Any) -> dict[str, Any]:
    """The chart's values for this cluster: the image as loaded, everything on the system
    node, Prometheus and the hosted stand-ins where pods reach them; `operator` adds to
    the chart's `operator` values."""
    repository, tag = image.rsplit(":", 1)
    system = {"nodeSelector": {node.ROLE_LABEL: node.ROLE}, "tolerations": [node.TOLERATION]}
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": "Never"},
        "replicaCount": 1,
        "operator": {
            "prometheusUrl": settings.pod_prometheus_url,
            "allowInsecureHosted": [settings.host_address],
            **operator,
        },
        **system,
        "router": system,
    }


def against_cluster(settings: ClusterSettings, tool: str, *args: str) -> str:
    """Run the toolchain's `tool` (kubectl or helm) against this cluster; its stdout."""
    binary = getattr(ensure(settings.e2e_dir, build=False), tool)
    done = subprocess.run(
        [str(binary), f"--kubeconfig={settings.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"{tool} {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _helm(settings: ClusterSettings, *args: str) -> str:
    return against_cluster(settings, "helm", *args)


def _with_node(settings: ClusterSettings, api: client.ApiClient, say: Say) -> ClusterSettings:
    """The settings with the real node on, starting it when the cluster has none."""
    with_node = settings.model_copy(update={"real_node": True})
    if not node.node_ready(api, with_node.real_node_name):
        say("adding the real node (a kubelet with containerd) to run weir's image")
        tools = node.ensure_tools(with_node)
        node.start(with_node, tools, Pki.at(with_node.state_dir / "pki"), api, say)
    return with_node


def install(settings: ClusterSettings, api: client.ApiClient, say: Say, **operator: Any) -> Release:
    """Image, node, `helm upgrade --install --wait`; the operator pods' addresses."""
    image = build_image(settings)
    with_node = _with_node(settings, api, say)
    node.load_image(with_node, image)
    say(f"image {image} loaded into the node's containerd")
    chart = settings.chart_dir
    given = settings.state_dir / "chart-values.yaml"
    given.write_text(yaml.safe_dump(values(with_node, image, **operator), sort_keys=False))
    _helm(
        with_node,
        *("upgrade", "--install", RELEASE, str(chart)),
        *("--namespace", NAMESPACE, "--create-namespace", "--wait", "--timeout", "5m"),
        *("-f", str(given)),
    )
    say(f"helm upgrade --install {RELEASE} {chart.relative_to(chart.parents[1])} -n {NAMESPACE}")
    pods = client.CoreV1Api(api).list_namespaced_pod(
        NAMESPACE, label_selector=f"app.kubernetes.io/instance={RELEASE}"
    )
    ips = tuple(sorted(p.status.pod_ip for p in pods.items if p.status and p.status.pod_ip))
    if not ips:
        raise ClusterError(f"the chart's operator pods in {NAMESPACE} have no address")
    return Release(image, ips)


def installed(settings: ClusterSettings) -> bool:
    """Whether the release exists (deployed or not)."""
    listed = _helm(settings, "list", "--namespace", NAMESPACE, "--short", "--all")
    return RELEASE in listed.split()


def uninstall(settings: ClusterSettings, api: client.ApiClient) -> None:
    """`helm uninstall --wait`, then until the operator pods are gone too (helm waits
    for the Deployment; its pods go after it, by garbage collection). The CRDs and the
    peering object stay, as with any chart."""
    if installed(settings):
        _helm(settings, "uninstall", RELEASE, "--namespace", NAMESPACE, "--wait")
    core = client.CoreV1Api(api)

    def gone() -> bool:
        selector = f"app.kubernetes.io/instance={RELEASE}"
        return not core.list_namespaced_pod(NAMESPACE, label_selector=selector).items

    try:
        wait_for(gone, f"the operator pods in {NAMESPACE} to stop", 120)
    except WaitTimeoutError as exc:
        raise ClusterError(str(exc)) from exc


def operator_targets(ips: tuple[str, ...]) -> list[dict[str, Any]]:
    """file_sd targets for the operator pods' /metrics (the GPU spend gauge is there)."""
    return [{"targets": [f"{ip}:{METRICS_PORT}" for ip in ips], "labels": {"job": "weir-operator"}}]
