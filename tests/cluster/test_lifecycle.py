"""`up`, `down`, crash recovery and port conflicts, on a second, isolated cluster.

A separate state folder and free ports keep this away from the session's
cluster, so stopping it here disturbs no other test.
"""

from __future__ import annotations

import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from weir_lab.cluster import controlplane, processes
from weir_lab.cluster.errors import PortInUseError
from weir_lab.cluster.settings import ClusterSettings


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def isolated(state_dir: Path) -> ClusterSettings:
    etcd, peer, api, kcm, sched, prom = free_ports(6)
    return ClusterSettings(
        state_dir=state_dir,
        etcd_port=etcd,
        etcd_peer_port=peer,
        apiserver_port=api,
        controller_manager_port=kcm,
        scheduler_port=sched,
        prometheus_port=prom,
        pod_cidr="198.19.0.0/16",
        pod_network=False,  # one pod network per machine: the session cluster has it
        start_timeout_s=120,
    )


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[ClusterSettings]:
    s = isolated(tmp_path / "cluster")
    yield s
    processes.stop_all(s.state_dir)


def test_up_down_up_leaves_nothing_running(settings):
    lines: list[str] = []
    controlplane.up(settings, lines.append)
    assert controlplane.is_running(settings)
    pids = {s.pid for s in controlplane.status(settings)}
    assert None not in pids and len(pids) == 6
    controlplane.up(settings, lines.append)  # idempotent: re-applies pools only
    assert "cluster already running; applying pools" in lines
    assert {s.pid for s in controlplane.status(settings)} == pids

    controlplane.down(settings, lines.append)
    assert not any(psutil.pid_exists(pid) and _ours(pid, settings) for pid in pids if pid)
    assert processes.find_owned(settings.state_dir) == []
    assert not settings.state_dir.exists()

    controlplane.up(settings, lines.append)
    assert controlplane.is_running(settings)
    controlplane.down(settings, lines.append)


def test_up_recovers_from_a_crashed_run(settings):
    controlplane.up(settings, print)
    apiserver = next(s for s in controlplane.status(settings) if s.name == "kube-apiserver")
    assert apiserver.pid
    psutil.Process(apiserver.pid).send_signal(signal.SIGKILL)  # the crash
    psutil.Process(apiserver.pid).wait(timeout=10)
    assert not controlplane.is_running(settings)

    lines: list[str] = []
    controlplane.up(settings, lines.append)
    assert controlplane.is_running(settings)
    assert any("leftover" in line for line in lines)
    controlplane.down(settings, print)


def test_up_with_a_port_taken_fails_clearly_and_starts_nothing(settings):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.apiserver_port))
        squatter.listen()
        with pytest.raises(PortInUseError) as error:
            controlplane.up(settings, print)
    message = str(error.value)
    assert str(settings.apiserver_port) in message
    assert "WEIR_CLUSTER_APISERVER_PORT" in message
    assert processes.find_owned(settings.state_dir) == []


def _ours(pid: int, settings: ClusterSettings) -> bool:
    try:
        return any(str(settings.state_dir) in arg for arg in psutil.Process(pid).cmdline())
    except psutil.Error:
        return False
