"""`weir demo --out DIR` (the README's first command, after setup) on the session's cluster:
it installs weir with its chart onto the real node, completes, summary.json keeps the
promises, and its $ per useful token is the one computed here by hand from the raw
Prometheus series of the run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

from support.doctor import run_doctor
from support.operator import delete_and_wait
from weir_lab.cluster import node, release
from weir_lab.demo import OPERATOR_TARGET

REPO = Path(__file__).resolve().parents[2]
LABELS = 'namespace="default",weir_dev_deployment="llama-70b"'
# the demo builds weir's image (cold: a Debian root filesystem) and may add the real node
pytestmark = pytest.mark.timeout(1800)


def _raw(prom: PrometheusConnect, selector: str, start: float, end: float) -> list[dict]:
    span = int(end - start) + 60
    return prom.custom_query(f"{selector}[{span}s]", params={"time": f"{end:.3f}"})


def _counter_delta(prom, metric: str, extra: str, start: float, end: float) -> float:
    """Sum over series of (last sample <= end) - (last sample <= start, else 0)."""
    total = 0.0
    for series in _raw(prom, f"{metric}{{{LABELS}{extra}}}", start, end):
        samples = [(float(t), float(v)) for t, v in series["values"]]
        at_end = [v for t, v in samples if t <= end]
        at_start = [v for t, v in samples if t <= start]
        total += (at_end[-1] if at_end else 0.0) - (at_start[-1] if at_start else 0.0)
    return total


def _gpu_dollars(prom, start: float, end: float) -> float:
    total = 0.0
    for series in _raw(prom, f"weir_gpu_spend_dollars_per_hour{{{LABELS}}}", start, end):
        samples = [(float(t), float(v)) for t, v in series["values"]]
        if samples[-1][0] < start:
            continue  # an earlier run's operator pod: its target is gone
        for i, (t, v) in enumerate(samples):
            nxt = samples[i + 1][0] if i + 1 < len(samples) else end
            total += v * max(0.0, min(nxt, end) - max(t, start)) / 3600
    return total


def test_demo_tells_the_whole_story(cluster, tmp_path):
    out = tmp_path / "demo"
    try:
        done = subprocess.run(
            [sys.executable, "-m", "weir", "demo", "--out", str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=900,
        )
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        summary = json.loads((out / "summary.json").read_text())
        assert (out / "replicas.png").exists() and (out / "ttft.png").exists()
        shown = json.dumps(summary, indent=1)
        assert summary["failed_requests"] == 0, shown
        assert summary["useful_token_fraction"] >= summary["useful_token_target"], shown
        mine = summary["dollars_per_million_useful_tokens"]
        for name in ("all_hosted", "static_p95"):
            baseline = summary["baselines"][name]["dollars_per_million_useful_tokens"]
            assert mine < baseline, (name, shown)
        assert summary["hosted_share"] > 0, ("the spike spills", shown)
        assert summary["max_spill_reaction_s"] <= 1.0, shown

        prom = PrometheusConnect(url=cluster.settings.prometheus_url, disable_ssl=True)
        start, end = summary["window"]["start_unix_s"], summary["window"]["end_unix_s"]
        useful = _counter_delta(
            prom, "weir_router_tokens_total", ',kind="output",usefulness="useful"', start, end
        )
        hosted = _counter_delta(prom, "weir_router_hosted_spend_dollars_total", "", start, end)
        by_hand = (_gpu_dollars(prom, start, end) + hosted) / useful * 1e6
        assert abs(by_hand - mine) <= 1e-6 * mine, (by_hand, mine)
        assert "llama-70b" in done.stdout
        said = " ".join(done.stdout.split())  # rich wraps lines
        assert f"helm upgrade --install {release.RELEASE} charts/weir" in said
        assert "operator running as the chart's Deployment on the real node" in said
        # The demo stops what it starts: the chart is uninstalled, and its deployment is
        # gone (removed while the operator could still release its finalizer).
        assert not release.installed(cluster.settings)
        left = client.CoreV1Api(cluster.api).list_namespaced_pod(release.NAMESPACE).items
        assert [p.metadata.name for p in left] == []
        assert "uninstalled the chart" in said
        with pytest.raises(ApiException) as missing:
            client.CustomObjectsApi(cluster.api).get_namespaced_custom_object(
                "weir.dev", "v1alpha1", "default", "inferencedeployments", "llama-70b"
            )
        assert missing.value.status == 404
        # and the cluster it leaves is healthy as far as `weir doctor` can tell
        doctor = run_doctor(cluster.settings.kubeconfig, cluster.settings.prometheus_url)
        assert doctor.returncode == 0, doctor.output
        # The real node stays, as `make demo` leaves it: the session's later modules (the
        # operator's tests, the scenarios) run on the cluster with it; `down` removes it.
        assert node.node_ready(cluster.api, cluster.settings.real_node_name)
    finally:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "weir",
                "cluster",
                "kubectl",
                "--",
                "delete",
                "-f",
                str(out / "applied.yaml"),
                "--wait=false",
            ],
            capture_output=True,
            check=False,
        )
        delete_and_wait(cluster, "default", "llama-70b")
        release.uninstall(cluster.settings, cluster.api)
        (cluster.settings.prometheus_targets_dir / OPERATOR_TARGET).unlink(missing_ok=True)
