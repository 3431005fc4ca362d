"""`weir cluster up | down | status`: the local control plane from the shell.

Output is for people: progress lines while starting, and a table of
components and GPU nodes. Errors are one clear message and exit code 1.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from weir_lab.cluster import controlplane, kube
from weir_lab.cluster.errors import ClusterError
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.toolchain import ensure

_console = Console(stderr=True)


def _say(message: str) -> None:
    _console.print(message, highlight=False)


def _settings() -> ClusterSettings:
    return ClusterSettings()


def _fail(exc: ClusterError) -> None:
    _console.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise SystemExit(1)


@click.group()
def cluster() -> None:
    """Run a real local Kubernetes control plane with simulated GPU node pools."""


@cluster.command()
def up() -> None:
    """Start etcd, the API server, controller manager, scheduler, KWOK and Prometheus."""
    settings = _settings()
    started = time.monotonic()
    try:
        controlplane.up(settings, _say)
    except ClusterError as exc:
        _fail(exc)
    _say(f"cluster up in {time.monotonic() - started:.1f}s")
    _show(settings)


@cluster.command()
def down() -> None:
    """Stop every process `up` started and remove the cluster's state."""
    try:
        controlplane.down(_settings(), _say)
    except ClusterError as exc:
        _fail(exc)


@cluster.command()
def status() -> None:
    """Show the components, the GPU nodes, the kubeconfig and Prometheus URL."""
    settings = _settings()
    try:
        _show(settings)
    except ClusterError as exc:
        _fail(exc)
    if not controlplane.is_running(settings):
        raise SystemExit(1)


def _show(settings: ClusterSettings) -> None:
    out = Console(width=max(120, Console().width))
    table = Table(title="weir local cluster")
    for column in ("component", "pid", "port", "healthy"):
        table.add_column(column)
    states = controlplane.status(settings)
    for s in states:
        table.add_row(
            s.name, str(s.pid or "-"), str(s.port or "-"), "yes" if s.healthy else "[red]no[/]"
        )
    out.print(table)
    if not all(s.healthy for s in states):
        out.print("cluster is not (fully) running: `weir cluster up` starts it")
        return
    nodes = Table(title="GPU node pools")
    for column in ("node", "pool", "capacity type", "GPU", "GPUs", "ready", "pod CIDR"):
        nodes.add_column(column)
    for row in kube.list_nodes(settings):
        nodes.add_row(
            row.name,
            row.pool,
            row.capacity_type,
            row.gpu_product,
            str(row.gpus),
            "yes" if row.ready else "[red]no[/]",
            row.pod_cidr,
        )
    out.print(nodes)
    out.print(f"kubeconfig: {settings.kubeconfig}")
    out.print(f"prometheus: {settings.prometheus_url}")
    out.print(f"export KUBECONFIG={settings.kubeconfig}")


@cluster.command(
    context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def kubectl(args: tuple[str, ...]) -> None:
    """Run the cluster's own kubectl (same version as the API server) against it."""
    settings = _settings()
    try:
        tools = ensure(settings.e2e_dir, build=False)
    except ClusterError as exc:
        _fail(exc)
    env = {**os.environ, "KUBECONFIG": str(settings.kubeconfig)}
    raise SystemExit(subprocess.call([str(tools.kubectl), *args], env=env))


@cluster.command(hidden=True)
@click.option("--state-dir", type=click.Path(path_type=Path), required=True)
def supervise(state_dir: Path) -> None:
    """Run the pod supervisor (`weir cluster up` starts it; see weir_lab.cluster.supervisor)."""
    import logging
    import signal
    import threading

    from weir_lab.cluster.supervisor import Supervisor

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per probe otherwise
    settings = ClusterSettings(state_dir=state_dir)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with kube.api_client(settings) as api:
        Supervisor(settings, api).run(stop)
