"""The operator is killed (SIGKILL) during a scale-up: after a restart it converges to
the plan and nothing is duplicated (one engine Deployment per pool, one router)."""

from __future__ import annotations

from collections import Counter

from support.scenarios import assert_none_failed, total_desired, workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster.wait import wait_for


def test_operator_killed_during_scale_up_converges(loop_for, operator):
    loop = loop_for(Shape(on_demand=(1, 3), spot=(0, 3)))
    url = loop.wait_router()
    traffic = Background(
        url, workload(12.0, 80.0), model=MODEL, api_key=loop.client_token()
    ).start()
    wait_for(lambda: total_desired(loop) >= 2, "a scale-up to start", 60, interval_s=0.2)
    operator.kill()
    operator.start()
    wait_for(lambda: loop.condition("MetricsAvailable") == "True", "the new operator", 60)

    def converged() -> bool:
        desired = loop.desired_engines()
        pods = [p for p in loop.engine_pods() if p.metadata.deletion_timestamp is None]
        ready = loop.ready_engines()
        return sum(desired.values()) >= 2 and len(pods) == sum(desired.values()) == ready

    wait_for(converged, "engine pods to match the plan, all ready", 90, interval_s=1.0)
    deployments = loop.apps.list_namespaced_deployment(loop.namespace).items
    names = Counter(d.metadata.name for d in deployments)
    assert all(n == 1 for n in names.values())
    components = Counter(d.metadata.labels.get("weir.dev/component") for d in deployments)
    assert components["router"] == 1 and components["engine"] == 2
    planned = loop.status().get("plannedReplicas") or {}
    assert sum(planned.values()) == total_desired(loop)
    result = traffic.join(200)
    assert_none_failed(result)
