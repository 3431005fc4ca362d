"""`weir doctor`: check a cluster end to end and say what is wrong in plain words.

Gathers the facts `weir.controller.doctor_checks` judges: weir's CRDs and
whether their schema is this version's, the nodes and which pools they can
serve, pools, hosted endpoints (reachable? their key's Secret present?), each
InferenceDeployment's weights Secret (present, with its key?) and last
decision (is an operator acting?), and whether Prometheus holds the router
and engine series the operator's queries group by. Read-only: it changes
nothing, and never prints a Secret's content (it keeps its key names only).
Exit code 1 when anything is wrong, so it can gate a rollout.
"""

from __future__ import annotations

import datetime
import json
from typing import Any

import click
import httpx
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from pydantic import ValidationError
from requests import RequestException
from rich.console import Console
from rich.table import Table

from weir.api import CapacityPoolSpec, HostedEndpointSpec, InferenceDeploymentSpec
from weir.api._base import describe_validation_error
from weir.api.crd import crd_manifest
from weir.api.resources import DEFINITIONS
from weir.controller.children import COMPONENT_LABEL, DEPLOYMENT_LABEL, POOL_LABEL
from weir.controller.doctor_checks import DeploymentFacts, Facts, Node, diagnose, summary
from weir.controller.kubeapi import api_client
from weir.controller.settings import OperatorSettings
from weir.metrics.templates import QueryTemplates

GROUP, VERSION = "weir.dev", "v1alpha1"
_GPU = "nvidia.com/gpu"


def _raw(call: Any, *args: Any) -> dict[str, Any]:
    """A client call's JSON as the API server sent it (camelCase, no client models)."""
    response = call(*args, _preload_content=False)
    data: dict[str, Any] = json.loads(response.data)
    return data


def _crds(api: client.ApiClient) -> dict[str, str]:
    ext = client.ApiextensionsV1Api(api)
    states = {}
    for definition in DEFINITIONS:
        wanted = crd_manifest(definition)
        name = wanted["metadata"]["name"]
        try:
            live = _raw(ext.read_custom_resource_definition, name)
        except ApiException as exc:
            states[name] = (
                "not installed: kubectl apply -f crds/" if exc.status == 404 else str(exc.reason)
            )
            continue
        versions = {v["name"]: v for v in live["spec"].get("versions", [])}
        if VERSION not in versions or not versions[VERSION].get("served"):
            states[name] = f"{VERSION} is not served: kubectl apply -f crds/"
            continue
        mine = next(v for v in wanted["spec"]["versions"] if v["name"] == VERSION)
        same = versions[VERSION].get("schema") == mine.get("schema")
        states[name] = "ok" if same else "schema of another weir version: kubectl apply -f crds/"
    return states


def _nodes(core: Any) -> tuple[Node, ...]:
    nodes = []
    for item in _raw(core.list_node).get("items", []):
        meta, spec, status = item["metadata"], item.get("spec", {}), item.get("status", {})
        ready = any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in status.get("conditions", [])
        )
        taints = tuple(
            (t.get("key", ""), t.get("value", ""), t.get("effect", ""))
            for t in spec.get("taints") or []
        )
        gpus = int(str((status.get("allocatable") or {}).get(_GPU, "0")) or 0)
        nodes.append(Node(meta["name"], meta.get("labels") or {}, taints, gpus, ready))
    return tuple(nodes)


def _validated(model: Any, spec: Any, what: str) -> Any:
    try:
        return model.model_validate(spec or {})
    except ValidationError as exc:
        return describe_validation_error(what, exc)


def _age_s(stamp: Any) -> float | None:
    if not isinstance(stamp, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return max(0.0, (datetime.datetime.now(datetime.UTC) - moment).total_seconds())


def _ready_pods(core: Any, namespace: str, selector: str) -> list[dict[str, Any]]:
    pods = _raw(core.list_namespaced_pod, namespace, None, None, None, None, selector)
    return [
        p
        for p in pods.get("items", [])
        if any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (p.get("status") or {}).get("conditions", [])
        )
    ]


def _deployment(core: Any, item: dict[str, Any]) -> DeploymentFacts:
    meta = item["metadata"]
    ns, name = meta["namespace"], meta["name"]
    spec = _validated(InferenceDeploymentSpec, item.get("spec"), f"{ns}/{name} spec")
    routers = _ready_pods(core, ns, f"{DEPLOYMENT_LABEL}={name},{COMPONENT_LABEL}=router")
    engines: dict[str, int] = {}
    for pod in _ready_pods(core, ns, f"{DEPLOYMENT_LABEL}={name},{COMPONENT_LABEL}=engine"):
        pool = (pod["metadata"].get("labels") or {}).get(POOL_LABEL, "")
        engines[pool] = engines.get(pool, 0) + 1
    decided = ((item.get("status") or {}).get("lastDecision") or {}).get("time")
    ok = not isinstance(spec, str)
    return DeploymentFacts(
        ns,
        name,
        spec if ok else None,
        None if ok else spec,
        len(routers),
        engines,
        _age_s(decided),
    )


def _series(url: str) -> tuple[str, frozenset[Any], frozenset[Any]]:
    """Whether Prometheus answers, and which router and engine series it holds."""
    labels = QueryTemplates()
    by = f"{labels.namespace_label}, {labels.deployment_label}"
    prom = PrometheusConnect(url=url, disable_ssl=True, timeout=5)
    try:
        routers = prom.custom_query(f"count by ({by}) (weir_router_requests_total)")
        engines = prom.custom_query(
            f"count by ({by}, {labels.pool_label}) (trtllm_num_requests_running)"
        )
    except (PrometheusApiClientException, RequestException, ValueError, KeyError) as exc:
        return (
            f"{url} does not answer: {type(exc).__name__}: {str(exc)[:120]}",
            frozenset(),
            frozenset(),
        )

    def key(series: dict[str, Any], *names: str) -> tuple[str, ...]:
        return tuple(str(series.get("metric", {}).get(n, "")) for n in names)

    router_keys = frozenset(
        key(s, labels.namespace_label, labels.deployment_label) for s in routers
    )
    engine_keys = frozenset(
        key(s, labels.namespace_label, labels.deployment_label, labels.pool_label) for s in engines
    )
    return "ok", router_keys, engine_keys


def _secrets(
    core: Any, named: set[tuple[str, str]]
) -> tuple[dict[tuple[str, str], frozenset[str]], dict[tuple[str, str], dict[str, str]]]:
    """The key names and the annotations of each Secret named (absent when it cannot be
    read); values are dropped."""
    keys, annotations = {}, {}
    for ns, name in sorted(named):
        try:
            secret = _raw(core.read_namespaced_secret, name, ns)
        except ApiException:
            continue
        keys[(ns, name)] = frozenset((secret.get("data") or {}).keys())
        listed = (secret.get("metadata") or {}).get("annotations") or {}
        annotations[(ns, name)] = {str(k): str(v) for k, v in listed.items()}
    return keys, annotations


def _reachable(base_url: str) -> str:
    """Any HTTP answer (a 401 too: no key is sent) means the endpoint is there."""
    try:
        httpx.get(base_url.rstrip("/") + "/models", timeout=3.0)
    except httpx.HTTPError as exc:
        return f"does not answer ({type(exc).__name__})"
    return "ok"


def gather(api: client.ApiClient, prometheus_url: str) -> Facts:
    core: Any = client.CoreV1Api(api)
    custom: Any = client.CustomObjectsApi(api)
    pools = {
        item["metadata"]["name"]: _validated(
            CapacityPoolSpec, item.get("spec"), f"CapacityPool {item['metadata']['name']}"
        )
        for item in custom.list_cluster_custom_object(GROUP, VERSION, "capacitypools")["items"]
    }
    hosted: dict[tuple[str, str], Any] = {}
    for item in custom.list_cluster_custom_object(GROUP, VERSION, "hostedendpoints")["items"]:
        meta = item["metadata"]
        hosted[(meta["namespace"], meta["name"])] = _validated(
            HostedEndpointSpec, item.get("spec"), f"HostedEndpoint {meta['name']}"
        )
    items = custom.list_cluster_custom_object(GROUP, VERSION, "inferencedeployments")["items"]
    deployments = tuple(_deployment(core, item) for item in items)
    named = {
        (ns, spec.secret_ref.name)
        for (ns, _), spec in hosted.items()
        if isinstance(spec, HostedEndpointSpec) and spec.secret_ref is not None
    } | {
        (d.namespace, d.spec.model.weights_secret_ref.name)
        for d in deployments
        if d.spec is not None and d.spec.model.weights_secret_ref is not None
    }
    state, router_series, engine_series = _series(prometheus_url)
    urls = {spec.base_url for spec in hosted.values() if isinstance(spec, HostedEndpointSpec)}
    secret_keys, secret_annotations = _secrets(core, named)
    return Facts(
        crds=_crds(api),
        nodes=_nodes(core),
        pools=pools,
        hosted=hosted,
        secrets=secret_keys,
        deployments=deployments,
        prometheus=state,
        router_series=router_series,
        engine_series=engine_series,
        reachable={url: _reachable(url) for url in sorted(urls)},
        secret_annotations=secret_annotations,
    )


@click.command("doctor")
@click.option("--prometheus", "prometheus_url", help="Prometheus URL (default: the operator's).")
@click.option("--json", "as_json", is_flag=True, help="Findings as JSON, for scripts.")
def doctor(prometheus_url: str | None, as_json: bool) -> None:
    """Check weir on this cluster end to end; exit 1 when something is wrong."""
    settings = OperatorSettings()
    api = api_client(settings, pool_size=4)
    try:
        facts = gather(api, prometheus_url or settings.prometheus_url)
    except ApiException as exc:
        raise click.ClickException(f"the API server refused: {exc.status} {exc.reason}") from exc
    finally:
        api.close()  # type: ignore[no-untyped-call]
    findings = diagnose(facts)
    if as_json:
        click.echo(json.dumps({**summary(findings), "findings": [f.__dict__ for f in findings]}))
    else:
        table = Table(title="weir doctor")
        for column in ("check", "subject", "", "what it found"):
            table.add_column(column, overflow="fold")
        for f in findings:
            table.add_row(f.check, f.subject, "[green]ok[/]" if f.ok else "[red]FAIL[/]", f.message)
        Console(width=160).print(table)
    if any(not f.ok for f in findings):
        raise SystemExit(1)
