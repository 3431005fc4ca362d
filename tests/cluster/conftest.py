"""Fixtures of the cluster tests: the real node with weir's image, per module.

The session's cluster gets the node for a module that asks for it when it runs
without one (WEIR_CLUSTER_REAL_NODE is off by default), and loses it again at
the module's end, which is checked to leave nothing behind: no process,
container, mount, bridge, iptables rule or outside file of the node's.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Cluster
from support.image import built_image
from weir_lab.cluster import node, processes
from weir_lab.cluster.pki import Pki
from weir_lab.cluster.settings import ClusterSettings


@pytest.fixture(scope="module")
def image() -> str:
    """The image `make image` builds (cached by content: built once per change)."""
    return built_image()


def _leftovers(settings: ClusterSettings) -> list[str]:
    paths = node.NodePaths.of(settings)
    found = [f"process {p.pid}" for p in processes.find_owned(paths.root)]
    found += [f"mount {m}" for m in node.mounts_under(paths.root)]
    if Path("/sys/class/net", node.BRIDGE).exists():
        found.append(f"bridge {node.BRIDGE}")
    if paths.root.exists():
        found.append(f"folder {paths.root}")
    found += [f"file {f}" for f in node.outside_leftovers(paths.root)]
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True, check=False)
    found += [
        f"iptables rule {line}"
        for line in rules.stdout.splitlines()
        if node.BRIDGE in line or settings.real_node_pod_cidr in line
    ]
    return found


@pytest.fixture(scope="module")
def real_node(cluster: Cluster, image: str) -> Iterator[ClusterSettings]:
    """The session cluster's real node with weir's image loaded; added here when absent."""
    settings = cluster.settings.model_copy(update={"real_node": True})
    added = not node.node_ready(cluster.api, settings.real_node_name)
    try:
        if added:
            tools = node.ensure_tools(settings)
            node.start(settings, tools, Pki.at(settings.state_dir / "pki"), cluster.api, print)
        node.load_image(settings, image)
        yield settings
    finally:
        if added:
            node.stop(settings, cluster.api)
            assert _leftovers(settings) == []
