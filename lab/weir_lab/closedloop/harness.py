"""The deployment under test on a running local cluster, and the handles to drive it.

`Loop` installs weir's CRDs, starts the operator as a process beside the
cluster (its /metrics registered with Prometheus, which the $ per useful
token needs for the GPU side), applies two pools, a hosted endpoint that
points at the hosted stand-in, and an InferenceDeployment, and then answers
the questions scenarios ask: where the router is, how many engine replicas
run, what Prometheus says. Times are compressed the same way for the demo
and every scenario: cold starts of seconds, control periods of a few
seconds, a short metrics window.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect

from weir.api.crd import crd_manifest
from weir.api.resources import DEFINITIONS
from weir.controller.children import CLIENT_TOKENS_KEY, ROUTER_METRICS_PORT, client_tokens_name
from weir_lab.cluster.pools import SPOT_TAINT
from weir_lab.cluster.settings import ClusterSettings
from weir_lab.cluster.wait import wait_for

GROUP, VERSION = "weir.dev", "v1alpha1"
# Llama-3.3-70B on 2 x H100 takes ~6 req/s at 1000/128 tokens within a 1.5 s / 60 ms SLO:
# a spike outgrows one replica at rates this 2-core machine can stream.
MODEL = "meta-llama/Llama-3.3-70B-Instruct"
TP = 2
HOSTED_KEY = "stand-in-key-not-a-secret"


def install_crds(api: client.ApiClient) -> None:
    """Create or replace weir's CRDs and wait until the API server serves them."""
    ext: Any = client.ApiextensionsV1Api(api)
    for definition in DEFINITIONS:
        body = crd_manifest(definition)
        try:
            ext.create_custom_resource_definition(body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            current = ext.read_custom_resource_definition(definition.name)
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            ext.replace_custom_resource_definition(definition.name, body)

    def established() -> bool:
        for definition in DEFINITIONS:
            crd = ext.read_custom_resource_definition(definition.name)
            conditions = {c.type: c.status for c in crd.status.conditions or []}
            if conditions.get("Established") != "True":
                return False
        return True

    wait_for(established, "weir CRDs to be established", 60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Shape:
    """The deployment a scenario runs: pools, limits, prices and compressed times."""

    on_demand: tuple[int, int] = (1, 4)  # min, max replicas
    spot: tuple[int, int] = (0, 6)
    cold_start_s: float = 15.0
    period_s: float = 3.0
    hosted_max_share: float = 0.8
    hosted_max_dollars_per_hour: float = 30.0
    budget_dollars_per_hour: float = 80.0
    notice_s: float = 60.0
    ttft_s: float = 1.5
    itl_s: float = 0.06
    useful_target: float = 0.99


def pool_manifests(prefix: str, shape: Shape, gpus_per_replica: int = TP) -> list[dict[str, Any]]:
    """An on-demand and a spot H100 pool named `<prefix>-od` and `<prefix>-spot`."""
    base = {
        "gpuType": "NVIDIA-H100-80GB-HBM3",
        "gpusPerReplica": gpus_per_replica,
        "coldStartSeconds": shape.cold_start_s,
    }
    return [
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "CapacityPool",
            "metadata": {"name": f"{prefix}-od"},
            "spec": {
                **base,
                "dollarsPerGpuHour": 3.9,
                "capacityType": "on-demand",
                "nodeSelector": {"weir.dev/pool": "h100-on-demand"},
            },
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
                "interruptionNoticeSeconds": shape.notice_s,
                "nodeSelector": {"weir.dev/pool": "h100-spot"},
                "tolerations": [{**SPOT_TAINT, "operator": "Equal"}],
            },
        },
    ]


def hosted_manifests(hosted_url: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": "hosted-key",
                "annotations": {"weir.dev/hosted-endpoints": "hosted"},  # the key may go there
            },
            "stringData": {"api-key": HOSTED_KEY},
        },
        {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "HostedEndpoint",
            "metadata": {"name": "hosted"},
            "spec": {
                "baseUrl": f"{hosted_url}/v1",
                "model": MODEL,
                "secretRef": {"name": "hosted-key", "key": "api-key"},
                # a hosted Llama-3.3-70B at list prices (serving-facts.md)
                "dollarsPerMillionInputTokens": 0.88,
                "dollarsPerMillionCachedInputTokens": 0.44,
                "dollarsPerMillionOutputTokens": 0.88,
                "latency": {"ttftP50Seconds": 0.4, "ttftP95Seconds": 0.9, "itlSeconds": 0.025},
                "requestsPerMinute": 6000,
            },
        },
    ]


def deployment_manifest(prefix: str, shape: Shape, name: str = "llm") -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "InferenceDeployment",
        "metadata": {"name": name},
        "spec": {
            "model": {"name": MODEL, "precision": "fp8", "tensorParallel": TP},
            "slo": {
                "ttftSeconds": shape.ttft_s,
                "itlSeconds": shape.itl_s,
                "usefulTokenTarget": shape.useful_target,
            },
            "cost": {"budgetDollarsPerHour": shape.budget_dollars_per_hour},
            "pools": [
                {
                    "pool": f"{prefix}-od",
                    "minReplicas": shape.on_demand[0],
                    "maxReplicas": shape.on_demand[1],
                },
                {
                    "pool": f"{prefix}-spot",
                    "minReplicas": shape.spot[0],
                    "maxReplicas": shape.spot[1],
                },
            ],
            "hosted": {
                "endpoint": "hosted",
                "maxShare": shape.hosted_max_share,
                "maxDollarsPerHour": shape.hosted_max_dollars_per_hour,
            },
            "control": {
                "periodSeconds": shape.period_s,
                "staleAfterSeconds": max(15.0, 4 * shape.period_s),
            },
        },
    }


METRICS_WINDOW_S = 30.0  # the operator's sliding window, compressed like the times in Shape


def write_operator_target(settings: ClusterSettings, name: str, port: int) -> Path:
    """Prometheus scrapes the operator's /metrics on `port` (the GPU gauge is there).

    Written aside and renamed: Prometheus must never read a half-written list."""
    directory = settings.prometheus_targets_dir
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{name}.json"
    entry = {"targets": [f"127.0.0.1:{port}"], "labels": {"job": "weir-operator"}}
    aside = target.with_suffix(".tmp")
    aside.write_text(json.dumps([entry]))
    aside.replace(target)
    return target


def operator_env(settings: ClusterSettings, metrics_port: int) -> dict[str, str]:
    """The operator's settings for the closed loop: this cluster's Prometheus, its own
    /metrics on `metrics_port`, and a METRICS_WINDOW_S window refreshed every second."""
    return {
        "WEIR_OPERATOR_PROMETHEUS_URL": settings.prometheus_url,
        # the hosted stand-ins serve plain http on the host's end of the pod network
        "WEIR_OPERATOR_ALLOW_INSECURE_HOSTED": json.dumps([settings.host_address]),
        "WEIR_OPERATOR_METRICS_PORT": str(metrics_port),
        "WEIR_OPERATOR_METRICS_WINDOW_S": str(METRICS_WINDOW_S),
        "WEIR_OPERATOR_METRICS_REFRESH_S": "1",
        "PYTHONUNBUFFERED": "1",
    }


@dataclass
class OperatorProcess:
    """`weir operator run` beside the cluster, with its /metrics scraped by Prometheus."""

    settings: ClusterSettings
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        environment = {
            **os.environ,
            "KUBECONFIG": str(self.settings.kubeconfig),
            "WEIR_OPERATOR_KUBECONFIG": str(self.settings.kubeconfig),
            **operator_env(self.settings, self.port),
            **self.env,
        }
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "weir", "operator", "run", "--standalone", "--verbose"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        write_operator_target(self.settings, f"operator-{self.port}", self.port)
        return self

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        (self.settings.prometheus_targets_dir / f"operator-{self.port}.json").unlink(
            missing_ok=True
        )


class Loop:
    """Handles on one InferenceDeployment under test in one namespace."""

    def __init__(
        self, settings: ClusterSettings, api: client.ApiClient, namespace: str, name: str = "llm"
    ) -> None:
        self.settings, self.api, self.namespace, self.name = settings, api, namespace, name
        # the client's models are loosely typed; this module only reads plain fields
        self.core: Any = client.CoreV1Api(api)
        self.apps: Any = client.AppsV1Api(api)
        self.custom: Any = client.CustomObjectsApi(api)
        self.discovery: Any = client.DiscoveryV1Api(api)
        self.prom = PrometheusConnect(url=settings.prometheus_url, disable_ssl=True)

    # -- applying -------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> None:
        body = copy.deepcopy(manifest)
        kind = body["kind"]
        if kind == "Secret":
            self.core.create_namespaced_secret(self.namespace, body)
        elif kind == "CapacityPool":
            try:
                self.custom.create_cluster_custom_object(GROUP, VERSION, "capacitypools", body)
            except ApiException as exc:
                if exc.status != 409:
                    raise
        else:
            plural = {
                "HostedEndpoint": "hostedendpoints",
                "InferenceDeployment": "inferencedeployments",
            }[kind]
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.namespace, plural, body
            )

    def delete_pools(self, prefix: str) -> None:
        for suffix in ("od", "spot"):
            try:
                self.custom.delete_cluster_custom_object(
                    GROUP, VERSION, "capacitypools", f"{prefix}-{suffix}"
                )
            except ApiException as exc:
                if exc.status != 404:
                    raise

    def patch_spec(self, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "inferencedeployments", self.name, {"spec": patch}
        )

    # -- reading --------------------------------------------------------

    def resource(self) -> dict[str, Any]:
        body: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "inferencedeployments", self.name
        )
        return body

    def status(self) -> dict[str, Any]:
        return dict(self.resource().get("status") or {})

    def condition(self, kind: str) -> str | None:
        for c in self.status().get("conditions") or []:
            if c["type"] == kind:
                return str(c["status"])
        return None

    def engine_pods(self) -> list[Any]:
        return list(
            self.core.list_namespaced_pod(
                self.namespace,
                label_selector=f"weir.dev/deployment={self.name},weir.dev/component=engine",
            ).items
        )

    def ready_engines(self, pool_suffix: str | None = None) -> int:
        count = 0
        for pod in self.engine_pods():
            if pod.metadata.deletion_timestamp is not None:
                continue
            if pool_suffix and not (pod.metadata.labels or {}).get("weir.dev/pool", "").endswith(
                pool_suffix
            ):
                continue
            ready = {c.type: c.status for c in pod.status.conditions or []}.get("Ready")
            count += ready == "True"
        return count

    def desired_engines(self) -> dict[str, int]:
        listed = self.apps.list_namespaced_deployment(
            self.namespace,
            label_selector=f"weir.dev/deployment={self.name},weir.dev/component=engine",
        ).items
        return {
            d.metadata.labels.get("weir.dev/pool", d.metadata.name): d.spec.replicas for d in listed
        }

    def router_url(self) -> str | None:
        slices = self.discovery.list_namespaced_endpoint_slice(
            self.namespace, label_selector=f"kubernetes.io/service-name={self.name}"
        ).items
        for item in slices:
            for endpoint in item.endpoints or []:
                if endpoint.conditions and endpoint.conditions.ready:
                    return f"http://{endpoint.addresses[0]}:8080"
        return None

    def router_metrics_url(self) -> str | None:
        """The router's /metrics listener (a port of its own, not the API's)."""
        url = self.router_url()
        return None if url is None else url.rsplit(":", 1)[0] + f":{ROUTER_METRICS_PORT}"

    def client_token(self, timeout_s: float = 60.0) -> str:
        """A bearer token the router accepts (from the Secret the operator created)."""
        name = client_tokens_name(self.name)

        def read() -> str | None:
            try:
                secret = self.core.read_namespaced_secret(name, self.namespace)
            except ApiException as exc:
                if exc.status == 404:
                    return None
                raise
            data = secret.data or {}
            if CLIENT_TOKENS_KEY not in data:
                return None
            text = base64.b64decode(data[CLIENT_TOKENS_KEY]).decode()
            return next((t.strip() for t in text.splitlines() if t.strip()), None)

        token: str = wait_for(read, f"Secret {self.namespace}/{name}", timeout_s)
        return token

    def wait_router(self, timeout_s: float = 120.0) -> str:
        url: str = wait_for(
            self.router_url,
            f"router of {self.namespace}/{self.name} to be ready",
            timeout_s,
            interval_s=0.5,
        )
        return url

    def query(self, promql: str) -> float:
        """One instant value summed over series (0 when there is none)."""
        answer = self.prom.custom_query(promql)
        return float(sum(float(r["value"][1]) for r in answer))

    def wait_scraped(self, after_unix_s: float, timeout_s: float = 30.0) -> float:
        """Wait until Prometheus holds a scrape of this router taken after `after_unix_s`
        (so its counters include everything that ended before); that scrape's time."""
        labels = f'namespace="{self.namespace}",weir_dev_deployment="{self.name}"'
        query = f"max(timestamp(weir_router_requests_total{{{labels}}}))"

        def scraped() -> float | None:
            stamp = self.query(query)
            return stamp if stamp > after_unix_s else None

        stamp: float = wait_for(scraped, "a scrape of the router after the traffic", timeout_s)
        return stamp

    def counter(self, metric: str, selector: str = "") -> float:
        """Sum of a router counter for this deployment, as scraped now."""
        labels = f'namespace="{self.namespace}",weir_dev_deployment="{self.name}"'
        if selector:
            labels += "," + selector
        return self.query(f"sum({metric}{{{labels}}})")
