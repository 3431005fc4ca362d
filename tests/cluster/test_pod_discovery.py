"""Prometheus finds router and engine pods itself, through the API server.

Nothing writes a target list for pods any more: the cluster's Prometheus runs
the chart's scrape job (charts/weir/scrape/pods.yaml) with Kubernetes
discovery. Three pods are created the way the operator labels and annotates
routers and engines, plus one pod that is not weir's; exporters bound to the
pods' addresses inside the pods' network namespace play their containers. The
operator's own queries must then answer by the `namespace` and
`weir_dev_deployment` labels the chart's relabelling puts on the series.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from weir.metrics.templates import QueryTemplates
from weir_lab.cluster import podnet
from weir_lab.cluster.wait import wait_for

ROUTER_PORT, ENGINE_PORT, OTHER_PORT = 9091, 8000, 9000
ENGINE_PATH = "/prometheus/metrics"

# One exporter per address, each answering what a router or an engine exports
# (the metric names the operator's queries read).
EXPORTER = """
import sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = {
    "router": b'weir_router_requests_total{backend="local",outcome="ok"} 7\\n',
    "engine": b"trtllm_num_requests_running 3\\n",
}

def serve(kind, ip, port, path):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path != path:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(BODY[kind])
        def log_message(self, *args):
            pass
    ThreadingHTTPServer((ip, port), Handler).serve_forever()

for spec in sys.argv[1:]:
    kind, ip, port, path = spec.split(",")
    threading.Thread(target=serve, args=(kind, ip, int(port), path), daemon=True).start()
print("serving", flush=True)
threading.Event().wait()
"""


def pod(name: str, labels: dict[str, str], port: int, path: str) -> dict[str, Any]:
    """A pod labelled and annotated as the operator does; its container runs nothing
    (the pod supervisor gives pods it does not know no process), the exporter plays it."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": labels,
            "annotations": {
                "prometheus.io/scrape": "true",
                "prometheus.io/port": str(port),
                "prometheus.io/path": path,
            },
        },
        "spec": {
            "containers": [
                {
                    "name": "main",
                    "image": "registry.invalid/played-by-the-test:1",
                    # an unannotated port too: discovery yields a target for it as well
                    "ports": [
                        {"name": "metrics", "containerPort": port},
                        {"name": "other", "containerPort": OTHER_PORT},
                    ],
                }
            ],
            "terminationGracePeriodSeconds": 0,
        },
    }


WEIR = {"app.kubernetes.io/managed-by": "weir", "weir.dev/deployment": "llm"}
PODS = {
    "llm-router": pod(
        "llm-router", {**WEIR, "weir.dev/component": "router"}, ROUTER_PORT, "/metrics"
    ),
    "llm-engine": pod(
        "llm-engine",
        {**WEIR, "weir.dev/component": "engine", "weir.dev/pool": "h100-on-demand"},
        ENGINE_PORT,
        ENGINE_PATH,
    ),
    # annotated, but not one of weir's pods: the chart's job leaves it alone
    "stranger": pod("stranger", {"weir.dev/component": "router"}, ROUTER_PORT, "/metrics"),
}


@pytest.fixture
def played_pods(cluster, namespace) -> Iterator[dict[str, str]]:
    """The three pods, running, each with an exporter at its address; name -> IP."""
    if not cluster.settings.pod_network:
        pytest.fail("pod discovery needs the pod network (WEIR_CLUSTER_POD_NETWORK=true)")
    core = cluster.core
    for body in PODS.values():
        core.create_namespaced_pod(namespace, body)

    def addresses() -> dict[str, str] | None:
        found = {
            p.metadata.name: p.status.pod_ip for p in core.list_namespaced_pod(namespace).items
        }
        return found if len(found) == len(PODS) and all(found.values()) else None

    ips = wait_for(addresses, "the pods to get addresses", 60)
    kinds = {"llm-router": "router", "llm-engine": "engine", "stranger": "router"}
    specs = [
        f"{kinds[name]},{ips[name]},{ENGINE_PORT if name == 'llm-engine' else ROUTER_PORT},"
        f"{ENGINE_PATH if name == 'llm-engine' else '/metrics'}"
        for name in PODS
    ]
    proc = subprocess.Popen(
        [*podnet.exec_prefix(cluster.settings), sys.executable, "-c", EXPORTER, *specs],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "serving"
        yield ips
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def targets(cluster) -> list[dict[str, Any]]:
    answer = httpx.get(f"{cluster.settings.prometheus_url}/api/v1/targets", timeout=5.0)
    answer.raise_for_status()
    active: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
    return active


def test_prometheus_discovers_weir_pods_and_the_queries_group_by_their_labels(
    cluster, namespace, prometheus, played_pods
):
    def discovered() -> list[dict[str, Any]] | None:
        mine = [
            t
            for t in targets(cluster)
            if t["scrapePool"] == "weir-pods" and t["labels"].get("namespace") == namespace
        ]
        return mine if len(mine) == 2 and all(t["health"] == "up" for t in mine) else None

    found = wait_for(discovered, "the router and engine pods to be scraped", 90)
    by_pod = {t["labels"]["pod"]: t for t in found}
    assert set(by_pod) == {"llm-router", "llm-engine"}  # not the stranger
    router, engine = by_pod["llm-router"], by_pod["llm-engine"]
    # found through the API server, one target per pod: the annotated port
    assert router["discoveredLabels"]["__meta_kubernetes_pod_name"] == "llm-router"
    assert router["scrapeUrl"] == f"http://{played_pods['llm-router']}:{ROUTER_PORT}/metrics"
    assert engine["scrapeUrl"] == f"http://{played_pods['llm-engine']}:{ENGINE_PORT}{ENGINE_PATH}"
    # nothing wrote a file_sd list for them
    listed = "".join(p.read_text() for p in prometheus.targets_dir.glob("*.json"))
    assert all(ip not in listed for ip in played_pods.values())

    queries = QueryTemplates()
    rendered = queries.rendered(30.0)

    def answered(name: str) -> list[dict[str, Any]] | None:
        result: list[dict[str, Any]] = prometheus.client.custom_query(rendered[name])
        mine = [r for r in result if r["metric"].get(queries.namespace_label) == namespace]
        return mine or None

    (requests,) = wait_for(lambda: answered("requests_per_s"), "requests_per_s by deployment", 60)
    assert requests["metric"] == {"namespace": namespace, "weir_dev_deployment": "llm"}
    engines = wait_for(lambda: answered("engines"), "the engines' evidence by pool", 60)
    running = next(r for r in engines if r["metric"]["quantity"] == "running")
    assert running["metric"] == {
        "namespace": namespace,
        "weir_dev_deployment": "llm",
        "weir_dev_pool": "h100-on-demand",
        "quantity": "running",
    }
    assert float(running["value"][1]) == 3.0
