"""The operator against the real control plane: create, converge, restore, delete, refuse."""

from __future__ import annotations

import json
import subprocess
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from support.operator import (
    GROUP,
    VERSION,
    create,
    custom,
    deployment,
    get_deployment,
)
from weir_lab.cluster.pools import CAPACITY_TYPE_LABEL, GPU_RESOURCE, SPOT_TAINT
from weir_lab.cluster.toolchain import ensure
from weir_lab.cluster.wait import wait_for


def read_child(cluster, kind: str, name: str, namespace: str):
    try:
        return getattr(cluster.core, f"read_namespaced_{kind}")(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def engine(cluster, namespace: str, name: str) -> client.V1Deployment | None:
    try:
        return cluster.apps.read_namespaced_deployment(name, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def test_create_places_engines_on_their_pools_with_owner_references(
    cluster, operator, namespace, capacity_pools
):
    create(cluster, namespace, deployment(namespace))
    spot_name, od_name = f"llm-{namespace}-spot", f"llm-{namespace}-od"

    def running() -> list[client.V1Pod] | None:
        pods = cluster.core.list_namespaced_pod(
            namespace, label_selector="weir.dev/component=engine"
        ).items
        up = [p for p in pods if p.status.phase == "Running"]
        return up if len(up) == 3 else None

    pods = wait_for(running, "3 engine pods running", 90)
    by_pool: dict[str, list[str]] = {}
    for pod in pods:
        node = cluster.core.read_node(pod.spec.node_name)
        by_pool.setdefault(pod.metadata.labels["weir.dev/pool"], []).append(
            node.metadata.labels[CAPACITY_TYPE_LABEL]
        )
        container = pod.spec.containers[0]
        assert container.resources.requests[GPU_RESOURCE] == "1"
    assert by_pool == {f"{namespace}-od": ["on-demand"], f"{namespace}-spot": ["spot", "spot"]}

    owner_uid = get_deployment(cluster.api, namespace, "llm")["metadata"]["uid"]
    spot = engine(cluster, namespace, spot_name)
    assert spot is not None and engine(cluster, namespace, od_name) is not None
    assert [r.uid for r in spot.metadata.owner_references] == [owner_uid]
    tolerations = spot.spec.template.spec.tolerations
    assert any(t.key == SPOT_TAINT["key"] for t in tolerations)
    for kind, name in (("service", "llm"), ("service", spot_name), ("config_map", "llm-router")):
        # children are applied one after another: the router's may land after the engines run
        found = wait_for(lambda k=kind, n=name: read_child(cluster, k, n, namespace), name, 30)
        assert found.metadata.owner_references[0].uid == owner_uid

    def status_caught_up() -> dict[str, Any] | None:
        status = get_deployment(cluster.api, namespace, "llm").get("status", {})
        return status if status.get("readyReplicas") == 3 else None

    status = wait_for(status_caught_up, "status to report 3 ready replicas", 60)
    assert status["onDemandReplicas"] == 1 and status["spotReplicas"] == 2
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "True"
    assert conditions["MetricsAvailable"]["status"] == "True"
    assert conditions["Degraded"]["status"] == "False"
    decision = status["lastDecision"]
    assert decision["acted"] and decision["reasons"] and decision["alternatives"]
    assert set(status["plannedReplicas"]) == {f"{namespace}-od", f"{namespace}-spot"}
    assert status["spillPolicy"]["concurrencyLimitByPool"]

    def plan_event() -> list[client.CoreV1Event] | None:
        events = cluster.core.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=InferenceDeployment"
        ).items
        return [e for e in events if e.reason == "PlanChanged"] or None

    assert decision["summary"] in wait_for(plan_event, "a PlanChanged event", 30)[0].message


def test_hand_edited_child_is_restored_and_delete_removes_children(
    cluster, operator, namespace, capacity_pools
):
    create(cluster, namespace, deployment(namespace))
    name = f"llm-{namespace}-spot"
    wait_for(lambda: engine(cluster, namespace, name), f"deployment {name}", 60)
    cluster.apps.patch_namespaced_deployment(name, namespace, {"spec": {"replicas": 0}})
    wait_for(
        lambda: (d := engine(cluster, namespace, name)) is not None and d.spec.replicas == 2,
        "the hand edit to be undone",
        30,
    )
    cluster.core.delete_namespaced_service(name, namespace)
    wait_for(
        lambda: any(
            s.metadata.name == name for s in cluster.core.list_namespaced_service(namespace).items
        ),
        "the deleted Service to come back",
        30,
    )
    custom(cluster.api).delete_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferencedeployments", "llm"
    )
    wait_for(
        lambda: (
            not cluster.apps.list_namespaced_deployment(namespace).items
            and not cluster.core.list_namespaced_service(namespace).items
        ),
        "children to be garbage-collected",
        60,
    )


def test_missing_pool_sets_a_condition_and_creates_nothing(cluster, operator, namespace):
    create(cluster, namespace, deployment("absent"))

    def condition() -> dict[str, Any] | None:
        status = get_deployment(cluster.api, namespace, "llm").get("status", {})
        return next((c for c in status.get("conditions", []) if c["type"] == "Ready"), None)

    ready = wait_for(condition, "a Ready condition", 30)
    assert ready["status"] == "False" and ready["reason"] == "InvalidReference"
    assert "absent-od" in ready["message"] and "not found" in ready["message"]
    assert cluster.apps.list_namespaced_deployment(namespace).items == []


def engine_total(cluster, namespace: str) -> int:
    items = cluster.apps.list_namespaced_deployment(
        namespace, label_selector="weir.dev/component=engine"
    ).items
    return sum(d.spec.replicas or 0 for d in items)


def kubectl(cluster, *args: str) -> str:
    tools = ensure(cluster.settings.e2e_dir, build=False)
    done = subprocess.run(
        [str(tools.kubectl), f"--kubeconfig={cluster.settings.kubeconfig}", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout


def test_kubectl_scale_pins_the_total(cluster, operator, namespace, capacity_pools):
    create(cluster, namespace, deployment(namespace))
    wait_for(lambda: engine_total(cluster, namespace) == 3, "the minimum fleet", 60)
    kubectl(cluster, "scale", "-n", namespace, "inferencedeployment/llm", "--replicas=6")
    wait_for(lambda: engine_total(cluster, namespace) == 6, "6 engine replicas", 60)
    wait_for(
        lambda: (
            get_deployment(cluster.api, namespace, "llm").get("status", {}).get("replicas") == 6
        ),
        "status.replicas to follow",
        60,
    )
    scale = json.loads(
        kubectl(
            cluster,
            "get",
            "-n",
            namespace,
            "inferencedeployment/llm",
            "--subresource=scale",
            "-o",
            "json",
        )
    )
    assert scale["spec"]["replicas"] == 6 and scale["status"]["replicas"] == 6
    assert "weir.dev/deployment=llm" in scale["status"]["selector"]


def test_recommend_mode_changes_nothing_but_status(cluster, operator, namespace, capacity_pools):
    body = deployment(namespace)
    body["spec"]["control"]["mode"] = "recommend"
    body["spec"]["replicas"] = 6
    create(cluster, namespace, body)

    def recommended() -> dict[str, Any] | None:
        status = get_deployment(cluster.api, namespace, "llm").get("status", {})
        return status if sum((status.get("plannedReplicas") or {}).values()) == 6 else None

    status = wait_for(recommended, "a recommendation of 6 replicas", 60)
    assert status["lastDecision"]["acted"] is False
    first = status["lastDecision"]["time"]
    wait_for(
        lambda: (
            get_deployment(cluster.api, namespace, "llm")["status"]["lastDecision"]["time"] > first
        ),
        "a later decision",
        30,
    )
    assert engine_total(cluster, namespace) == 3  # the minimum it started with, untouched


def test_update_converges_and_prunes_a_removed_pool(cluster, operator, namespace, capacity_pools):
    create(cluster, namespace, deployment(namespace))
    spot = f"llm-{namespace}-spot"
    wait_for(lambda: engine(cluster, namespace, spot), f"deployment {spot}", 60)
    api = custom(cluster.api)
    body = get_deployment(cluster.api, namespace, "llm")
    body["spec"]["pools"] = [body["spec"]["pools"][0] | {"minReplicas": 2}]
    api.replace_namespaced_custom_object(
        GROUP, VERSION, namespace, "inferencedeployments", "llm", body
    )
    od = f"llm-{namespace}-od"
    wait_for(
        lambda: (
            engine(cluster, namespace, spot) is None
            and read_child(cluster, "service", spot, namespace) is None
        ),
        "the spot pool's children to be pruned",
        60,
    )
    wait_for(
        lambda: (d := engine(cluster, namespace, od)) is not None and d.spec.replicas == 2,
        "the on-demand pool to converge on its new minimum",
        60,
    )
