"""`weir bench operator`: how the operator holds up with many InferenceDeployments.

On the running local cluster, with the operator as a real process: create N
InferenceDeployments, measure how long each takes from `create` to its last
child (the router Deployment) appearing in a watch, then let the control loops
run and read the operator's own metrics: PromQL queries per snapshot, the
effective period between two steps of one deployment (a full cycle over all
of them), and the operator's RSS. Router pods are turned off (0 replicas) and
pools have no minimum, so the cluster runs no pods: this measures the
operator, not KWOK.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import click
import httpx
import psutil
from kubernetes import client, watch
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from weir_lab.cluster import controlplane, kube
from weir_lab.cluster.operators import other_operators
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

_console = Console()
GROUP, VERSION = "weir.dev", "v1alpha1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _body(name: str, prefix: str, period: float) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": "meta-llama/Llama-3.1-8B-Instruct", "precision": "fp8"},
            "slo": {"ttftSeconds": 1.5, "itlSeconds": 0.06},
            "cost": {"budgetDollarsPerHour": 50},
            "pools": [
                {"pool": f"{prefix}-od", "minReplicas": 0, "maxReplicas": 4},
                {"pool": f"{prefix}-spot", "minReplicas": 0, "maxReplicas": 4},
            ],
            "control": {"periodSeconds": period, "staleAfterSeconds": max(60.0, period)},
        },
    }


def _pools(prefix: str) -> list[dict[str, Any]]:
    base = {"gpuType": "NVIDIA-H100-80GB-HBM3", "gpusPerReplica": 1, "coldStartSeconds": 300}
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CapacityPool",
            "metadata": {"name": f"{prefix}-od"},
            "spec": {**base, "dollarsPerGpuHour": 3.9, "capacityType": "on-demand"},
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CapacityPool",
            "metadata": {"name": f"{prefix}-spot"},
            "spec": {
                **base,
                "dollarsPerGpuHour": 2.0,
                "capacityType": "spot",
                "interruptionsPerInstanceMonth": 0.15,
                "interruptionNoticeSeconds": 120,
            },
        },
    ]


class _ChildWatch:
    """Client-side arrival time of each owner's router Deployment (its last child)."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.seen: dict[str, float] = {}
        self._stop = threading.Event()
        self._api, self._namespace = api, namespace
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        apps = client.AppsV1Api(self._api)
        while not self._stop.is_set():
            stream = watch.Watch()  # type: ignore[no-untyped-call]
            for event in stream.stream(  # type: ignore[no-untyped-call]
                apps.list_namespaced_deployment,
                self._namespace,
                label_selector="weir.dev/component=router",
                timeout_seconds=5,
            ):
                owner = (event["object"].metadata.labels or {}).get("weir.dev/deployment")
                if owner and owner not in self.seen:
                    self.seen[owner] = time.monotonic()
                if self._stop.is_set():
                    stream.stop()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _scrape(url: str) -> dict[str, Any]:
    families = {f.name: f for f in text_string_to_metric_families(httpx.get(url).text)}
    return families


def _counter(families: dict[str, Any], name: str) -> float:
    family = families.get(name)
    return sum(s.value for s in family.samples if s.name.endswith("_total")) if family else 0.0


def _buckets(families: dict[str, Any]) -> dict[float, float]:
    family = families["weir_control_step_gap_seconds"]
    return {float(s.labels["le"]): s.value for s in family.samples if s.name.endswith("_bucket")}


def _gap_quantiles(
    before: dict[str, Any], after: dict[str, Any]
) -> tuple[float | None, float | None]:
    """p50 and max (bucket upper bounds) of the step gaps between the two scrapes (the
    steady state, not the creation before it); None when no deployment stepped twice."""
    start = _buckets(before)
    buckets = sorted((le, count - start.get(le, 0.0)) for le, count in _buckets(after).items())
    total = buckets[-1][1] if buckets else 0.0
    if total == 0:
        return None, None
    p50 = next(le for le, count in buckets if count >= total / 2)
    highest = next(le for le, count in buckets if count >= total)
    return p50, highest


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _start_operator(settings: ClusterSettings, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "WEIR_OPERATOR_PROMETHEUS_URL": settings.prometheus_url,
        "WEIR_OPERATOR_METRICS_PORT": str(port),
        "WEIR_OPERATOR_ROUTER_REPLICAS": "0",
    }
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "weir",
                "operator",
                "run",
                "--standalone",
                f"--kubeconfig={settings.kubeconfig}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )


def refuse_beside_other_operators(api: client.ApiClient | None) -> None:
    """A second operator would reconcile the bench's deployments too: measure one, or none."""
    others = other_operators(api)
    if others:
        listed = "; ".join(str(o) for o in others)
        raise click.ClickException(
            f"another weir operator acts on this cluster, so the benchmark would measure "
            f"two operators fighting: {listed}"
        )


@click.command("operator")
@click.option("--deployments", default=100, show_default=True, type=int)
@click.option(
    "--period",
    default=1.0,
    show_default=True,
    help="Control period of each, s (1: every loop always wants a step, so the time "
    "between two steps of one deployment is the time to get round all of them).",
)
@click.option("--observe", default=60.0, show_default=True, help="Steady state measured, s.")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False, path_type=Path))
def bench_operator(deployments: int, period: float, observe: float, out: Path) -> None:
    """Create N InferenceDeployments on the local cluster; measure the operator at that scale."""
    settings = ClusterSettings()
    if not controlplane.api_ready(settings):
        raise click.ClickException("the local cluster is not running: `weir cluster up` first")
    api = kube.api_client(settings)
    refuse_beside_other_operators(api)
    out.mkdir(parents=True, exist_ok=True)
    prefix = f"bench-{uuid.uuid4().hex[:6]}"
    core, custom = client.CoreV1Api(api), client.CustomObjectsApi(api)
    crds = settings.e2e_dir.parent / "crds"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "weir",
            "cluster",
            "kubectl",
            "--",
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            str(crds),
        ],
        check=True,
        capture_output=True,
    )
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=prefix)))
    for pool in _pools(prefix):
        custom.create_cluster_custom_object(GROUP, VERSION, "capacitypools", pool)
    port = _free_port()
    operator = _start_operator(settings, port, out / "operator.log")
    proc = psutil.Process(operator.pid)
    rss_peak = 0.0
    children = _ChildWatch(api, prefix)
    created: dict[str, float] = {}
    try:
        wait_for(lambda: _ok(f"http://127.0.0.1:{port}/metrics"), "the operator's /metrics", 60)
        with Progress(console=_console) as progress:
            task = progress.add_task("create InferenceDeployments", total=deployments)
            for i in range(deployments):
                name = f"d{i:05d}"
                created[name] = time.monotonic()
                custom.create_namespaced_custom_object(
                    GROUP, VERSION, prefix, "inferencedeployments", _body(name, prefix, period)
                )
                progress.advance(task)
                rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
            task = progress.add_task("wait for children", total=deployments)
            deadline = time.monotonic() + max(120.0, deployments * 0.5)
            while len(children.seen) < deployments and time.monotonic() < deadline:
                progress.update(task, completed=len(children.seen))
                rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
                time.sleep(0.5)  # progress refresh of a bounded wait
            progress.update(task, completed=len(children.seen))
            before = _scrape(f"http://127.0.0.1:{port}/metrics")
            task = progress.add_task("steady state", total=observe)
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < observe:
                progress.update(task, completed=elapsed)
                rss_peak = max(rss_peak, proc.memory_info().rss / 2**20)
                time.sleep(1.0)  # sampling interval of RSS while the loops run
            after = _scrape(f"http://127.0.0.1:{port}/metrics")
        latencies = [children.seen[n] - t for n, t in created.items() if n in children.seen]
        collections = _counter(after, "weir_metrics_collections")
        queries = _counter(after, "weir_metrics_queries")
        steps = _counter(after, "weir_control_steps") - _counter(before, "weir_control_steps")
        gap_p50, gap_max = _gap_quantiles(before, after)
        summary = {
            "deployments": deployments,
            "period_seconds": period,
            "children_created": len(latencies),
            "promql_queries_per_cycle": queries / collections if collections else None,
            "control_steps_per_second": steps / observe,
            "cycle_seconds_p50": gap_p50,
            "cycle_seconds_max": gap_max,
            # time to step every deployment once at the measured step rate
            "cycle_seconds_from_throughput": deployments / (steps / observe) if steps else None,
            "operator_rss_mb": round(rss_peak, 1),
            "apply_to_children_p50_s": _percentile(latencies, 0.5) if latencies else None,
            "apply_to_children_p99_s": _percentile(latencies, 0.99) if latencies else None,
            "how": "cycle = time between two control steps of the same deployment, over the "
            "steady state only (histogram bucket bounds, inf beyond the last, 120 s; none when no "
            "deployment got a second step in the window); "
            "apply_to_children = create call to the router Deployment "
            "seen by a watch; router replicas 0 and pool minimum 0 (no pods); "
            "delete_all = namespace deleted until gone (the operator releases every finalizer)",
        }
        # Written before the teardown: a slow or failed cleanup loses no measurement.
        (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
        _show(summary)
    finally:
        children.close()
        try:
            deleting = time.monotonic()
            core.delete_namespace(prefix)
            wait_for(
                lambda: (
                    prefix
                    not in {
                        (n.metadata.name if n.metadata else "") for n in core.list_namespace().items
                    }
                ),
                f"namespace {prefix} to be deleted (the operator releases its finalizers)",
                max(900.0, deployments * 1.5),
                interval_s=1.0,
            )
        finally:
            operator.terminate()
            operator.wait(timeout=30)
        for pool in _pools(prefix):
            custom.delete_cluster_custom_object(
                GROUP, VERSION, "capacitypools", pool["metadata"]["name"]
            )
        api.close()  # type: ignore[no-untyped-call]
    summary["delete_all_seconds"] = round(time.monotonic() - deleting, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    _console.print(f"all {deployments} deleted in {summary['delete_all_seconds']} s")


def _ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def _show(summary: dict[str, Any]) -> None:
    targets: dict[str, tuple[str, float]] = {
        "promql_queries_per_cycle": ("<= 10", 10.0),
        "cycle_seconds_p50": ("<= 5", 5.0),
        "cycle_seconds_max": ("<= 5", 5.0),
        "cycle_seconds_from_throughput": ("<= 5", 5.0),
        "operator_rss_mb": ("<= 300", 300.0),
        "apply_to_children_p99_s": ("<= 2", 2.0),
    }
    table = Table(title=f"weir operator at {summary['deployments']} InferenceDeployments")
    for column in ("measure", "value", "target", "met"):
        table.add_column(column)
    for key, value in summary.items():
        if key == "how":
            continue
        target, bound = targets.get(key, ("", float("nan")))
        ok = isinstance(value, int | float) and value <= bound
        met = "" if not target else ("yes" if ok else "[red]no[/]")
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        table.add_row(key, shown, target, met)
    _console.print(table)
