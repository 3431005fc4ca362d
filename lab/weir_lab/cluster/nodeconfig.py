"""What the real node is made of: its names, where it keeps its files, and the
configuration files of containerd, the CNI bridge and the kubelet.

Pure rendering (no process is started here); weir_lab.cluster.node writes
these files and runs the node. Why each setting is there is said in node.py's
docstring and beside the setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from weir_lab.cluster.pki import Pki
from weir_lab.cluster.settings import ClusterSettings

ROLE_LABEL = "weir.dev/node-role"
ROLE = "system"
TAINT = {"key": ROLE_LABEL, "value": ROLE, "effect": "NoSchedule"}
TOLERATION = {"key": ROLE_LABEL, "operator": "Equal", "value": ROLE, "effect": "NoSchedule"}
BRIDGE = "weir-cni0"
CNI_NETWORK = "weir-node"


@dataclass(frozen=True)
class NodeTools:
    """The binaries the node runs: built (kubelet, pause) and Debian's (the rest)."""

    kubelet: Path
    pause: Path
    containerd: Path
    ctr: Path
    runc: Path
    cni_bin_dir: Path


@dataclass(frozen=True)
class NodePaths:
    """Where the node keeps everything, all under `<state>/node`."""

    root: Path

    @classmethod
    def of(cls, settings: ClusterSettings) -> NodePaths:
        return cls(settings.state_dir.resolve() / "node")

    @property
    def containerd_config(self) -> Path:
        return self.root / "containerd" / "config.toml"

    @property
    def socket(self) -> Path:
        return self.root / "containerd" / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.root / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def kubelet_config(self) -> Path:
        return self.root / "kubelet" / "config.yaml"

    @property
    def kubelet_kubeconfig(self) -> Path:
        return self.root / "kubelet" / "kubeconfig"

    @property
    def kubelet_root(self) -> Path:
        return self.root / "kubelet" / "root"

    @property
    def pause_archive(self) -> Path:
        return self.root / "images" / "pause.tar"


def pause_ref(tools: NodeTools) -> str:
    """The sandbox image's name: tagged with its build folder's version."""
    return f"weir.local/pause:{tools.pause.parent.name.removeprefix('pause-')}"


def containerd_config(paths: NodePaths, tools: NodeTools, sandbox_image: str) -> str:
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    runc = '[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]'
    return f"""# written by weir_lab.cluster.node; see its docstring for why each setting
version = 2
root = "{paths.root / "containerd" / "root"}"
state = "{paths.root / "containerd" / "state"}"
disabled_plugins = [
  "io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
]

[grpc]
  address = "{paths.socket}"

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "{paths.root / "containerd" / "opt"}"

{cri}
  sandbox_image = "{sandbox_image}"
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false

{cri[:-1]}.containerd]
  snapshotter = "overlayfs"
  default_runtime_name = "runc"

{runc}
  runtime_type = "io.containerd.runc.v2"

{runc[:-1]}.options]
  BinaryName = "{tools.runc}"
  Root = "{paths.runc_root}"
  SystemdCgroup = false

{cri[:-1]}.cni]
  bin_dir = "{tools.cni_bin_dir}"
  conf_dir = "{paths.cni_conf_dir}"
  max_conf_num = 1
"""


def cni_config(paths: NodePaths, settings: ClusterSettings) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": settings.real_node_pod_cidr}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(paths.root / "cni" / "ipam"),
                },
            }
        ],
    }


def kubelet_config(paths: NodePaths, settings: ClusterSettings, pki: Pki) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # where the API server finds the kubelet (the node's address): the host end of
        # the pods' veth with a pod network
        "address": settings.host_address if settings.pod_network else "127.0.0.1",
        "port": settings.kubelet_port,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": settings.kubelet_healthz_port,
        "readOnlyPort": 0,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": False},
            "x509": {"clientCAFile": str(pki.ca_cert.resolve())},
        },
        "authorization": {"mode": "AlwaysAllow"},
        "containerRuntimeEndpoint": f"unix://{paths.socket}",
        "podLogsDir": str(paths.root / "pod-logs"),
        # hybrid cgroups, no CAP_SYS_RESOURCE (module docstring)
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        "cgroupsPerQOS": False,
        "enforceNodeAllocatable": [],
        "failSwapOn": False,
        "localStorageCapacityIsolation": False,
        # no iptables chains of the kubelet's on the host (there is no kube-proxy)
        "makeIPTablesUtilChains": False,
        # imported images have no registry to come back from: never collect them
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "evictionHard": {
            "memory.available": "1Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
            "nodefs.inodesFree": "1%",
        },
        "registerWithTaints": [TAINT],
        "clusterDomain": "cluster.local",
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
    }
