"""Typed settings of the local cluster, read from `WEIR_CLUSTER_*` variables.

One model holds every knob with its unit and default, so the CLI, the test
fixtures and the docs agree on names; pydantic-settings does the environment
parsing (no hand-written `os.environ` blocks).
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _state_home() -> Path:
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local" / "state"))


def _repo_root() -> Path:
    """The checkout this package runs from (source root is `operator/`)."""
    return Path(__file__).resolve().parents[3]


class ClusterSettings(BaseSettings):
    """Where the cluster keeps its state, which ports it takes, which addresses it hands out."""

    model_config = SettingsConfigDict(env_prefix="WEIR_CLUSTER_", frozen=True)

    state_dir: Path = Field(
        default_factory=lambda: _state_home() / "weir" / "cluster",
        description="Folder for certificates, etcd data, logs, pids and the kubeconfig.",
    )
    e2e_dir: Path = Field(
        default_factory=lambda: _repo_root() / "e2e",
        description="The project's e2e folder: toolchain wrappers, pools.yaml, Prometheus config.",
    )
    chart_dir: Path = Field(
        default_factory=lambda: _repo_root() / "charts" / "weir",
        description="The chart whose scrape config (scrape/pods.yaml) Prometheus uses for pods.",
    )
    pools_file: Path | None = Field(
        default=None, description="GPU node pools file; default <e2e_dir>/pools.yaml."
    )
    etcd_port: int = Field(default=12379, ge=1024, le=65535, description="etcd client port.")
    etcd_peer_port: int = Field(default=12380, ge=1024, le=65535, description="etcd peer port.")
    apiserver_port: int = Field(
        default=16443, ge=1024, le=65535, description="kube-apiserver port."
    )
    controller_manager_port: int = Field(
        default=16257, ge=1024, le=65535, description="kube-controller-manager health port."
    )
    scheduler_port: int = Field(
        default=16259, ge=1024, le=65535, description="kube-scheduler port."
    )
    prometheus_port: int = Field(default=19090, ge=1024, le=65535, description="Prometheus port.")
    pod_cidr: str = Field(
        default="198.18.0.0/16",
        description="Pod addresses (each node gets a /24 of it). Not loopback: the API "
        "server refuses loopback addresses in EndpointSlices.",
    )
    service_cidr: str = Field(default="10.96.0.0/16", description="ClusterIP range of Services.")
    pod_network: bool = Field(
        default=True,
        description="Give pods a real network: a network namespace (needs root and iproute2) "
        "where the pod CIDR is local, routed from the host over a veth pair, and a supervisor "
        "that runs a stand-in process at each pod's address. Off: pods get addresses and "
        "become Ready at once, but nothing listens on them.",
    )
    netns: str = Field(
        default="weir-pods", min_length=1, max_length=15, description="The pods' network namespace."
    )
    link_cidr: str = Field(
        default="198.19.255.0/30",
        description="The veth pair between host and pod namespace: the first address is the "
        "host end (pods reach the API server and host stand-ins there), the second the "
        "namespace end. From the benchmarking range 198.18.0.0/15, outside the pod CIDR.",
    )
    real_node: bool = Field(
        default=False,
        description="Add a real node: a kubelet with containerd, runc and the CNI bridge "
        "plugin (weir_lab.cluster.node), joined as a system node (no GPUs, tainted "
        "weir.dev/node-role=system:NoSchedule) that runs pods from locally imported images. "
        "Needs root and Debian's containerd (installed when missing); its pods reach the API "
        "server and the stand-ins only with the pod network.",
    )
    real_node_name: str = Field(
        default="system-0",
        pattern=r"^[a-z0-9]([-a-z0-9]{0,40}[a-z0-9])?$",
        description="The real node's name.",
    )
    real_node_pod_cidr: str = Field(
        default="198.19.0.0/24",
        description="Addresses of the real node's pods (its CNI bridge). Outside pod_cidr: "
        "the stand-ins' namespace makes the whole pod CIDR local, so replies to real pods "
        "there would never leave it.",
    )
    kubelet_port: int = Field(
        default=16250, ge=1024, le=65535, description="The real node's kubelet port."
    )
    kubelet_healthz_port: int = Field(
        default=16248, ge=1024, le=65535, description="The real node's kubelet health port."
    )
    engine_backend: str = Field(
        default="emulated",
        pattern="^(emulated|torch)$",
        description="What runs in place of an engine pod: the emulated engine replaying the "
        "pool's engine profile, or the torch reference engine.",
    )
    max_cold_start_s: float = Field(
        default=60.0,
        ge=0,
        description="Longest emulated cold start of an engine pod, seconds: a stand-in answers "
        "after min(its pool's coldStartSeconds, this), so examples with real cold starts "
        "(minutes) still come up in tests; the planner keeps planning with the pool's value.",
    )
    pod_loop_s: float = Field(
        default=0.5, gt=0, le=10, description="How often the pod supervisor reconciles, seconds."
    )
    scrape_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="Prometheus scrape interval, seconds."
    )
    start_timeout_s: float = Field(
        default=180.0,
        gt=0,
        description="Longest wait for one component to become healthy, seconds.",
    )

    @field_validator("pod_cidr", "service_cidr")
    @classmethod
    def _cidr(cls, value: str) -> str:
        network = ipaddress.ip_network(value, strict=True)
        if network.is_loopback:
            raise ValueError(f"{value} is loopback; the API server refuses loopback pod addresses")
        if network.prefixlen > 24 and network.version == 4:
            raise ValueError(f"{value} is too small: each node needs a /24")
        return value

    @model_validator(mode="after")
    def _link_outside_pods(self) -> ClusterSettings:
        link = ipaddress.ip_network(self.link_cidr, strict=True)
        if self.pod_network and link.overlaps(ipaddress.ip_network(self.pod_cidr)):
            raise ValueError(f"link_cidr {self.link_cidr} overlaps pod_cidr {self.pod_cidr}")
        if link.num_addresses < 4:
            raise ValueError(f"link_cidr {self.link_cidr} needs two host addresses (a /30)")
        return self

    @model_validator(mode="after")
    def _real_node_network(self) -> ClusterSettings:
        if not self.real_node:
            return self
        pods = ipaddress.ip_network(self.real_node_pod_cidr, strict=True)
        for name in ("pod_cidr", "service_cidr", "link_cidr"):
            other: str = getattr(self, name)
            if pods.overlaps(ipaddress.ip_network(other)):
                raise ValueError(f"real_node_pod_cidr {pods} overlaps {name} {other}")
        return self

    @property
    def host_address(self) -> str:
        """The host end of the veth: what pods use to reach the API server and host services."""
        return str(ipaddress.ip_network(self.link_cidr)[1])

    @property
    def netns_address(self) -> str:
        return str(ipaddress.ip_network(self.link_cidr)[2])

    @property
    def apiserver_address(self) -> str:
        """Where the API server listens: the host end of the veth when pods have a network
        (it is a local address of the host too, so the host's clients use it as well)."""
        return self.host_address if self.pod_network else "127.0.0.1"

    @property
    def kubernetes_service_ip(self) -> str:
        """The `kubernetes` Service's ClusterIP (the service range's first address): what
        in-cluster clients dial, and so what the API server's certificate must name."""
        return str(ipaddress.ip_network(self.service_cidr)[1])

    @property
    def pod_prometheus_url(self) -> str:
        """Prometheus as pods reach it: at the host end of their veth (it listens there as
        well as on loopback when pods have a network)."""
        return f"http://{self.apiserver_address}:{self.prometheus_port}"

    @property
    def pools_path(self) -> Path:
        return self.pools_file or self.e2e_dir / "pools.yaml"

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def apiserver_url(self) -> str:
        return f"https://{self.apiserver_address}:{self.apiserver_port}"

    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.prometheus_port}"

    @property
    def pod_scrape_config(self) -> Path:
        """The chart's scrape job for router and engine pods (what its PodMonitor renders)."""
        return self.chart_dir / "scrape" / "pods.yaml"

    @property
    def prometheus_targets_dir(self) -> Path:
        """Drop `*.json` file_sd target lists here; Prometheus picks them up live."""
        return self.state_dir / "prometheus" / "targets"

    def ports(self) -> dict[str, int]:
        return {
            "etcd": self.etcd_port,
            "etcd-peer": self.etcd_peer_port,
            "kube-apiserver": self.apiserver_port,
            "kube-controller-manager": self.controller_manager_port,
            "kube-scheduler": self.scheduler_port,
            "prometheus": self.prometheus_port,
            **(
                {"kubelet": self.kubelet_port, "kubelet-healthz": self.kubelet_healthz_port}
                if self.real_node
                else {}
            ),
        }
