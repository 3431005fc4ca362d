"""Scale to zero and back: with no replica and a hosted endpoint, requests are served by
the hosted endpoint (none fails) while the first replica warms, then locally."""

from __future__ import annotations

from support.scenarios import assert_none_failed, total_desired, workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background
from weir_lab.cluster.wait import wait_for


def test_requests_at_zero_go_hosted_while_the_first_replica_warms(loop_for):
    loop = loop_for(Shape(on_demand=(0, 2), spot=(0, 0), hosted_max_share=1.0))
    url = loop.wait_router()
    wait_for(
        lambda: total_desired(loop) == 0 and not loop.engine_pods(),
        "the idle deployment to scale to zero",
        120,
        interval_s=1.0,
    )
    traffic = Background(url, workload(3.0, 70.0), model=MODEL, api_key=loop.client_token()).start()
    wait_for(lambda: loop.ready_engines() >= 1, "the first replica to warm up", 90)
    warm_at = traffic.elapsed_s()
    result = traffic.join(200)
    assert_none_failed(result)
    cold = result.in_window(0, min(warm_at - 2, 10))
    assert cold and all(s.backend == "hosted" for s in cold)
    late = result.in_window(warm_at + 10, 70)
    assert late and sum(s.backend == "local" for s in late) > 0.5 * len(late)
