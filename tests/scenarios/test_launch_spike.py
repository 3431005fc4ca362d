"""Launch spike: the rate goes x5 within 30 s. Spill starts at saturation (within 1 s),
replicas are added, spill recedes as they become ready, and the useful fraction over
the scenario stays at or above the SLO target."""

from __future__ import annotations

import time

from support.scenarios import assert_none_failed, workload
from weir_lab.closedloop.figures import measure
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.progress import Sampler
from weir_lab.closedloop.report import spill_reaction_s
from weir_lab.closedloop.schedule import Spike
from weir_lab.closedloop.traffic import Background


def test_launch_spike_spills_then_scales(loop_for):
    # the rate climbs x5 in 30 s; a new replica takes 40 s to warm (minutes in production)
    shape = Shape(on_demand=(1, 3), spot=(0, 4), cold_start_s=40.0)
    loop = loop_for(shape)
    url = loop.wait_router()
    spike = Spike(start_s=20.0, factor=5.0, ramp_s=30.0, hold_s=70.0)
    schedule = workload(2.0, 160.0, spike)
    sampler = Sampler(loop, time.monotonic()).start()
    traffic = Background(url, schedule, model=MODEL, api_key=loop.client_token()).start()
    result = traffic.join(400)
    sampler.stop()
    end = loop.wait_scraped(time.time())  # the last tokens are in Prometheus
    figures = measure(loop.prom, loop.namespace, loop.name, result.started_unix_s, end)

    assert_none_failed(result)
    hosted = [s for s in result.sent if s.backend == "hosted"]
    assert hosted, "the spike must spill"
    reaction = spill_reaction_s(result, sampler.samples, sampler.ready_by)
    assert reaction <= 1.0, f"spill started {reaction:.2f} s after saturation"
    desired = [sum(s.desired.values()) for s in sampler.samples]
    assert max(desired) > desired[0], f"no replicas added: {desired}"
    ready = [sum(s.ready.values()) for s in sampler.samples]
    assert max(ready) > 1, "the added replicas never became ready"

    def share(start: float, end: float) -> float:
        window = result.in_window(start, end)
        return sum(s.backend == "hosted" for s in window) / max(1, len(window))

    # spill peaks while new replicas warm, then recedes as they turn ready
    buckets = [(t, share(t, t + 10)) for t in range(int(spike.start_s), int(spike.end_s), 5)]
    peak_t, peak = max(buckets, key=lambda b: b[1])
    after = [(t, v) for t, v in buckets if t >= peak_t + 10]
    assert peak > 0 and after, buckets
    low_t, low = min(after, key=lambda b: b[1])
    assert low < peak / 2, f"spill did not recede: {buckets}"
    ready_then = sum(sampler.ready_by(peak_t).values())
    ready_later = sum(sampler.ready_by(low_t + 10).values())
    assert ready_later > ready_then, (ready_then, ready_later, buckets)
    assert figures.useful_token_fraction >= shape.useful_target, figures
