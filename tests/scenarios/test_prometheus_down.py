"""Prometheus down for more than five control periods: no scale-down, the condition says
so; the operator restarts while it is still down (a crash, an upgrade, an HA takeover)
and the new one keeps the fleet the last one left, not every pool at its minimum; and
planning resumes once Prometheus is back. Traffic keeps flowing throughout."""

from __future__ import annotations

from support.scenarios import assert_none_failed, total_desired, watch, workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster import processes
from weir_lab.cluster.wait import wait_for


def test_prometheus_outage_and_a_restart_during_it_hold_the_fleet(cluster, loop_for, operator):
    shape = Shape(on_demand=(1, 3), spot=(0, 3), period_s=3.0)
    loop = loop_for(shape)
    url = loop.wait_router()
    traffic = Background(
        url, workload(9.0, 100.0), model=MODEL, api_key=loop.client_token()
    ).start()
    wait_for(lambda: total_desired(loop) >= 2, "9 req/s to be planned onto 2+ replicas", 60)
    wait_for(lambda: loop.condition("MetricsAvailable") == "True", "metrics available", 30)
    before = total_desired(loop)
    state = cluster.settings.state_dir
    processes.stop_one(state, "prometheus")
    try:
        wait_for(
            lambda: loop.condition("MetricsAvailable") == "False",
            "MetricsAvailable=False",
            30,
            interval_s=0.5,
        )
        # at least five control periods without Prometheus
        during = watch(loop, 6 * shape.period_s, 0.5, total_desired)
        assert min(during) >= before, f"scaled down on missing data: {before} -> {during}"
        assert loop.condition("Degraded") == "True"
        operator.kill()
        operator.start()
        # the new operator, with no metrics and no plan of its own, for 8 periods more
        after = watch(loop, 8 * shape.period_s, 0.5, total_desired)
        assert min(after) >= before, f"a restart while down dropped the fleet: {after}"
        assert loop.condition("MetricsAvailable") == "False"
    finally:
        processes.restart_one(state, "prometheus")
    wait_for(
        lambda: loop.condition("MetricsAvailable") == "True",
        "MetricsAvailable=True after Prometheus is back",
        60,
        interval_s=0.5,
    )
    result = traffic.join(200)
    assert_none_failed(result)
