"""The closed control loop on real metrics, and fail static when Prometheus goes away.

Known traffic is exported under the router's metric names; the operator reads
it from the real Prometheus, plans more capacity, and applies it. Then
Prometheus is stopped: the plan is held (nothing scales down on missing data)
and the conditions say why; when Prometheus is back, planning resumes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from support.fakerouter import FakeRouter
from support.operator import (
    create,
    delete_and_wait,
    deployment,
    get_deployment,
    operator_process,
)
from weir_lab.cluster import processes
from weir_lab.cluster.wait import wait_for

FAST = {"WEIR_OPERATOR_METRICS_WINDOW_S": "20", "WEIR_OPERATOR_METRICS_REFRESH_S": "1"}


@pytest.fixture
def busy_router(prometheus, namespace) -> Iterator[FakeRouter]:
    router = FakeRouter()
    prometheus.add_target(
        f"router-{namespace}",
        router.address,
        {"namespace": namespace, "weir_dev_deployment": "llm"},
    )
    router.drive(rps=120.0)
    yield router
    router.close()


def status(cluster, namespace: str) -> dict[str, Any]:
    return dict(get_deployment(cluster.api, namespace, "llm").get("status", {}))


def condition(cluster, namespace: str, kind: str) -> str | None:
    found = [c for c in status(cluster, namespace).get("conditions", []) if c["type"] == kind]
    return found[0]["status"] if found else None


def engine_replicas(cluster, namespace: str) -> int:
    deployments = cluster.apps.list_namespaced_deployment(
        namespace, label_selector="weir.dev/component=engine"
    ).items
    return sum(d.spec.replicas for d in deployments)


def test_metrics_drive_scale_up_and_missing_metrics_hold_the_plan(
    cluster, namespace, capacity_pools, busy_router, tmp_path
):
    state_dir = cluster.settings.state_dir
    with operator_process(cluster.settings, tmp_path / "op.log", "--standalone", env=FAST):
        spec = deployment(namespace)
        spec["spec"]["pools"][1]["minReplicas"] = 0
        create(cluster, namespace, spec)
        wait_for(
            lambda: engine_replicas(cluster, namespace) >= 3,
            "120 req/s to be planned onto 3+ replicas",
            120,
            interval_s=1.0,
        )
        assert condition(cluster, namespace, "MetricsAvailable") == "True"
        scaled = engine_replicas(cluster, namespace)

        processes.stop_one(state_dir, "prometheus")
        try:
            wait_for(
                lambda: condition(cluster, namespace, "MetricsAvailable") == "False",
                "MetricsAvailable=False",
                30,
                interval_s=0.5,
            )
            assert condition(cluster, namespace, "Degraded") == "True"
            first = status(cluster, namespace)["lastDecision"]["time"]
            wait_for(
                lambda: status(cluster, namespace)["lastDecision"]["time"] > first,
                "another held decision",
                30,
                interval_s=0.5,
            )
            assert engine_replicas(cluster, namespace) >= scaled  # never down on missing data
            assert status(cluster, namespace)["lastDecision"]["acted"] is False
        finally:
            processes.restart_one(state_dir, "prometheus")
        wait_for(
            lambda: condition(cluster, namespace, "MetricsAvailable") == "True",
            "MetricsAvailable=True after Prometheus is back",
            60,
            interval_s=0.5,
        )
        wait_for(
            lambda: condition(cluster, namespace, "Degraded") == "False",
            "planning to resume",
            60,
            interval_s=0.5,
        )
        delete_and_wait(cluster, namespace)  # while the operator runs to release its finalizer
