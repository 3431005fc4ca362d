"""`up`, `down` and `status` of the local cluster.

`up` is all-or-nothing: it checks ports and binaries before starting
anything, starts the components in order waiting for each to be healthy, and
on any failure stops what it started (keeping the logs) so no half-started
cluster is left. It recovers from a crashed run by stopping leftovers of ours
first. `up` on a healthy cluster only re-applies the pools. `down` stops every
process of ours and removes the state folder.
"""

from __future__ import annotations

import fcntl
import shutil
import string
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import yaml

from weir_lab.cluster import kube, node, podnet, processes
from weir_lab.cluster.components import Component, components
from weir_lab.cluster.errors import ClusterError, PortInUseError
from weir_lab.cluster.pki import Pki, kubeconfig_text, write_pki
from weir_lab.cluster.pools import load_pools
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

Say = Callable[[str], None]


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    pid: int | None
    port: int | None
    healthy: bool


def _pki(settings: ClusterSettings) -> Pki:
    return Pki.at(settings.state_dir / "pki")


def _port_env(name: str) -> str:
    field = {
        "etcd": "ETCD_PORT",
        "etcd-peer": "ETCD_PEER_PORT",
        "kube-apiserver": "APISERVER_PORT",
        "kube-controller-manager": "CONTROLLER_MANAGER_PORT",
        "kube-scheduler": "SCHEDULER_PORT",
        "prometheus": "PROMETHEUS_PORT",
        "kubelet": "KUBELET_PORT",
        "kubelet-healthz": "KUBELET_HEALTHZ_PORT",
    }[name]
    return f"WEIR_CLUSTER_{field}"


def _check_ports(settings: ClusterSettings) -> None:
    for name, port in settings.ports().items():
        if not processes.port_in_use(port):
            continue
        holder = processes.port_holder(port)
        who = f"{holder.name()} (pid {holder.pid})" if holder else "another process"
        raise PortInUseError(
            f"port {port} for {name} is in use by {who}. Stop it, or pick another port "
            f"with {_port_env(name)}=<port>, then run `weir cluster up` again"
        )


def _render_prometheus(settings: ClusterSettings, pki: Pki) -> None:
    """e2e/prometheus/prometheus.yml filled in, plus (with a pod network) the chart's job
    for router and engine pods, discovering them through the API server as the
    cluster's own Prometheus would: its relabelling is the chart's, read from the file
    the chart's PodMonitor renders, only the discovery's address and credentials are
    this cluster's. Without a pod network nothing answers at pod addresses, and the
    host has no route to them, so the job is left out."""
    template = (settings.e2e_dir / "prometheus" / "prometheus.yml").read_text()
    interval = settings.scrape_interval_s
    text = string.Template(template).substitute(
        scrape_interval=f"{interval:g}s",
        scrape_timeout=f"{min(interval, 10.0):g}s",
        prometheus_port=settings.prometheus_port,
        targets_dir=settings.prometheus_targets_dir.resolve(),
    )
    config = yaml.safe_load(text)
    if settings.pod_network:
        config["scrape_configs"].append(pod_scrape_job(settings, pki))
    out = settings.state_dir / "prometheus"
    settings.prometheus_targets_dir.mkdir(parents=True, exist_ok=True)
    (out / "prometheus.yml").write_text(yaml.safe_dump(config, sort_keys=False))


def pod_scrape_job(settings: ClusterSettings, pki: Pki) -> dict[str, Any]:
    """The chart's scrape job (scrape/pods.yaml) pointed at this cluster's API server."""
    job: dict[str, Any] = yaml.safe_load(settings.pod_scrape_config.read_text())
    job["kubernetes_sd_configs"] = [
        {
            **sd,
            "api_server": settings.apiserver_url,
            "tls_config": {
                "ca_file": str(pki.ca_cert.resolve()),
                "cert_file": str(pki.prometheus_cert.resolve()),
                "key_file": str(pki.prometheus_key.resolve()),
            },
        }
        for sd in job["kubernetes_sd_configs"]
    ]
    return job


def _start_and_wait(component: Component, settings: ClusterSettings, say: Say) -> None:
    managed = processes.start(component.name, component.argv, settings.state_dir)

    def ready() -> bool:
        if not processes.alive(managed):
            tail = "\n".join(managed.log.read_text(errors="replace").splitlines()[-15:])
            raise ClusterError(f"{component.name} exited while starting; its log ends:\n{tail}")
        return component.healthy()

    try:
        wait_for(ready, f"{component.name} to become healthy", settings.start_timeout_s)
    except WaitTimeoutError as exc:
        raise ClusterError(f"{exc}; see {managed.log}") from exc
    say(f"  {component.name} is up (pid {managed.pid})")


def api_ready(settings: ClusterSettings) -> bool:
    """The API server of this state folder answers /readyz (other parts may be restarting)."""
    return (
        any(s.name == "kube-apiserver" and s.healthy for s in status(settings))
        if settings.kubeconfig.exists()
        else False
    )


def is_running(settings: ClusterSettings) -> bool:
    """Every component recorded, alive and healthy."""
    return all(s.healthy for s in status(settings)) if settings.kubeconfig.exists() else False


@contextmanager
def _exclusive(settings: ClusterSettings) -> Iterator[None]:
    """One `up` or `down` at a time per state folder (two test sessions may race)."""
    lock_path = settings.state_dir.parent / f".{settings.state_dir.name}.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def up(settings: ClusterSettings, say: Say) -> None:
    """Bring the cluster up (or re-apply the pools of a running one)."""
    with _exclusive(settings):
        _up(settings, say)


def _up(settings: ClusterSettings, say: Say) -> None:
    pools = load_pools(settings.pools_path)
    if is_running(settings):
        say("cluster already running; applying pools")
        kube.apply_pools(settings, pools, say)
        return
    leftovers = processes.stop_all(settings.state_dir)
    if leftovers:
        say(
            f"stopped {len(leftovers)} leftover process(es) of an earlier run: "
            + ", ".join(leftovers)
        )
    node.cleanup(settings)
    _check_ports(settings)
    tools = ensure(settings.e2e_dir)
    # installed and built before anything starts, like the control plane's binaries
    node_tools = node.ensure_tools(settings) if settings.real_node else None
    _wipe(settings)
    if settings.pod_network:
        podnet.create(settings)
        say(f"  pod network {settings.pod_cidr} in netns {settings.netns}")
    pki = write_pki(
        settings.state_dir / "pki",
        extra_ips=(settings.apiserver_address, settings.kubernetes_service_ip),
    )
    settings.kubeconfig.write_text(kubeconfig_text(settings.apiserver_url, pki))
    settings.kubeconfig.chmod(0o600)
    _render_prometheus(settings, pki)
    try:
        for component in components(settings, tools, pki):
            _start_and_wait(component, settings, say)
            if component.name == "kube-apiserver":
                # before Prometheus starts, so its discovery's first list is allowed
                kube.grant_prometheus(settings)
        kube.apply_pools(settings, pools, say)
        if node_tools:
            with kube.api_client(settings) as api:
                node.start(settings, node_tools, pki, api, say)
    except BaseException:
        stopped = processes.stop_all(settings.state_dir)
        node.cleanup(settings)
        if settings.pod_network:
            podnet.delete(settings)
        say(
            f"start failed; stopped {len(stopped)} process(es); "
            f"logs kept in {settings.state_dir / 'logs'}"
        )
        raise


def _wipe(settings: ClusterSettings) -> None:
    """Remove state of an earlier run (data, certificates), keeping nothing stale."""
    if settings.state_dir.exists():
        shutil.rmtree(settings.state_dir)
    settings.state_dir.mkdir(parents=True)


def down(settings: ClusterSettings, say: Say) -> None:
    """Stop every process of ours and remove the state folder."""
    with _exclusive(settings):
        _down(settings, say)


def _down(settings: ClusterSettings, say: Say) -> None:
    stopped = processes.stop_all(settings.state_dir)
    left = processes.find_owned(settings.state_dir)
    if left:
        raise ClusterError(f"could not stop: {', '.join(f'{p.pid}' for p in left)}")
    removed = node.cleanup(settings)
    if removed:
        say(f"removed what the real node left: {', '.join(removed)}")
    if settings.pod_network:
        podnet.delete(settings)
    if settings.state_dir.exists():
        shutil.rmtree(settings.state_dir)
    say(f"stopped {len(stopped)} process(es); removed {settings.state_dir}")


def status(settings: ClusterSettings) -> list[ComponentStatus]:
    """Which components run, and whether each answers its health check."""
    running = {m.name: m for m in processes.recorded(settings.state_dir)}
    if not (settings.state_dir / "pki" / "ca.crt").exists():
        return [ComponentStatus(name, None, port, False) for name, port in _names(settings)]
    tools = ensure(settings.e2e_dir, build=False)
    result = []
    for component in components(settings, tools, _pki(settings)):
        managed = running.get(component.name)
        healthy = managed is not None and component.healthy()
        result.append(
            ComponentStatus(
                component.name,
                managed.pid if managed else None,
                component.port,
                healthy,
            )
        )
    if settings.real_node:
        for name, port, check in node.health(settings):
            managed = running.get(name)
            result.append(
                ComponentStatus(
                    name, managed.pid if managed else None, port, managed is not None and check()
                )
            )
    return result


def _names(settings: ClusterSettings) -> list[tuple[str, int | None]]:
    ports = settings.ports()
    return [
        (n, ports.get(n))
        for n in (
            "etcd",
            "kube-apiserver",
            "kube-controller-manager",
            "kube-scheduler",
            "kwok",
            "prometheus",
            *(("pod-supervisor",) if settings.pod_network else ()),
        )
    ] + [(name, port) for name, port, _ in (node.health(settings) if settings.real_node else [])]
