"""The local cluster's real node: a kubelet with containerd, runc and the CNI bridge.

GPU pools stay simulated (KWOK) nodes; this one node runs real containers, so
the chart's pods can run from their image. It joins as a "system" node: no
GPUs, labelled and tainted `weir.dev/node-role=system:NoSchedule`, so only pods
that tolerate the taint land there and the GPU pools' pods never do.

Everything the node writes lives under `<state>/node` (containerd's root and
state, runc's state, the CNI configuration and address leases, the kubelet's
root and pod logs), so `down` finds and removes it all. What the machine needs
and why (recorded in issue 15, checked on this machine kind):

- the kernel's cgroups are hybrid (v1 controllers) and root lacks
  CAP_SYS_RESOURCE: the kubelet runs with `failCgroupV1: false`, the cgroupfs
  driver, no QoS cgroups and no node-allocatable enforcement; containerd with
  `restrict_oom_score_adj` (else every sandbox fails with "can't get final
  child's PID from pipe: EOF");
- no registry is reachable: the sandbox image is built here (weir_lab.cluster.
  images) and every image is imported with `ctr`; pods use `imagePullPolicy:
  Never`;
- the stand-ins' namespace makes the whole pod CIDR local, so the node's pods
  take addresses from `real_node_pod_cidr`, outside it; the bridge does no
  masquerading and the kubelet makes no iptables chains; the one rule of ours
  (`apiservice`: the `kubernetes` Service's ClusterIP to the API server, as
  kube-proxy would) goes with the node, so no rule is left on the host.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from weir_lab.cluster import apiservice, images, processes
from weir_lab.cluster.errors import ClusterError, ToolchainError
from weir_lab.cluster.kube import cluster_role_binding
from weir_lab.cluster.nodeconfig import (
    BRIDGE,
    CNI_NETWORK,
    ROLE,
    ROLE_LABEL,
    TAINT,
    TOLERATION,
    NodePaths,
    NodeTools,
    cni_config,
    containerd_config,
    kubelet_config,
    pause_ref,
)
from weir_lab.cluster.pki import Pki, kubeconfig_text, write_client_cert
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import WaitTimeoutError, wait_for

__all__ = [
    "BRIDGE",
    "ROLE",
    "ROLE_LABEL",
    "TAINT",
    "TOLERATION",
    "NodePaths",
    "NodeTools",
    "cleanup",
    "ensure_tools",
    "health",
    "kubelet_healthy",
    "load_image",
    "mounts_under",
    "node_ready",
    "outside_leftovers",
    "start",
    "stop",
]

Say = Callable[[str], None]

_NODE_ROLE_BINDING = "weir-lab-nodes"


def _script_paths(script: Path, what: str) -> dict[str, Path]:
    if not script.is_file():
        raise ToolchainError(f"{script} is missing: run weir from a checkout of the project")
    done = subprocess.run(
        ["bash", str(script)], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    if done.returncode == 3:
        raise ToolchainError("Go is not installed: install Go >= 1.24 and run again")
    if done.returncode != 0:
        raise ToolchainError(f"{what} failed (exit {done.returncode}, output above)")
    found = {}
    for line in done.stdout.splitlines():
        name, sep, path = line.partition("=")
        if sep:
            found[name.strip()] = Path(path.strip())
    return found


def ensure_tools(settings: ClusterSettings) -> NodeTools:
    """Install containerd, runc and the CNI plugins when missing; build the kubelet and
    pause when not cached (e2e/node/build.sh)."""
    if os.geteuid() != 0:
        raise ClusterError(
            "the real node needs root (containerd, mounts, network namespaces); "
            "run as root or set WEIR_CLUSTER_REAL_NODE=false"
        )
    here = settings.e2e_dir / "node"
    debian = _script_paths(here / "packages.sh", "installing containerd, runc and CNI")
    built = _script_paths(here / "build.sh", "building the kubelet")
    tools = NodeTools(
        kubelet=built["kubelet"] / "kubelet",
        pause=built["pause"] / "pause",
        containerd=debian["containerd"],
        ctr=debian["ctr"],
        runc=debian["runc"],
        cni_bin_dir=debian["cni_bin_dir"],
    )
    for name, path in vars(tools).items():
        if not path.exists():
            raise ToolchainError(f"{name}: {path} is missing after the build")
    return tools


def _write_configs(settings: ClusterSettings, tools: NodeTools, pki: Pki) -> NodePaths:
    paths = NodePaths.of(settings)
    for folder in (paths.containerd_config.parent, paths.cni_conf_dir, paths.kubelet_root):
        folder.mkdir(parents=True, exist_ok=True)
    paths.containerd_config.write_text(containerd_config(paths, tools, pause_ref(tools)))
    (paths.cni_conf_dir / "10-weir-node.conflist").write_text(
        json.dumps(cni_config(paths, settings), indent=2)
    )
    paths.kubelet_config.write_text(
        yaml.safe_dump(kubelet_config(paths, settings, pki), sort_keys=False)
    )
    cert, key = paths.root / "kubelet" / "client.crt", paths.root / "kubelet" / "client.key"
    write_client_cert(pki, cert, key, f"system:node:{settings.real_node_name}", "system:nodes")
    paths.kubelet_kubeconfig.write_text(
        kubeconfig_text(settings.apiserver_url, pki, client_cert=cert, client_key=key)
    )
    paths.kubelet_kubeconfig.chmod(0o600)
    images.write_pause_archive(tools.pause, pause_ref(tools), paths.pause_archive)
    return paths


def _start(
    name: str, argv: list[str], settings: ClusterSettings, ready: Callable[[], bool]
) -> None:
    managed = processes.start(name, argv, settings.state_dir)

    def healthy() -> bool:
        if not processes.alive(managed):
            tail = "\n".join(managed.log.read_text(errors="replace").splitlines()[-15:])
            raise ClusterError(f"{name} exited while starting; its log ends:\n{tail}")
        return ready()

    try:
        wait_for(healthy, f"{name} to become healthy", settings.start_timeout_s)
    except WaitTimeoutError as exc:
        raise ClusterError(f"{exc}; see {managed.log}") from exc


def containerd_healthy(ctr: Path, socket: Path) -> bool:
    if not socket.exists():
        return False
    done = subprocess.run(
        [str(ctr), "--address", str(socket), "version"],
        capture_output=True,
        check=False,
        timeout=10,
    )
    return done.returncode == 0


def kubelet_healthy(settings: ClusterSettings) -> bool:
    try:
        url = f"http://127.0.0.1:{settings.kubelet_healthz_port}/healthz"
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _grant_nodes(api: client.ApiClient) -> None:
    """Bind the built-in `system:node` role to the `system:nodes` group: the API server
    authorizes by RBAC alone (no Node authorizer), and Kubernetes leaves that binding
    without subjects."""
    binding = cluster_role_binding(_NODE_ROLE_BINDING, "system:node", "Group", "system:nodes")
    try:
        client.RbacAuthorizationV1Api(api).create_cluster_role_binding(cast(Any, binding))
    except ApiException as exc:
        if exc.status != 409:
            raise ClusterError(f"cannot let the real node's kubelet in: {exc.reason}") from exc


def node_ready(api: client.ApiClient, name: str) -> bool:
    """The node is registered with this cluster's API server and Ready."""
    try:
        node = client.CoreV1Api(api).read_node(name)
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise ClusterError(f"cannot read node {name}: {exc.reason}") from exc
    conditions = (node.status.conditions if node.status else None) or []
    return any(c.type == "Ready" and c.status == "True" for c in conditions)


def start(
    settings: ClusterSettings, tools: NodeTools, pki: Pki, api: client.ApiClient, say: Say
) -> None:
    """Write the configs, start containerd (loading the pause image) and the kubelet, and
    wait until the node is Ready."""
    paths = _write_configs(settings, tools, pki)
    _grant_nodes(api)
    _start(
        "containerd",
        [str(tools.containerd), "--config", str(paths.containerd_config)],
        settings,
        lambda: containerd_healthy(tools.ctr, paths.socket),
    )
    images.import_archive(tools.ctr, paths.socket, paths.pause_archive)
    say(f"  containerd is up (sandbox image {pause_ref(tools)})")
    labels = f"{ROLE_LABEL}={ROLE},node.kubernetes.io/instance-type=local-system"
    _start(
        "kubelet",
        [
            str(tools.kubelet),
            f"--config={paths.kubelet_config}",
            f"--kubeconfig={paths.kubelet_kubeconfig}",
            f"--root-dir={paths.kubelet_root}",
            f"--cert-dir={paths.root / 'kubelet' / 'pki'}",
            f"--hostname-override={settings.real_node_name}",
            # the host end of the pods' veth; without a pod network, the kubelet's pick
            *([f"--node-ip={settings.host_address}"] if settings.pod_network else []),
            f"--node-labels={labels}",
            "--v=1",
        ],
        settings,
        lambda: kubelet_healthy(settings),
    )
    try:
        wait_for(
            lambda: node_ready(api, settings.real_node_name),
            f"node {settings.real_node_name} to become Ready",
            settings.start_timeout_s,
        )
    except WaitTimeoutError as exc:
        raise ClusterError(f"{exc}; see {settings.state_dir / 'logs' / 'kubelet.log'}") from exc
    if settings.pod_network:
        apiservice.add(settings)  # in-cluster clients in its pods dial the Service's IP
    name, pods = settings.real_node_name, settings.real_node_pod_cidr
    say(f"  kubelet is up: node {name} Ready, its pods in {pods}")


def load_image(settings: ClusterSettings, ref: str) -> None:
    """Copy an image from podman's store (where `make image` builds weir's) into the running
    node's containerd, so pods with `imagePullPolicy: Never` find it: no registry."""
    paths = NodePaths.of(settings)
    ctr = shutil.which("ctr")
    if not ctr or not containerd_healthy(Path(ctr), paths.socket):
        raise ClusterError(
            f"the real node's containerd is not running at {paths.socket}: start the cluster "
            "with WEIR_CLUSTER_REAL_NODE=true"
        )
    archive = paths.root / "images" / "load.tar"
    archive.parent.mkdir(parents=True, exist_ok=True)
    podman = settings.e2e_dir / "image" / "podman.sh"
    saved = subprocess.run(
        [str(podman), "save", "--format", "docker-archive", "-o", str(archive), ref],
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        if saved.returncode != 0:
            raise ClusterError(f"`podman save {ref}` failed: {saved.stderr.strip()}")
        images.import_archive(Path(ctr), paths.socket, archive)
    finally:
        archive.unlink(missing_ok=True)


def stop(settings: ClusterSettings, api: client.ApiClient) -> list[str]:
    """Take the node away from a running cluster: stop its processes, remove its
    containers, mounts and bridge, its folder and its Node object."""
    paths = NodePaths.of(settings)
    stopped = processes.stop_all(paths.root)
    for name in ("containerd", "kubelet"):
        (settings.state_dir / "pids" / f"{name}.json").unlink(missing_ok=True)
    removed = cleanup(settings)
    if paths.root.exists():
        shutil.rmtree(paths.root)
    try:
        client.CoreV1Api(api).delete_node(settings.real_node_name)
    except ApiException as exc:
        if exc.status != 404:
            name = settings.real_node_name
            raise ClusterError(f"cannot delete node {name}: {exc.reason}") from exc
    return stopped + removed


def _runc(runc_root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    runc = shutil.which("runc") or "/usr/sbin/runc"
    return subprocess.run(
        [runc, "--root", str(runc_root), *args], capture_output=True, text=True, check=False
    )


def mounts_under(folder: Path) -> list[Path]:
    """Mount points at or below `folder`, deepest first (/proc/self/mountinfo)."""
    marker = str(folder)
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].replace("\\040", " ")
        if point == marker or point.startswith(marker + os.sep):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def cleanup(settings: ClusterSettings) -> list[str]:
    """Remove what the node's processes leave once stopped: containers (runc's state, their
    processes), mounts (overlay root filesystems, tmpfs volumes, network namespaces) and
    the CNI bridge. Runs after `processes.stop_all`, before the state folder is removed;
    safe when there never was a node. Returns what it removed."""
    paths = NodePaths.of(settings)
    if not paths.root.exists():
        return []  # no node here; the bridge, if any, is another cluster's
    removed = []
    for namespace in sorted(paths.runc_root.glob("*")) if paths.runc_root.is_dir() else []:
        listed = _runc(namespace, "list", "--quiet")
        for container in listed.stdout.split():
            done = _runc(namespace, "delete", "--force", container)
            if done.returncode != 0:
                raise ClusterError(
                    f"cannot remove container {container}: {done.stderr.strip()}; "
                    f"`runc --root {namespace} delete --force {container}` by hand"
                )
            removed.append(f"container {container[:12]}")
    for point in mounts_under(paths.root):
        done = subprocess.run(
            ["umount", "--lazy", str(point)], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"cannot unmount {point}: {done.stderr.strip()}")
        removed.append(f"mount {point.relative_to(paths.root)}")
    if Path("/sys/class/net", BRIDGE).exists():
        done = subprocess.run(
            ["ip", "link", "del", BRIDGE], capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise ClusterError(f"cannot delete the bridge {BRIDGE}: {done.stderr.strip()}")
        removed.append(f"bridge {BRIDGE}")
    if apiservice.remove(settings):
        removed.append("the kubernetes Service's DNAT rule")
    return removed + _outside_files(paths.root)


# What the kubelet, libcni and the shims write outside the state folder (fixed paths:
# no setting moves them): CNI results of sandboxes never torn down by the kubelet
# (a `down` with pods running), the kubelet's device-plugin socket, and the folders
# they made. Folders go only when empty, so another runtime's files stay.
_CNI_RESULTS = Path("/var/lib/cni/results")
_CONTAINER_LOGS = Path("/var/log/containers")
_MADE_FOLDERS = (
    Path("/var/lib/kubelet/device-plugins"),
    Path("/var/lib/kubelet"),
    _CONTAINER_LOGS,
    Path("/run/containerd/s"),
    Path("/run/containerd"),
)


def outside_leftovers(root: Path) -> list[Path]:
    """The files outside its folder `root` of a node (see `_MADE_FOLDERS`)."""
    found = sorted(_CNI_RESULTS.glob(f"{CNI_NETWORK}-*")) if _CNI_RESULTS.is_dir() else []
    for result in list(found):
        sandbox = result.name.removeprefix(f"{CNI_NETWORK}-").rsplit("-", 1)[0]
        found += _CNI_RESULTS.glob(f"cni-loopback-{sandbox}-*")
    # the kubelet links each container's log here, to the log in our folder
    logs = _CONTAINER_LOGS.glob("*.log") if _CONTAINER_LOGS.is_dir() else []
    found += [link for link in logs if link.is_symlink() and _inside(link.readlink(), root)]
    socket = _MADE_FOLDERS[0] / "kubelet.sock"
    return [*found, socket] if socket.exists() else found


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _outside_files(root: Path) -> list[str]:
    removed = []
    for path in outside_leftovers(root):
        path.unlink(missing_ok=True)
        removed.append(str(path))
    for folder in _MADE_FOLDERS:
        try:
            folder.rmdir()
        except OSError:
            continue  # absent, or holds another runtime's files
        removed.append(str(folder))
    return removed


def health(settings: ClusterSettings) -> list[tuple[str, int | None, Callable[[], bool]]]:
    """The node's processes for `weir cluster status`: name, port, health check."""
    paths = NodePaths.of(settings)
    ctr = Path(shutil.which("ctr") or "ctr")
    return [
        ("containerd", None, lambda: containerd_healthy(ctr, paths.socket)),
        ("kubelet", settings.kubelet_port, lambda: kubelet_healthy(settings)),
    ]
