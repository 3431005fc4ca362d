"""The `kubernetes` Service for the real node's pods: one DNAT rule, kube-proxy's part.

An in-cluster client (kopf's login, the kubernetes client's in-cluster config)
dials the ClusterIP the kubelet gives it in KUBERNETES_SERVICE_HOST/PORT. The
local cluster runs no kube-proxy (every other Service is reached at its pods'
addresses by the lab), so that one address is translated here: packets from
the node's bridge to `<kubernetes_service_ip>:443` go to the API server at the
host end of the pods' veth. The API server's certificate names the ClusterIP
(controlplane writes it), so clients verify it as in any cluster.

The rule carries a comment naming its cluster (a hash of the state folder), so
`remove` deletes exactly it, never another cluster's or a running node's when a
test cleans up a node folder of its own, and the node's leftover check (no
rule naming the bridge) holds after `down`.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess

from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.nodeconfig import BRIDGE
from weir_lab.cluster.settings import ClusterSettings

__all__ = ["add", "comment", "remove", "rule"]


def comment(settings: ClusterSettings) -> str:
    """The rule's comment: what it is for, and whose (the cluster's state folder)."""
    owner = hashlib.sha256(str(settings.state_dir.resolve()).encode()).hexdigest()[:12]
    return f"weir-lab {owner}: the kubernetes Service for the real node pods"


def rule(settings: ClusterSettings) -> list[str]:
    """The nat PREROUTING rule, as `iptables -t nat -A PREROUTING` takes it."""
    return [
        *("-i", BRIDGE, "-p", "tcp"),
        *("-d", f"{settings.kubernetes_service_ip}/32", "--dport", "443"),
        *("-m", "comment", "--comment", comment(settings)),
        *("-j", "DNAT", "--to-destination", f"{settings.host_address}:{settings.apiserver_port}"),
    ]


def _iptables(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("iptables")
    if binary is None:
        raise ClusterError("iptables is missing: apt-get install iptables")
    return subprocess.run(
        [binary, "-w", "5", "-t", "nat", *args], capture_output=True, text=True, check=False
    )


def add(settings: ClusterSettings) -> None:
    """Add the rule once (a second `add` finds it and adds nothing)."""
    if _iptables("-C", "PREROUTING", *rule(settings)).returncode == 0:
        return
    done = _iptables("-A", "PREROUTING", *rule(settings))
    if done.returncode != 0:
        raise ClusterError(
            f"cannot route the kubernetes Service to the API server: {done.stderr.strip()}"
        )


def remove(settings: ClusterSettings) -> bool:
    """Delete the rule wherever it is; True when there was one."""
    if shutil.which("iptables") is None:
        return False
    found = False
    while _iptables("-C", "PREROUTING", *rule(settings)).returncode == 0:
        done = _iptables("-D", "PREROUTING", *rule(settings))
        if done.returncode != 0:
            what = comment(settings)
            raise ClusterError(f"cannot delete the rule {what!r}: {done.stderr.strip()}")
        found = True
    return found
