"""The command lines of the cluster's processes and how to tell each is healthy.

Flags follow controller-runtime's envtest and `hack/local-up-cluster.sh`, with
the changes recorded in e2e/README.md: everything binds to 127.0.0.1 except the
API server and Prometheus, which listen on the host end of the pods' veth when
pods have a network (so pods reach them; the address is local to the host too).
The API server does not reconcile its own endpoints, and the controller manager
hands each node a /24 of the pod CIDR, which KWOK then uses for pod addresses. With a pod network,
KWOK leaves readiness to the pod supervisor (e2e/kwok/pod-stages.yaml).
"""

from __future__ import annotations

import ipaddress
import ssl
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from weir_lab.cluster.pki import Pki
from weir_lab.cluster.pools import KWOK_ANNOTATION
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.toolchain import Toolchain


@dataclass(frozen=True)
class Component:
    """One process of the cluster: its command line and its health check."""

    name: str
    argv: tuple[str, ...]
    port: int | None
    healthy: Callable[[], bool]


def _get_ok(url: str, verify: ssl.SSLContext | bool = False) -> bool:
    try:
        return httpx.get(url, verify=verify, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def admin_ssl_context(pki: Pki) -> ssl.SSLContext:
    """TLS context that trusts the local CA and presents the admin certificate."""
    context = ssl.create_default_context(cafile=str(pki.ca_cert))
    context.load_cert_chain(str(pki.admin_cert), str(pki.admin_key))
    return context


def node_ip(settings: ClusterSettings) -> str:
    """The address simulated nodes report: the last one of the pod CIDR's /24s."""
    network = ipaddress.ip_network(settings.pod_cidr)
    return str(network.broadcast_address - 1)


def components(settings: ClusterSettings, tools: Toolchain, pki: Pki) -> list[Component]:
    """Every process in start order."""
    s = settings
    state = s.state_dir.resolve()
    kubeconfig = str(s.kubeconfig.resolve())
    etcd_url = f"http://127.0.0.1:{s.etcd_port}"
    admin = admin_ssl_context(pki)
    found = [
        Component(
            "etcd",
            (
                str(tools.etcd),
                "--name=weir-local",
                f"--data-dir={state / 'etcd'}",
                f"--listen-client-urls={etcd_url}",
                f"--advertise-client-urls={etcd_url}",
                f"--listen-peer-urls=http://127.0.0.1:{s.etcd_peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{s.etcd_peer_port}",
                f"--initial-cluster=weir-local=http://127.0.0.1:{s.etcd_peer_port}",
                "--unsafe-no-fsync=true",
                "--log-level=warn",
            ),
            s.etcd_port,
            lambda: _get_ok(f"{etcd_url}/health"),
        ),
        Component(
            "kube-apiserver",
            (
                str(tools.kube_apiserver),
                f"--etcd-servers={etcd_url}",
                f"--bind-address={s.apiserver_address}",
                f"--advertise-address={s.apiserver_address}",
                f"--secure-port={s.apiserver_port}",
                f"--cert-dir={state / 'pki'}",
                f"--tls-cert-file={pki.apiserver_cert}",
                f"--tls-private-key-file={pki.apiserver_key}",
                f"--client-ca-file={pki.ca_cert}",
                "--authorization-mode=RBAC",
                f"--service-account-issuer={s.apiserver_url}",
                f"--service-account-key-file={pki.sa_pub}",
                f"--service-account-signing-key-file={pki.sa_key}",
                f"--service-cluster-ip-range={s.service_cidr}",
                "--allow-privileged=true",
                "--endpoint-reconciler-type=none",
                # `kubectl logs/exec` on the real node: its kubelet takes certificates of
                # the local CA (it authorizes everyone so authenticated), at its address
                f"--kubelet-client-certificate={pki.admin_cert}",
                f"--kubelet-client-key={pki.admin_key}",
                "--kubelet-preferred-address-types=InternalIP",
                "--profiling=false",
            ),
            s.apiserver_port,
            lambda: _get_ok(f"{s.apiserver_url}/readyz", admin),
        ),
        Component(
            "kube-controller-manager",
            (
                str(tools.kube_controller_manager),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={s.controller_manager_port}",
                f"--service-account-private-key-file={pki.sa_key}",
                f"--root-ca-file={pki.ca_cert}",
                "--use-service-account-credentials=true",
                f"--cluster-signing-cert-file={pki.ca_cert}",
                f"--cluster-signing-key-file={pki.ca_key}",
                "--allocate-node-cidrs=true",
                f"--cluster-cidr={s.pod_cidr}",
                "--node-cidr-mask-size=24",
                f"--service-cluster-ip-range={s.service_cidr}",
                "--profiling=false",
            ),
            s.controller_manager_port,
            lambda: _get_ok(f"https://127.0.0.1:{s.controller_manager_port}/healthz"),
        ),
        Component(
            "kube-scheduler",
            (
                str(tools.kube_scheduler),
                f"--kubeconfig={kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={s.scheduler_port}",
                "--profiling=false",
            ),
            s.scheduler_port,
            lambda: _get_ok(f"https://127.0.0.1:{s.scheduler_port}/healthz"),
        ),
        Component(
            "kwok",
            (
                str(tools.kwok),
                f"--kubeconfig={kubeconfig}",
                "--manage-all-nodes=false",
                f"--manage-nodes-with-annotation-selector={KWOK_ANNOTATION}=fake",
                f"--cidr={s.pod_cidr}",
                f"--node-ip={node_ip(s)}",
                "--node-lease-duration-seconds=40",
                *(
                    [f"--config={s.e2e_dir.resolve() / 'kwok' / 'pod-stages.yaml'}"]
                    if s.pod_network
                    else []
                ),
            ),
            None,
            lambda: True,
        ),
        Component(
            "prometheus",
            (
                str(tools.prometheus),
                f"--config.file={state / 'prometheus' / 'prometheus.yml'}",
                f"--storage.tsdb.path={state / 'prometheus' / 'data'}",
                f"--web.listen-address=127.0.0.1:{s.prometheus_port}",
                # and where pods reach the host (the real node's operator reads it there)
                *(
                    [f"--web.listen-address={s.host_address}:{s.prometheus_port}"]
                    if s.pod_network
                    else []
                ),
                "--web.enable-lifecycle",
                "--web.enable-remote-write-receiver",
                "--storage.tsdb.retention.time=2d",
            ),
            s.prometheus_port,
            lambda: _get_ok(f"{s.prometheus_url}/-/ready"),
        ),
    ]
    if s.pod_network:
        found.append(
            Component(
                "pod-supervisor",
                (
                    sys.executable,
                    "-m",
                    "weir",
                    "cluster",
                    "supervise",
                    f"--state-dir={state}",
                ),
                None,
                lambda: _heartbeat_fresh(s),
            )
        )
    return found


def _heartbeat_fresh(settings: ClusterSettings) -> bool:
    """The supervisor touches a file after every pass of its loop."""
    beat = settings.state_dir / "pods" / "heartbeat"
    try:
        return time.time() - beat.stat().st_mtime < max(10.0, 10 * settings.pod_loop_s)
    except OSError:
        return False
