"""The pods' network: a network namespace where every pod address is local.

Simulated nodes run no containers, so a pod's address would otherwise lead
nowhere, and loopback will not do (the API server refuses loopback addresses
in EndpointSlices). `weir cluster up` makes a network namespace, joins it to
the host with a veth pair, makes the whole pod CIDR local inside it (`ip
route add local <cidr> dev lo`: any process in the namespace may bind any pod
address) and routes the pod CIDR to it from the host. The pod supervisor
starts each pod's stand-in process inside the namespace, bound to the pod's
own IP. Pods reach the API server and host-side stand-ins at the host end of
the veth; nothing here sends traffic anywhere but this machine.

Every step is an `ip` command (iproute2), run as root; a failure says which
command failed and why. `create` first removes what an earlier run left.
"""

from __future__ import annotations

import ipaddress
import shutil
import subprocess
from collections.abc import Sequence

from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.settings import ClusterSettings


def _ip() -> str:
    found = shutil.which("ip")
    if not found:
        raise ClusterError(
            "the pod network needs iproute2's `ip` (apt-get install iproute2), "
            "or set WEIR_CLUSTER_POD_NETWORK=false"
        )
    return found


def _run(args: Sequence[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([_ip(), *args], capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise ClusterError(
            f"`ip {' '.join(args)}` failed: {done.stderr.strip() or done.stdout.strip()} "
            "(the pod network needs root; WEIR_CLUSTER_POD_NETWORK=false runs without it)"
        )
    return done


def _host_link(settings: ClusterSettings) -> str:
    return f"{settings.netns[:11]}-h"


def _ns_link(settings: ClusterSettings) -> str:
    return f"{settings.netns[:11]}-p"


def exists(settings: ClusterSettings) -> bool:
    listed = _run(["netns", "list"]).stdout.split()
    return settings.netns in listed


def delete(settings: ClusterSettings) -> None:
    """Remove the namespace, the veth pair and the host route (whatever of them exists)."""
    _run(["route", "del", settings.pod_cidr], check=False)
    _run(["link", "del", _host_link(settings)], check=False)
    if exists(settings):
        _run(["netns", "del", settings.netns])


def create(settings: ClusterSettings) -> None:
    """Make the namespace and its routes, removing an earlier run's first."""
    delete(settings)
    link = ipaddress.ip_network(settings.link_cidr)
    prefix = link.prefixlen
    ns, host, inner = settings.netns, _host_link(settings), _ns_link(settings)
    steps: list[list[str]] = [
        ["netns", "add", ns],
        ["link", "add", host, "type", "veth", "peer", "name", inner],
        ["link", "set", inner, "netns", ns],
        ["addr", "add", f"{settings.host_address}/{prefix}", "dev", host],
        ["link", "set", host, "up"],
        ["-n", ns, "addr", "add", f"{settings.netns_address}/{prefix}", "dev", inner],
        ["-n", ns, "link", "set", inner, "up"],
        ["-n", ns, "link", "set", "lo", "up"],
        ["-n", ns, "route", "add", "local", settings.pod_cidr, "dev", "lo"],
        ["-n", ns, "route", "add", "default", "via", settings.host_address],
        ["route", "add", settings.pod_cidr, "via", settings.netns_address, "dev", host],
    ]
    try:
        for step in steps:
            _run(step)
    except ClusterError:
        delete(settings)
        raise


def exec_prefix(settings: ClusterSettings) -> list[str]:
    """Prefix of a command line that runs it inside the pods' namespace."""
    return [_ip(), "netns", "exec", settings.netns]
