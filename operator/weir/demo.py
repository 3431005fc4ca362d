"""`weir demo`: the local cluster, the operator and the example deployment, end to end.

What it shows today: a real control plane with GPU pools, weir's CRDs, the
operator running as a process beside the cluster (stopped by `weir cluster
down`), the example InferenceDeployment applied, and weir's live columns in
`kubectl get inferencedeployments` once its engine pods run on the right
pools. Traffic replay through the router is the closed-loop issue's part.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import click
from kubernetes import client
from rich.console import Console

from weir.cluster import controlplane, kube, processes
from weir.cluster.errors import ClusterError
from weir.cluster.settings import ClusterSettings
from weir.cluster.toolchain import ensure
from weir.cluster.wait import WaitTimeoutError, wait_for

_console = Console()
OPERATOR = "weir-operator"


def _kubectl(settings: ClusterSettings, *args: str) -> str:
    tools = ensure(settings.e2e_dir, build=False)
    done = subprocess.run(
        [str(tools.kubectl), f"--kubeconfig={settings.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ClusterError(f"kubectl {' '.join(args[:2])} failed: {done.stderr.strip()}")
    return done.stdout


def _start_operator(settings: ClusterSettings) -> None:
    """The operator as a process of the local cluster (its command line names the state dir)."""
    if any(m.name == OPERATOR for m in processes.recorded(settings.state_dir)):
        return
    env = {
        "WEIR_OPERATOR_PROMETHEUS_URL": settings.prometheus_url,
        "WEIR_OPERATOR_METRICS_PORT": "0",
        "PYTHONUNBUFFERED": "1",
    }
    processes.start(
        OPERATOR,
        [
            sys.executable,
            "-m",
            "weir",
            "operator",
            "run",
            "--standalone",
            f"--kubeconfig={settings.kubeconfig.resolve()}",
        ],
        settings.state_dir,
        env={**os.environ, **env},
    )


def _ready(api: client.ApiClient, namespace: str, name: str) -> dict[str, Any] | None:
    body = client.CustomObjectsApi(api).get_namespaced_custom_object(
        "weir.dev", "v1alpha1", namespace, "inferencedeployments", name
    )
    status: dict[str, Any] = (body.get("status") if isinstance(body, dict) else None) or {}
    return status if status.get("readyReplicas", 0) >= 1 and status.get("lastDecision") else None


@click.command()
@click.option(
    "--example",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="InferenceDeployment example to apply (default: the Llama-3.1-8B one).",
)
def demo(example: Path | None) -> None:
    """Bring up the local cluster, run the operator, apply the example, show weir's view."""
    settings = ClusterSettings()
    example = example or settings.e2e_dir.parent / "examples" / "llama-3.1-8b.yaml"
    started = time.monotonic()
    try:
        controlplane.up(settings, lambda line: _console.print(line, highlight=False))
        crds = settings.e2e_dir.parent / "crds"
        _kubectl(settings, "apply", "--server-side", "--force-conflicts", "-f", str(crds))
        _kubectl(
            settings,
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            "crd/inferencedeployments.weir.dev",
        )
        _start_operator(settings)
        _console.print(
            f"operator running (logs: {settings.state_dir / 'logs' / (OPERATOR + '.log')})"
        )
        _console.print(_kubectl(settings, "apply", "-f", str(example)).strip())
        with kube.api_client(settings) as api:
            wait_for(
                lambda: _ready(api, "default", "llama-8b"),
                "llama-8b to run and take its first decision",
                120,
                interval_s=1.0,
            )
    except (ClusterError, WaitTimeoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    _console.print(f"\n[bold]weir's view[/] (after {time.monotonic() - started:.0f}s):")
    # kubectl's own tables, unwrapped
    click.echo(_kubectl(settings, "get", "inferencedeployments", "-o", "wide"))
    click.echo(_kubectl(settings, "get", "pods", "-o", "wide", "-l", "weir.dev/deployment"))
    labels = "weir.dev/capacity-type,nvidia.com/gpu.count,weir.dev/pool"
    click.echo(_kubectl(settings, "get", "nodes", "-L", labels))
    _console.print("Stop everything with `make cluster-down` (or `weir cluster down`).")
