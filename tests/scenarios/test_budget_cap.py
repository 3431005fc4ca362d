"""A hosted budget cap is reached: hosted spend never exceeds it, in any window of the
router's budget window, and over the whole scenario, with `n` and `tools` in the traffic
(the hosted stand-in bills every choice and the tools' text, as a provider does)."""

from __future__ import annotations

import datetime
import math
import time

from support.scenarios import workload
from weir_lab.closedloop.harness import MODEL, Shape
from weir_lab.closedloop.traffic import Background

CAP = 3.0  # $/hour: a 70B request costs ~$0.001 hosted, so ~1 request/s at most
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": f"tool_{i}",
            "description": "d" * 4000,  # 8 tools of ~4 KB: ~33k prompt tokens billed
            "parameters": {"type": "object", "properties": {}},
        },
    }
    for i in range(8)
]
# plain, 4 choices, a large tools array: every third request is one of each
SHAPES = ({}, {"n": 4}, {"tools": TOOLS})


def test_hosted_spend_never_exceeds_the_cap(loop_for):
    loop = loop_for(
        Shape(on_demand=(1, 1), spot=(0, 0), hosted_max_dollars_per_hour=CAP, hosted_max_share=1.0)
    )
    url = loop.wait_router()
    traffic = Background(
        url, workload(12.0, 90.0), model=MODEL, api_key=loop.client_token(), shapes=SHAPES
    ).start()
    result = traffic.join(300)
    end = loop.wait_scraped(time.time())  # the last settlements are in Prometheus
    spend = loop.prom.custom_query_range(
        f'sum(weir_router_hosted_spend_dollars_total{{namespace="{loop.namespace}"}})',
        start_time=_dt(result.started_unix_s),
        end_time=_dt(end),
        step="1s",
    )
    points = [(float(t), float(v)) for t, v in spend[0]["values"]] if spend else []
    assert points and points[-1][1] > 0, "the scenario must spill to reach its cap"
    # The router caps what it admits in any budget window (60 s by default); the counter
    # grows when a request settles, up to one request's duration (and a scrape) later.
    window = 60.0
    hosted_s = [s.end_s - s.at_s for s in result.sent if s.backend == "hosted" and s.end_s]
    lag = max(hosted_s, default=0.0) + 2.0
    for t, v in points:
        earlier = [w for s, w in points if s <= t - window]
        base = earlier[-1] if earlier else 0.0
        assert v - base <= CAP * (window + lag) / 3600, (t, v - base, lag)
    # Over the whole run: the windows that cover it, back to back (what a rolling window
    # promises: any hour under the cap; a run shorter than an hour may spend a window's
    # allowance in each of the windows it spans, never more).
    total = points[-1][1]
    spans = math.ceil((end - result.started_unix_s) / window)
    assert total <= CAP * (spans * window + lag) / 3600, (total, spans, lag)
    # the cap held the spill back: the rest queued locally or was told to retry later
    hosted = sum(s.backend == "hosted" for s in result.sent)
    assert hosted < 0.5 * len(result.sent)
    # every shape reached the hosted endpoint, so the cap held against each of them
    assert {s.shape for s in result.sent if s.backend == "hosted"} == {0, 1, 2}
    for sent in result.failed():
        # the local emulated engine serves one choice, as its profile measures: n > 1
        # it refuses (400), and the router says so in its own words, naming the field
        refused_n = sent.status == 400 and sent.shape == 1 and '"param": "n"' in sent.error
        assert sent.status == 429 or refused_n, (sent.status, sent.error)


def _dt(unix_s: float):
    return datetime.datetime.fromtimestamp(unix_s, datetime.UTC)
